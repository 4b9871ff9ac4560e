"""What OpenRouter says about a model: context length, supported parameters, prompt price.

Read from ``GET {base}/models`` (the whole catalogue, one request) and kept for an hour in
memory and in a file under the state directory, so a run does not pay a catalogue download per
process. When the endpoint cannot be read, the engine falls back to a safe budget and says so.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from config.log import get_logger

log = get_logger(__name__)

CACHE_TTL_S = 3600.0
STRUCTURED = ("structured_outputs", "response_format")  # both must be listed for strict json_schema


@dataclass(frozen=True)
class ModelInfo:
    """One model of the catalogue."""

    id: str
    context_length: int | None
    supported_parameters: tuple[str, ...]
    prompt_price_usd: float  # per token
    completion_price_usd: float = 0.0  # per token

    @property
    def strict_outputs(self) -> bool:
        """True when the model supports strict structured outputs."""
        return all(p in self.supported_parameters for p in STRUCTURED)


def _info(entry: Mapping[str, Any]) -> ModelInfo | None:
    model_id = entry.get("id")
    if not isinstance(model_id, str):
        return None
    context = entry.get("context_length")
    params = entry.get("supported_parameters")
    pricing = entry.get("pricing")
    return ModelInfo(model_id, context if isinstance(context, int) and context > 0 else None,
                     tuple(p for p in params if isinstance(p, str)) if isinstance(params, list) else (),
                     _price(pricing, "prompt"), _price(pricing, "completion"))


def _price(pricing: object, key: str) -> float:
    """A per-token price from the catalogue (strings of USD), 0.0 when absent or unreadable."""
    if not isinstance(pricing, Mapping):
        return 0.0
    try:
        return max(0.0, float(pricing.get(key) or 0.0))
    except (TypeError, ValueError):
        return 0.0


class ModelCatalogue:
    """The models endpoint, cached; ``get(model)`` is None for a model OpenRouter does not list."""

    def __init__(self, session: requests.Session, base_url: str, api_key: str, *,
                 cache_file: Path | None = None, timeout_s: float = 10.0) -> None:
        self.session = session
        self.url = base_url.rstrip("/") + "/models"
        self._api_key = api_key
        self.cache_file = cache_file
        self.timeout_s = timeout_s
        self._models: dict[str, ModelInfo] | None = None
        self._unreadable = False  # one failed download per process: later stages do not wait again

    def _from_file(self) -> dict[str, Any] | None:
        if self.cache_file is None:
            return None
        try:
            if time.time() - self.cache_file.stat().st_mtime > CACHE_TTL_S:
                return None
            data = json.loads(self.cache_file.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and data.get("url") == self.url else None

    def _download(self) -> dict[str, Any]:
        response = self.session.get(self.url, headers={"Authorization": f"Bearer {self._api_key}"},
                                    timeout=self.timeout_s, allow_redirects=False)
        response.raise_for_status()
        body = response.json()
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise ValueError("the models endpoint did not answer {\"data\": [...]}")
        data = {"url": self.url, "data": body["data"]}
        if self.cache_file is not None:
            try:
                self.cache_file.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.cache_file.with_name(f".{self.cache_file.name}.{os.getpid()}")
                tmp.write_text(json.dumps(data))
                os.replace(tmp, self.cache_file)
            except OSError as exc:  # a cache that cannot be written costs a download next time, no more
                log.warning("llm_models_cache_unwritable", error=str(exc))
        return data

    def load(self) -> dict[str, ModelInfo]:
        """Every listed model by id; raises requests/ValueError when the endpoint cannot be read."""
        if self._models is None:
            data = self._from_file() or self._download()
            infos = (_info(e) for e in data["data"] if isinstance(e, Mapping))
            self._models = {i.id: i for i in infos if i is not None}
        return self._models

    def get(self, model: str) -> ModelInfo | None:
        """``model``'s entry; None when it is not listed."""
        return self.load().get(model)

    def find(self, model: str) -> ModelInfo | None:
        """``model``'s entry, or None when unlisted or when the endpoint cannot be read (logged once)."""
        if self._unreadable:
            return None
        try:
            return self.get(model)
        except (requests.RequestException, ValueError) as exc:
            self._unreadable = True
            log.warning("llm_models_unavailable", url=self.url, error=type(exc).__name__,
                        fallback="the policy's safe prompt budget, no cost estimate")
            return None
