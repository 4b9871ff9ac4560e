"""Callback delivery from the outbox: signed, retried with the same webhook-id, sent once, SSRF-checked."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.settings import Settings
from handlers.callbacks.deliver import RetryPolicy, deliver_due
from handlers.callbacks.sender import SendPolicy
from handlers.webhook_signature import verify
from persistence.factory import build_store
from persistence.files import LOCK_FILE as RUN_LOCK_FILE
from persistence.outbox.factory import build_outbox
from persistence.outbox.ports import CallbackOutbox, Delivery, webhook_id_for
from persistence.records import FinalReport, RunRequest
from tests.callback_receiver import CallbackReceiver, start_callback_receiver
from tests.integration.test_persistence_defects import cli_env, run_cli

REPO = Path(__file__).resolve().parents[2]
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
FAST = RetryPolicy(max_attempts=4, first_delay_s=0.05, factor=1.0, max_delay_s=0.05, lease_s=30,
                   send=SendPolicy(connect_timeout_s=2, read_timeout_s=0.5))


@pytest.fixture
def receiver(request: pytest.FixtureRequest) -> Iterator[CallbackReceiver]:
    server = start_callback_receiver(request.param)
    yield server
    server.close()


def settings_for(mode: str, receiver: CallbackReceiver, output_dir: Path, database_url: str,
                 **extra: object) -> Settings:
    base: dict[str, object] = {"output_dir": output_dir, "webhook_secret": SECRET, "callback_url": receiver.url,
                               "blob_allow_http": True, "blob_allowed_hosts": (receiver.host,), **extra}
    if mode == "FILE_ONLY":
        return Settings(enable_database_writes=False, **base)  # type: ignore[arg-type]
    return Settings(database_url=database_url, enable_file_fallback=False, **base)  # type: ignore[arg-type]


def enqueue_completed(settings: Settings, outbox: CallbackOutbox, run_id: str = "r1") -> Delivery:
    """Run ``run_id`` to COMPLETED through the mode's store, which queues its callback; that entry."""
    store = build_store(settings)
    try:
        store.create_run(RunRequest(run_id, "decathlon", "u1", "https://x.public.blob.vercel-storage.com/a.pdf"))
        claim = store.claim(run_id, "test-owner", 60)
        assert claim is not None
        store.complete_run(run_id, claim.attempt, FinalReport("# report", ()))
    finally:
        store.close()
    delivery = outbox.get(webhook_id_for(run_id, "COMPLETED", claim.attempt))
    assert delivery is not None and delivery.outcome == "COMPLETED"
    assert outbox.enqueue(delivery) is False  # the same outcome is one entry
    return delivery


def pump(settings: Settings, outbox: CallbackOutbox, until, policy: RetryPolicy = FAST) -> None:
    """Run delivery passes until ``until()`` holds (a hang guard of 60 s, not a timing check)."""
    deadline = time.monotonic() + 60
    while not until():
        assert time.monotonic() < deadline, "delivery did not settle"
        deliver_due(settings, outbox, "test-owner", policy)
        time.sleep(0.02)


@pytest.mark.parametrize("mode", ["FILE_ONLY", "DATABASE_ONLY"])
@pytest.mark.parametrize("receiver", [["fail", "timeout", "ok"]], indirect=True)
def test_a_callback_survives_a_failure_and_a_timeout_and_arrives_once(mode, receiver, output_dir, database_url):
    settings = settings_for(mode, receiver, output_dir, database_url)
    outbox = build_outbox(settings)
    delivery = enqueue_completed(settings, outbox)
    pump(settings, outbox, lambda: (outbox.get(delivery.webhook_id) or delivery).delivered_at is not None)
    assert [r.answer for r in receiver.received] == ["fail", "timeout", "ok"]
    for seen in receiver.received:  # the same id and body every time, each signed validly
        assert verify(SECRET, seen.headers, seen.body) == delivery.webhook_id
        assert seen.body == delivery.payload.encode()
    event = json.loads(receiver.received[0].body)
    assert event["type"] == "run.completed" and event["data"]["run_id"] == "r1"
    stored = outbox.get(delivery.webhook_id)
    assert stored is not None and stored.attempts == 2 and outbox.pending() == 0
    for _ in range(3):  # nothing is ever sent again for this outcome
        assert deliver_due(settings, outbox, "test-owner", FAST).as_dict() == {"delivered": 0, "retried": 0,
                                                                                "given_up": 0}
    assert len(receiver.received) == 3


