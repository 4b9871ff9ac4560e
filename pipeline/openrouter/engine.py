"""The OpenRouter engine: each stage one strict, schema-exact chat completion (a long document: map-reduce).

Stage 1 reads the document as numbered passages. When they do not fit the prompt budget (from
the model's ``context_length``), the sections are read in parallel (bounded) and one combining
call keeps the 1-3 inspirations: every passage reaches the model, and stage 1 records the share
seen (``coverage``). Evidence is cited by passage id and inserted here as the exact text.
Stages 4 and 5 get a digest of the cited passages (``Grounding``), so cards name the report's
own figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import requests

from pipeline.document import Document
from pipeline.engine import Grounding
from pipeline.openrouter import prompts
from pipeline.openrouter import schemas as s
from pipeline.openrouter.breaker import ProviderBreaker, breaker_path
from pipeline.openrouter.models import ModelCatalogue
from pipeline.openrouter.policy import LlmPolicy
from pipeline.openrouter.replies import converse
from pipeline.openrouter.transport import ChatClient
from pipeline.passages import Passage, rendered_chars, sections, split_passages, texts
from pipeline.stage_schema import validate_stage_output
from pipeline.usage import RunMeter
from pipeline.vocabulary import INNOVATION_TYPES

if TYPE_CHECKING:
    from config.settings import Settings
    from pipeline.brands import BrandProfile

from config.log import get_logger

log = get_logger(__name__)

APP_TITLE = "Innovation Pipeline Runner"  # OpenRouter's X-OpenRouter-Title attribution header
DEFAULT_POLICY = LlmPolicy()


def _cited(items: Sequence[Mapping[str, Any]]) -> list[int]:
    out: list[int] = []
    for item in items:
        for pid in item.get("passage_ids") or ():
            if isinstance(pid, int) and pid not in out:
                out.append(pid)
    return out


def _grounded(reply_items: Sequence[Mapping[str, Any]], passages: Sequence[Passage]) -> list[dict[str, Any]]:
    """Reply items with ``evidence`` set to the exact text of the passages they cite."""
    return [{**item, "evidence": texts(passages, item["passage_ids"])} for item in reply_items]


class OpenRouterEngine:
    """Implements the Engine protocol (and GroundedEngine) with an LLM behind OpenRouter."""

    name = "openrouter"

    def __init__(self, *, session: requests.Session, base_url: str, model: str, api_key: str,
                 policy: LlmPolicy = DEFAULT_POLICY, app_title: str | None = APP_TITLE,
                 app_url: str | None = None, fallback_models: tuple[str, ...] = (), language: str | None = None,
                 breaker: ProviderBreaker | None = None, catalogue: ModelCatalogue | None = None) -> None:
        self.policy = policy
        self.language = language
        self.client = ChatClient(session, base_url=base_url, model=model, api_key=api_key, policy=policy,
                                 app_title=app_title, app_url=app_url, fallback_models=fallback_models,
                                 breaker=breaker)
        self.catalogue = catalogue or ModelCatalogue(session, base_url, api_key)
        self._priced = False

    def __repr__(self) -> str:
        return f"OpenRouterEngine(url={self.client.url!r}, model={self.client.model!r})"  # never the key

    @property
    def model(self) -> str:
        """The model asked first (fallbacks follow it)."""
        return self.client.model

    @property
    def cache_scope(self) -> str:
        """What stages 1-3 depend on besides the document: model, fallbacks, prompt version, language."""
        models = ",".join((self.client.model, *self.client.fallback_models))
        return f"{models}|{prompts.PROMPT_VERSION}|{self.language or 'auto'}"

    @classmethod
    def from_settings(cls, settings: Settings, *, policy: LlmPolicy = DEFAULT_POLICY,
                      session: requests.Session | None = None) -> OpenRouterEngine:
        """The engine for OPENROUTER_API_KEY, OPENROUTER_BASE_URL, LLM_MODEL and the LLM_* settings."""
        if not settings.openrouter_api_key:
            raise ValueError("OpenRouterEngine needs OPENROUTER_API_KEY (settings.openrouter_api_key)")
        session = session or requests.Session()
        state = settings.state_dir
        return cls(session=session, base_url=settings.openrouter_base_url, model=settings.llm_model,
                   api_key=settings.openrouter_api_key, policy=policy, app_title=settings.openrouter_app_title,
                   app_url=settings.openrouter_app_url, fallback_models=settings.llm_fallback_models,
                   language=settings.report_language,
                   breaker=ProviderBreaker(breaker_path(state)),
                   catalogue=ModelCatalogue(session, settings.openrouter_base_url, settings.openrouter_api_key,
                                            cache_file=state / "openrouter-models.json"))

    def begin_run(self, meter: RunMeter) -> None:
        """Meter (and cap) this run's calls with ``meter``."""
        self.client.meter = meter

    def close(self) -> None:
        """Release the HTTP session's pooled connections."""
        self.client.session.close()

    # ---- helpers ------------------------------------------------------------------------------

    def _ask(self, stage: int, name: str, messages: list[dict[str, str]], reply: type[s._Reply],
             ids: Mapping[str, Sequence[Any]], check: Any) -> Any:
        if self.client.prices is None and not self._priced:
            self._priced = True  # ask the catalogue once for the ceiling's prices, found or not
            self._budget()
        schema = s.strict_schema(reply, ids)
        return converse(self.client, stage, messages, name=name, reply=reply, schema=schema, check=check,
                        temperature=self.policy.temperature(stage))

    def _budget(self) -> int:
        """Characters of passages one prompt may carry, from the model's context length (or a safe fallback)."""
        info = self.catalogue.find(self.client.model)
        if info is not None:  # the cost ceiling's estimate needs the model's prices too
            self.client.prices = (info.prompt_price_usd, info.completion_price_usd)
        if info is None or info.context_length is None:
            return self.policy.prompt_budget_chars(self.policy.fallback_context_tokens)
        return self.policy.prompt_budget_chars(info.context_length)

    def _language(self, stage1: Mapping[str, Any] | None) -> str | None:
        if self.language:
            return self.language
        value = stage1.get("language") if stage1 else None
        return value if isinstance(value, str) else None

    # ---- stage 1 ------------------------------------------------------------------------------

    def input_processing(self, document: Document) -> dict[str, Any]:
        """Stage 1: summary, core mechanism and 1-3 inspirations whose evidence is cited passages."""
        passages = split_passages(document.text)
        if not passages:
            passages = [Passage(1, " ".join(document.text.split()) or document.name)]
        budget = self._budget()
        if rendered_chars(passages) <= budget:
            output = self._stage1_whole(document, passages)
            sections_read = 1
        else:
            parts = sections(passages, budget)
            output = self._stage1_map_reduce(document, passages, parts)
            sections_read = len(parts)
        # Every passage was sent (whole, or section by section); what is left out is fragments too short
        # to be passages (page numbers, stray headings), counted against the whole normalised text.
        seen = sum(len(p.text) + 1 for p in passages)
        whole = len(" ".join(document.text.split())) + 1
        output["coverage"] = {"passages": len(passages), "sections": sections_read,
                              "share_seen": round(min(1.0, seen / whole), 4)}
        log.info("llm_document_coverage", document=document.name, passages=len(passages), sections=sections_read,
                 budget_chars=budget, share_seen=output["coverage"]["share_seen"])
        return output

    def _stage1_check(self, passages: Sequence[Passage]) -> Any:
        def check(reply: dict[str, Any]) -> dict[str, Any]:
            output = {**reply, "inspirations": _grounded(reply["inspirations"], passages)}
            validate_stage_output(1, output)
            return output
        return check

    def _stage1_whole(self, document: Document, passages: Sequence[Passage]) -> dict[str, Any]:
        doc = prompts.document_block(document, passages, len(passages))
        return self._ask(1, "stage1", prompts.stage1(doc, self.language), s.Stage1Reply,
                         {s.PASSAGES: self._ids(passages)}, self._stage1_check(passages))

    @staticmethod
    def _ids(passages: Sequence[Passage]) -> list[int]:
        return [p.id for p in passages]

    def _section(self, document: Document, total: int, part: Sequence[Passage], number: int,
                 count: int) -> dict[str, Any]:
        doc = prompts.document_block(document, part, total)
        reply: dict[str, Any] = self._ask(1, "stage1_section", prompts.section(doc, number, count, self.language),
                                          s.SectionReply, {s.PASSAGES: self._ids(part)}, lambda r: r)
        return {"section": number, **reply}

    def _stage1_map_reduce(self, document: Document, passages: Sequence[Passage],
                           parts: Sequence[Sequence[Passage]]) -> dict[str, Any]:
        log.info("llm_map_reduce", stage=1, sections=len(parts), concurrency=self.policy.map_concurrency)
        with ThreadPoolExecutor(max_workers=min(self.policy.map_concurrency, len(parts)),
                                thread_name_prefix="llm-map") as pool:
            futures = [pool.submit(self._section, document, len(passages), part, n, len(parts))
                       for n, part in enumerate(parts, start=1)]
            findings = [f.result() for f in futures]
        cited = sorted({pid for f in findings for pid in _cited(f["inspirations"])})
        if not cited:  # no section found an innovation: let the combiner cite each section's opening
            cited = [p.id for part in parts for p in part[:3]]
        by_id = {p.id: p.text for p in passages}
        evidence = {pid: by_id[pid] for pid in cited}
        return self._ask(1, "stage1", prompts.combine(findings, evidence, self.language), s.Stage1Reply,
                         {s.PASSAGES: cited}, self._stage1_check(passages))

    # ---- stages 2-5 ---------------------------------------------------------------------------

    def signal_amplification(self, document: Document, stage1: Mapping[str, Any]) -> dict[str, Any]:
        """Stage 2: signals amplifying the inspirations, citing passages (same document prefix as stage 1)."""
        passages = split_passages(document.text) or [Passage(1, document.name)]
        budget = self._budget()
        if rendered_chars(passages) <= budget:
            shown: Sequence[Passage] = passages
        else:  # a long document: the passages stage 1 cited and their neighbours, within the budget
            wanted = {pid + d for pid in _cited(stage1.get("inspirations", [])) for d in range(-3, 4)}
            near = [p for p in passages if p.id in wanted] or passages  # nothing cited: the document's opening
            shown = sections(near, budget)[0]
        doc = prompts.document_block(document, shown, len(passages))
        titles = [i["title"] for i in stage1["inspirations"]]
        language = self._language(stage1)

        def check(reply: dict[str, Any]) -> dict[str, Any]:
            signals = [{"id": f"S{n}", **item} for n, item in enumerate(_grounded(reply["signals"], passages), 1)]
            output = {"signals": signals}
            validate_stage_output(2, output)
            return output

        return self._ask(2, "stage2", prompts.stage2(doc, stage1, language), s.Stage2Reply,
                         {s.PASSAGES: self._ids(shown), s.INSPIRATIONS: titles}, check)

    def general_translation(self, stage1: Mapping[str, Any], stage2: Mapping[str, Any]) -> dict[str, Any]:
        """Stage 3: brand-neutral insights citing stage 2's signal ids."""
        def check(reply: dict[str, Any]) -> dict[str, Any]:
            output = {"insights": [{"id": f"I{n}", **item} for n, item in enumerate(reply["insights"], 1)]}
            validate_stage_output(3, output, stage2)
            return output

        ids = [sig["id"] for sig in stage2["signals"]]
        return self._ask(3, "stage3", prompts.stage3(stage1, stage2, self._language(stage1)), s.Stage3Reply,
                         {s.SIGNALS: ids}, check)

    def brand_contextualization(self, stage3: Mapping[str, Any], brand: BrandProfile) -> dict[str, Any]:
        """Stage 4 without a digest of the evidence (the Engine protocol's form)."""
        return self.brand_contextualization_grounded(stage3, brand, Grounding({}, self.language))

    def brand_contextualization_grounded(self, stage3: Mapping[str, Any], brand: BrandProfile,
                                         grounding: Grounding) -> dict[str, Any]:
        """Stage 4: the insights re-read against the brand, with the cited evidence at hand."""
        def check(reply: dict[str, Any]) -> dict[str, Any]:
            output = {"brand_id": reply["brand_id"],
                      "insights": [{"id": f"B{n}", **item} for n, item in enumerate(reply["insights"], 1)]}
            validate_stage_output(4, output, stage3)
            return output

        ids = [item["id"] for item in stage3["insights"]]
        language = self.language or grounding.language
        return self._ask(4, "stage4", prompts.stage4(stage3, brand, grounding.evidence, language),
                         s.Stage4Reply, {s.INSIGHTS: ids, s.BRAND: [brand.brand_id]}, check)

    def opportunity_generation(self, stage4: Mapping[str, Any], brand: BrandProfile,
                               document: Document) -> dict[str, Any]:
        """Stage 5 without a digest of the evidence (the Engine protocol's form)."""
        return self.opportunity_generation_grounded(stage4, brand, document, Grounding({}, self.language))

    def opportunity_generation_grounded(self, stage4: Mapping[str, Any], brand: BrandProfile, document: Document,
                                        grounding: Grounding) -> dict[str, Any]:
        """Stage 5: five cards, one per innovation type, each citing the evidence for its why-now figure."""
        evidence = dict(grounding.evidence)

        def check(reply: dict[str, Any]) -> dict[str, Any]:
            cards = []
            for n, kind in enumerate(INNOVATION_TYPES, start=1):
                card = reply["cards"][kind]
                cards.append({"number": n, "title": card["title"], "innovation_type": kind,
                              "description": card["description"], "actionability": card["actionability"],
                              "follow_up_prompts": card["follow_up_prompts"], "product_line": card["product_line"],
                              "channel": card["channel"], "price_point": card["price_point"],
                              "why_now": card["why_now"], "passage_ids": card["passage_ids"],
                              "evidence": [evidence[i] for i in card["passage_ids"] if i in evidence]})
            output = {"opportunities": cards}
            validate_stage_output(5, output)
            return output

        language = self.language or grounding.language
        return self._ask(5, "stage5", prompts.stage5(stage4, brand, evidence, language), s.Stage5Reply,
                         {s.PASSAGES: sorted(evidence)}, check)
