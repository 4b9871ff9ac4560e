"""The OpenRouter engine over real HTTP against a strict local fake: request shape, grounding, every failure mode."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
import requests
import structlog

from config.errors import ProviderUnavailable, StageError
from config.log import configure_logging
from pipeline.brands import BrandProfile, load_brand
from pipeline.document import Document
from pipeline.documents import parse_document, read_local
from pipeline.openrouter import LlmPolicy, OpenRouterEngine
from pipeline.openrouter.breaker import ProviderBreaker
from pipeline.passages import split_passages
from pipeline.stage_schema import INNOVATION_TYPES, MECHANISM_TYPES, validate_stage_output
from pipeline.stages import run_stage
from pipeline.usage import RunMeter
from tests import fake_openrouter as fake_api
from tests.conftest import REPO
from tests.fake_openrouter import FakeOpenRouter, start_fake_openrouter

MODEL = "google/gemini-2.5-flash"
SAMPLE = REPO / "data" / "samples" / "convenience-reinvented.md"
# Tiny waits and timeouts: nothing in these tests sleeps for long.
FAST = LlmPolicy(connect_timeout_s=2.0, read_timeout_s=1.0, attempts=3, total_s=30.0,
                 first_wait_s=0.01, jitter_s=0.01, max_wait_s=0.05)


class Logs:
    """Every log line written during a test, rendered as production renders them (JSON)."""

    def __init__(self, buffer: io.StringIO) -> None:
        self.buffer = buffer

    @property
    def text(self) -> str:
        """All rendered output."""
        return self.buffer.getvalue()

    def events(self, message: str) -> list[dict[str, Any]]:
        """The parsed lines whose ``message`` is ``message``."""
        lines = [json.loads(line) for line in self.text.splitlines() if line.startswith("{")]
        return [line for line in lines if line.get("message") == message]


@pytest.fixture
def logs() -> Iterator[Logs]:
    """Capture structlog and standard logging (urllib3 included, at DEBUG) as JSON lines."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    buffer = io.StringIO()
    configure_logging("DEBUG", json=True, stream=buffer)
    try:
        yield Logs(buffer)
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        structlog.reset_defaults()


@pytest.fixture(name="fake_openrouter")
def _fake_openrouter() -> Iterator[FakeOpenRouter]:
    """A running strict fake OpenRouter, closed after the test."""
    fake = start_fake_openrouter()
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture(scope="module")
def document() -> Document:
    """The sample trend report the CLI test runs too."""
    return parse_document(read_local(SAMPLE, 10_000_000))


@pytest.fixture(scope="module")
def brand() -> BrandProfile:
    """A shipped brand profile."""
    return load_brand(REPO / "data" / "brand-profiles", "decathlon")


def make_engine(fake: FakeOpenRouter, *, api_key: str | None = None, policy: LlmPolicy = FAST, model: str = MODEL,
                **options: Any) -> OpenRouterEngine:
    return OpenRouterEngine(session=requests.Session(), base_url=fake.base_url, model=model,
                            api_key=api_key or fake.api_key, policy=policy, **options)


def run_all(engine: OpenRouterEngine, document: Document, brand: BrandProfile) -> dict[int, dict[str, Any]]:
    """The five stages through the real stage wrapper, each validated as the runner does."""
    outputs: dict[int, dict[str, Any]] = {}
    for stage in range(1, 6):
        outputs[stage] = run_stage(stage, engine, document=document, brand=brand, previous=outputs)
    return outputs


def assert_key_only_in_bearer_header(fake: FakeOpenRouter, logs: Logs) -> None:
    for received in fake.requests:
        assert received.headers["Authorization"] == f"Bearer {fake.api_key}"
        assert fake.api_key not in received.raw.decode()
        assert all(fake.api_key not in v for k, v in received.headers.items() if k != "Authorization")
    assert fake.api_key not in logs.text


def normalised(text: str) -> str:
    return " ".join(text.split())


def long_document(paragraphs: int = 80) -> Document:
    text = "\n\n".join(f"Paragraph {n}: shoppers in region {n} bought {n + 10}% more ready meals this year, "
                       f"and retailers answered with {n} new formats across the country." for n in range(paragraphs))
    return Document(name="long.md", source="long.md", media_type="text/markdown", text=text, original_chars=len(text))


# ---- every stage, end to end ------------------------------------------------------------------

