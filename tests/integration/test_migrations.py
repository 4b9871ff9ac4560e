"""Migrations against real PostgreSQL: round trips, the declared schema, concurrency, plan,
drift and lock handling. The command line runs as a real subprocess, as a deploy runs it."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from persistence.migrate import MigrationOptions, downgrade, migration_status, upgrade
from persistence.migrations.engine import ADVISORY_LOCK_KEY, MigrationDrift
from persistence.migrations.files import load_migrations
from tests.known import known

REPO = Path(__file__).resolve().parents[2]
MIGRATIONS = REPO / "sql" / "migrations"
RUN_TABLES = {"PipelineRun", "StageOutput", "OpportunityCard"}
VERSIONS = [m.version for m in load_migrations()]  # every migration the repository ships
STAGE_COLUMNS = {"stage1Output", "stage2Output", "stage3Output", "stage4Output", "fullReportMarkdown"}


def _load_dump_schema():
    spec = known(importlib.util.spec_from_file_location("dump_schema", REPO / "sql" / "dump_schema.py"))
    module = importlib.util.module_from_spec(spec)
    known(spec.loader).exec_module(module)
    return module


dump_schema = _load_dump_schema()


def cli(*args: str, url: str | None, env: dict[str, str] | None = None, timeout: float = 60,
        cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Run ``python -m persistence.migrate`` the way a deploy does."""
    command = [sys.executable, "-m", "persistence.migrate", *args]
    if url is not None:
        command += ["--database-url", url]
    return subprocess.run(command, cwd=cwd, env=env or _env(), capture_output=True, text=True, timeout=timeout)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DATABASE_URL_NON_POOLING")}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {r[0] for r in rows}


def columns(url: str, table: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT column_name FROM information_schema.columns WHERE table_name = %s",
                            (table,)).fetchall()
    return {r[0] for r in rows}