@pytest.mark.parametrize("receiver", [["fail"]], indirect=True)
def test_delivery_gives_up_after_its_attempts_and_keeps_the_entry(receiver, output_dir, database_url):
    settings = settings_for("FILE_ONLY", receiver, output_dir, database_url)
    outbox = build_outbox(settings)
    delivery = enqueue_completed(settings, outbox)
    pump(settings, outbox, lambda: (outbox.get(delivery.webhook_id) or delivery).dead_at is not None)
    assert len(receiver.received) == FAST.max_attempts
    stored = outbox.get(delivery.webhook_id)
    assert stored is not None and "HTTP 500" in (stored.last_error or "") and outbox.pending() == 0


@pytest.mark.parametrize("receiver", [["ok"]], indirect=True)
def test_a_callback_host_that_resolves_internally_is_refused_unless_listed(receiver, output_dir, database_url):
    # 127.0.0.1 is loopback: without the explicit BLOB_ALLOWED_HOSTS entry the SSRF rules refuse it.
    settings = settings_for("FILE_ONLY", receiver, output_dir, database_url,
                            blob_allowed_hosts=("*.public.blob.vercel-storage.com",))
    outbox = build_outbox(settings)
    delivery = enqueue_completed(settings, outbox)
    report = deliver_due(settings, outbox, "test-owner", FAST)
    assert report.given_up == 1 and receiver.received == []
    stored = outbox.get(delivery.webhook_id)
    assert stored is not None and "BLOB_ADDRESS_NOT_ALLOWED" in (stored.last_error or "")


@pytest.mark.parametrize("receiver", [["ok"]], indirect=True)
def test_the_deliverer_process_stops_on_sigterm_with_its_pool_closed(receiver, output_dir, database_url):
    # A pool left to the interpreter's finalizers cannot stop its threads (Python 3.13): each is
    # waited for 5 s, and the host's shutdown overruns Railway's grace period. The web worker did
    # exactly that (tests/e2e/test_not_durable.py); the deliverer closes its outbox itself.
    settings = settings_for("DATABASE_ONLY", receiver, output_dir, database_url)
    enqueue_completed(settings, build_outbox(settings))
    env = {**os.environ, "DATABASE_URL": database_url, "ENABLE_FILE_FALLBACK": "false",
           "OUTPUT_DIR": str(output_dir), "CALLBACK_URL": receiver.url, "WEBHOOK_SECRET": SECRET,
           "BLOB_ALLOW_HTTP": "true", "BLOB_ALLOWED_HOSTS": receiver.host, "LOG_LEVEL": "INFO"}
    process = subprocess.Popen([sys.executable, "-m", "handlers.callbacks"], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60  # a hang guard, not a timing check
        while not receiver.received:
            assert process.poll() is None and time.monotonic() < deadline, "the deliverer sent nothing"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output[-2000:]
    assert "callback_deliverer_stopped" in output and "couldn't stop thread" not in output, output[-2000:]


@pytest.mark.parametrize("receiver", [["ok"]], indirect=True)
def test_file_only_a_kill_between_run_json_and_the_outbox_loses_no_callback(receiver, output_dir, database_url):
    # A run's end has two sides in FILE_ONLY: its terminal run.json and its outbox entry. The
    # process is SIGKILLed as the second begins; its resume must still announce the run, once.
    env = cli_env(output_dir, ENABLE_DATABASE_WRITES="false", CALLBACK_URL=receiver.url, WEBHOOK_SECRET=SECRET,
                  BLOB_ALLOW_HTTP="true", BLOB_ALLOWED_HOSTS=receiver.host)
    crashed = run_cli(env, "announced", crash_at="callback")
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-3000:]
    resumed = run_cli(env, "announced")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    settings = settings_for("FILE_ONLY", receiver, output_dir, database_url)
    outbox = build_outbox(settings)
    pump(settings, outbox, lambda: outbox.pending() == 0)
    run = json.loads((output_dir / "announced" / "run.json").read_text())
    assert run["status"] == "COMPLETED"
    assert [verify(SECRET, seen.headers, seen.body) for seen in receiver.received] == [
        webhook_id_for("announced", "COMPLETED", run["attempt"])]


@pytest.mark.parametrize("receiver", [["ok"]], indirect=True)
def test_file_only_a_callback_waits_while_its_run_is_being_written(receiver, output_dir, database_url):
    settings = settings_for("FILE_ONLY", receiver, output_dir, database_url)
    outbox = build_outbox(settings)
    delivery = enqueue_completed(settings, outbox)
    with open(output_dir / "r1" / RUN_LOCK_FILE, "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # what a writer of the run holds while it enqueues and records
        assert deliver_due(settings, outbox, "test-owner", FAST).delivered == 0
        waiting = outbox.get(delivery.webhook_id)
        assert waiting is not None and waiting.attempts == 0 and outbox.pending() == 1  # kept, lease given back
    pump(settings, outbox, lambda: outbox.pending() == 0)
    assert [verify(SECRET, seen.headers, seen.body) for seen in receiver.received] == [delivery.webhook_id]
