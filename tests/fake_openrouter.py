"""A local stand-in for OpenRouter: a threaded HTTP server on 127.0.0.1 speaking its API, strictly.

    POST /api/v1/chat/completions    checks ``Authorization: Bearer <api_key>`` (401 otherwise), then,
                                     like a strict provider: the model must be listed (400), the request
                                     must carry ``response_format`` json_schema with ``strict: true`` and a
                                     strict schema (every object ``additionalProperties: false``, every
                                     property required), and a model without structured outputs asked with
                                     ``provider.require_parameters`` gets 404 "No endpoints found...".
                                     Then it answers with the next scripted behaviour, or a valid answer
                                     **built from the request's JSON Schema** (enums honoured, array sizes
                                     honoured), with ``usage`` (tokens, cached tokens, ``cost``).
    GET  /api/v1/models              the catalogue: id, context_length, supported_parameters, pricing.
    GET  /api/v1/key                 the key's limits (401 for a wrong key).

Script misbehaviour with ``fake.script(rate_limited("1"), status(502), valid())``; every request
is kept in ``requests``. ``fake.latency_s`` delays every completion (benchmarks).
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

COMPLETIONS_PATH = "/api/v1/chat/completions"
MODELS_PATH = "/api/v1/models"
KEY_PATH = "/api/v1/key"
DEFAULT_MODEL = "google/gemini-2.5-flash"
STRUCTURED = ["max_tokens", "temperature", "response_format", "structured_outputs", "seed"]
_MARKER = re.compile(r"stage (\d) of 5")
PRICE_PROMPT, PRICE_COMPLETION = 1e-6, 4e-6  # USD per token, like a cheap model


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
    def schema_name(self) -> str:
        """``response_format.json_schema.name`` ("stage1", "stage1_section", ... "stage5"), or ""."""
        try:
            return str(self.body["response_format"]["json_schema"]["name"])
        except (KeyError, TypeError):
            return ""

    @property
    def schema(self) -> dict[str, Any]:
        """The JSON Schema the request asks the answer to follow."""
        try:
            return dict(self.body["response_format"]["json_schema"]["schema"])
        except (KeyError, TypeError):
            return {}

    @property
    def stage(self) -> int:
        """The stage number: from the marker line of the last message (0 if none)."""
        for message in reversed(self.messages):
            match = _MARKER.search(str(message.get("content", "")))
            if match:
                return int(match.group(1))
        return 0

    @property
    def prompt(self) -> str:
        """Every message's content, joined: what the model read."""
        return "\n".join(str(m.get("content", "")) for m in self.messages)


