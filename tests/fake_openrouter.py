"""A local stand-in for OpenRouter: a threaded HTTP server on 127.0.0.1 speaking chat completions.

    POST /api/v1/chat/completions    checks ``Authorization: Bearer <api_key>`` (401 otherwise),
                                     records the request, then answers with the next scripted
                                     behaviour, or a valid answer when the script is empty.

A valid answer is built from the prompt: the stage comes from the marker line of the system
prompt (``Innovation pipeline, stage N of 5``), stage 1 quotes real sentences of the text inside
``<document>``, and stages 3-4 cite the ids found in ``<stageN_output>``. Script misbehaviour with
``fake.script(rate_limited("1"), status(502), valid())``; every request is kept in ``requests``.
"""

from __future__ import annotations

import json
import re
import secrets
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

COMPLETIONS_PATH = "/api/v1/chat/completions"
_STAGE = re.compile(r"stage (\d) of 5")
_DOCUMENT = re.compile(r"<document>\n(.*)\n</document>", re.DOTALL)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
INNOVATION_TYPES = ("Better-For-You", "Premium", "Convenience", "Format", "Occasion")


@dataclass
class Received:
    """One request as the fake saw it."""

    path: str
    headers: dict[str, str]
    raw: bytes
    body: Any = None

    @property
    def messages(self) -> list[dict[str, str]]:
        """The chat messages sent."""
        return list(self.body.get("messages", [])) if isinstance(self.body, dict) else []

    @property
    def stage(self) -> int:
        """The stage number named by the system prompt's marker line (0 if none)."""
        system = next((m.get("content", "") for m in self.messages if m.get("role") == "system"), "")
        match = _STAGE.search(system)
        return int(match.group(1)) if match else 0

    @property
    def prompt(self) -> str:
        """The first user message: the stage's inputs."""
        return next((m.get("content", "") for m in self.messages if m.get("role") == "user"), "")


@dataclass(frozen=True)
class Reply:
    """What the fake sends back: a status, a body, headers, after an optional delay."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


Behaviour = Callable[[Received], Reply]


def _json_reply(status: int, payload: object, headers: dict[str, str] | None = None, delay_s: float = 0.0) -> Reply:
    return Reply(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})},
                 delay_s)


def completion_body(content: str | None, *, finish_reason: str = "stop") -> dict[str, Any]:
    """An OpenAI-compatible chat completion carrying ``content``."""
    return {
        "id": f"gen-{secrets.token_hex(6)}", "object": "chat.completion", "model": "fake/model",
        "choices": [{"index": 0, "finish_reason": finish_reason,
                     "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 80, "total_tokens": 200},
    }


# ---- valid answers, derived from the prompt ---------------------------------------------------

def _block(prompt: str, tag: str) -> Any:
    """The JSON inside ``<tag>...</tag>`` of the prompt."""
    match = re.search(rf"<{tag}>\n(.*?)\n</{tag}>", prompt, re.DOTALL)
    return json.loads(match.group(1)) if match else {}


def document_sentences(prompt: str) -> list[str]:
    """Sentences of the prompt's document, whitespace-normalised (so verbatim substrings of it)."""
    match = _DOCUMENT.search(prompt)
    text = " ".join(match.group(1).split()) if match else ""
    pieces = [p.strip() for p in _SENTENCE_END.split(text)]
    return [p for p in pieces if len(p.split()) >= 8 and "#" not in p] or ([text] if text else [])


