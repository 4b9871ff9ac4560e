"""The migration command line behind ``python -m persistence.migrate`` (see persistence/migrate.py).

The library API lives in ``persistence.migrations.engine`` and is re-exported here, so callers may write
``from persistence.migrate import migration_status, upgrade, downgrade``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from config.errors import ConfigError, StoreError
from config.log import configure_logging, get_logger
from config.settings import Settings
from persistence.migrations.engine import (
    MigrationDrift,
    MigrationError,
    MigrationOptions,
    MigrationStatus,
    MigrationUsageError,
    StepResult,
    downgrade,
    migration_status,
    plan,
    upgrade,
)
from persistence.migrations.files import DEFAULT_MIGRATIONS_DIR

__all__ = ["MigrationDrift", "MigrationError", "MigrationOptions", "MigrationStatus", "StepResult", "downgrade",
           "main", "migration_status", "plan", "upgrade"]

log = get_logger("persistence.migrate")  # not "__main__" under -m

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

DESCRIPTION = """\
Apply, roll back and inspect the database migrations in sql/migrations/.

commands:
  up       apply every pending migration (or those up to --to VERSION)
  down     roll back the last migration (or every one above --to VERSION; --to 0 removes all)
  status   list applied, pending, drifted and unknown migrations; exit 1 on drift or unknown
  plan     dry run: apply the pending migrations inside a transaction that is rolled back,
           printing each step's duration and the table locks it took

Each migration runs in its own transaction and is recorded in runner_schema_migrations with the
sha256 of its up file. Two deploys migrating at once are serialised by an advisory lock: the
second waits (--lock-wait), then finds nothing pending. A DDL statement that cannot get its
table lock within --lock-timeout gives up, and the migration is retried (--lock-retries).
"""

EPILOG = """\
database:
  --database-url, else DATABASE_URL_NON_POOLING, else DATABASE_URL (a local .env is read).

exit codes:
  0 success · 1 failure, drift or refusal · 2 usage or configuration error

