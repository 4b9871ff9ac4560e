"""Claims, leases and requeues behave the same on files and on PostgreSQL."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from config.errors import Superseded
from persistence.files import FileStore
from persistence.postgres import PostgresStore
from persistence.records import RunErrorInfo, RunRequest, RunStatus, StageResult, utcnow


def request(run_id: str) -> RunRequest:
    return RunRequest(run_id=run_id, company_id="decathlon", user_id="u", document_url="https://b/x.pdf")


@pytest.fixture(params=["files", "database"])
def store(request, tmp_path):
    if request.param == "files":
        yield FileStore(tmp_path / "out")
    else:
        pg = PostgresStore(request.getfixturevalue("database_url"))
        yield pg
        pg.close()


def make_store(kind: str, where: str):
    return FileStore(Path(where)) if kind == "files" else PostgresStore(where)


def test_a_queued_run_is_claimed_once_under_attempt_one(store):
    store.create_run(request("a"))
    claim = store.claim("a", "host/1", 60)
    assert (claim.run_id, claim.attempt) == ("a", 1)
    assert claim.request == request("a")  # what the run process fetches before it reads anything
    assert store.claim("a", "host/2", 60) is None
    state = store.get_run("a")
    assert state.status is RunStatus.PROCESSING and state.attempt == 1
    assert state.extra["lease"]["owner"] == "host/1"


def test_claim_next_takes_the_oldest_queued_runs_up_to_the_limit(store):
    for run_id in ("r1", "r2", "r3"):
        store.create_run(request(run_id))
    claims = store.claim_next("host/1", 60, 2)
    assert [c.run_id for c in claims] == ["r1", "r2"]
    assert [c.request for c in claims] == [request("r1"), request("r2")]
    assert [c.run_id for c in store.claim_next("host/1", 60, 5)] == ["r3"]
    assert store.claim_next("host/1", 60, 5) == []


def test_unknown_and_finished_runs_are_not_claimed(store):
    assert store.claim("ghost", "host/1", 60) is None
    store.create_run(request("done"))
    claim = store.claim("done", "host/1", 60)
    store.fail_run("done", claim.attempt, RunErrorInfo(1, "X", "y"))
    assert store.claim("done", "host/1", 60) is None


def test_a_lapsed_lease_can_be_claimed_again_and_fences_the_old_attempt(store):
    store.create_run(request("a"))
    first = store.claim("a", "host/1", 0)  # a lease that lapses at once
    assert [lease.run_id for lease in store.leases() if lease.lapsed(utcnow())] == ["a"]
    second = store.claim("a", "host/2", 60)
    assert second.attempt == first.attempt + 1
    now = utcnow()
    with pytest.raises(Superseded):
        store.save_stage("a", first.attempt, StageResult(1, {"x": 1}, now, now))
    assert store.renew("a", first.attempt, "host/1", 60) is False
    assert store.renew("a", second.attempt, "host/2", 60) is True


def test_a_live_lease_is_not_claimable(store):
    store.create_run(request("a"))
    store.claim("a", "host/1", 60)
    assert store.claim("a", "host/2", 60) is None
    assert [lease.lapsed(utcnow()) for lease in store.leases()] == [False]


def test_requeue_returns_a_run_to_queued_keeping_finished_stages(store):
    store.create_run(request("a"))
    claim = store.claim("a", "host/1", 60)
    now = utcnow()
    store.save_stage("a", claim.attempt, StageResult(1, {"x": 1}, now, now))
    assert store.requeue("a", claim.attempt, "run process killed by SIGKILL") is True
    state = store.get_run("a")
    assert state.status is RunStatus.QUEUED and state.extra["last_interruption"] == "run process killed by SIGKILL"
    assert store.leases() == []
    again = store.claim("a", "host/1", 60)
    assert again.attempt == 2 and store.load_stage_outputs("a") == {1: {"x": 1}}
    assert store.requeue("a", claim.attempt, "stale") is False  # the old attempt cannot requeue


def _claimer(kind: str, where: str, owner: str, barrier, results) -> None:
    store = make_store(kind, where)
    barrier.wait()
    got = []
    while claims := store.claim_next(owner, 60, 3):
        got += [c.run_id for c in claims]
    results.put(got)


@pytest.mark.parametrize("kind", ["files", "database"])
def test_concurrent_claimers_in_separate_processes_never_claim_a_run_twice(kind, tmp_path, request):
    where = str(tmp_path / "out") if kind == "files" else request.getfixturevalue("database_url")
    seed = make_store(kind, where)
    ids = [f"run-{n:03d}" for n in range(40)]
    for run_id in ids:
        seed.create_run(RunRequest(run_id, "decathlon", "u", "https://b/x.pdf"))
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_claimer, args=(kind, where, f"host/{n}", barrier, results)) for n in range(4)]
    for proc in procs:
        proc.start()
    claimed = [run_id for _ in procs for run_id in results.get(timeout=120)]
    for proc in procs:
        proc.join()
    assert sorted(claimed) == ids  # every run exactly once
    assert all(seed.get_run(run_id).attempt == 1 for run_id in ids)
