"""The OpenRouter engine over real HTTP against a local fake: every stage, every failure mode, the CLI."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import structlog

from config.errors import StageError
from config.log import configure_logging
from persistence.records import STAGE_FILES
from pipeline.brands import BrandProfile, load_brand
from pipeline.document import Document
from pipeline.documents import parse_document, read_local
from pipeline.openrouter import LlmPolicy, OpenRouterEngine
from pipeline.stage_schema import INNOVATION_TYPES, MECHANISM_TYPES, validate_stage_output
from pipeline.stages import run_stage
from tests import fake_openrouter as fake_api
from tests.conftest import REPO
from tests.fake_openrouter import FakeOpenRouter, fake_openrouter  # noqa: F401 - the fixture

MODEL = "test-vendor/test-model"
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


@pytest.fixture(scope="module")
def document() -> Document:
    """The sample trend report the CLI test runs too."""
    return parse_document(read_local(SAMPLE, 10_000_000))


@pytest.fixture(scope="module")
def brand() -> BrandProfile:
    """A shipped brand profile."""
    return load_brand(REPO / "data" / "brand-profiles", "decathlon")


def make_engine(fake: FakeOpenRouter, *, api_key: str | None = None, policy: LlmPolicy = FAST) -> OpenRouterEngine:
    return OpenRouterEngine(session=requests.Session(), base_url=fake.base_url, model=MODEL,
                            api_key=api_key or fake.api_key, policy=policy)


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


# ---- every stage, end to end ------------------------------------------------------------------

def test_each_stage_is_one_completion_with_the_contract_shape(fake_openrouter, logs, document, brand):
    outputs = run_all(make_engine(fake_openrouter), document, brand)

    sent = fake_openrouter.completions
    assert [r.stage for r in sent] == [1, 2, 3, 4, 5]
    for received in sent:
        assert received.body["model"] == MODEL
        assert received.body["temperature"] == 0
        assert received.body["response_format"] == {"type": "json_object"}
        assert received.headers["X-Title"] == "Innovation Pipeline Runner"
        assert [m["role"] for m in received.messages] == ["system", "user"]
    assert outputs[4]["brand_id"] == "decathlon"
    for quote in (q for i in outputs[1]["inspirations"] for q in i["evidence"]):
        assert quote in normalised(document.text)
    usage = logs.events("llm_completion")
    assert [e["stage"] for e in usage] == [1, 2, 3, 4, 5]
    assert all(e["usage"]["total_tokens"] == 200 and e["model"] for e in usage)
    assert not logs.events("llm_retry") and not logs.events("llm_repair")
    assert_key_only_in_bearer_header(fake_openrouter, logs)


@pytest.mark.parametrize("stage, must_include", [
    (1, ["<document>", *MECHANISM_TYPES]),
    (2, ["<document>", "<stage1_output>"]),
    (3, ["<stage1_output>", "<stage2_output>", "signal_ids"]),
    (4, ["<brand_profile>", "<stage3_output>", '"brand_id": "decathlon"', "insight_ids"]),
    (5, ["<brand_profile>", "<stage4_output>", *INNOVATION_TYPES, "follow_up_prompts"]),
])
def test_each_prompt_asks_for_its_exact_shape_with_its_inputs(fake_openrouter, document, brand, stage, must_include):
    outputs = run_all(make_engine(fake_openrouter), document, brand)
    received = fake_openrouter.completions[stage - 1]
    prompt = "\n".join(m["content"] for m in received.messages)
    assert f"stage {stage} of 5" in received.messages[0]["content"]
    for text in must_include:
        assert text in prompt
    if stage > 1:  # the previous stage's JSON travels verbatim
        assert json.dumps(outputs[stage - 1], ensure_ascii=False) in prompt


def test_a_long_document_is_cut_at_a_paragraph_with_a_logged_warning(fake_openrouter, logs):
    paragraphs = [f"Paragraph {n} says that shoppers value convenience in many small ways every week." * 3
                  for n in range(60)]
    text = "\n\n".join(paragraphs)
    document = Document(name="long.md", source="long.md", media_type="text/markdown", text=text,
                        original_chars=len(text))
    engine = make_engine(fake_openrouter, policy=replace(FAST, max_document_chars=2_000))

    output = engine.input_processing(document)

    validate_stage_output(1, output)
    sent = fake_api._DOCUMENT.search(fake_openrouter.completions[0].prompt).group(1)
    assert len(sent) <= 2_000 and text.startswith(sent) and text[len(sent):].startswith("\n\n")
    assert "only the first" in fake_openrouter.completions[0].prompt
    [warning] = logs.events("llm_document_truncated")
    assert warning["level"] == "warning" and warning["boundary"] == "paragraph"
    assert (warning["chars_kept"], warning["chars_total"]) == (len(sent), len(text))


# ---- transient failures: retried, bounded, logged ---------------------------------------------

@pytest.mark.parametrize("failure, status, error", [
    (fake_api.rate_limited("1"), 429, "Transient"),
    (fake_api.status(500), 500, "Transient"),
    (fake_api.status(502), 502, "Transient"),
    (fake_api.status(503), 503, "Transient"),
    (fake_api.delay(30), None, "ReadTimeout"),
], ids=["429", "500", "502", "503", "read-timeout"])
def test_a_transient_failure_is_retried_then_succeeds(fake_openrouter, logs, document, failure, status, error):
    fake_openrouter.script(failure)

    output = make_engine(fake_openrouter).input_processing(document)

    validate_stage_output(1, output)
    first, second = fake_openrouter.completions
    assert first.body == second.body  # the same request, asked again
    [retry] = logs.events("llm_retry")
    assert (retry["status"], retry["error"], retry["attempt"], retry["stage"]) == (status, error, 1, 1)
    assert 0 <= retry["wait_s"] <= FAST.max_wait_s
    [done] = logs.events("llm_completion")
    assert done["attempts"] == 2
    assert_key_only_in_bearer_header(fake_openrouter, logs)


def _http_date(delta: timedelta) -> str:
    return format_datetime(datetime.now(timezone.utc) + delta, usegmt=True)


@pytest.mark.parametrize("retry_after, expected_wait", [
    ("0", 0.0),
    ("1", FAST.max_wait_s),  # one second asked, capped by the policy
    (_http_date(timedelta(hours=-1)), 0.0),
    (_http_date(timedelta(hours=1)), FAST.max_wait_s),
], ids=["zero", "seconds-capped", "past-date", "future-date-capped"])
def test_retry_after_is_honoured_within_the_policy_cap(fake_openrouter, logs, document, retry_after, expected_wait):
    fake_openrouter.script(fake_api.rate_limited(retry_after))

    make_engine(fake_openrouter).input_processing(document)

    [retry] = logs.events("llm_retry")
    assert retry["wait_s"] == expected_wait and retry["status"] == 429


@pytest.mark.parametrize("failure, reason", [
    (fake_api.status(503, message="upstream provider exploded"), "HTTP 503: upstream provider exploded"),
    (fake_api.delay(30), "ReadTimeout"),
], ids=["503", "read-timeout"])
def test_retries_exhausted_raise_llm_unavailable_from_the_last_failure(fake_openrouter, logs, document,
                                                                        failure, reason):
    fake_openrouter.script(failure, failure, failure)

    with pytest.raises(StageError) as caught:
        make_engine(fake_openrouter).input_processing(document)

    assert caught.value.code == "LLM_UNAVAILABLE" and caught.value.stage == 1
    assert reason in caught.value.message and "3 tries" in caught.value.message
    assert caught.value.__cause__ is not None
    assert len(fake_openrouter.completions) == FAST.attempts
    assert [r["attempt"] for r in logs.events("llm_retry")] == [1, 2]
    assert_key_only_in_bearer_header(fake_openrouter, logs)


def test_the_time_budget_stops_retries_before_the_attempts_run_out(fake_openrouter, document):
    # The first wait (0.5 s) alone would pass the 0.1 s budget: no second attempt may start.
    policy = replace(FAST, attempts=10, total_s=0.1, first_wait_s=0.5, max_wait_s=0.5)
    fake_openrouter.script(*[fake_api.status(502)] * 10)

    with pytest.raises(StageError) as caught:
        make_engine(fake_openrouter, policy=policy).input_processing(document)

    assert caught.value.code == "LLM_UNAVAILABLE"
    assert len(fake_openrouter.completions) == 1


# ---- final answers: no retry --------------------------------------------------------------------

def test_a_wrong_key_is_llm_auth_at_once_and_the_key_is_never_echoed(fake_openrouter, logs, document):
    wrong = "sk-or-v1-wrong-0123456789abcdef"

    with pytest.raises(StageError) as caught:
        make_engine(fake_openrouter, api_key=wrong).input_processing(document)

    assert caught.value.code == "LLM_AUTH" and "OPENROUTER_API_KEY" in caught.value.message
    assert wrong not in caught.value.message and "[redacted]" in caught.value.message  # the fake echoed it
    assert len(fake_openrouter.completions) == 1 and not logs.events("llm_retry")
    assert wrong not in logs.text


def test_a_403_is_llm_auth_too(fake_openrouter, logs, document):
    fake_openrouter.script(fake_api.status(403, message="Key disabled"))
    with pytest.raises(StageError) as caught:
        make_engine(fake_openrouter).input_processing(document)
    assert caught.value.code == "LLM_AUTH" and "Key disabled" in caught.value.message
    assert len(fake_openrouter.completions) == 1


@pytest.mark.parametrize("code", [400, 404])
def test_a_bad_model_is_rejected_naming_llm_model(fake_openrouter, logs, document, code):
    fake_openrouter.script(fake_api.status(code, message=f"{MODEL} is not a valid model ID"))

    with pytest.raises(StageError) as caught:
        make_engine(fake_openrouter).input_processing(document)

    assert caught.value.code == "LLM_REQUEST_REJECTED"
    assert "LLM_MODEL" in caught.value.message and MODEL in caught.value.message
    assert f"HTTP {code}" in caught.value.message
    assert len(fake_openrouter.completions) == 1 and not logs.events("llm_retry")


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
    (fake_api.wrong_shape(), "summary is missing"),
], ids=["prose", "json-array", "null-content", "wrong-shape"])
def test_an_unusable_reply_is_repaired_once_then_succeeds(fake_openrouter, logs, document, failure, told):
    fake_openrouter.script(failure)

    output = make_engine(fake_openrouter).input_processing(document)

    validate_stage_output(1, output)
    first, second = fake_openrouter.completions
    assert second.messages[:2] == first.messages
    assert [m["role"] for m in second.messages] == ["system", "user", "assistant", "user"]
    assert told in second.messages[-1]["content"]
    assert len(logs.events("llm_repair")) == 1


@pytest.mark.parametrize("failure, code", [
    (fake_api.not_json_content(), "LLM_BAD_RESPONSE"),
    (fake_api.wrong_shape(), "STAGE_OUTPUT_INVALID"),
], ids=["prose", "wrong-shape"])
def test_a_reply_still_unusable_after_the_repair_fails_the_stage(fake_openrouter, document, failure, code):
    fake_openrouter.script(failure, failure)

    with pytest.raises(StageError) as caught:
        make_engine(fake_openrouter).input_processing(document)

    assert caught.value.code == code and "after one repair" in caught.value.message
    assert len(fake_openrouter.completions) == 2


def test_fenced_json_is_accepted_without_a_repair(fake_openrouter, document):
    answer = fake_api.answer_for  # built from the request, then wrapped in a markdown fence
    fake_openrouter.script(lambda r: fake_api.content(f"```json\n{json.dumps(answer(r))}\n```")(r))

    validate_stage_output(1, make_engine(fake_openrouter).input_processing(document))
    assert len(fake_openrouter.completions) == 1


def test_invented_evidence_gets_one_repair_naming_the_missing_quotes(fake_openrouter, logs, document):
    fake_openrouter.script(fake_api.non_verbatim_evidence())

    output = make_engine(fake_openrouter).input_processing(document)

    assert all(q in normalised(document.text) for i in output["inspirations"] for q in i["evidence"])
    repair = fake_openrouter.completions[1].messages[-1]["content"]
    assert fake_api.invented_quote(0) in repair and fake_api.invented_quote(1) in repair
    assert logs.events("llm_evidence_dropped")[0]["dropped"] == 2
    assert len(fake_openrouter.completions) == 2


def test_invented_quotes_beside_real_ones_are_dropped_with_a_warning_and_no_repair(fake_openrouter, logs, document):
    fake_openrouter.script(fake_api.non_verbatim_evidence(alongside_real=True))

    output = make_engine(fake_openrouter).input_processing(document)

    quotes = [q for i in output["inspirations"] for q in i["evidence"]]
    assert quotes and all(q in normalised(document.text) for q in quotes)
    assert fake_api.invented_quote(0) not in quotes
    [dropped] = logs.events("llm_evidence_dropped")
    assert dropped["level"] == "warning" and dropped["dropped"] == 2
    assert len(fake_openrouter.completions) == 1


def test_evidence_still_invented_after_the_repair_is_llm_evidence_not_in_document(fake_openrouter, document):
    fake_openrouter.script(fake_api.non_verbatim_evidence(), fake_api.non_verbatim_evidence())

    with pytest.raises(StageError) as caught:
        make_engine(fake_openrouter).input_processing(document)

    assert caught.value.code == "LLM_EVIDENCE_NOT_IN_DOCUMENT" and caught.value.stage == 1
    assert fake_api.invented_quote(0) in caught.value.message
    assert len(fake_openrouter.completions) == 2


# ---- the CLI, as a subprocess -----------------------------------------------------------------

def test_the_cli_runs_all_five_stages_on_openrouter(fake_openrouter, tmp_path):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATABASE_URL", "ENABLE_", "OPENROUTER", "PIPELINE_", "LLM_"))}
    env.update(OPENROUTER_API_KEY=fake_openrouter.api_key, OPENROUTER_BASE_URL=fake_openrouter.base_url,
               OUTPUT_DIR=str(tmp_path), LOG_LEVEL="INFO")

    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", str(SAMPLE.relative_to(REPO)), "--brand", "decathlon",
         "--engine", "openrouter", "--run-id", "or1"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["status"] == "COMPLETED"
    run_dir = Path(tmp_path) / "or1"
    assert (run_dir / "report.md").read_text().startswith("# Innovation Intelligence Report")
    for stage, name in STAGE_FILES.items():
        validate_stage_output(stage, json.loads((run_dir / name).read_text()))
    assert [r.stage for r in fake_openrouter.completions] == [1, 2, 3, 4, 5]
    assert all(r.body["model"] == "deepseek/deepseek-chat" for r in fake_openrouter.completions)
    assert fake_openrouter.api_key not in result.stdout + result.stderr