def test_each_stage_is_one_strict_completion_with_the_request_shape(fake_openrouter, logs, document, brand):
    engine = make_engine(fake_openrouter, fallback_models=("openai/gpt-4.1-mini",), app_url="https://app.example")
    meter = RunMeter()
    engine.begin_run(meter)

    outputs = run_all(engine, document, brand)

    sent = fake_openrouter.completions
    assert [r.schema_name for r in sent] == ["stage1", "stage2", "stage3", "stage4", "stage5"]
    assert [r.stage for r in sent] == [1, 2, 3, 4, 5]
    for stage, received in enumerate(sent, start=1):
        body = received.body
        assert body["model"] == MODEL and body["models"] == [MODEL, "openai/gpt-4.1-mini"]
        assert body["provider"] == {"require_parameters": True}
        assert body["temperature"] == FAST.temperature(stage)
        assert body["response_format"]["type"] == "json_schema"
        assert body["response_format"]["json_schema"]["strict"] is True
        assert fake_api.strictness_problem(received.schema) is None
        assert received.headers["X-OpenRouter-Title"] == "Innovation Pipeline Runner"
        assert received.headers["HTTP-Referer"] == "https://app.example"
    assert FAST.temperature(1) < FAST.temperature(5)  # extraction cold, ideation warmer
    assert outputs[4]["brand_id"] == "decathlon"
    usage = logs.events("llm_completion")
    assert [e["stage"] for e in usage] == [1, 2, 3, 4, 5]
    assert all(e["usage"]["cost_usd"] > 0 and e["usage"]["prompt_tokens"] > 0 for e in usage)
    assert meter.total().calls == 5
    assert meter.total().cost_usd == pytest.approx(sum(e["usage"]["cost_usd"] for e in usage))
    assert not logs.events("llm_retry") and not logs.events("llm_repair")
    assert_key_only_in_bearer_header(fake_openrouter, logs)


def test_schemas_constrain_ids_types_and_the_brand(fake_openrouter, document, brand):
    outputs = run_all(make_engine(fake_openrouter), document, brand)
    s1, s2, s3, s4, s5 = (r.schema for r in fake_openrouter.completions)
    passage_ids = [p.id for p in split_passages(document.text)]

    inspiration = s1["properties"]["inspirations"]["items"]
    assert inspiration["properties"]["passage_ids"]["items"]["enum"] == passage_ids
    assert inspiration["properties"]["mechanism_type"]["enum"] == list(MECHANISM_TYPES)
    signal = s2["properties"]["signals"]["items"]["properties"]
    assert signal["inspiration"]["enum"] == [i["title"] for i in outputs[1]["inspirations"]]
    assert s3["properties"]["insights"]["items"]["properties"]["signal_ids"]["items"]["enum"] == \
        [sig["id"] for sig in outputs[2]["signals"]]
    assert s4["properties"]["brand_id"]["enum"] == ["decathlon"]
    assert s4["properties"]["insights"]["items"]["properties"]["insight_ids"]["items"]["enum"] == \
        [i["id"] for i in outputs[3]["insights"]]
    cards = s5["properties"]["cards"]["properties"]
    assert list(cards) == list(INNOVATION_TYPES)  # one card per type, by construction
    cited = sorted({pid for item in [*outputs[1]["inspirations"], *outputs[2]["signals"]]
                    for pid in item["passage_ids"]})
    assert cards["Premium"]["properties"]["passage_ids"]["items"]["enum"] == cited


def test_evidence_is_the_exact_text_of_the_cited_passages(fake_openrouter, document, brand):
    outputs = run_all(make_engine(fake_openrouter), document, brand)
    passages = {p.id: p.text for p in split_passages(document.text)}

    for item in [*outputs[1]["inspirations"], *outputs[2]["signals"], *outputs[5]["opportunities"]]:
        assert item["passage_ids"] and item["evidence"] == [passages[i] for i in item["passage_ids"]]
        assert all(quote in normalised(document.text) for quote in item["evidence"])
    for card in outputs[5]["opportunities"]:
        assert all(card[key] for key in ("product_line", "channel", "price_point", "why_now"))
    prompt5 = fake_openrouter.completions[4].prompt  # stage 5 sees the cited passages' text
    assert "<evidence>" in prompt5 and passages[outputs[1]["inspirations"][0]["passage_ids"][0]] in prompt5


