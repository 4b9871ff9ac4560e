"""FileStore on real files: the verbs, idempotency, fencing, atomicity, concurrent creators."""

from __future__ import annotations

import json
import multiprocessing
from datetime import timedelta
from pathlib import Path

import pytest

from config.errors import Conflict, Superseded
from persistence.files import FileStore
from persistence.records import (
    STAGE_FILES,
    FinalReport,
    OpportunityCard,
    RunErrorInfo,
    RunRequest,
    RunStatus,
    StageResult,
    utcnow,
)
from tests.known import known

REQUEST = RunRequest(run_id="r-1", company_id="decathlon", user_id="u-1", document_url="https://x/doc.pdf")


def _stage(n: int) -> StageResult:
    start = utcnow()
    return StageResult(n, {"stage": n, "text": f"output {n}"}, start, start + timedelta(milliseconds=5 * n))


def test_a_full_run_leaves_the_contract_layout_and_status_history(output_dir):
    store = FileStore(output_dir)
    assert store.create_run(REQUEST) is True
    store.start_attempt("r-1", 1)
    for n in range(1, 6):
        store.save_stage("r-1", 1, _stage(n))
    card = OpportunityCard(1, "t", "c")
    store.complete_run("r-1", 1, FinalReport("# Innovation Intelligence Report\n", (card,)))

    run_dir = output_dir / "r-1"
    files = sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file())
    assert files == sorted([".lock", "run.json", "report.md", *STAGE_FILES.values()])
    doc = json.loads((run_dir / "run.json").read_text())
    assert [t["status"] for t in doc["transitions"]] == ["QUEUED", "PROCESSING", "COMPLETED"]
    assert doc["stages"]["3"]["duration_ms"] == 15 and doc["current_stage"] == 5
    assert json.loads((run_dir / STAGE_FILES[2]).read_text()) == {"stage": 2, "text": "output 2"}
    state = known(store.get_run("r-1"))
    assert state.status is RunStatus.COMPLETED and state.completed_stages == (1, 2, 3, 4, 5)
    assert state.completed_at is not None and state.error is None


def test_create_is_idempotent_for_the_same_request_and_conflicts_for_another(output_dir):
    store = FileStore(output_dir)
    assert store.create_run(REQUEST) is True
    assert store.create_run(REQUEST) is False
    with pytest.raises(Conflict, match="different payload"):
        store.create_run(RunRequest("r-1", "decathlon", "someone-else", "https://x/doc.pdf"))


def test_a_superseded_attempt_cannot_write(output_dir):
    store = FileStore(output_dir)
    store.create_run(REQUEST)
    store.start_attempt("r-1", 1)
    store.save_stage("r-1", 1, _stage(1))
    store.start_attempt("r-1", 2)
    with pytest.raises(Superseded, match="attempt 1 was superseded by attempt 2"):
        store.save_stage("r-1", 1, _stage(2))
    with pytest.raises(Superseded):
        store.complete_run("r-1", 1, FinalReport("x", ()))
    assert store.load_stage_outputs("r-1").keys() == {1}
    assert known(store.get_run("r-1")).attempt == 2


def test_failure_records_stage_code_and_message(output_dir):
    store = FileStore(output_dir)
    store.create_run(REQUEST)
    store.start_attempt("r-1", 1)
    store.fail_run("r-1", 1, RunErrorInfo(1, "PDF_ENCRYPTED", "remove the password"))
    state = known(store.get_run("r-1"))
    assert state.status is RunStatus.FAILED
    assert state.error == RunErrorInfo(1, "PDF_ENCRYPTED", "remove the password")


def test_writes_leave_no_temporary_files(output_dir):
    store = FileStore(output_dir)
    store.create_run(REQUEST)
    store.start_attempt("r-1", 1)
    store.save_stage("r-1", 1, _stage(1))
    assert not [p for p in output_dir.rglob("*.tmp")]


def test_unknown_run_is_none(output_dir):
    assert FileStore(output_dir).get_run("nobody") is None
    assert FileStore(output_dir).load_stage_outputs("nobody") == {}


def _create(root: str, barrier, results) -> None:
    barrier.wait()
    results.put(FileStore(Path(root)).create_run(REQUEST))


def test_concurrent_creators_in_separate_processes_create_the_run_once(output_dir):
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(6), ctx.Queue()
    procs = [ctx.Process(target=_create, args=(str(output_dir), barrier, results)) for _ in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    outcomes = sorted(results.get() for _ in procs)
    assert outcomes == [False] * 5 + [True]
    doc = json.loads((output_dir / "r-1" / "run.json").read_text())
    assert len(doc["transitions"]) == 1


def test_stray_names_in_the_queue_folder_are_ignored_not_fatal(output_dir):
    store = FileStore(output_dir)
    store.create_run(REQUEST)
    (output_dir / ".queue" / ".r-1.abc123.tmp").write_bytes(b"")  # what a crash mid-write leaves
    (output_dir / ".queue" / "not a run id").write_bytes(b"")
    claims = store.claim_next("host/1", 60, 5)
    assert [c.run_id for c in claims] == ["r-1"]


def test_a_repeated_create_restores_a_queue_marker_lost_in_a_crash(output_dir):
    store = FileStore(output_dir)
    store.create_run(REQUEST)
    (output_dir / ".queue" / "r-1").unlink()  # the process died between run.json and its marker
    assert store.claim_next("host/1", 60, 5) == []
    assert store.create_run(REQUEST) is False  # the webhook is delivered again
    assert [c.run_id for c in store.claim_next("host/1", 60, 5)] == ["r-1"]
