"""The OpenRouter engine: the five stages as chat completions (see :class:`OpenRouterEngine`).

    engine.py     OpenRouterEngine: one completion (plus at most one repair) per stage
    policy.py     LlmPolicy: timeouts, retry bounds, prompt budget
    prompts.py    the named prompt templates, one exact JSON shape per stage
    transport.py  ChatClient: HTTP, retries (tenacity) and error mapping to StageError codes
    responses.py  what one HTTP answer means
    replies.py    parse, check and repair a model's reply
    evidence.py   stage 1 quotes must be verbatim sentences of the document
    budget.py     long documents cut at a paragraph boundary, with a logged warning
"""

from pipeline.openrouter.engine import OpenRouterEngine
from pipeline.openrouter.policy import LlmPolicy

__all__ = ["LlmPolicy", "OpenRouterEngine"]
