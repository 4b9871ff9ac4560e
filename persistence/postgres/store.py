"""PostgresStore: the RunStore over PostgreSQL (tables of contract §6, schema of sql/migrations).

One lazily opened connection per process: a run writes a handful of rows per stage. A web worker
shares a small pool between its threads instead, and inserts the new runs of webhooks that arrive
together with one statement (``group_creates``, see ``group_commit``). Every call is bounded
(``connection``). The queue's statements live in ``queue``, all SQL in ``sql``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from config.errors import Conflict, RunnerError, SchemaMismatch, StoreError, StoreUnavailable, Superseded
from config.log import get_logger
from persistence.commands import (
    CancelRun,
    ClaimRun,
    Command,
    CompleteRun,
    CreateRun,
    FailRun,
    RecordUsage,
    RetryRun,
    SaveStage,
    StartAttempt,
)
from persistence.migrations import engine as migrations  # a module: engine imports postgres.errors
from persistence.ports import CommandVerbs, SourcedRun
from persistence.postgres import control_sql as cq
from persistence.postgres import queue as pq
from persistence.postgres import sql as q
from persistence.postgres.connection import Conn, Connections, DbTimeouts
from persistence.postgres.errors import is_transient, wrap_exceptions
from persistence.postgres.group_commit import GroupCommit
from persistence.queue import Claim, Lease
from persistence.records import RunErrorInfo, RunRequest, RunSnapshot, RunState, RunStatus, RunUsage, StageState

log = get_logger(__name__)

# The database, not the command, is the problem: a batch stops and keeps every record.
STOPPING = (StoreUnavailable, SchemaMismatch)


class PostgresStore(CommandVerbs):
    """A RunStore and RunQueue over PostgreSQL; knows nothing of files, breakers or spools."""

    name = "database"

    def __init__(self, url: str, timeouts: DbTimeouts | None = None, *, per_thread: bool = False,
                 callbacks: bool = False, pool_size: int = 0, group_creates: bool = False) -> None:
        timeouts = timeouts or DbTimeouts()
        self.timeouts = timeouts
        self._db = Connections(url, timeouts, per_thread=per_thread, pool_size=pool_size)
        # CALLBACK_URL set: a write that ends a run also queues its callback, in the same transaction.
        self.callbacks = callbacks
        # The web process: new runs that arrive together are inserted by one statement.
        self.creates: GroupCommit[RunRequest, bool] | None = (
            GroupCommit(self._create_batch) if group_creates else None)

    def __repr__(self) -> str:
        return "PostgresStore()"  # never the URL: it may hold a password

    @staticmethod
    def is_transient(exc: BaseException) -> bool:
        """The retry layer's predicate: True when the whole call may succeed later."""
        return is_transient(exc)

    # -- writes ------------------------------------------------------------------------------

    def apply(self, command: Command) -> bool:
        """Apply one command: a new run, a stage or a usage snapshot in one autocommit statement, the others
        in one transaction."""
        if isinstance(command, CreateRun):
            if self.creates is not None:
                return self.creates.submit(command.request)
            with self._db.session(command.kind) as conn:
                return _create_once(conn, command.request)
        if isinstance(command, SaveStage | RecordUsage):
            with self._db.session(command.kind) as conn:
                self._apply_on(conn, command)
            return False
        with self._db.transaction(command.kind) as conn:
            return self._apply_on(conn, command)

    def _create_batch(self, requests: Sequence[RunRequest]) -> list[bool | BaseException]:
        """New runs in one statement (CREATE_RUNS_ONCE): per request True (new), False (the same
        request exists) or Conflict; a batch of one is the single statement.

        Only when the database refuses the statement as a whole is each request tried alone, in
        order, so that one bad request fails alone.
        """
        if len(requests) == 1:
            with self._db.session(CreateRun.kind) as conn:
                return [_create_once(conn, requests[0])]
        firsts: dict[str, RunRequest] = {}
        for request in requests:
            firsts.setdefault(request.run_id, request)
        try:
            with self._db.session(CreateRun.kind) as conn:
                recorded = _create_many(conn, list(firsts.values()), self.timeouts.prepare)
        except STOPPING:
            raise
        except StoreError as exc:
            log.warning("create_batch_one_by_one", runs=len(requests), reason=str(exc))
            return [self._create_alone(request) for request in requests]
        outcomes: list[bool | BaseException] = []
        for request in requests:
            created, on_record = recorded[request.run_id]
            if created and request is firsts[request.run_id]:
                outcomes.append(True)
                continue
            try:  # a repeat of a stored run, or a second copy of an id within the batch
                outcomes.append(_same_request(on_record, request))
            except Conflict as exc:
                outcomes.append(exc)
        return outcomes

    def _create_alone(self, request: RunRequest) -> bool | BaseException:
        try:
            with self._db.session(CreateRun.kind) as conn:
                return _create_once(conn, request)
        except RunnerError as exc:
            return exc

    def _save_stage(self, conn: Conn, command: SaveStage) -> None:
        """The stage row and the run row's copy in one statement (SAVE_STAGE_ONE), fenced by attempt."""
        row = conn.execute(q.SAVE_STAGE_ONE, _stage_params(command), prepare=self.timeouts.prepare).fetchone()
        _check_fence(command.run_id, command.attempt, row)

    def apply_batch(self, commands: Sequence[Command]) -> list[BaseException | None]:
        """Apply ``commands`` in one transaction; one verdict per command.

        The fast way first: no savepoints, consecutive stage writes sent together with
        ``executemany``. Only a batch in which some command is refused is applied again, each
        command in its own savepoint, so the refused one rolls back alone.
        """
        try:
            with self._db.transaction("replay batch") as conn:
                self._apply_all(conn, commands)
            return [None] * len(commands)
        except STOPPING:
            raise
        except (RunnerError, ValueError, KeyError, TypeError) as exc:
            log.info("replay_batch_one_by_one", commands=len(commands), reason=str(exc))
        verdicts: list[BaseException | None] = []
        with self._db.transaction("replay batch") as conn:
            for command in commands:
                verdicts.append(self._apply_saved(conn, command))
        return verdicts

    def _apply_all(self, conn: Conn, commands: Sequence[Command]) -> None:
        """Every command in order, stage writes in groups; raises at the first refusal (the caller rolls back)."""
        stages: list[SaveStage] = []
        for command in [*commands, None]:
            if isinstance(command, SaveStage):
                stages.append(command)
                continue
            if stages:
                with wrap_exceptions("replay save_stage"), conn.cursor() as cur:
                    cur.executemany(q.SAVE_STAGE_ONE, [_stage_params(c) for c in stages], returning=True)
                    for stage in stages:
                        _check_fence(stage.run_id, stage.attempt, cur.fetchone())
                        cur.nextset()
                stages = []
            if command is not None:
                with wrap_exceptions(f"replay {command.kind}"):
                    self._apply_on(conn, command)

    def _apply_saved(self, conn: Conn, command: Command) -> BaseException | None:
        for tries_left in (1, 0):
            try:
                with wrap_exceptions(f"replay {command.kind}"), conn.transaction():
                    self._apply_on(conn, command)
                return None
            except STOPPING:
                raise
            except (Conflict, Superseded) as exc:
                return exc
            except (StoreError, RunnerError, ValueError, KeyError, TypeError) as exc:
                # e.g. a serialization failure or deadlock the store did not class as transient
                if not tries_left or not isinstance(exc, StoreError):
                    return exc
                log.warning("replay_command_retry", run_id=command.run_id, kind=command.kind, reason=str(exc))
        return None  # unreachable: the loop always returns

    def _apply_on(self, conn: Conn, command: Command) -> bool:
        match command:
            case CreateRun(request=request):
                return _create(conn, request)
            case StartAttempt(run_id=run_id, attempt=attempt):
                _fence(conn, run_id, attempt)
                conn.execute(q.START_ATTEMPT, {"run_id": run_id, "attempt": attempt,
                                               "seq": q.write_seq(attempt, q.SEQ_START)})
            case SaveStage():
                self._save_stage(conn, command)
            case CompleteRun(run_id=run_id, attempt=attempt, report=report):
                _fence(conn, run_id, attempt)
                cards = [{"run_id": run_id, "attempt": attempt, "number": c.number, "title": c.title,
                          "content": c.content} for c in report.cards]
                if cards:
                    with conn.cursor() as cur:
                        cur.executemany(q.UPSERT_CARD, cards)
                conn.execute(q.COMPLETE_RUN, {"run_id": run_id, "markdown": report.markdown,
                                              "seq": q.write_seq(attempt, q.SEQ_COMPLETE)})
                self._announce(conn, run_id)
            case FailRun(run_id=run_id, attempt=attempt, error=error):
                _fence(conn, run_id, attempt)
                conn.execute(q.FAIL_RUN, {"run_id": run_id, "stage": error.stage, "code": error.code,
                                          "message": error.message, "seq": q.write_seq(attempt, q.SEQ_FAIL)})
                self._announce(conn, run_id)
            case ClaimRun(run_id=run_id, attempt=attempt, owner=owner, lease_expires_at=expires):
                _fence(conn, run_id, attempt)
                conn.execute(q.RECORD_CLAIM, {"run_id": run_id, "attempt": attempt, "owner": owner,
                                              "expires": expires, "seq": q.write_seq(attempt, q.SEQ_CLAIM)})
            case RecordUsage(run_id=run_id, attempt=attempt, usage=usage):
                row = conn.execute(q.RECORD_USAGE_ONE, {**_usage_params(run_id, usage), "attempt": attempt},
                                   prepare=self.timeouts.prepare).fetchone()
                _check_fence(run_id, attempt, row)
            case CancelRun(run_id=run_id, attempt=attempt, stage=stage):
                cancelled = conn.execute(cq.CANCEL_RUN, {"run_id": run_id, "attempt": attempt, "stage": stage,
                                                         "message": command.error.message}).fetchone()
                if cancelled is not None:
                    self._announce(conn, run_id)
                return cancelled is not None
            case RetryRun(run_id=run_id, attempt=attempt):
                return conn.execute(cq.RETRY_RUN, {"run_id": run_id, "attempt": attempt}).fetchone() is not None
        return False

    def _announce(self, conn: Conn, run_id: str) -> None:
        """Queue the callback of a run that now stands finished (nothing when callbacks are off)."""
        if self.callbacks:
            conn.execute(cq.ENQUEUE_CALLBACK, {"run_id": run_id})

    # -- reads -------------------------------------------------------------------------------

    def read_run(self, run_id: str) -> SourcedRun:
        """The run's state (None when the database has never seen it), from "database"."""
        with self._db.session("get_run") as conn:
            row = conn.execute(q.SELECT_RUN, {"run_id": run_id}).fetchone()
        return SourcedRun(None if row is None else _state(row), "database")

    def load_stage_outputs(self, run_id: str) -> dict[int, Mapping[str, Any]]:
        """Outputs of the stages already saved, by stage number."""
        with self._db.session("load_stage_outputs") as conn:
            rows = conn.execute(q.SELECT_STAGE_OUTPUTS, {"run_id": run_id}).fetchall()
        return {row["stageNumber"]: row["output"] for row in rows}

    def snapshot(self, run_id: str) -> RunSnapshot | None:
        """Everything the database holds about the run (state, outputs, report), in one transaction."""
        with self._db.transaction("snapshot") as conn:
            row = conn.execute(q.SELECT_RUN, {"run_id": run_id}).fetchone()
            if row is None:
                return None
            outputs = conn.execute(q.SELECT_STAGE_OUTPUTS, {"run_id": run_id}).fetchall()
            report = conn.execute(q.SELECT_REPORT, {"run_id": run_id}).fetchone()
        return RunSnapshot(_state(row), {r["stageNumber"]: r["output"] for r in outputs},
                           report["fullReportMarkdown"] if report else None)

    def updated_since(self, since: datetime) -> list[tuple[str, datetime]]:
        """(run id, updatedAt) of every run changed at or after ``since``, oldest first."""
        with self._db.session("updated_since") as conn:
            rows = conn.execute(q.SELECT_UPDATED_SINCE, {"since": since}).fetchall()
        return [(row["id"], row["updatedAt"]) for row in rows]

    # -- the queue (persistence.queue.RunQueue) ------------------------------------------------

    def claim(self, run_id: str, owner: str, lease_seconds: int) -> Claim | None:
        """Claim one run if it is QUEUED or its lease lapsed."""
        with self._db.transaction("claim") as conn:
            return pq.claim(conn, run_id, owner, lease_seconds)

    def claim_next(self, owner: str, lease_seconds: int, limit: int) -> list[Claim]:
        """Claim up to ``limit`` QUEUED runs with FOR UPDATE SKIP LOCKED."""
        if limit <= 0:
            return []
        with self._db.transaction("claim_next") as conn:
            return pq.claim_next(conn, owner, lease_seconds, limit)

    def renew(self, run_id: str, attempt: int, owner: str, lease_seconds: int) -> bool:
        """Extend the lease of a run we hold."""
        with self._db.transaction("renew") as conn:
            return pq.renew(conn, run_id, attempt, owner, lease_seconds)

    def requeue(self, run_id: str, attempt: int, reason: str) -> bool:
        """Put an interrupted run back to QUEUED."""
        with self._db.transaction("requeue") as conn:
            return pq.requeue(conn, run_id, attempt, reason)

    def leases(self) -> list[Lease]:
        """Every PROCESSING run with its lease."""
        with self._db.session("leases") as conn:
            return pq.leases(conn)

    # -- health (persistence.ports.Pingable) ---------------------------------------------------

    def ping(self, timeout_s: float) -> None:
        """Round-trip ``SELECT 1`` within ``timeout_s``, or raise StoreUnavailable."""
        with self._db.session("ping", deadline_s=timeout_s) as conn:
            conn.execute(q.PING)

    def schema_state(self) -> str:
        """'ok', 'behind', 'drift' or 'unknown'; StoreUnavailable when the database cannot be asked."""
        with self._db.session("schema check") as conn:
            return migrations.migration_status(conn).state

    def close(self) -> None:
        """Close every connection this store opened; the next call reopens one."""
        self._db.close()


