"""The OpenRouter engine: the five stages as strict, schema-exact chat completions (see :class:`OpenRouterEngine`).

    engine.py     OpenRouterEngine: stages, grounding by passage id, map-reduce for long documents
    schemas.py    reply models -> strict JSON Schemas with the ids a call allows as enums
    prompts.py    one system message, the document as numbered passages, the stage's task
    replies.py    parse and check a reply against its schema; at most one repair
    transport.py  ChatClient: HTTP, retries (tenacity), require_parameters, fallbacks, attribution
    responses.py  what one HTTP answer means (and its error code)
    models.py     the models endpoint: context length, supported parameters, prices (cached)
    breaker.py    the host-wide provider breaker
    policy.py     LlmPolicy: timeouts, retry bounds, prompt budget, temperatures, map concurrency
"""

from pipeline.openrouter.engine import OpenRouterEngine
from pipeline.openrouter.policy import LlmPolicy

__all__ = ["LlmPolicy", "OpenRouterEngine"]