examples:
  python -m persistence.migrate status
  python -m persistence.migrate plan            # what would `up` do, and which locks would it take?
  python -m persistence.migrate up
  python -m persistence.migrate down --to 1     # keep migrations 0001 only
  python -m persistence.migrate status --json   # one JSON object on the last stdout line
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; options are accepted before or after the command."""
    # Subcommands repeat the options with SUPPRESS defaults, so they do not mask values given
    # before the command ("--database-url X up" and "up --database-url X" both work).
    common = argparse.ArgumentParser(add_help=False)
    _add_common(common, argparse.SUPPRESS)
    top = argparse.ArgumentParser(prog="python -m persistence.migrate", description=DESCRIPTION, epilog=EPILOG,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_common(top, None)
    commands = top.add_subparsers(dest="command", metavar="COMMAND", required=True)
    helps = {"up": "apply pending migrations", "down": "roll back migrations",
             "status": "show applied, pending, drifted and unknown migrations",
             "plan": "dry-run the pending migrations and show durations and locks"}
    for name, text in helps.items():
        sub = commands.add_parser(name, help=text, description=text, parents=[common],
                                  formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
        if name in ("up", "down", "plan"):
            sub.add_argument("--to", type=int, metavar="VERSION", default=argparse.SUPPRESS,
                             help="target version (up/plan: stop after it; down: roll back to it, 0 = all; "
                                  "default: up/plan all pending, down one step)")
    return top


def _add_common(parser: argparse.ArgumentParser, default: Any) -> None:
    def value(real: Any) -> Any:
        return real if default is None else default

    parser.add_argument("--database-url", metavar="URL", default=value(None),
                        help="PostgreSQL URL (overrides DATABASE_URL_NON_POOLING and DATABASE_URL)")
    parser.add_argument("--migrations-dir", metavar="DIR", type=Path, default=value(None),
                        help=f"folder of NNNN_name.up.sql/.down.sql files (default {DEFAULT_MIGRATIONS_DIR})")
    parser.add_argument("--json", action="store_true", default=value(False),
                        help="print the result as one JSON object (last stdout line)")
    parser.add_argument("--lock-wait", metavar="SECONDS", type=float, default=value(60.0),
                        help="how long to wait for another process's migration lock (default 60)")
    parser.add_argument("--lock-timeout", metavar="SECONDS", type=float, default=value(5.0),
                        help="how long one DDL statement may wait for a table lock (default 5)")
    parser.add_argument("--lock-retries", metavar="N", type=int, default=value(5),
                        help="attempts per migration when its table lock is not granted (default 5)")
    parser.add_argument("--statement-timeout", metavar="SECONDS", type=float, default=value(300.0),
                        help="longest any one migration statement may run (default 300)")


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None) -> int:
    """Run the command line; returns the exit code."""
    out = stdout or sys.stdout
    args = build_parser().parse_args(argv)
    to = vars(args).get("to")  # only up, down and plan take --to
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        if args.database_url is None:
            print(exc.message, file=out)
            return EXIT_USAGE
        settings = Settings()
    configure_logging(settings.log_level)
    url = args.database_url or settings.migrations_url
    if not url:
        print("no database configured: set DATABASE_URL_NON_POOLING (or DATABASE_URL), "
              "or pass --database-url", file=out)
        return EXIT_USAGE
    options = MigrationOptions(migrations_dir=args.migrations_dir, lock_wait_s=args.lock_wait,
                               lock_timeout_s=args.lock_timeout, statement_timeout_s=args.statement_timeout,
                               lock_retries=args.lock_retries)
    try:
        if args.command == "status":
            status = migration_status(url, options.migrations_dir)
            _print_status(status, args.json, out)
            return EXIT_OK if status.state in ("ok", "behind") else EXIT_FAILED
        action = {"up": upgrade, "down": downgrade, "plan": plan}[args.command]
        steps = action(url, to, options=options)
        after = migration_status(url, options.migrations_dir)
    except MigrationUsageError as exc:
        return _fail(args, exc, out, EXIT_USAGE)
    except StoreError as exc:  # includes MigrationError, MigrationDrift, StoreUnavailable
        return _fail(args, exc, out, EXIT_FAILED)
    _print_steps(args.command, steps, after, args.json, out)
    return EXIT_OK


def _fail(args: argparse.Namespace, exc: StoreError, out: TextIO, code: int) -> int:
    log.error("migration command failed", command=args.command, error_code=exc.code, error=exc.message)
    if args.json:
        print(json.dumps({"command": args.command, "ok": False, "code": exc.code, "error": exc.message}), file=out)
    else:
        print(f"{args.command} failed: {exc.message}", file=out)
    return code


def _print_status(status: MigrationStatus, as_json: bool, out: TextIO) -> None:
    if as_json:
        print(json.dumps({"command": "status", **status.as_dict()}), file=out)
        return
    drifted = {m.version for m in status.drifted}
    unknown = {m.version for m in status.unknown}
    rows = [("VERSION", "NAME", "STATE", "APPLIED AT")]
    for m in status.applied:
        state = "drifted" if m.version in drifted else "unknown" if m.version in unknown else "applied"
        applied_at = m.applied_at.isoformat(timespec="seconds") if m.applied_at else ""
        rows.append((f"{m.version:04d}", m.name, state, applied_at))
    rows += [(f"{m.version:04d}", m.name, "pending", "") for m in status.pending]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(), file=out)
    print(f"schema {status.state}: version {status.version}, {len(status.pending)} pending, "
          f"{len(status.drifted)} drifted, {len(status.unknown)} unknown", file=out)


def _print_steps(command: str, steps: tuple[StepResult, ...], after: MigrationStatus, as_json: bool,
                 out: TextIO) -> None:
    if as_json:
        print(json.dumps({"command": command, "ok": True, "steps": [s.as_dict() for s in steps],
                          "version": after.version, "state": after.state}), file=out)
        return
    verb = {"up": "applied", "down": "rolled back", "plan": "would apply (rolled back)"}[command]
    for step in steps:
        print(f"{verb} {step.version:04d}_{step.name} in {step.duration_ms:.1f} ms", file=out)
        if command == "plan":
            locks = ", ".join(f"{relation} {mode}" for relation, mode in step.locks) or "none beyond earlier steps'"
            print(f"    new locks: {locks}", file=out)
    if command == "plan" and steps:
        # One transaction holds every lock to its end; a real `up` commits after each migration.
        held: dict[str, list[str]] = {}
        for step in steps:
            for relation, mode in step.locks:
                held.setdefault(relation, []).append(mode)
        print("locks held until the plan's rollback:", file=out)
        for relation, modes in sorted(held.items()):
            print(f"    {relation}: {', '.join(sorted(set(modes)))}", file=out)
    if not steps:
        print(f"nothing to do: schema at version {after.version} ({after.state})", file=out)
    elif command == "plan":
        print(f"plan: {len(steps)} step(s) would run; nothing was changed (schema at version {after.version})",
              file=out)
    else:
        print(f"{command}: {len(steps)} step(s); schema now at version {after.version} ({after.state})", file=out)


if __name__ == "__main__":
    sys.exit(main())