def bookkeeping(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        if not known(conn.execute("SELECT to_regclass('runner_schema_migrations') IS NOT NULL").fetchone())[0]:
            return []
        return conn.execute("SELECT version, name, checksum, applied_at FROM runner_schema_migrations "
                            "ORDER BY version").fetchall()


def test_up_down_up_round_trips_to_the_same_schema(empty_database_url: str) -> None:
    assert migration_status(empty_database_url).state == "behind"
    assert [s.version for s in upgrade(empty_database_url)] == VERSIONS
    migrated = dump_schema.dump_schema(empty_database_url)
    assert tables(empty_database_url) >= RUN_TABLES
    assert migration_status(empty_database_url).state == "ok"

    assert [s.version for s in downgrade(empty_database_url, to=0)] == VERSIONS[::-1]
    assert tables(empty_database_url) == {"runner_schema_migrations"}
    assert bookkeeping(empty_database_url) == []

    upgrade(empty_database_url)
    assert dump_schema.dump_schema(empty_database_url) == migrated


@pytest.mark.parametrize(
    ("args", "version", "present", "absent"),
    [
        (("--to", "2"), 2, {"PipelineRun"} | STAGE_COLUMNS, {"StageOutput", "OpportunityCard"}),
        (("--to", "1"), 1, {"PipelineRun", "stageTimings", "writeSeq"}, STAGE_COLUMNS | {"StageOutput"}),
        (("--to", "0"), 0, set(), {"PipelineRun"}),
    ],
    ids=["to-version-2", "to-version-1", "to-zero-removes-all"],
)
def test_down_rolls_back_to_the_requested_version(database_url: str, args, version, present, absent) -> None:
    result = cli("down", *args, url=database_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert migration_status(database_url).version == version
    names = tables(database_url) | columns(database_url, "PipelineRun")
    assert present <= names and not absent & names


def test_down_without_a_target_rolls_back_one_step(database_url: str) -> None:
    result = cli("down", url=database_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert migration_status(database_url).version == VERSIONS[-2]


def test_down_of_0002_drops_exactly_its_five_columns(database_url: str) -> None:
    downgrade(database_url, to=2)
    before = columns(database_url, "PipelineRun")
    downgrade(database_url, to=1)
    assert before - columns(database_url, "PipelineRun") == STAGE_COLUMNS


def test_migrated_schema_equals_the_committed_schema_sql(empty_database_url: str) -> None:
    upgrade(empty_database_url)
    committed = dump_schema.normalise(dump_schema.SCHEMA_FILE.read_text(encoding="utf-8"))
    assert dump_schema.dump_schema(empty_database_url) == committed, (
        "sql/schema.sql is not what the migrations produce: if the migration change is intended, "
        "regenerate it with `.venv/bin/python sql/dump_schema.py` and commit the result"
    )


def _migrate_connections(url: str) -> int:
    with psycopg.connect(url) as conn:
        return known(conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                  "AND application_name = 'innovation-runner-migrate'").fetchone())[0]


def test_two_concurrent_up_commands_apply_each_migration_once(empty_database_url: str) -> None:
    # Hold the advisory lock until both processes are connected and waiting, so they really race.
    with psycopg.connect(empty_database_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        procs = [subprocess.Popen([sys.executable, "-m", "persistence.migrate", "up", "--json",
                                   "--database-url", empty_database_url],
                                  cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        deadline = time.monotonic() + 30
        while _migrate_connections(empty_database_url) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        holder.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    applied = sorted(len(last_json(out)["steps"]) for out, _ in outputs)
    assert applied == [0, len(VERSIONS)]
    assert [row[0] for row in bookkeeping(empty_database_url)] == VERSIONS


def test_up_gives_up_after_the_bounded_wait_for_another_deploy(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        result = cli("up", "--lock-wait", "0.5", url=database_url)
    assert result.returncode == 1 and "migration lock" in result.stdout


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_plan_changes_nothing_and_reports_durations_and_locks(empty_database_url: str, as_json: bool) -> None:
    upgrade(empty_database_url, to=1)
    schema_before, rows_before = dump_schema.dump_schema(empty_database_url), bookkeeping(empty_database_url)

    result = cli("plan", *(["--json"] if as_json else []), url=empty_database_url)

    assert result.returncode == 0, result.stdout + result.stderr
    assert dump_schema.dump_schema(empty_database_url) == schema_before
    assert bookkeeping(empty_database_url) == rows_before
    if as_json:
        steps = last_json(result.stdout)["steps"]
        assert [s["version"] for s in steps] == VERSIONS[1:]
        assert all(s["duration_ms"] >= 0 for s in steps)
        assert {"relation": "PipelineRun", "mode": "AccessExclusiveLock"} in steps[0]["locks"]
    else:
        assert "0002_add_stage_outputs_and_report in" in result.stdout and " ms" in result.stdout
        assert "PipelineRun AccessExclusiveLock" in result.stdout


def _edit_applied_file(folder: Path) -> None:
    path = folder / "0001_create_pipeline_run.up.sql"
    path.write_text(path.read_text() + "\n-- an edit after the fact\n")


def _remove_applied_file(folder: Path) -> None:
    for path in folder.glob("0003_*"):
        path.unlink()


@pytest.mark.parametrize(("mutate", "state", "label"), [
    (_edit_applied_file, "drift", "0001_create_pipeline_run"),
    (_remove_applied_file, "unknown", "0003_create_stage_output_and_opportunity_card"),
], ids=["edited-file-is-drift", "missing-file-is-unknown"])
def test_status_reports_drift_and_unknown_with_exit_1(database_url: str, tmp_path: Path, mutate, state, label) -> None:
    folder = shutil.copytree(MIGRATIONS, tmp_path / "migrations")
    mutate(folder)

    as_json = cli("status", "--json", "--migrations-dir", str(folder), url=database_url)
    as_table = cli("status", "--migrations-dir", str(folder), url=database_url)

    assert as_json.returncode == 1 and as_table.returncode == 1
    report = last_json(as_json.stdout)
    assert report["state"] == state
    assert [m["version"] for m in report[{"drift": "drifted", "unknown": "unknown"}[state]]] == [int(label[:4])]
    assert f"schema {state}" in as_table.stdout and label[5:] in as_table.stdout


def test_up_refuses_to_proceed_past_drift(empty_database_url: str, tmp_path: Path) -> None:
    folder = shutil.copytree(MIGRATIONS, tmp_path / "migrations")
    upgrade(empty_database_url, to=2, options=MigrationOptions(migrations_dir=folder))
    _edit_applied_file(folder)

    result = cli("up", "--migrations-dir", str(folder), url=empty_database_url)

    assert result.returncode == 1 and "refusing to migrate" in result.stdout
    assert "StageOutput" not in tables(empty_database_url)
    with pytest.raises(MigrationDrift):
        upgrade(empty_database_url, options=MigrationOptions(migrations_dir=folder))


def test_a_migration_blocked_by_a_table_lock_retries_then_succeeds(empty_database_url: str) -> None:
    upgrade(empty_database_url, to=1)
    lines: list[str] = []
    with psycopg.connect(empty_database_url) as holder:
        holder.execute('LOCK TABLE "PipelineRun" IN ACCESS EXCLUSIVE MODE')
        proc = subprocess.Popen([sys.executable, "-m", "persistence.migrate", "up", "--lock-timeout", "0.2",
                                 "--lock-retries", "20", "--database-url", empty_database_url],
                                cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        reader = threading.Thread(target=lambda: lines.extend(known(proc.stdout)), daemon=True)
        reader.start()
        deadline = time.monotonic() + 30
        while not any("retrying" in line for line in lines) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the migration should still be waiting for the table lock"
        holder.rollback()  # release the ACCESS EXCLUSIVE lock
    assert proc.wait(timeout=60) == 0, "".join(lines)
    reader.join(timeout=5)
    retries = [json.loads(line) for line in lines if "retrying" in line]
    assert retries and retries[0]["level"] == "warning" and "LockNotAvailable" not in retries[0]["message"]
    assert [row[0] for row in bookkeeping(empty_database_url)] == VERSIONS


def test_missing_database_url_exits_2_naming_the_variables(tmp_path: Path) -> None:
    result = cli("status", url=None, cwd=tmp_path)  # no .env there, no DATABASE_URL in the env
    assert result.returncode == 2
    assert "DATABASE_URL_NON_POOLING" in result.stdout and "--database-url" in result.stdout


def test_help_teaches_commands_and_exit_codes() -> None:
    result = cli("--help", url=None)
    assert result.returncode == 0
    for word in ("up", "down", "status", "plan", "--to", "exit codes", "DATABASE_URL_NON_POOLING"):
        assert word in result.stdout
