"""Worker replicas: one web process accepts, three worker processes claim and run, all on one PostgreSQL.

The web process runs with RUN_DISPATCH=workers (it only records and answers); each worker is
``python -m handlers.dispatcher`` on its own state folder. Workers are SIGKILLed while they hold
runs and restarted, once on a wiped folder (a replaced container). Runs are held in flight with
the blob server's gate (the document fetch waits until the test opens it), never with sleeps.
"""

from __future__ import annotations

from collections import Counter
from functools import partial
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest

from tests.blobserver import BlobServer
from tests.e2e.test_dispatch import wait_for
from tests.e2e.webserver import API_TOKEN, WEBHOOK_SECRET, WebServer, post_run, start_gunicorn
from tests.e2e.workerfleet import Worker, worker_env

RUNS = 60


def rows(database_url: str, query: str, *params: object) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(query, params).fetchall()


def held_by(database_url: str, worker: Worker) -> list[str]:
    """Runs the worker holds right now (PROCESSING under a lease it owns)."""
    found = rows(database_url, """SELECT id FROM "PipelineRun" WHERE status = 'PROCESSING'
                                  AND "leaseOwner" LIKE %s""", worker.identity() + "/%")
    return [run_id for (run_id,) in found]


def blocked_since(blob: BlobServer, mark: int) -> set[str]:
    """Runs whose document request reached the blob server after ``blob.seen[mark]``.

    Called with the length of ``blob.seen`` taken right after ``gate.clear()``: each of these
    requests waits on the closed gate, so its run cannot finish before the test opens it.
    """
    return {parse_qs(urlsplit(seen.path).query)["run"][0] for seen in blob.seen[mark:]
            if seen.path.startswith("/gated/")}


def stuck(database_url: str, worker: Worker, blob: BlobServer, mark: int) -> set[str]:
    """Runs the worker holds whose document fetch waits on the closed gate."""
    return set(held_by(database_url, worker)) & blocked_since(blob, mark)


def holds_stuck(database_url: str, worker: Worker, blob: BlobServer, mark: int, n: int) -> bool:
    return len(stuck(database_url, worker, blob, mark)) >= n


def counts(database_url: str) -> Counter[str]:
    return Counter(status for (status,) in rows(database_url, 'SELECT status FROM "PipelineRun"'))


def finished(database_url: str, completed: int) -> bool:
    """At least ``completed`` runs COMPLETED, or any FAILED (then the assertions after say why)."""
    now = counts(database_url)
    return now["COMPLETED"] >= completed or now["FAILED"] > 0


@pytest.mark.slow
def test_three_workers_execute_sixty_runs_once_each_through_kills_and_restarts(tmp_path: Path, blob: BlobServer,
                                                                             database_url: str) -> None:
    env = worker_env(database_url, blob.host, RUN_LEASE_SECONDS="5", MAX_CONCURRENT_RUNS="2",
                     MAX_RUN_ATTEMPTS="10", RAILWAY_DEPLOYMENT_DRAINING_SECONDS="10")
    workers = [Worker(f"worker{i}", tmp_path / f"worker{i}" / "outputs", env) for i in range(3)]
    web: WebServer | None = None
    killed: Counter[str] = Counter()  # a requeued run may be caught (and killed) again by a later round
    try:
        web = start_gunicorn(tmp_path / "web", {**env, "WEBHOOK_SECRET": WEBHOOK_SECRET, "API_TOKEN": API_TOKEN})
        for worker in workers:
            worker.start()
        ids = [f"fleet-{n:02d}" for n in range(RUNS)]
        for run_id in ids:
            # The query names the run in the blob server's log (the route ignores it).
            answer = post_run(web, {"run_id": run_id, "blob_url": blob.url(f"/gated/report.txt?run={run_id}"),
                                    "company_id": "decathlon", "user_id": "user_1"})
            assert answer.status_code == 202, answer.text
        for round_, worker in enumerate(workers):
            blob.gate.clear()  # every fetch from now on waits: the worker's slots fill with stuck runs
            mark = len(blob.seen)
            wait_for(partial(holds_stuck, database_url, worker, blob, mark, 2), f"{worker.name} to hold two runs")
            for run_id in stuck(database_url, worker, blob, mark):  # cannot finish: the gate is closed
                killed[run_id] += 1
            worker.kill()
            if round_ == 1:
                worker.wipe()  # a replaced container: new identity, its runs come back when their leases lapse
            worker.start()
            blob.gate.set()
            target = min(RUNS, 20 * (round_ + 1))
            wait_for(partial(finished, database_url, target), f"{target} runs to complete", 300)
        wait_for(partial(finished, database_url, RUNS), "all runs to complete", 300)
    finally:
        blob.gate.set()
        codes = [worker.stop() for worker in workers]
        if web is not None:
            assert web.stop() == 0
    assert codes == [0, 0, 0], "every worker drains and exits 0 on SIGTERM"
    assert counts(database_url) == Counter({"COMPLETED": RUNS}), rows(
        database_url, 'SELECT id, status, "errorCode", "errorMessage" FROM "PipelineRun" WHERE status <> %s',
        "COMPLETED")
    assert sum(killed.values()) == 6, killed

    # Every run completed once, with all its outputs; the killed ones resumed as a new attempt.
    final = dict(rows(database_url, 'SELECT id, attempt FROM "PipelineRun"'))
    outputs = dict(rows(database_url, """SELECT r.id, (SELECT count(*) FROM "StageOutput" s WHERE s."runId" = r.id)
                                            + (SELECT count(*) FROM "OpportunityCard" c WHERE c."runId" = r.id)
                                            + (r."fullReportMarkdown" IS NOT NULL)::int FROM "PipelineRun" r"""))
    assert set(outputs.values()) == {11}, outputs
    assert all(final[run_id] >= 1 + kills for run_id, kills in killed.items()), {r: final[r] for r in killed}

    # Each attempt was started by exactly one process, attempts never skipped or repeated, and each
    # run's process exited successfully exactly once across all workers.
    lines = [line for worker in workers for line in worker.lines()]
    started = Counter((str(line["run_id"]), int(str(line["attempt"]))) for line in lines
                      if line.get("message") == "run_process_started")
    assert max(started.values()) == 1, [key for key, n in started.items() if n > 1]
    for run_id in ids:
        attempts = sorted(attempt for (run, attempt) in started if run == run_id)
        assert attempts == list(range(1, int(final[run_id]) + 1)), (run_id, attempts)
    succeeded = Counter(line["run_id"] for line in lines
                        if line.get("message") == "run_process_exited" and line.get("exit_code") == 0)
    assert succeeded == Counter({run_id: 1 for run_id in ids})
    per_worker = {w.name: sum(1 for line in w.lines("run_process_exited") if line.get("exit_code") == 0)
                  for w in workers}
    assert all(per_worker.values()), f"every worker ran some runs: {per_worker}"

    # The web process only accepted: its host dispatcher never claimed or started a run.
    assert web is not None
    web_lines = web.log_lines()
    assert not [line for line in web_lines if line.get("message") == "run_process_started"]
    assert [line["claims"] for line in web_lines if line.get("message") == "dispatcher_started"] == [False]
    print(f"\n{RUNS} runs on 3 workers, 6 runs killed mid-flight: per worker {per_worker}; "
          f"attempts {Counter(final.values())}")