def test_the_document_prefix_is_identical_for_stages_1_and_2(fake_openrouter, logs, document, brand):
    run_all(make_engine(fake_openrouter), document, brand)
    first, second = fake_openrouter.completions[:2]

    assert first.messages[:2] == second.messages[:2] and "<document" in first.messages[1]["content"]
    cached = [e["usage"]["cached_tokens"] for e in logs.events("llm_completion")]
    assert cached[0] == 0 and cached[1] > 0  # the fake's prompt cache, like a provider's


def test_output_language_follows_report_language(fake_openrouter, document, brand):
    run_all(make_engine(fake_openrouter, language="French"), document, brand)
    for received in fake_openrouter.completions:
        assert "in French" in received.messages[-1]["content"]


# ---- whole documents: map-reduce --------------------------------------------------------------

def test_a_document_beyond_the_context_is_read_section_by_section_then_combined(fake_openrouter, logs):
    fake_openrouter.set_model("small/context", context_length=2_000)  # ~4,200 characters of passages
    document = long_document()
    engine = make_engine(fake_openrouter, model="small/context", policy=replace(FAST, map_concurrency=3))

    output = engine.input_processing(document)

    validate_stage_output(1, output)
    sent = fake_openrouter.completions
    sections = [r for r in sent if r.schema_name == "stage1_section"]
    assert len(sections) >= 3 and [r.schema_name for r in sent][-1] == "stage1"
    assert len(sent) == len(sections) + 1
    seen_ids = sorted(pid for r in sections
                      for pid in r.schema["properties"]["inspirations"]["items"]["properties"]["passage_ids"]
                      ["items"]["enum"])
    assert seen_ids == [p.id for p in split_passages(document.text)]  # every passage reached the model
    assert output["coverage"]["sections"] == len(sections) and output["coverage"]["share_seen"] > 0.99
    assert logs.events("llm_map_reduce")[0]["sections"] == len(sections)


def test_the_models_endpoint_is_read_once_per_engine(fake_openrouter, document, brand):
    run_all(make_engine(fake_openrouter), document, brand)
    assert len([r for r in fake_openrouter.requests if r.path.endswith("/models")]) == 1


# ---- transient failures: retried, bounded, logged ---------------------------------------------

@pytest.mark.parametrize("failure, status, error", [
    (fake_api.rate_limited("1"), 429, "Transient"),
    (fake_api.rate_limited(None), 429, "Transient"),
    (fake_api.status(500), 500, "Transient"),
    (fake_api.status(502), 502, "Transient"),
    (fake_api.reset_connection(), None, "ConnectionError"),
    (fake_api.delay(30), None, "ReadTimeout"),
], ids=["429-retry-after", "429-bare", "500", "502", "connection-reset", "read-timeout"])
def test_a_transient_failure_is_retried_then_succeeds(fake_openrouter, logs, document, failure, status, error):
    fake_openrouter.script(failure)

    output = make_engine(fake_openrouter).input_processing(document)

    validate_stage_output(1, output)
    first, second = fake_openrouter.completions
    assert first.body == second.body  # the same request, asked again
    [retry] = logs.events("llm_retry")
    assert (retry["status"], retry["attempt"], retry["stage"]) == (status, 1, 1)
    assert error in retry["error"]
    assert 0 <= retry["wait_s"] <= FAST.max_wait_s
    [done] = logs.events("llm_completion")
    assert done["attempts"] == 2
    assert_key_only_in_bearer_header(fake_openrouter, logs)


def _http_date(delta: timedelta) -> str:
    return format_datetime(datetime.now(UTC) + delta, usegmt=True)


@pytest.mark.parametrize("retry_after, expected_wait", [
    ("0", 0.0),
    ("0.04", 0.04),
    (_http_date(timedelta(hours=-1)), 0.0),
], ids=["zero", "seconds", "past-date"])
def test_retry_after_is_honoured(fake_openrouter, logs, document, retry_after, expected_wait):
    fake_openrouter.script(fake_api.rate_limited(retry_after))

    make_engine(fake_openrouter).input_processing(document)

    [retry] = logs.events("llm_retry")
    assert retry["wait_s"] == expected_wait and retry["status"] == 429