def answer_for(received: Received) -> dict[str, Any]:
    """A schema-valid output for the stage the request asks for."""
    prompt, stage = received.prompt, received.stage
    if stage == 1:
        quotes = document_sentences(prompt) or ["(no document text)"]
        return {"summary": "A report on how convenience is being reinvented.",
                "core_mechanism": "Removing friction from routines people already have.",
                "inspirations": [
                    {"title": "Weekly delivery", "description": "Deliveries replace emergency trips.",
                     "mechanism_type": "REMOVED_FRICTION", "evidence": quotes[:2]},
                    {"title": "Combined packs", "description": "Two needs met by one pack.",
                     "mechanism_type": "COMBINED", "evidence": quotes[2:3] or quotes[:1]}]}
    if stage == 2:
        titles = [i["title"] for i in _block(prompt, "stage1_output").get("inspirations", [])] or ["?"]
        return {"signals": [{"id": f"S{n}", "category": "Consumer behaviour", "description": f"Signal for {t}.",
                             "relevance": "high: quantified", "inspiration": t}
                            for n, t in enumerate(titles, start=1)]}
    if stage == 3:
        ids = [s["id"] for s in _block(prompt, "stage2_output").get("signals", [])]
        return {"insights": [{"id": "I1", "title": "Remove a step", "description": "Fewer steps win.",
                              "transferability": "high: any industry", "signal_ids": ids},
                             {"id": "I2", "title": "Pair two needs", "description": "One offer, two jobs.",
                              "transferability": "medium: needs adjacency", "signal_ids": ids[:1]}]}
    if stage == 4:
        ids = [i["id"] for i in _block(prompt, "stage3_output").get("insights", [])]
        brand_id = _block(prompt, "brand_profile").get("brand_id", "unknown")
        return {"brand_id": brand_id,
                "insights": [{"id": f"B{n}", "title": f"Apply {i}", "description": f"The brand applies {i}.",
                              "brand_fit": "high: fits the priorities", "insight_ids": [i]}
                             for n, i in enumerate(ids, start=1)]}
    if stage == 5:
        return {"opportunities": [
            {"number": n, "title": f"{kind} idea", "innovation_type": kind, "description": f"A {kind} card.",
             "actionability": ["Prototype it.", "Test it.", "Pilot it."],
             "follow_up_prompts": ["Who needs it most?", "What would prove it?"]}
            for n, kind in enumerate(INNOVATION_TYPES, start=1)]}
    return {"error": "no stage marker in the system prompt"}


# ---- behaviours ---------------------------------------------------------------------------

def valid() -> Behaviour:
    """A 200 with a schema-valid answer for the requested stage."""
    return lambda r: _json_reply(200, completion_body(json.dumps(answer_for(r))))


def content(text: str | None, *, finish_reason: str = "stop") -> Behaviour:
    """A well-formed completion whose content is ``text`` (not JSON, JSON of the wrong shape...)."""
    return lambda r: _json_reply(200, completion_body(text, finish_reason=finish_reason))


def not_json_content() -> Behaviour:
    """A 200 completion whose content is prose, not JSON."""
    return content("Sure! Here are the inspirations you asked for: ...")


def wrong_shape() -> Behaviour:
    """A 200 completion whose content is a JSON object missing every required key."""
    return content(json.dumps({"result": "done"}))


def invented_quote(n: int) -> str:
    """A plausible sentence that is in no document."""
    return f"Shoppers everywhere adore invented sentence number {n}."


def non_verbatim_evidence(*, alongside_real: bool = False) -> Behaviour:
    """A stage 1 answer whose quotes are invented; ``alongside_real``: added next to the real ones."""
    def behaviour(r: Received) -> Reply:
        answer = answer_for(r)
        for n, inspiration in enumerate(answer.get("inspirations", [])):
            real = inspiration["evidence"] if alongside_real else []
            inspiration["evidence"] = [*real, invented_quote(n)]
        return _json_reply(200, completion_body(json.dumps(answer)))
    return behaviour


def malformed_body() -> Behaviour:
    """A 200 whose body is not JSON at all (a proxy's HTML page)."""
    return lambda r: Reply(200, b"<html><body>Bad gateway</body></html>", {"Content-Type": "text/html"})


def no_choices() -> Behaviour:
    """A 200 JSON body without ``choices``."""
    return lambda r: _json_reply(200, {"id": "gen-x", "object": "chat.completion"})


