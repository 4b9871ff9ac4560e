"""A host-wide circuit breaker for the database: closed → open → half_open → closed.

Every process on the host (web workers, run subprocesses, cron) shares one small JSON file under
``settings.state_dir``, updated under an exclusive ``flock`` and replaced atomically, so a fresh
run subprocess skips a dead database at once instead of paying a connect timeout first.

    closed     calls go through; it opens on N consecutive connection failures, on a failure
               rate or a slow-call rate over a sliding window (once it holds min_calls calls),
               and at once on a SchemaMismatch (or ``trip()``)
    open       callers are told to skip the database, with no wait, until the break ends;
               breaks grow exponentially with each re-open, with jitter, up to a cap
    half_open  exactly one probe call at a time on the whole host; its success closes the
               breaker, its failure (or slowness) opens it again for a longer break
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.errors import RunnerError, SchemaMismatch, StoreUnavailable
from config.log import get_logger
from persistence import atomic

log = get_logger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
STATE_FILE = "breaker.json"
LOCK_FILE = "breaker.lock"


@dataclass(frozen=True)
class BreakerPolicy:
    """When the breaker opens and for how long. Production defaults; tests shrink them."""

    consecutive_failures: int = 3
    window_seconds: float = 60.0  # calls older than this leave the sliding window
    window_size: int = 50  # and at most this many recent calls are kept
    min_calls: int = 10  # rates are judged only over at least this many calls
    failure_rate: float = 0.5
    slow_call_seconds: float = 2.0
    slow_call_rate: float = 0.5
    break_seconds: float = 5.0  # the first break; each re-open multiplies it
    break_multiplier: float = 2.0
    max_break_seconds: float = 300.0
    break_jitter: float = 0.2  # each break is scaled by a random factor in [1-j, 1+j]
    probe_lease_seconds: float = 30.0  # a probe silent this long (its process died) is retaken


class CircuitOpen(StoreUnavailable):
    """The breaker says skip the database now; the write goes to the spool instead."""

    code = "CIRCUIT_OPEN"


@dataclass(frozen=True)
class Permit:
    """Leave to call the database once; ``probe`` marks the single half-open trial call."""

    probe: bool
    token: str
    started: float


def _fresh(now: float) -> dict[str, Any]:
    return {"state": CLOSED, "reason": "initial", "since": now, "open_until": None,
            "trips": 0, "consecutive": 0, "calls": [], "probe": None}


class CircuitBreaker:
    """The database breaker, shared through ``state_dir/breaker.json`` by every local process."""

    def __init__(
        self,
        state_dir: Path,
        policy: BreakerPolicy = BreakerPolicy(),
        *,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.dir = state_dir
        self.path = state_dir / STATE_FILE
        self.policy = policy
        # Wall-clock time, not monotonic: the deadlines are compared across processes.
        self.clock = clock
        self.rand = rand

    # -- reading -------------------------------------------------------------------------

    def _load(self) -> tuple[dict[str, Any], bool]:
        """The state document and whether it had to be rebuilt from a corrupt file."""
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return _fresh(self.clock()), False
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            log.error("breaker_state_corrupt", path=str(self.path), error=str(exc), action="reset to closed")
            return _fresh(self.clock()), True
        if not isinstance(doc, dict) or doc.get("state") not in (CLOSED, OPEN, HALF_OPEN):
            log.error("breaker_state_corrupt", path=str(self.path), error="unknown shape", action="reset to closed")
            return _fresh(self.clock()), True
        return doc, False

    def state(self) -> str:
        """'closed', 'open' or 'half_open', as every process on the host sees it."""
        return self._load()[0]["state"]

    def snapshot(self) -> dict[str, Any]:
        """State, reason, end of the break and trip count (for /health and logs)."""
        doc = self._load()[0]
        return {k: doc.get(k) for k in ("state", "reason", "since", "open_until", "trips")}

    @contextmanager
    def _update(self) -> Iterator[dict[str, Any]]:
        """Read, change and atomically rewrite the state under the host-wide lock."""
        atomic.ensure_dir(self.dir)
        with open(self.dir / LOCK_FILE, "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                doc, repaired = self._load()
                before = None if repaired else json.dumps(doc, sort_keys=True)
                yield doc
                if json.dumps(doc, sort_keys=True) != before:
                    atomic.write_json(self.path, doc)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # -- calls ---------------------------------------------------------------------------

    def _probe_alive(self, doc: dict[str, Any], now: float) -> bool:
        probe = doc.get("probe")
        if not probe or now - probe["at"] > self.policy.probe_lease_seconds:
            return False
        if probe["pid"] == os.getpid():
            return True
        try:
            os.kill(probe["pid"], 0)
        except ProcessLookupError:
            return False  # the prober died mid-probe: its claim must not block the host forever
        except PermissionError:
            return True
        return True

    def _skip(self, doc: dict[str, Any], now: float) -> bool:
        if doc["state"] == OPEN:
            return now < doc["open_until"]
        return doc["state"] == HALF_OPEN and self._probe_alive(doc, now)

    def acquire(self) -> Permit | None:
        """A permit to call the database, or None: skip it now (open, or another probe runs)."""
        now = self.clock()
        doc = self._load()[0]
        if doc["state"] == CLOSED:
            return Permit(False, "", now)
        if self._skip(doc, now):
            return None
        with self._update() as doc:  # the break is over: race the other processes for the probe
            now = self.clock()
            if doc["state"] == CLOSED:
                return Permit(False, "", now)
            if self._skip(doc, now):
                return None
            token = uuid.uuid4().hex
            previous = doc["state"]
            doc.update(state=HALF_OPEN, since=now, probe={"token": token, "pid": os.getpid(), "at": now})
            log.info("breaker_half_open", reason="break over" if previous == OPEN else "probe abandoned",
                     trips=doc["trips"], pid=os.getpid())
            return Permit(True, token, now)

    def record(self, permit: Permit, error: BaseException | None, seconds: float) -> str:
        """Account one finished call (error None on success); return the state after it."""
        schema = isinstance(error, SchemaMismatch)
        failed = isinstance(error, StoreUnavailable) and not isinstance(error, CircuitOpen)
        slow = seconds >= self.policy.slow_call_seconds
        with self._update() as doc:
            now = self.clock()
            probe = doc.get("probe")
            if permit.probe and probe and probe["token"] == permit.token:
                if schema:
                    self._open(doc, now, f"schema_mismatch: {error}")
                elif failed:
                    self._open(doc, now, f"probe_failed: {getattr(error, 'code', '')}: {error}")
                elif slow:
                    self._open(doc, now, f"probe_slow: {seconds:.3f}s")
                else:
                    self._close(doc, now, "probe_succeeded")
                return doc["state"]
            if schema:
                # The schema will not fix itself between calls: no threshold, open now.
                self._open(doc, now, f"schema_mismatch: {error}")
                return doc["state"]
            if doc["state"] != CLOSED:
                return doc["state"]  # a call started before the break: only the probe decides
            self._count(doc, now, failed, slow)
            return doc["state"]

    def _count(self, doc: dict[str, Any], now: float, failed: bool, slow: bool) -> None:
        p = self.policy
        calls = [c for c in doc["calls"] if now - c[0] <= p.window_seconds]
        calls.append([now, int(failed), int(slow)])
        doc["calls"] = calls[-p.window_size:]
        doc["consecutive"] = doc["consecutive"] + 1 if failed else 0
        total = len(doc["calls"])
        failures = sum(c[1] for c in doc["calls"])
        slows = sum(c[2] for c in doc["calls"])
        if doc["consecutive"] >= p.consecutive_failures:
            self._open(doc, now, f"consecutive_failures: {doc['consecutive']}")
        elif total >= p.min_calls and failures / total >= p.failure_rate:
            self._open(doc, now, f"failure_rate: {failures}/{total}")
        elif total >= p.min_calls and slows / total >= p.slow_call_rate:
            self._open(doc, now, f"slow_call_rate: {slows}/{total} over {p.slow_call_seconds}s")

    def release(self, permit: Permit) -> None:
        """Give back a probe whose call ended without a verdict (an unexpected error)."""
        if not permit.probe:
            return
        with self._update() as doc:
            probe = doc.get("probe")
            if doc["state"] == HALF_OPEN and probe and probe["token"] == permit.token:
                now = self.clock()
                doc.update(state=OPEN, open_until=now, since=now, probe=None, reason="probe_released")
                log.warning("breaker_probe_released", reason="probe ended without a verdict")

    @contextmanager
    def guard(self) -> Iterator[Permit]:
        """Run the block as one database call: CircuitOpen if skipped, outcome recorded after."""
        permit = self.acquire()
        if permit is None:
            raise CircuitOpen(f"database circuit is {self.state()}: skipping the database for now")
        started = self.clock()
        try:
            yield permit
        except RunnerError as exc:
            self.record(permit, exc, self.clock() - started)
            raise
        except BaseException:
            self.release(permit)
            raise
        self.record(permit, None, self.clock() - started)

    # -- transitions ---------------------------------------------------------------------

    def _open(self, doc: dict[str, Any], now: float, reason: str) -> None:
        p = self.policy
        trips = doc["trips"] + 1
        grown = p.break_seconds * p.break_multiplier ** min(trips - 1, 64)
        scaled = grown * (1 + p.break_jitter * (2 * self.rand() - 1))
        seconds = max(0.0, min(p.max_break_seconds, scaled))
        previous = doc["state"]
        doc.update(state=OPEN, reason=reason, since=now, open_until=now + seconds, trips=trips,
                   consecutive=0, calls=[], probe=None)
        log.warning("breaker_opened", reason=reason, previous=previous, break_s=round(seconds, 3), trips=trips)

    def _close(self, doc: dict[str, Any], now: float, reason: str) -> None:
        previous = doc["state"]
        doc.update(state=CLOSED, reason=reason, since=now, open_until=None, trips=0,
                   consecutive=0, calls=[], probe=None)
        log.info("breaker_closed", reason=reason, previous=previous)

    def trip(self, reason: str) -> None:
        """Open the breaker now (operators, cron: schema drift found, maintenance)."""
        with self._update() as doc:
            self._open(doc, self.clock(), f"manual: {reason}")

    def reset(self, reason: str) -> None:
        """Close the breaker now (an operator knows the database is back)."""
        with self._update() as doc:
            self._close(doc, self.clock(), f"manual: {reason}")