@pytest.mark.parametrize("retry_after", ["3600", "an hour from now"], ids=["seconds", "date"])
def test_a_retry_after_longer_than_the_time_left_fails_fast_and_requeues(fake_openrouter, logs, document,
                                                                         retry_after):
    # The date is made when the test runs, not when it is collected: a long suite must not age it.
    if retry_after == "an hour from now":
        retry_after = _http_date(timedelta(hours=1))
    fake_openrouter.script(fake_api.rate_limited(retry_after))
    engine = make_engine(fake_openrouter)

    with pytest.raises(ProviderUnavailable) as caught:
        engine.input_processing(document)

    assert caught.value.code == "LLM_UNAVAILABLE" and len(fake_openrouter.completions) == 1
    assert caught.value.retry_in_s >= 3000  # the breaker stays open at least as long as asked
    assert not logs.events("llm_retry")


@pytest.mark.parametrize("failure, reason", [
    (fake_api.status(503, message="upstream provider exploded"), "HTTP 503: upstream provider exploded"),
    (fake_api.delay(30), "ReadTimeout"),
], ids=["503", "read-timeout"])
def test_retries_exhausted_open_the_breaker_and_no_call_is_made_while_it_is_open(fake_openrouter, logs, document,
                                                                                 failure, reason):
    fake_openrouter.script(failure, failure, failure)
    engine = make_engine(fake_openrouter)

    with pytest.raises(ProviderUnavailable) as caught:
        engine.input_processing(document)

    assert caught.value.code == "LLM_UNAVAILABLE" and caught.value.stage == 1
    assert reason in caught.value.message and "3 tries" in caught.value.message
    assert len(fake_openrouter.completions) == FAST.attempts
    assert [r["attempt"] for r in logs.events("llm_retry")] == [1, 2]
    with pytest.raises(ProviderUnavailable, match="provider breaker"):
        engine.input_processing(document)
    assert len(fake_openrouter.completions) == FAST.attempts  # the breaker stopped the call
    assert logs.events("llm_breaker_opened")


def test_the_breaker_is_shared_by_every_engine_on_the_host(fake_openrouter, tmp_path, document):
    path = tmp_path / "openrouter-breaker.json"
    fake_openrouter.script(*[fake_api.status(502)] * FAST.attempts)
    with pytest.raises(ProviderUnavailable):
        make_engine(fake_openrouter, breaker=ProviderBreaker(path)).input_processing(document)

    with pytest.raises(ProviderUnavailable, match="provider breaker"):
        make_engine(fake_openrouter, breaker=ProviderBreaker(path)).input_processing(document)
    assert len(fake_openrouter.completions) == FAST.attempts


# ---- final answers: no retry, a distinct code each ----------------------------------------------

def test_a_wrong_key_is_llm_auth_at_once_and_the_key_is_never_echoed(fake_openrouter, logs, document):
    wrong = "sk-or-v1-wrong-0123456789abcdef"

    with pytest.raises(StageError) as caught:
        make_engine(fake_openrouter, api_key=wrong).input_processing(document)

    assert caught.value.code == "LLM_AUTH" and "OPENROUTER_API_KEY" in caught.value.message
    assert wrong not in caught.value.message and "[redacted]" in caught.value.message  # the fake echoed it
    assert len(fake_openrouter.completions) == 1 and not logs.events("llm_retry")
    assert wrong not in logs.text


@pytest.mark.parametrize("code, expected, hint", [
    (402, "LLM_CREDITS", "add credits"),
    (403, "LLM_MODERATION", "moderation"),
], ids=["402", "403"])
def test_credits_and_moderation_fail_at_once_with_their_codes(fake_openrouter, logs, document, code, expected, hint):
    fake_openrouter.script(fake_api.status(code))
    with pytest.raises(StageError) as caught:
        make_engine(fake_openrouter).input_processing(document)
    assert caught.value.code == expected and hint in caught.value.message
    assert len(fake_openrouter.completions) == 1 and not logs.events("llm_retry")


def test_a_model_without_structured_outputs_is_llm_model_unsupported(fake_openrouter, document):
    fake_openrouter.set_model("old/model", structured=False)

    with pytest.raises(StageError) as caught:
        make_engine(fake_openrouter, model="old/model").input_processing(document)

    assert caught.value.code == "LLM_MODEL_UNSUPPORTED"
    assert "LLM_MODEL='old/model'" in caught.value.message and "google/gemini-2.5-flash" in caught.value.message
    assert "HTTP 404" in caught.value.message and len(fake_openrouter.completions) == 1


def test_an_unknown_model_is_llm_model_unsupported(fake_openrouter, document):
    with pytest.raises(StageError) as caught:
        make_engine(fake_openrouter, model="nobody/nothing").input_processing(document)
    assert caught.value.code == "LLM_MODEL_UNSUPPORTED" and "HTTP 400" in caught.value.message