def status(code: int, *, message: str | None = None, retry_after: str | None = None) -> Behaviour:
    """An OpenRouter error answer ``{"error": {"code", "message"}}`` with that status."""
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    text = message or {401: "No auth credentials found", 429: "Rate limit exceeded", 500: "Internal error",
                       502: "Provider returned error", 503: "No available provider"}.get(code, "error")
    return lambda r: _json_reply(code, {"error": {"code": code, "message": text}}, headers)


def rate_limited(retry_after: str | None = "1") -> Behaviour:
    """A 429 with ``Retry-After`` (seconds or an HTTP date)."""
    return status(429, retry_after=retry_after)


def delay(seconds: float) -> Behaviour:
    """A valid answer, but only after ``seconds`` (longer than the client's read timeout)."""
    return lambda r: replace(valid()(r), delay_s=seconds)


def held(gate: threading.Event) -> Behaviour:
    """A valid answer, held until the test sets ``gate`` (a stage kept in flight without sleeping)."""

    def behaviour(r: Received) -> Reply:
        gate.wait(timeout=120)  # bounded: a forgotten gate must not hang the suite
        return valid()(r)

    return behaviour


# ---- the server -------------------------------------------------------------------------------

@dataclass
class FakeOpenRouter:
    """The running fake; ``base_url`` is what OPENROUTER_BASE_URL should be."""

    server: ThreadingHTTPServer
    api_key: str = field(default_factory=lambda: f"sk-or-v1-fake-{secrets.token_hex(16)}")
    requests: list[Received] = field(default_factory=list)
    queue: deque[Behaviour] = field(default_factory=deque)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/api/v1``."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/v1"

    def script(self, *behaviours: Behaviour) -> None:
        """Queue behaviours for the next requests, in order; afterwards answers are valid again."""
        with self.lock:
            self.queue.extend(behaviours)

    @property
    def completions(self) -> list[Received]:
        """The requests made to the completions endpoint."""
        with self.lock:
            return [r for r in self.requests if r.path == COMPLETIONS_PATH]

    def next_behaviour(self) -> Behaviour:
        """The next scripted behaviour, or ``valid()`` when the script is used up."""
        with self.lock:
            return self.queue.popleft() if self.queue else valid()

    def close(self) -> None:
        """Release delayed answers, stop serving and free the port."""
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


def _handler(fake: FakeOpenRouter) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
            """Keep test output quiet."""

        def _send(self, reply: Reply) -> None:
            if reply.delay_s:
                fake.stop.wait(reply.delay_s)  # an Event, so close() releases it at once
            try:
                self.send_response(reply.status)
                for name, value in {"Content-Length": str(len(reply.body)), **reply.headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(reply.body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client timed out on purpose; nobody is listening

        def do_POST(self) -> None:  # noqa: N802 - stdlib naming
            """Record the request, check the key, then answer with the next behaviour."""
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            received = Received(self.path, dict(self.headers.items()), raw, body)
            with fake.lock:
                fake.requests.append(received)
            if self.path != COMPLETIONS_PATH:
                self._send(status(404, message=f"Not Found: {self.path}")(received))
            elif self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                # Echo what was sent, as a careless server might: the client must redact it.
                sent = self.headers.get("Authorization", "(none)")
                self._send(status(401, message=f"User not found for {sent}")(received))
            elif not isinstance(body, dict) or not body.get("model") or not received.messages:
                self._send(status(400, message="model and messages are required")(received))
            else:
                self._send(fake.next_behaviour()(received))

    return Handler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hangs up (a read timeout under test) is expected; anything else is printed."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


def start_fake_openrouter() -> FakeOpenRouter:
    """Start the fake on a free 127.0.0.1 port, serving from a daemon thread."""
    server = _QuietServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    fake = FakeOpenRouter(server)
    server.RequestHandlerClass = _handler(fake)
    # A short poll interval: shutdown() waits up to one interval, and every test closes a fake.
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-openrouter",
                     daemon=True).start()
    return fake


@pytest.fixture
def fake_openrouter() -> Iterator[FakeOpenRouter]:
    """A running fake OpenRouter, closed after the test."""
    fake = start_fake_openrouter()
    try:
        yield fake
    finally:
        fake.close()