def _stage_params(command: SaveStage) -> dict[str, Any]:
    result = command.result
    timing = {"started_at": result.started_at.isoformat(), "completed_at": result.completed_at.isoformat(),
              "duration_ms": result.duration_ms}
    return {"run_id": command.run_id, "attempt": command.attempt, "stage": result.stage,
            "output": Jsonb(dict(result.output), dumps=_compact), "started_at": result.started_at,
            "completed_at": result.completed_at, "duration_ms": result.duration_ms,
            "timing": Jsonb(timing, dumps=_compact),
            "seq": q.write_seq(command.attempt, q.SEQ_PER_STAGE * result.stage)}


def _check_fence(run_id: str, attempt: int, row: DictRow | None) -> None:
    """A one-statement write returns the run's attempt: none (unknown run) or a newer one is Superseded."""
    if row is None:
        raise Superseded(f"run {run_id} is not in the database: it was never created there")
    if row["attempt"] > attempt:
        raise Superseded(f"run {run_id}: attempt {attempt} was superseded by attempt {row['attempt']}; write refused")


def _compact(value: Any) -> str:
    """JSON without spaces: what PostgreSQL parses fastest and stores the same."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _fence(conn: Conn, run_id: str, attempt: int) -> None:
    """Lock the run row; refuse the write if the run is unknown or owned by a newer attempt."""
    row = conn.execute(q.LOCK_RUN, {"run_id": run_id}).fetchone()
    if row is None:
        raise Superseded(f"run {run_id} is not in the database: it was never created there")
    if row["attempt"] > attempt:
        raise Superseded(f"run {run_id}: attempt {attempt} was superseded by attempt {row['attempt']}; write refused")


def _create_many(conn: Conn, requests: list[RunRequest], prepare: bool) -> dict[str, tuple[bool, RunRequest]]:
    """CREATE_RUNS_ONCE for distinct run ids: per id, whether it was created and the request on record."""
    rows = conn.execute(q.CREATE_RUNS_ONCE, {
        "run_ids": [r.run_id for r in requests], "user_ids": [r.user_id for r in requests],
        "company_ids": [r.company_id for r in requests], "document_urls": [r.document_url for r in requests],
    }, prepare=prepare).fetchall()
    recorded: dict[str, tuple[bool, RunRequest]] = {}
    for request, row in zip(requests, rows, strict=True):
        if row["created"]:
            recorded[request.run_id] = (True, request)
            continue
        stored: DictRow | None = row
        if row["userId"] is None:  # inserted by a concurrent call after our snapshot: it is there now
            stored = conn.execute(q.SELECT_REQUEST, request.as_dict()).fetchone()
        if stored is None:
            raise StoreError(f"run {request.run_id} neither inserted nor found: retry")
        recorded[request.run_id] = (False, RunRequest(request.run_id, stored["companyId"], stored["userId"],
                                                      stored["documentUrl"]))
    return recorded


def _same_request(stored: RunRequest, request: RunRequest) -> bool:
    """False (a repeat) when ``request`` is the one stored under its id; Conflict otherwise."""
    if (stored.user_id, stored.company_id, stored.document_url) != (request.user_id, request.company_id,
                                                                    request.document_url):
        raise Conflict(f"run {request.run_id} already exists with a different payload; "
                       "use a new run_id for a new run")
    return False


def _create_once(conn: Conn, request: RunRequest) -> bool:
    """Record a run in one round trip (the webhook's path); Conflict for another payload."""
    row = conn.execute(q.CREATE_RUN_ONCE, request.as_dict()).fetchone()
    if row is None:  # inserted by a concurrent call after our snapshot: it is there now
        row = conn.execute(q.SELECT_REQUEST, request.as_dict()).fetchone()
        if row is None:
            raise StoreError(f"run {request.run_id} neither inserted nor found: retry")
        row = {"created": False, **row}
    if row["created"]:
        return True
    return _same_request(RunRequest(request.run_id, row["companyId"], row["userId"], row["documentUrl"]), request)


def _create(conn: Conn, request: RunRequest) -> bool:
    params = request.as_dict()
    if conn.execute(q.INSERT_RUN, params).fetchone() is not None:
        return True
    row = conn.execute(q.SELECT_REQUEST, params).fetchone()
    if row is not None and (row["userId"], row["companyId"], row["documentUrl"]) != (
            request.user_id, request.company_id, request.document_url):
        raise Conflict(f"run {request.run_id} already exists with a different payload; "
                       "use a new run_id for a new run")
    return False


def _usage_params(run_id: str, usage: RunUsage) -> dict[str, Any]:
    total = usage.total() or {}
    data = usage.as_dict()
    return {"run_id": run_id, "engine": usage.engine, "model": usage.model,
            "calls": total.get("calls"), "prompt_tokens": total.get("prompt_tokens"),
            "completion_tokens": total.get("completion_tokens"), "cached_tokens": total.get("cached_tokens"),
            "cost_usd": total.get("cost_usd"),
            "usage": None if data["usage"] is None else Jsonb(data["usage"]),
            "cached_stages": list(usage.cached_stages) if usage.stages is not None else None}


def _row_usage(row: DictRow) -> RunUsage | None:
    if row["engine"] is None:
        return None
    return RunUsage.from_dict({"engine": row["engine"], "model": row["model"], "usage": row["usage"],
                               "cache": {"stages": row["cachedStages"] or []} if row["usage"] is not None else None})


def _state(row: DictRow) -> RunState:
    lease = None if row["leaseOwner"] is None else {
        "owner": row["leaseOwner"],
        "expires_at": row["leaseExpiresAt"].isoformat() if row["leaseExpiresAt"] else None}
    code, message = row["errorCode"], row["errorMessage"]
    timings: dict[str, Any] = row["stageTimings"] or {}
    return RunState(
        request=pq.request_from_row(row),
        status=RunStatus(row["status"]),
        attempt=row["attempt"],
        current_stage=row["currentStage"],
        stages={
            int(n): StageState("completed", _parse(t.get("completed_at")), t.get("duration_ms"))
            for n, t in sorted(timings.items(), key=lambda item: int(item[0]))
        },
        error=RunErrorInfo(row["errorStage"], code or "", message or "")
        if code is not None or message is not None else None,
        created_at=row["createdAt"],
        updated_at=row["updatedAt"],
        completed_at=row["completedAt"],
        extra={"lease": lease, "last_interruption": row["lastInterruption"]},  # the keys FileStore reports
        usage=_row_usage(row),
    )


def _parse(moment: str | None) -> datetime | None:
    return datetime.fromisoformat(moment) if moment else None
