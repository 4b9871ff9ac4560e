"""Accepted runs execute exactly once, through bursts, crashes and redeploys (real gunicorn).

Each test starts its own gunicorn (whose master starts the host's dispatcher) and a local
stand-in for Vercel Blob. Runs are held in flight deterministically with the blob server's
gate (the document fetch waits until the test opens it), never with sleeps.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import psycopg
import pytest
import requests

from handlers.dispatch_socket import SATURATION_FILE, Saturation
from tests.blobserver import BlobServer
from tests.e2e.webserver import API_TOKEN, WEBHOOK_SECRET, WebServer, post_run, start_gunicorn
from tests.fake_openrouter import FakeOpenRouter, held, valid

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
FINISHED = {"COMPLETED", "FAILED", "CANCELLED"}


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[..., WebServer]]:
    """Start gunicorn servers on ``tmp_path``; every one is stopped (or killed) at the end."""
    started: list[WebServer] = []

    def start(env: dict[str, str], *, output_dir: Path | None = None, new_session: bool = False) -> WebServer:
        full = {"WEBHOOK_SECRET": WEBHOOK_SECRET, "API_TOKEN": API_TOKEN, "PIPELINE_ENGINE": "offline",
                "OUTPUT_DIR": str(output_dir or tmp_path / "outputs"), **env}
        server = start_gunicorn(tmp_path / f"server{len(started)}", full, new_session=new_session)
        started.append(server)
        return server

    yield start
    for server in started:
        _stop_dispatcher_after(server)


def _stop_dispatcher_after(server: WebServer) -> None:
    try:
        server.stop()  # a killed one too: its log must still be JSON lines
    finally:
        _stop_dispatcher(Path(server.env["OUTPUT_DIR"]))


def _stop_dispatcher(output_dir: Path) -> None:
    """A SIGKILLed master leaves no dispatcher behind, but a failed test might: end it."""
    pid_file = output_dir / ".state" / "dispatcher.pid"
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def env_for(blob: BlobServer, **extra: str) -> dict[str, str]:
    return {"BLOB_ALLOWED_HOSTS": blob.host, "BLOB_ALLOW_HTTP": "true", "ENABLE_DATABASE_WRITES": "false", **extra}


def body(run_id: str, blob: BlobServer, route: str = "files") -> dict[str, object]:
    return {"run_id": run_id, "blob_url": blob.url(f"/{route}/report.txt"), "company_id": "decathlon",
            "user_id": "user_1"}


def fetches(blob: BlobServer, path: str) -> int:
    """How many times the runner downloaded ``path`` from the blob server."""
    return sum(1 for seen in blob.seen if seen.path.split("?")[0] == path)


def status(server: WebServer, run_id: str) -> dict:
    answer = requests.get(server.url(f"/api/pipeline/{run_id}/status"), headers=AUTH, timeout=5)
    assert answer.status_code == 200, answer.text
    return answer.json()


def wait_for(predicate: Callable[[], object], what: str, seconds: float = 120) -> None:
    """Poll until ``predicate`` is truthy; fail with ``what`` if it never does (a hang guard, not a timing check)."""
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def run_doc(output_dir: Path, run_id: str) -> dict:
    return json.loads((output_dir / run_id / "run.json").read_text())


def logged(server: WebServer, message: str) -> list[dict]:
    return [line for line in server.log_lines() if line.get("message") == message]


# -- a run from webhook to report ---------------------------------------------------------------


def test_a_signed_run_is_fetched_from_blob_storage_and_completes(servers, blob, tmp_path):
    server = servers(env_for(blob))
    assert post_run(server, body("one", blob)).status_code == 202
    wait_for(lambda: status(server, "one")["status"] in FINISHED, "run one to finish")
    answer = status(server, "one")
    assert answer["status"] == "COMPLETED" and answer["error"] is None and answer["current_stage"] is None
    assert answer["last_completed_stage"] == 5 and answer["progress"] == 1.0  # current_stage: the one running now
    assert all(stage["status"] == "completed" and stage["completed_at"] for stage in answer["stages"].values())
    report = (tmp_path / "outputs" / "one" / "report.md").read_text()
    assert report.startswith("# Innovation Intelligence Report") and "Decathlon" in report
    assert fetches(blob, "/files/report.txt") == 1


def test_a_run_in_database_only_mode_leaves_its_rows(servers, blob, database_url):
    server = servers(env_for(blob, ENABLE_DATABASE_WRITES="true", ENABLE_FILE_FALLBACK="false",
                             DATABASE_URL=database_url))
    assert post_run(server, body("db-run", blob)).status_code == 202
    wait_for(lambda: status(server, "db-run")["status"] in FINISHED, "the database run to finish")
    assert status(server, "db-run")["source"] == "database"
    with psycopg.connect(database_url) as conn:
        row = conn.execute('SELECT status, attempt, "stage1Output" IS NOT NULL, "fullReportMarkdown" '
                           'FROM "PipelineRun" WHERE id = %s', ("db-run",)).fetchone()
        stage_count = conn.execute('SELECT count(*) FROM "StageOutput" WHERE "runId" = %s', ("db-run",)).fetchone()
        card_count = conn.execute('SELECT count(*) FROM "OpportunityCard" WHERE "runId" = %s', ("db-run",)).fetchone()
    assert row is not None, "the PipelineRun row for db-run should exist"
    assert stage_count is not None and card_count is not None, "count(*) always returns a row"
    stages, cards = stage_count[0], card_count[0]
    assert row[:3] == ("COMPLETED", 1, True) and row[3].startswith("# Innovation Intelligence Report")
    assert (stages, cards) == (5, 5)


def test_repeated_deliveries_never_run_twice(servers, blob, tmp_path):
    server = servers(env_for(blob))
    with ThreadPoolExecutor(10) as pool:
        codes = sorted(pool.map(lambda _: post_run(server, body("dup", blob)).status_code, range(10)))
    assert codes == [200] * 9 + [202]
    wait_for(lambda: status(server, "dup")["status"] in FINISHED, "run dup to finish")
    for _ in range(3):
        assert post_run(server, body("dup", blob)).status_code == 200
    doc = run_doc(tmp_path / "outputs", "dup")
    assert [t["status"] for t in doc["transitions"]] == ["QUEUED", "PROCESSING", "COMPLETED"]
    assert doc["attempt"] == 1 and fetches(blob, "/files/report.txt") == 1


# -- bursts ---------------------------------------------------------------------------------------


def _max_overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
                    key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def test_a_burst_of_200_webhooks_all_complete_never_more_than_the_limit_at_once(servers, blob, tmp_path):
    server = servers(env_for(blob, MAX_CONCURRENT_RUNS="2"))
    ids = [f"burst-{n:03d}" for n in range(200)]
    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(lambda run_id: post_run(server, body(run_id, blob)).status_code, ids))
    assert codes == [202] * 200
    out = tmp_path / "outputs"
    wait_for(lambda: all(run_doc(out, r)["status"] in FINISHED for r in ids), "all 200 runs to finish", 300)
    docs = [run_doc(out, r) for r in ids]
    assert {d["status"] for d in docs} == {"COMPLETED"}
    assert {d["attempt"] for d in docs} == {1}  # each ran exactly once
    intervals = []
    for doc in docs:
        at = {t["status"]: datetime.fromisoformat(t["at"]) for t in doc["transitions"]}
        intervals.append((at["PROCESSING"], at["COMPLETED"]))
    assert _max_overlap(intervals) <= 2
    assert max(line["running"] for line in logged(server, "run_process_started")) <= 2


def test_runs_sent_while_every_slot_is_taken_wait_queued_and_each_starts_as_a_slot_frees(servers, blob, tmp_path):
    # While full, the dispatcher says so (dispatch_socket.Saturation) and web workers stop waking
    # it per webhook (tests/integration/test_saturation.py); it must still claim every such run.
    server = servers(env_for(blob, MAX_CONCURRENT_RUNS="1"))
    out = tmp_path / "outputs"
    assert post_run(server, body("full-0", blob, "gated")).status_code == 202
    saturation = Saturation(out / ".state" / SATURATION_FILE)
    wait_for(saturation.full, "the dispatcher to say its one slot is taken")
    ids = ["full-0", *(f"full-{n}" for n in range(1, 6))]
    assert [post_run(server, body(run_id, blob)).status_code for run_id in ids[1:]] == [202] * 5
    assert {run_doc(out, run_id)["status"] for run_id in ids[1:]} == {"QUEUED"}
    blob.gate.set()
    wait_for(lambda: all(run_doc(out, r)["status"] in FINISHED for r in ids), "all six runs to finish")
    assert [(run_doc(out, r)["status"], run_doc(out, r)["attempt"]) for r in ids] == [("COMPLETED", 1)] * 6


# -- crashes and redeploys ------------------------------------------------------------------------


def _processes_gone(pids: list[int]) -> bool:
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1].split()[0]
        except (FileNotFoundError, IndexError):
            continue
        if state != "Z":  # a zombie has stopped running; its parent just has not reaped it
            return False
    return True


def test_a_run_process_sigkilled_mid_fetch_is_resumed_and_completes(servers, blob, tmp_path):
    server = servers(env_for(blob, MAX_RUN_ATTEMPTS="3"))
    assert post_run(server, body("killed", blob, route="gated")).status_code == 202
    wait_for(lambda: logged(server, "run_process_started"), "the run process to start")
    pid = logged(server, "run_process_started")[0]["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: logged(server, "run_requeued"), "the dispatcher to requeue the run")
    blob.gate.set()
    wait_for(lambda: status(server, "killed")["status"] in FINISHED, "the resumed run to finish")
    doc = run_doc(tmp_path / "outputs", "killed")
    assert doc["status"] == "COMPLETED" and doc["attempt"] == 2
    assert "SIGKILL" in doc["last_interruption"]


def _started_at_least(server: WebServer, n: int) -> Callable[[], bool]:
    """A predicate: ``server`` has logged at least ``n`` run process starts."""
    return lambda: len(logged(server, "run_process_started")) >= n


def test_a_run_that_keeps_dying_fails_with_its_cause_after_max_attempts(servers, blob, tmp_path):
    server = servers(env_for(blob, MAX_RUN_ATTEMPTS="2"))
    assert post_run(server, body("doomed", blob, route="gated")).status_code == 202
    for attempt in (1, 2):
        wait_for(_started_at_least(server, attempt), f"attempt {attempt} to start")
        os.kill(logged(server, "run_process_started")[attempt - 1]["pid"], signal.SIGKILL)
    wait_for(lambda: status(server, "doomed")["status"] in FINISHED, "the run to be failed")
    answer = status(server, "doomed")
    assert answer["status"] == "FAILED" and answer["error"]["code"] == "PROCESS_DIED"
    assert "SIGKILL" in answer["error"]["message"] and "MAX_RUN_ATTEMPTS=2" in answer["error"]["message"]


def test_the_whole_server_sigkilled_with_runs_in_flight_completes_them_after_restart(servers, blob, tmp_path):
    out = tmp_path / "outputs"
    env = env_for(blob, MAX_CONCURRENT_RUNS="2")
    first = servers(env, output_dir=out, new_session=True)
    ids = [f"flight-{n}" for n in range(4)]
    for run_id in ids:
        assert post_run(first, body(run_id, blob, route="gated")).status_code == 202
    wait_for(lambda: len(logged(first, "run_process_started")) == 2, "two runs in flight")
    children = [line["pid"] for line in logged(first, "run_process_started")]
    dispatcher = int((out / ".state" / "dispatcher.pid").read_text())
    os.killpg(first.process.pid, signal.SIGKILL)  # master, workers and dispatcher at once
    first.process.wait(timeout=10)
    wait_for(lambda: _processes_gone([dispatcher, *children]), "the dispatcher and its runs to die")
    assert sorted(run_doc(out, r)["status"] for r in ids) == ["PROCESSING", "PROCESSING", "QUEUED", "QUEUED"]

    blob.gate.set()
    second = servers(env, output_dir=out)
    wait_for(lambda: all(status(second, r)["status"] in FINISHED for r in ids), "every run to finish after restart")
    docs = {r: run_doc(out, r) for r in ids}
    assert {d["status"] for d in docs.values()} == {"COMPLETED"}
    assert sorted(d["attempt"] for d in docs.values()) == [1, 1, 2, 2]
    assert logged(second, "runs_recovered")[0]["startup"] is True


def test_a_redeploy_drains_the_run_and_the_next_process_resumes_it(servers, blob, tmp_path):
    out = tmp_path / "outputs"
    env = env_for(blob, RAILWAY_DEPLOYMENT_DRAINING_SECONDS="20")
    first = servers(env, output_dir=out)
    assert post_run(first, body("drained", blob, route="gated")).status_code == 202
    wait_for(lambda: logged(first, "run_process_started"), "the run to start")
    first.process.send_signal(signal.SIGTERM)  # what Railway sends on a redeploy
    wait_for(lambda: logged(first, "dispatcher_draining"), "the dispatcher to ask its run to stop")
    blob.gate.set()  # the fetch returns; the run sees the stop request before its next stage
    assert first.process.wait(timeout=60) == 0
    doc = run_doc(out, "drained")
    assert doc["status"] == "QUEUED" and doc["last_interruption"] == "interrupted by shutdown"
    assert logged(first, "run_interrupted")[0]["next_stage"] == 1

    second = servers(env, output_dir=out)
    wait_for(lambda: status(second, "drained")["status"] in FINISHED, "the drained run to finish")
    doc = run_doc(out, "drained")
    assert doc["status"] == "COMPLETED" and doc["attempt"] == 2


# -- mid-stage: the LLM engine, whose stage 3 the fake holds in flight ---------------------------


def llm_env(blob: BlobServer, llm: FakeOpenRouter, **extra: str) -> dict[str, str]:
    return env_for(blob, PIPELINE_ENGINE="openrouter", OPENROUTER_API_KEY=llm.api_key,
                   OPENROUTER_BASE_URL=llm.base_url, **extra)


def calls_per_stage(llm: FakeOpenRouter) -> list[int]:
    return [sum(1 for r in llm.completions if r.stage == n) for n in range(1, 6)]


def test_a_run_sigkilled_mid_stage_resumes_without_recomputing_finished_stages(servers, blob, llm, tmp_path):
    gate = threading.Event()
    llm.script(valid(), valid(), held(gate))  # stages 1 and 2 answer; stage 3 waits
    server = servers(llm_env(blob, llm))
    assert post_run(server, body("mid", blob)).status_code == 202
    wait_for(lambda: calls_per_stage(llm)[2] == 1, "stage 3 to be in flight")
    out = tmp_path / "outputs"
    finished = {n: (out / "mid" / f"stage{n}").iterdir().__next__().stat().st_mtime_ns for n in (1, 2)}
    os.kill(logged(server, "run_process_started")[0]["pid"], signal.SIGKILL)
    wait_for(lambda: status(server, "mid")["status"] in FINISHED, "the resumed run to finish")
    gate.set()
    doc = run_doc(out, "mid")
    assert doc["status"] == "COMPLETED" and doc["attempt"] == 2
    assert calls_per_stage(llm) == [1, 1, 2, 1, 1]  # only the interrupted stage ran twice
    assert {n: (out / "mid" / f"stage{n}").iterdir().__next__().stat().st_mtime_ns for n in (1, 2)} == finished


def test_a_redeploy_lets_the_current_stage_finish_then_the_next_process_resumes(servers, blob, llm, tmp_path):
    gate = threading.Event()
    llm.script(valid(), valid(), held(gate))
    out = tmp_path / "outputs"
    env = llm_env(blob, llm, RAILWAY_DEPLOYMENT_DRAINING_SECONDS="30")
    first = servers(env, output_dir=out)
    assert post_run(first, body("checkpoint", blob)).status_code == 202
    wait_for(lambda: calls_per_stage(llm)[2] == 1, "stage 3 to be in flight")
    first.process.send_signal(signal.SIGTERM)
    wait_for(lambda: logged(first, "dispatcher_draining"), "the dispatcher to ask its run to stop")
    gate.set()  # stage 3 finishes within the draining time; the run stops before stage 4
    assert first.process.wait(timeout=60) == 0
    doc = run_doc(out, "checkpoint")
    assert doc["status"] == "QUEUED" and sorted(doc["stages"]) == ["1", "2", "3"]

    second = servers(env, output_dir=out)
    wait_for(lambda: status(second, "checkpoint")["status"] in FINISHED, "the resumed run to finish")
    assert run_doc(out, "checkpoint")["status"] == "COMPLETED"
    assert calls_per_stage(llm) == [1, 1, 1, 1, 1]  # every stage ran exactly once across both processes


# -- replicas -------------------------------------------------------------------------------------


def test_two_replicas_sharing_one_database_run_every_run_exactly_once(servers, blob, database_url, tmp_path):
    env = env_for(blob, ENABLE_DATABASE_WRITES="true", ENABLE_FILE_FALLBACK="false", DATABASE_URL=database_url,
                  MAX_CONCURRENT_RUNS="2")
    replicas = [servers(env, output_dir=tmp_path / f"replica{n}") for n in (0, 1)]
    ids = [f"shared-{n:02d}" for n in range(40)]
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda pair: post_run(replicas[pair[0] % 2], body(pair[1], blob)).status_code,
                              enumerate(ids)))
    assert codes == [202] * 40

    def finished() -> bool:
        with psycopg.connect(database_url) as conn:
            done = conn.execute("SELECT count(*) FROM \"PipelineRun\" WHERE status = 'COMPLETED'").fetchone()
        assert done is not None, "count(*) always returns a row"
        return bool(done[0] == len(ids))

    wait_for(finished, "every run on either replica to complete", 300)
    with psycopg.connect(database_url) as conn:
        attempts = conn.execute('SELECT DISTINCT attempt FROM "PipelineRun"').fetchall()
        stage_count = conn.execute('SELECT count(*) FROM "StageOutput"').fetchone()
    assert stage_count is not None, "count(*) always returns a row"
    stage_rows = stage_count[0]
    assert attempts == [(1,)] and stage_rows == 5 * len(ids)
    started = [line["run_id"] for r in replicas for line in logged(r, "run_process_started")]
    assert sorted(started) == ids  # each run's process started once, on one replica or the other


# -- spare run processes (handlers/run_process.py) -----------------------------------------------


def dispatcher_children(output_dir: Path) -> list[int]:
    """The dispatcher's child processes: its runs and its spare."""
    pid = int((output_dir / ".state" / "dispatcher.pid").read_text())
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("mode", ["files", "database"])
def test_a_spare_run_process_takes_the_next_claim_and_one_that_dies_idle_is_replaced(
        servers, blob, tmp_path, mode, request):
    extra = {} if mode == "files" else {"ENABLE_DATABASE_WRITES": "true", "ENABLE_FILE_FALLBACK": "false",
                                        "DATABASE_URL": request.getfixturevalue("database_url")}
    server = servers(env_for(blob, **extra))
    out = tmp_path / "outputs"
    assert post_run(server, body("first", blob)).status_code == 202
    wait_for(lambda: status(server, "first")["status"] in FINISHED, "the first run to finish")

    # Idle, the dispatcher keeps exactly one spare: a run process forked ahead of the next claim.
    wait_for(lambda: len(dispatcher_children(out)) == 1, "a spare run process")
    [spare] = dispatcher_children(out)
    assert post_run(server, body("second", blob)).status_code == 202
    wait_for(lambda: status(server, "second")["status"] in FINISHED, "the second run to finish")
    [started] = [line for line in logged(server, "run_process_started") if line["run_id"] == "second"]
    assert (started["started_by"], started["pid"]) == ("spare", spare)
    assert status(server, "second")["status"] == "COMPLETED"

    # A spare killed while idle is noticed and replaced; the next run still runs, once.
    wait_for(lambda: [p for p in dispatcher_children(out) if p != spare], "the next spare")
    [replaced] = [p for p in dispatcher_children(out) if p != spare]
    os.kill(replaced, signal.SIGKILL)
    wait_for(lambda: logged(server, "spare_run_process_exited"), "the dispatcher to notice the dead spare")
    assert post_run(server, body("third", blob)).status_code == 202
    wait_for(lambda: status(server, "third")["status"] in FINISHED, "the third run to finish")
    assert status(server, "third")["status"] == "COMPLETED"
    assert fetches(blob, "/files/report.txt") == 3
    # Every spare warmed up and rehearsed a run's document path on its own loopback without a
    # hitch (pipeline.rehearsal): nothing skipped, nothing reached the blob server, nothing logged.
    assert not logged(server, "spare_warmup_skipped")
    assert all(line.get("run_id") for line in server.log_lines()
               if line.get("message") in ("document_fetched", "document_admitted"))

    # Stopping the server dismisses the waiting spare: nothing is left behind. The third run's
    # process can outlive its COMPLETED status by a moment: the spare is the child that is not it.
    [third] = [line["pid"] for line in logged(server, "run_process_started") if line["run_id"] == "third"]
    wait_for(lambda: (children := dispatcher_children(out)) and third not in children, "a spare after the third run")
    [last] = dispatcher_children(out)
    assert server.stop() == 0
    assert not alive(last), "the dispatcher reaps its idle spare before it exits"
    # Reaped, not left to exit after the dispatcher: a child's SIGCHLD arriving once the signal
    # wake-up socket is closed printed "Exception ignored ... signal wakeup fd" on stderr, a
    # line Railway shows as an error (and log_lines() cannot parse).
    lines = server.log_lines()
    order = [line["message"] for line in lines if line.get("message") in ("spare_dismissed", "dispatcher_stopped")]
    assert order == ["spare_dismissed", "dispatcher_stopped"], order
    [dismissed] = [line for line in lines if line.get("message") == "spare_dismissed"]
    assert dismissed["pid"] == last
