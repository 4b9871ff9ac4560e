"""Operator actions that are not about one run's state: prune, breaker reset, dead letters.

Each takes ``asked_by`` (``cli:<user>``, ``api:<name>``, ``dashboard:<name>``), logs one
``operator_action`` line naming it, and returns the JSON body the CLI prints and the API sends.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from config.errors import InvalidInput
from config.log import get_logger
from config.settings import Settings
from persistence.factory import build_breaker
from persistence.records import utcnow
from persistence.retention.factory import build_pruners
from persistence.spool import Spool

log = get_logger(__name__)


def prune_runs(settings: Settings, *, asked_by: str, days: int | None = None, dry_run: bool = False) -> dict[str, Any]:
    """Delete finished runs (rows, files, callbacks) that ended more than ``days`` ago.

    ``days`` defaults to RUN_RETENTION_DAYS; InvalidInput when neither is set.
    """
    keep = days if days is not None else settings.run_retention_days
    if keep is None or keep < 1:
        raise InvalidInput("how long to keep runs is not set: pass --days N (N >= 1) or set RUN_RETENTION_DAYS",
                           code="RETENTION_NOT_SET")
    cutoff = utcnow() - timedelta(days=keep)
    pruned: dict[str, list[str]] = {}
    for pruner in build_pruners(settings):
        try:
            pruned[pruner.name] = pruner.prune(cutoff, dry_run=dry_run)
        finally:
            pruner.close()
    log.info("operator_action", action="prune", asked_by=asked_by, days=keep, cutoff=cutoff.isoformat(),
             dry_run=dry_run, pruned={name: len(ids) for name, ids in pruned.items()})
    return {"action": "prune", "days": keep, "cutoff": cutoff.isoformat(), "dry_run": dry_run, "pruned": pruned}


def reset_breaker(settings: Settings, *, asked_by: str) -> dict[str, Any]:
    """Close this host's database breaker now (the operator knows the database is back)."""
    breaker = build_breaker(settings)
    before = breaker.state()
    breaker.reset(f"reset by {asked_by}")
    after = breaker.state()
    log.info("operator_action", action="reset_breaker", asked_by=asked_by, before=before, after=after)
    return {"action": "reset_breaker", "before": before, "after": after}


def requeue_dead_letters(settings: Settings, *, asked_by: str, run_id: str | None = None) -> dict[str, Any]:
    """Move the spool's dead letters (of ``run_id``, or all) back into the spool, to be replayed.

    For after the cause is fixed (docs/runbook.md, "Dead letters"); replay is idempotent and the
    database's fences still refuse what is stale, so a letter that is still wrong just dies again.
    """
    spool = Spool(settings.spool_dir)
    revived = []
    for record in list(spool.dead()):
        if run_id is None or record.run_id == run_id:
            spool.revive(record)
            revived.append({"run_id": record.run_id, "kind": record.kind})
    log.info("operator_action", action="requeue_dead_letters", asked_by=asked_by, run_id=run_id,
             revived=len(revived))
    note = None if settings.mode.uses_database else "FILE_ONLY: the spool is replayed once a database mode is back"
    return {"action": "requeue_dead_letters", "revived": revived, "spool_backlog": spool.count(), "note": note}
