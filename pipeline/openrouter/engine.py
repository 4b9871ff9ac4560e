"""The OpenRouter engine: each stage is one chat completion (plus at most one repair) on one model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import requests

from config.errors import StageError
from pipeline.document import Document
from pipeline.openrouter import prompts
from pipeline.openrouter.budget import document_for_prompt
from pipeline.openrouter.evidence import keep_verbatim_evidence
from pipeline.openrouter.policy import LlmPolicy
from pipeline.openrouter.replies import Check, converse
from pipeline.openrouter.transport import ChatClient
from pipeline.stage_schema import validate_stage_output

if TYPE_CHECKING:
    from config.settings import Settings
    from pipeline.brands import BrandProfile

APP_TITLE = "Innovation Pipeline Runner"  # OpenRouter's X-Title attribution header


class OpenRouterEngine:
    """Implements the Engine protocol with an LLM behind OpenRouter's chat completions API."""

    name = "openrouter"

    def __init__(self, *, session: requests.Session, base_url: str, model: str, api_key: str,
                 policy: LlmPolicy = LlmPolicy(), app_title: str | None = APP_TITLE,
                 app_url: str | None = None) -> None:
        self.policy = policy
        self.client = ChatClient(session, base_url=base_url, model=model, api_key=api_key, policy=policy,
                                 app_title=app_title, app_url=app_url)

    def __repr__(self) -> str:
        return f"OpenRouterEngine(url={self.client.url!r}, model={self.client.model!r})"  # never the key

    @classmethod
    def from_settings(cls, settings: Settings, *, policy: LlmPolicy = LlmPolicy(),
                      session: requests.Session | None = None) -> OpenRouterEngine:
        """The engine for OPENROUTER_API_KEY, OPENROUTER_BASE_URL and LLM_MODEL."""
        if not settings.openrouter_api_key:
            raise ValueError("OpenRouterEngine needs OPENROUTER_API_KEY (settings.openrouter_api_key)")
        return cls(session=session or requests.Session(), base_url=settings.openrouter_base_url,
                   model=settings.llm_model, api_key=settings.openrouter_api_key, policy=policy)

    def close(self) -> None:
        """Release the HTTP session's pooled connections."""
        self.client.session.close()

    def input_processing(self, document: Document) -> dict[str, Any]:
        """Stage 1: summary, core mechanism and 1-3 inspirations whose evidence is verbatim."""
        text = document_for_prompt(document, self.policy.max_document_chars, stage=1)

        def check(output: dict[str, Any]) -> dict[str, Any]:
            validate_stage_output(1, output)
            return keep_verbatim_evidence(output, document.text)

        return converse(self.client, 1, prompts.stage1(document, text), check)

    def signal_amplification(self, document: Document, stage1: Mapping[str, Any]) -> dict[str, Any]:
        """Stage 2: market signals that amplify the inspirations."""
        text = document_for_prompt(document, self.policy.max_document_chars, stage=2)
        return converse(self.client, 2, prompts.stage2(document, text, stage1), _validated(2))

    def general_translation(self, stage1: Mapping[str, Any], stage2: Mapping[str, Any]) -> dict[str, Any]:
        """Stage 3: brand-neutral insights citing stage 2's signal ids."""
        return converse(self.client, 3, prompts.stage3(stage1, stage2), _validated(3, stage2))

    def brand_contextualization(self, stage3: Mapping[str, Any], brand: BrandProfile) -> dict[str, Any]:
        """Stage 4: the insights re-read against the brand, citing stage 3's insight ids."""
        validated = _validated(4, stage3)

        def check(output: dict[str, Any]) -> dict[str, Any]:
            validated(output)
            if output["brand_id"] != brand.brand_id:  # the runner refuses another brand's output
                raise StageError(4, f"stage 4: brand_id must be {brand.brand_id!r}, got {output['brand_id']!r}",
                                 code="STAGE_OUTPUT_INVALID")
            return output

        return converse(self.client, 4, prompts.stage4(stage3, brand), check)

    def opportunity_generation(self, stage4: Mapping[str, Any], brand: BrandProfile,
                               document: Document) -> dict[str, Any]:
        """Stage 5: exactly five opportunity cards, one per innovation type."""
        return converse(self.client, 5, prompts.stage5(stage4, brand, document), _validated(5))


def _validated(stage: int, previous: Mapping[str, Any] | None = None) -> Check:
    """A check that holds a reply to contract §8 (ids cited from ``previous`` must exist)."""
    def check(output: dict[str, Any]) -> dict[str, Any]:
        validate_stage_output(stage, output, previous)
        return output

    return check
