"""A host-wide circuit breaker for the database: closed → open → half_open → closed.

Every process on the host (web workers, run subprocesses, cron) shares one small JSON file under
``settings.state_dir``, so a fresh run subprocess skips a dead database at once instead of paying
a connect timeout first.

    closed     calls go through; it opens on N consecutive connection failures, on a failure
               rate or a slow-call rate over a sliding window (once it holds min_calls calls),
               and at once on a SchemaMismatch, a connect timeout or a cut per-call deadline
               (a blackholed network: waiting for more of them only makes the run pay again)
    open       callers are told to skip the database, with no wait, until the break ends;
               breaks grow exponentially with each re-open, with jitter, up to a cap
    half_open  exactly one probe call at a time on the whole host; its success closes the
               breaker, its failure (or slowness) opens it again for a longer break

What is shared and what is not. The file holds only the STATE (state, reason, break, trips,
probe); it is rewritten, under an exclusive ``flock`` on ``breaker.lock``, only when the state
changes. The sliding-window statistics (consecutive failures, failure and slow-call windows)
live in memory per process: each process trips on its own window, then shares the OPEN state
with every other one. A successful call in the closed state therefore costs one ``stat`` of the
file, when it is allowed (the parsed state is cached by inode, mtime and size, and the call's
success is counted against it), and takes no lock and writes nothing.
The file is replaced atomically (temp file + rename) but not fsynced: it is an optimisation,
and a state lost to a power cut only costs one more probe. The single-probe rule is unchanged:
the probe is taken and given back under the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import random
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from config.errors import RunnerError, SchemaMismatch, StoreUnavailable
from config.log import get_logger
from persistence import atomic
from persistence.retry import timeout_kind

log = get_logger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
STATE_FILE = "breaker.json"
LOCK_FILE = "breaker.lock"
# Timeouts that say "the network or server does not answer at all": one opens the breaker.
OPENING_TIMEOUTS = frozenset({"connect_timeout", "deadline"})
# Every reason this breaker opens for by itself, except a schema mismatch: an outage or a slow
# database, over once the database answers. (A schema mismatch and an operator's "manual: ..."
# trip need a fix first.)
OUTAGE_REASONS = ("consecutive_failures", "failure_rate", "slow_call_rate", "probe_failed", "probe_slow",
                  "probe_released", *sorted(OPENING_TIMEOUTS))


def opened_by_outage(reason: str) -> bool:
    """True when the breaker's ``reason`` is an outage that ends once the database answers."""
    return reason.startswith(OUTAGE_REASONS)


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
    open_on_timeout: bool = True  # a connect timeout or a cut deadline opens at once
    # How old a look at the shared file may be when a call asks to go through: 0 looks every time.
    # A web worker (factory.WEB_BREAKER_RECHECK_S) looks at most every tenth of a second: each
    # look is a stat, a turn of the GIL among its threads, and it sees its own changes at once.
    state_recheck_s: float = 0.0


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
    return {"state": CLOSED, "reason": "initial", "since": now, "open_until": None, "trips": 0, "probe": None}


def _copy(doc: dict[str, Any]) -> dict[str, Any]:
    probe = doc.get("probe")
    return {**doc, "probe": dict(probe) if probe else None}


