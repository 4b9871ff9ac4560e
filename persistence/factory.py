"""The one place that turns Settings into a RunStore for the mode of contract §3.

    FILE_ONLY                 FileStore(OUTPUT_DIR), whose run writes wait out a full disk
    DATABASE_ONLY             ResilientStore(PostgresStore, spool, breaker, retry)
    DUAL_WRITE                the same, plus FileMirror(FileStore(OUTPUT_DIR)) as the record's mirror
    INVALID                   ConfigError: nothing would be saved
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from config.log import get_logger
from config.modes import Mode
from config.settings import Settings
from persistence.breaker import BreakerPolicy, CircuitBreaker
from persistence.files import FileStore
from persistence.mirror import FileMirror
from persistence.outbox.factory import outbox_dir
from persistence.ports import DirectWrite, Pingable, QueuedStore, Replayable
from persistence.resilient import ResilientStore
from persistence.retry import RetryPolicy
from persistence.spool import ReplayReport, Spool

if TYPE_CHECKING:
    from persistence.postgres import DbTimeouts

log = get_logger(__name__)
WEB_POOL_SIZE = 4  # database connections per web worker (its 8 threads share them)
WEB_BREAKER_RECHECK_S = 0.1  # a web worker sees another process open the breaker within this

MIRROR_WATERMARK = "mirror-healed-at"  # under state_dir: the record's changes mirrored up to here


def build_breaker(settings: Settings, policy: BreakerPolicy | None = None) -> CircuitBreaker:
    """The host's database breaker, shared through ``settings.state_dir``."""
    return CircuitBreaker(settings.state_dir, policy or BreakerPolicy())


def build_resilient(
    settings: Settings,
    *,
    timeouts: DbTimeouts | None = None,
    breaker_policy: BreakerPolicy | None = None,
    retry_policy: RetryPolicy | None = None,
    connection_per_thread: bool = False,
) -> ResilientStore:
    """PostgreSQL behind breaker, retry and spool (plus the file mirror in DUAL_WRITE)."""
    # Imported here so FILE_ONLY processes never load the database driver.
    from persistence.postgres import DbTimeouts, PostgresStore

    if not settings.database_url:
        raise ValueError("build_resilient needs settings.database_url; use build_store for FILE_ONLY")
    bounds = replace(timeouts or DbTimeouts(), prepare=settings.database_prepared_statements)
    # The web process (connection_per_thread) shares a small psycopg_pool pool between its threads,
    # and webhooks that arrive together share one INSERT (persistence.postgres.group_commit).
    database = PostgresStore(settings.database_url, bounds, callbacks=bool(settings.callback_url),
                             pool_size=WEB_POOL_SIZE if connection_per_thread else 0,
                             group_creates=connection_per_thread)
    mirror = None
    if settings.mode is Mode.DUAL_WRITE:
        mirror = FileMirror(FileStore(settings.output_dir, stages_in_run_json=False),
                            settings.state_dir / MIRROR_WATERMARK)
    policy = breaker_policy or BreakerPolicy()
    if connection_per_thread and not policy.state_recheck_s:
        policy = replace(policy, state_recheck_s=WEB_BREAKER_RECHECK_S)
    # The web process (connection_per_thread) never replays inside a request: its dispatcher
    # drains the host's spool every 30 s, run processes drain their own runs.
    return ResilientStore(database, Spool(settings.spool_dir), build_breaker(settings, policy),
                          retry_policy or RetryPolicy(), mirror=mirror,
                          drain_max_records=0 if connection_per_thread else 500)


@dataclass(frozen=True)
class Persistence:
    """The mode's store and the optional capabilities it has, each typed (None: not in this mode)."""

    store: QueuedStore
    replayable: Replayable | None  # a spool to drain into the database
    database: Pingable | None  # a database to probe for /health
    direct: DirectWrite | None = None  # writes that must reach the database or fail (no durable disk)


def build_persistence(
    settings: Settings,
    *,
    timeouts: DbTimeouts | None = None,
    breaker_policy: BreakerPolicy | None = None,
    retry_policy: RetryPolicy | None = None,
    connection_per_thread: bool = False,
) -> Persistence:
    """The store of ``settings.mode`` with its capabilities; ConfigError in INVALID mode.

    Policies: tests shrink them. ``connection_per_thread``: the web process's threads each get a
    database connection; run subprocesses, the dispatcher and cron keep one per process.
    """
    settings.require_runnable()
    if settings.mode is Mode.FILE_ONLY:
        # The run's writes wait out a full disk and resume (FileStore says why in the log).
        outbox = outbox_dir(settings) if settings.callback_url else None
        return Persistence(FileStore(settings.output_dir, wait_for_space=True, outbox=outbox), None, None)
    store = build_resilient(settings, timeouts=timeouts, breaker_policy=breaker_policy,
                            retry_policy=retry_policy, connection_per_thread=connection_per_thread)
    return Persistence(store, store, store.database, store)


def build_store(
    settings: Settings,
    *,
    timeouts: DbTimeouts | None = None,
    breaker_policy: BreakerPolicy | None = None,
    retry_policy: RetryPolicy | None = None,
    connection_per_thread: bool = False,
) -> QueuedStore:
    """The store for ``settings.mode`` (see build_persistence); ConfigError in INVALID mode."""
    return build_persistence(settings, timeouts=timeouts, breaker_policy=breaker_policy, retry_policy=retry_policy,
                             connection_per_thread=connection_per_thread).store


def replay_spool(
    settings: Settings,
    *,
    batch_size: int = 100,
    timeouts: DbTimeouts | None = None,
    breaker_policy: BreakerPolicy | None = None,
    retry_policy: RetryPolicy | None = None,
) -> ReplayReport:
    """Replay the spool into PostgreSQL (the cron job); honours the breaker, never duplicates."""
    settings.require_runnable()
    spool = Spool(settings.spool_dir)
    if not settings.mode.uses_database:
        remaining = spool.count()
        if remaining:
            log.warning("spool_replay_skipped", reason=f"mode {settings.mode} has no database",
                        remaining=remaining)
        return ReplayReport(0, 0, remaining, 0.0, stopped="no_database")
    store = build_resilient(settings, timeouts=timeouts, breaker_policy=breaker_policy,
                            retry_policy=retry_policy)
    try:
        return store.replay(batch_size)
    finally:
        store.close()


def spool_backlog(settings: Settings) -> int:
    """How many writes wait in the spool (the /health ``spool_backlog``)."""
    return Spool(settings.spool_dir).count()


def breaker_state(settings: Settings) -> str:
    """'closed', 'open' or 'half_open' (the /health ``circuit``)."""
    return build_breaker(settings).state()