@dataclass(frozen=True)
class Reply:
    """What the fake sends back: a status, a body, headers, after an optional delay."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    reset: bool = False  # close the connection instead of answering


Behaviour = Callable[[Received], Reply]


def _json_reply(status: int, payload: object, headers: dict[str, str] | None = None, delay_s: float = 0.0) -> Reply:
    return Reply(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})},
                 delay_s)


def usage_for(received: Received, content: str, cached_prefix_tokens: int = 0) -> dict[str, Any]:
    """A usage block like OpenRouter's: tokens, cached tokens and cost."""
    prompt_tokens = max(1, len(received.prompt) // 4)
    completion_tokens = max(1, len(content) // 4)
    cached = min(cached_prefix_tokens, prompt_tokens)
    cost = round((prompt_tokens - cached) * PRICE_PROMPT + cached * PRICE_PROMPT / 10
                 + completion_tokens * PRICE_COMPLETION, 10)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens, "cost": cost,
            "prompt_tokens_details": {"cached_tokens": cached}, "completion_tokens_details": {"reasoning_tokens": 0}}


def completion_body(content: str | None, *, finish_reason: str = "stop", usage: dict[str, Any] | None = None,
                    model: str = DEFAULT_MODEL) -> dict[str, Any]:
    """An OpenAI-compatible chat completion carrying ``content``."""
    return {
        "id": f"gen-{secrets.token_hex(6)}", "object": "chat.completion", "model": model,
        "choices": [{"index": 0, "finish_reason": finish_reason,
                     "message": {"role": "assistant", "content": content}}],
        "usage": usage or {"prompt_tokens": 120, "completion_tokens": 80, "total_tokens": 200, "cost": 0.0004},
    }


# ---- answers built from the request's JSON Schema ---------------------------------------------

def instance(schema: dict[str, Any], path: str = "answer") -> Any:
    """A value valid under ``schema`` (the subset strict structured outputs use)."""
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        return {key: instance(sub, f"{path}.{key}") for key, sub in schema.get("properties", {}).items()}
    if kind == "array":
        items = schema.get("items", {})
        low, high = schema.get("minItems", 0), schema.get("maxItems", 3)
        count = max(low, min(2, high))
        choices = items.get("enum")
        if choices:  # distinct values where the enum allows, like a model citing several passages
            return [choices[i % len(choices)] for i in range(count)]
        if items.get("type") == "integer" and "minimum" in items:
            return [items["minimum"] + i for i in range(count) if items["minimum"] + i <= items.get("maximum", 1e9)]
        return [instance(items, f"{path}[{i}]") for i in range(count)]
    if kind == "integer":
        return schema.get("minimum", 1)
    if kind == "number":
        return 0.5
    if kind == "boolean":
        return True
    return f"Fake {path.split('.')[-1].split('[')[0].replace('_', ' ')} (from the schema)."


def answer_for(received: Received) -> dict[str, Any]:
    """A schema-valid answer for the request, built from its JSON Schema only."""
    value = instance(received.schema)
    return value if isinstance(value, dict) else {"error": "the schema's root is not an object"}


def strictness_problem(schema: Any, path: str = "schema") -> str | None:
    """Why ``schema`` is not strict (an object allowing extra keys or with optional properties), or None."""
    if isinstance(schema, dict):
        if schema.get("type") == "object":
            props = schema.get("properties", {})
            if schema.get("additionalProperties") is not False:
                return f"{path}: additionalProperties must be false"
            if sorted(schema.get("required", [])) != sorted(props):
                return f"{path}: every property must be required"
        for key, sub in schema.items():
            problem = strictness_problem(sub, f"{path}.{key}")
            if problem:
                return problem
    elif isinstance(schema, list):
        for i, sub in enumerate(schema):
            problem = strictness_problem(sub, f"{path}[{i}]")
            if problem:
                return problem
    return None


# ---- behaviours ---------------------------------------------------------------------------

def valid() -> Behaviour:
    """A 200 with an answer built from the request's schema."""
    return lambda r: _json_reply(200, completion_body(json.dumps(answer_for(r)), usage=usage_for(r, "{}" * 200)))


def content(text: str | None, *, finish_reason: str = "stop") -> Behaviour:
    """A well-formed completion whose content is ``text`` (not JSON, JSON of the wrong shape...)."""
    return lambda r: _json_reply(200, completion_body(text, finish_reason=finish_reason))


def not_json_content() -> Behaviour:
    """A 200 completion whose content is prose, not JSON (malformed JSON)."""
    return content('{"summary": "Sure! Here are the inspirations you asked for: ...')


def wrong_shape() -> Behaviour:
    """A 200 completion whose content is a JSON object missing every required key."""
    return content(json.dumps({"result": "done"}))


def schema_breaking() -> Behaviour:
    """A schema-shaped answer with one id outside the request's enums (a route ignoring the schema)."""
    def behaviour(r: Received) -> Reply:
        answer = answer_for(r)
        _break_first_enum(answer, r.schema)
        return _json_reply(200, completion_body(json.dumps(answer)))
    return behaviour


def _break_first_enum(value: Any, schema: dict[str, Any]) -> bool:
    if isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            if "enum" in sub:
                value[key] = "NOT-IN-ENUM"
                return True
            if _break_first_enum(value.get(key), sub):
                return True
    if isinstance(value, list) and value:
        items = schema.get("items", {})
        if "enum" in items:
            value[0] = 987654 if isinstance(items["enum"][0], int) else "NOT-IN-ENUM"
            return True
        return _break_first_enum(value[0], items)
    return False


def malformed_body() -> Behaviour:
    """A 200 whose body is not JSON at all (a proxy's HTML page)."""
    return lambda r: Reply(200, b"<html><body>Bad gateway</body></html>", {"Content-Type": "text/html"})


def no_choices() -> Behaviour:
    """A 200 JSON body with empty ``choices``."""
    return lambda r: _json_reply(200, {"id": "gen-x", "object": "chat.completion", "choices": []})


def status(code: int, *, message: str | None = None, retry_after: str | None = None) -> Behaviour:
    """An OpenRouter error answer ``{"error": {"code", "message"}}`` with that status."""
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    text = message or {401: "No auth credentials found", 402: "Insufficient credits",
                       403: "Input flagged by moderation", 429: "Rate limit exceeded", 500: "Internal error",
                       502: "Provider returned error", 503: "No available provider"}.get(code, "error")
    return lambda r: _json_reply(code, {"error": {"code": code, "message": text}}, headers)


def rate_limited(retry_after: str | None = "1") -> Behaviour:
    """A 429, with ``Retry-After`` (seconds or an HTTP date) unless None."""
    return status(429, retry_after=retry_after)


def reset_connection() -> Behaviour:
    """The connection is closed with no answer at all."""
    return lambda r: Reply(0, b"", reset=True)


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

def model_entry(model_id: str, *, context_length: int = 1_048_576, structured: bool = True) -> dict[str, Any]:
    """One catalogue entry as OpenRouter's models endpoint lists it."""
    params = STRUCTURED if structured else ["max_tokens", "temperature"]
    return {"id": model_id, "name": model_id, "context_length": context_length, "supported_parameters": params,
            "pricing": {"prompt": str(PRICE_PROMPT), "completion": str(PRICE_COMPLETION)}}


@dataclass
class FakeOpenRouter:
    """The running fake; ``base_url`` is what OPENROUTER_BASE_URL should be."""

    server: ThreadingHTTPServer
    api_key: str = field(default_factory=lambda: f"sk-or-v1-fake-{secrets.token_hex(16)}")
    requests: list[Received] = field(default_factory=list)
    queue: deque[Behaviour] = field(default_factory=deque)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    models: dict[str, dict[str, Any]] = field(default_factory=lambda: {
        m: model_entry(m) for m in (DEFAULT_MODEL, "openai/gpt-4.1-mini", "fake/model")})
    latency_s: float = 0.0
    down: bool = False  # a long outage: every completion answers 503 until set back
    models_down: bool = False  # the models endpoint answers 503
    prefixes: set[str] = field(default_factory=set)  # prompt prefixes seen: the provider's prompt cache

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/api/v1``."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/v1"

    def script(self, *behaviours: Behaviour) -> None:
        """Queue behaviours for the next requests, in order; afterwards answers are valid again."""
        with self.lock:
            self.queue.extend(behaviours)

    def set_model(self, model_id: str, *, context_length: int = 1_048_576, structured: bool = True) -> None:
        """List (or change) a model in the catalogue."""
        with self.lock:
            self.models[model_id] = model_entry(model_id, context_length=context_length, structured=structured)

    @property
    def completions(self) -> list[Received]:
        """The requests made to the completions endpoint."""
        with self.lock:
            return [r for r in self.requests if r.path == COMPLETIONS_PATH]

    def next_behaviour(self) -> Behaviour:
        """The next scripted behaviour, or ``valid()`` when the script is used up."""
        with self.lock:
            if self.down:
                return status(503)
            return self.queue.popleft() if self.queue else valid()

    def cached_tokens(self, received: Received) -> int:
        """Like a provider's prompt cache: the system and document messages seen before are cheap."""
        messages = received.messages
        prefix = json.dumps(messages[:2]) if len(messages) > 2 else ""
        with self.lock:
            hit = prefix in self.prefixes
            self.prefixes.add(prefix)
        return len(prefix) // 4 if hit and prefix else 0

    def close(self) -> None:
        """Release delayed answers, stop serving and free the port."""
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


def _rejection(fake: FakeOpenRouter, received: Received) -> Reply | None:
    """What a strict OpenRouter refuses before any model runs."""
    body = received.body
    if not isinstance(body, dict) or not body.get("model") or not received.messages:
        return status(400, message="model and messages are required")(received)
    with fake.lock:
        entry = fake.models.get(body["model"])
    if entry is None:
        return status(400, message=f"{body['model']} is not a valid model ID")(received)
    fmt = body.get("response_format") or {}
    spec = fmt.get("json_schema") if isinstance(fmt, dict) else None
    if fmt.get("type") != "json_schema" or not isinstance(spec, dict) or spec.get("strict") is not True:
        return status(400, message="this fake, like a strict provider, needs response_format json_schema "
                                   "with strict: true")(received)
    problem = strictness_problem(spec.get("schema"))
    if problem:
        return status(400, message=f"Invalid schema for response_format '{spec.get('name')}': {problem}")(received)
    wants_all = (body.get("provider") or {}).get("require_parameters") is True
    if wants_all and "structured_outputs" not in entry["supported_parameters"]:
        return status(404, message="No endpoints found that can handle the requested parameters.")(received)
    return None


def _handler(fake: FakeOpenRouter) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
            """Keep test output quiet."""

        def setup(self) -> None:
            """No Nagle: headers and body go out as two writes, and a delayed ACK would add ~40 ms to each."""
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _send(self, reply: Reply) -> None:
            if reply.delay_s:
                fake.stop.wait(reply.delay_s)  # an Event, so close() releases it at once
            if reply.reset:
                self.close_connection = True
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                self.connection.close()  # RST: the client sees "connection reset by peer"
                return
            try:
                self.send_response(reply.status)
                for name, value in {"Content-Length": str(len(reply.body)), **reply.headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(reply.body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client timed out on purpose; nobody is listening

        def _authorised(self, received: Received) -> bool:
            if self.headers.get("Authorization") == f"Bearer {fake.api_key}":
                return True
            # Echo what was sent, as a careless server might: the client must redact it.
            sent = self.headers.get("Authorization", "(none)")
            self._send(status(401, message=f"User not found for {sent}")(received))
            return False

        def do_GET(self) -> None:  # noqa: N802 - stdlib naming
            """The models catalogue, or the key's limits."""
            received = Received(self.path, dict(self.headers.items()), b"")
            with fake.lock:
                fake.requests.append(received)
                data = list(fake.models.values())
            if self.path == KEY_PATH:
                if self._authorised(received):
                    self._send(_json_reply(200, {"data": {"label": "fake", "limit": None, "usage": 0.0,
                                                          "limit_remaining": None}}))
            elif self.path.split("?")[0] != MODELS_PATH:
                self._send(status(404, message=f"Not Found: {self.path}")(received))
            elif fake.models_down:
                self._send(status(503)(received))
            else:
                self._send(_json_reply(200, {"data": data}))

        def do_POST(self) -> None:  # noqa: N802 - stdlib naming
            """Record the request, check key and strictness, then answer with the next behaviour."""
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
                return
            if not self._authorised(received):
                return
            rejected = _rejection(fake, received)
            if rejected is not None:
                self._send(rejected)
                return
            reply = fake.next_behaviour()(received)
            if reply.status == 200 and reply.body.startswith(b"{"):
                reply = _with_usage(fake, received, reply)
            self._send(replace(reply, delay_s=reply.delay_s + fake.latency_s))

    return Handler


def _with_usage(fake: FakeOpenRouter, received: Received, reply: Reply) -> Reply:
    """The completion's usage as this request earned it (tokens of its prompt, cached prefix, cost)."""
    payload = json.loads(reply.body)
    if not isinstance(payload, dict) or not payload.get("choices"):
        return reply
    text = str(payload["choices"][0].get("message", {}).get("content") or "")
    payload["usage"] = usage_for(received, text, fake.cached_tokens(received))
    return replace(reply, body=json.dumps(payload).encode())


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hangs up (a read timeout under test) is expected; anything else is printed."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, OSError)):
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