@pytest.mark.parametrize("failure", [fake_api.malformed_body(), fake_api.no_choices()], ids=["not-json", "no-choices"])
def test_a_200_that_is_not_a_chat_completion_is_llm_bad_response(fake_openrouter, document, failure):
    fake_openrouter.script(failure)

    with pytest.raises(StageError) as caught:
        make_engine(fake_openrouter).input_processing(document)

    assert caught.value.code == "LLM_BAD_RESPONSE"
    assert len(fake_openrouter.completions) == 1


# ---- unusable content: one repair round-trip ----------------------------------------------------

@pytest.mark.parametrize("failure, told", [
    (fake_api.not_json_content(), "not JSON"),
    (fake_api.content('["a", "list"]'), "not an object"),
    (fake_api.content(None), "no text content"),
    (fake_api.wrong_shape(), "summary"),
    (fake_api.schema_breaking(), "must be one of"),
], ids=["malformed-json", "json-array", "null-content", "wrong-shape", "schema-breaking"])
def test_an_unusable_reply_is_repaired_once_then_succeeds(fake_openrouter, logs, document, failure, told):
    fake_openrouter.script(failure)

    output = make_engine(fake_openrouter).input_processing(document)

    validate_stage_output(1, output)
    first, second = fake_openrouter.completions
    assert second.messages[:3] == first.messages
    assert [m["role"] for m in second.messages] == ["system", "user", "user", "assistant", "user"]
    assert told in second.messages[-1]["content"]
    assert len(logs.events("llm_repair")) == 1


@pytest.mark.parametrize("failure, code", [
    (fake_api.not_json_content(), "LLM_BAD_RESPONSE"),
    (fake_api.schema_breaking(), "STAGE_OUTPUT_INVALID"),
], ids=["malformed-json", "schema-breaking"])
def test_a_reply_still_unusable_after_the_repair_fails_keeping_the_answer(fake_openrouter, document, failure, code):
    fake_openrouter.script(failure, failure)

    with pytest.raises(StageError) as caught:
        make_engine(fake_openrouter).input_processing(document)

    assert caught.value.code == code and "after one repair" in caught.value.message
    assert "final answer began: '{" in caught.value.message
    assert len(fake_openrouter.completions) == 2


def test_a_long_final_answer_is_kept_to_500_characters(fake_openrouter, document):
    answer = '{"summary": "' + "x" * 2_000
    fake_openrouter.script(fake_api.content(answer), fake_api.content(answer))
    with pytest.raises(StageError) as caught:
        make_engine(fake_openrouter).input_processing(document)
    kept = caught.value.message.split("final answer began: ", 1)[1]
    assert answer[:500] in kept and answer[:501] not in kept


def test_fenced_json_is_accepted_without_a_repair(fake_openrouter, document):
    answer = fake_api.answer_for  # built from the request, then wrapped in a markdown fence
    fake_openrouter.script(lambda r: fake_api.content(f"```json\n{json.dumps(answer(r))}\n```")(r))

    validate_stage_output(1, make_engine(fake_openrouter).input_processing(document))
    assert len(fake_openrouter.completions) == 1


# ---- cost ceiling -------------------------------------------------------------------------------

def test_a_call_that_would_pass_the_ceiling_is_not_made(fake_openrouter, document, brand):
    engine = make_engine(fake_openrouter)
    engine.begin_run(RunMeter(ceiling_usd=0.011))

    with pytest.raises(StageError) as caught:
        run_all(engine, document, brand)

    assert caught.value.code == "LLM_BUDGET_EXCEEDED" and "LLM_MAX_COST_PER_RUN" in caught.value.message
    assert 0 < len(fake_openrouter.completions) < 5


def test_an_unreadable_models_endpoint_falls_back_to_a_safe_budget_asked_once(fake_openrouter, logs, brand):
    fake_openrouter.models_down = True
    document = long_document(700)  # ~100k characters: beyond the fallback budget (32k tokens x 0.6 x 3.5)

    outputs = run_all(make_engine(fake_openrouter), document, brand)

    assert outputs[1]["coverage"]["sections"] >= 2
    assert len([r for r in fake_openrouter.requests if r.path.endswith("/models")]) == 1
    assert len(logs.events("llm_models_unavailable")) == 1