class _Window:
    """This process's sliding window of calls since the shared state last changed.

    Failures and slow calls are kept as running totals: every database call records itself
    here, so the window is never summed.
    """

    def __init__(self, size: int) -> None:
        self.epoch: Any = None  # the shared state the window counts under
        self.consecutive = 0
        self.size = size
        self.calls: deque[tuple[float, int, int]] = deque()
        self.failures = 0
        self.slows = 0

    def clear(self, epoch: Any) -> None:
        self.epoch = epoch
        self.consecutive = 0
        self.calls.clear()
        self.failures = self.slows = 0

    def add(self, now: float, failed: bool, slow: bool, max_age: float) -> None:
        """Record one call; calls older than ``max_age`` seconds, or past the size, leave."""
        while self.calls and (len(self.calls) >= self.size or now - self.calls[0][0] > max_age):
            self._drop()
        self.calls.append((now, int(failed), int(slow)))
        self.failures += int(failed)
        self.slows += int(slow)
        self.consecutive = self.consecutive + 1 if failed else 0

    def _drop(self) -> None:
        _, failed, slow = self.calls.popleft()
        self.failures -= failed
        self.slows -= slow


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
        self._mutex = threading.RLock()  # gthread workers share one breaker
        self._window = _Window(policy.window_size)
        # The parsed file, keyed by (inode, mtime, size). The file object stays open so that
        # its inode cannot be freed and reused by a later version: an equal key is the same file.
        self._cached: tuple[tuple[int, int, int], dict[str, Any], IO[bytes] | None] | None = None
        self._dir_ready = False
        self._missing: dict[str, Any] | None = None
        self._looked_at = -math.inf  # time.monotonic() of the last stat of the file (state_recheck_s)

    # -- reading -------------------------------------------------------------------------

    def _read(self, *, fresh: bool = True) -> dict[str, Any]:
        """The shared state (do not mutate): one stat, and a parse only when the file changed.

        ``fresh=False`` takes the state this process last read, without the stat, when it has one.
        The usual case (the file has not changed) takes no lock: the stat releases the GIL, and
        a lock held across it made the web worker's threads queue behind each other.
        """
        cached = self._cached  # one consistent (key, doc, handle), whatever other threads do
        if not fresh and cached is not None:
            return cached[1]
        self._looked_at = time.monotonic()
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            with self._mutex:
                self._remember(None, None, None)
                return self._initial()
        if cached is not None and cached[0] == (st.st_ino, st.st_mtime_ns, st.st_size):
            return cached[1]
        with self._mutex:
            try:
                handle = open(self.path, "rb")  # noqa: SIM115 (kept open in the cache)
            except FileNotFoundError:
                self._remember(None, None, None)
                return self._initial()
            st = os.fstat(handle.fileno())
            doc = self._parse(handle.read())
            if doc is None:
                handle.close()
                self._remember(None, None, None)  # _update rewrites a corrupt file
                return self._initial()
            self._remember((st.st_ino, st.st_mtime_ns, st.st_size), doc, handle)
            return doc

    def _initial(self) -> dict[str, Any]:
        # One document while no (valid) file exists, so its ``since`` (the window's epoch) stays put.
        if self._missing is None:
            self._missing = _fresh(self.clock())
        return self._missing

    def _parse(self, data: bytes) -> dict[str, Any] | None:
        try:
            doc = json.loads(data.decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            log.error("breaker_state_corrupt", path=str(self.path), error=str(exc), action="reset to closed")
            return None
        if not isinstance(doc, dict) or doc.get("state") not in (CLOSED, OPEN, HALF_OPEN):
            log.error("breaker_state_corrupt", path=str(self.path), error="unknown shape", action="reset to closed")
            return None
        doc.setdefault("probe", None)
        doc.setdefault("trips", 0)
        return doc

    def _remember(self, key: tuple[int, int, int] | None, doc: dict[str, Any] | None,
                  handle: IO[bytes] | None) -> None:
        old = self._cached
        self._cached = None if key is None or doc is None else (key, doc, handle)
        if old is not None and old[2] is not None and old[2] is not handle:
            old[2].close()

    def state(self) -> str:
        """'closed', 'open' or 'half_open', as every process on the host sees it."""
        return self._read()["state"]

    def snapshot(self) -> dict[str, Any]:
        """State, reason, end of the break and trip count (for /health and logs)."""
        doc = self._read()
        return {k: doc.get(k) for k in ("state", "reason", "since", "open_until", "trips")}

    def would_allow(self) -> bool:
        """True if a call now would get a permit (closed, or a probe is up for grabs); no lock."""
        doc = self._read()
        return doc["state"] == CLOSED or not self._skip(doc, self.clock())

    def _write(self, doc: dict[str, Any]) -> None:
        """Replace the state file atomically (no fsync: see the module docstring)."""
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=f".{STATE_FILE}.", suffix=".tmp")
        handle = os.fdopen(fd, "w+b")
        try:
            handle.write(atomic.dumps(doc))
            handle.flush()
            os.replace(tmp, self.path)
        except BaseException:
            handle.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        st = os.fstat(handle.fileno())
        self._remember((st.st_ino, st.st_mtime_ns, st.st_size), doc, handle)

    @contextmanager
    def _update(self) -> Iterator[dict[str, Any]]:
        """Read, change and atomically rewrite the state under the host-wide lock (if it changed)."""
        with self._mutex:
            try:
                if not self._dir_ready:
                    atomic.ensure_dir(self.dir)
                    self._dir_ready = True
                lock = open(self.dir / LOCK_FILE, "a+b")  # noqa: SIM115 (closed below, after the yield)
            except OSError as exc:
                # A full or read-only state disk must not stop database calls: this change of
                # state is not shared with other processes, which find out for themselves.
                log.warning("breaker_state_unwritable", path=str(self.dir), error=type(exc).__name__, reason=str(exc))
                yield _copy(self._read())
                return
            with lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    current = self._read()
                    doc = _copy(current)
                    yield doc
                    if doc != current or self._cached is None:
                        try:
                            self._write(doc)
                        except OSError as exc:
                            log.warning("breaker_state_unwritable", path=str(self.dir), error=type(exc).__name__,
                                        reason=str(exc))
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
        recheck = self.policy.state_recheck_s
        doc = self._read(fresh=not recheck or time.monotonic() - self._looked_at >= recheck)
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

    def _opening_reason(self, error: BaseException | None) -> str | None:
        """Why this one call opens the breaker without a threshold, if it does."""
        if isinstance(error, SchemaMismatch):
            # The schema will not fix itself between calls.
            return f"schema_mismatch: {error}"
        kind = timeout_kind(error) if isinstance(error, StoreUnavailable) else None
        if self.policy.open_on_timeout and kind in OPENING_TIMEOUTS:
            # Nothing answers: every further call would wait out the same timeout.
            return f"{kind}: {error}"
        return None

    def record(self, permit: Permit, error: BaseException | None, seconds: float) -> str:
        """Account one finished call (error None on success); return the state after it."""
        failed = isinstance(error, StoreUnavailable) and not isinstance(error, CircuitOpen)
        slow = seconds >= self.policy.slow_call_seconds
        at_once = self._opening_reason(error)
        if permit.probe:
            with self._update() as doc:
                probe = doc.get("probe")
                if probe and probe["token"] == permit.token:
                    now = self.clock()
                    if isinstance(error, SchemaMismatch):
                        self._open(doc, now, f"schema_mismatch: {error}")
                    elif failed:
                        code = error.code if isinstance(error, RunnerError) else ""
                        self._open(doc, now, f"probe_failed: {code}: {error}")
                    elif slow:
                        self._open(doc, now, f"probe_slow: {seconds:.3f}s")
                    else:
                        self._close(doc, now, "probe_succeeded")
                    return doc["state"]
            # A late verdict of a probe that lost its lease: an ordinary call from here on.
        if at_once is not None:
            return self._open_shared(at_once, only_if_closed=False)
        with self._mutex:
            # A call that went well changes nothing shared: the state read when it was allowed
            # will do, and spares a busy web worker a stat (a turn of the GIL) per call.
            doc = self._read(fresh=failed or slow)
            if doc["state"] != CLOSED:
                return doc["state"]  # a call started before the break: only the probe decides
            reason = self._count(doc, self.clock(), failed, slow)
        if reason is None:
            if self._cached is None:
                with self._update():
                    pass  # no (valid) file yet: write the closed state once, for operators and /health
            return CLOSED
        return self._open_shared(reason, only_if_closed=True)

    def _count(self, doc: dict[str, Any], now: float, failed: bool, slow: bool) -> str | None:
        """Add the call to this process's window; the reason to open, if a threshold is crossed."""
        p = self.policy
        w = self._window
        epoch = (doc["state"], doc.get("since"), doc.get("reason"), doc.get("trips"))
        if w.epoch != epoch:
            w.clear(epoch)  # the shared state changed (here or elsewhere): a new window
        w.add(now, failed, slow, p.window_seconds)
        total, failures, slows = len(w.calls), w.failures, w.slows
        if w.consecutive >= p.consecutive_failures:
            return f"consecutive_failures: {w.consecutive}"
        if total >= p.min_calls and failures / total >= p.failure_rate:
            return f"failure_rate: {failures}/{total}"
        if total >= p.min_calls and slows / total >= p.slow_call_rate:
            return f"slow_call_rate: {slows}/{total} over {p.slow_call_seconds}s"
        return None

    def _open_shared(self, reason: str, *, only_if_closed: bool) -> str:
        with self._update() as doc:
            if doc["state"] == CLOSED or not only_if_closed:
                if doc["state"] == OPEN and not only_if_closed and self.clock() < doc["open_until"]:
                    return OPEN  # another process opened it meanwhile: do not lengthen its break
                self._open(doc, self.clock(), reason)
            return doc["state"]

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
    def guard(self, permit: Permit | None = None) -> Iterator[Permit]:
        """Run the block as one database call: CircuitOpen if skipped, outcome recorded after.

        ``permit``: one this caller already acquired (and has not used); else one is acquired here.
        """
        permit = permit or self.acquire()
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
        doc.update(state=OPEN, reason=reason, since=now, open_until=now + seconds, trips=trips, probe=None)
        self._window.clear(None)
        log.warning("breaker_opened", reason=reason, previous=previous, break_s=round(seconds, 3), trips=trips)

    def _close(self, doc: dict[str, Any], now: float, reason: str) -> None:
        previous = doc["state"]
        doc.update(state=CLOSED, reason=reason, since=now, open_until=None, trips=0, probe=None)
        self._window.clear(None)
        log.info("breaker_closed", reason=reason, previous=previous)

    def trip(self, reason: str) -> None:
        """Open the breaker now (operators, cron: schema drift found, maintenance)."""
        with self._update() as doc:
            self._open(doc, self.clock(), f"manual: {reason}")

    def reset(self, reason: str) -> None:
        """Close the breaker now (an operator knows the database is back)."""
        with self._update() as doc:
            self._close(doc, self.clock(), f"manual: {reason}")
