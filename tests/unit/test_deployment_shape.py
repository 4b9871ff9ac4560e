"""RUN_DISPATCH and OUTPUT_DURABILITY: where runs execute, and whether OUTPUT_DIR outlives the container."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.errors import ConfigError
from config.settings import Settings
from handlers.health import DatabaseProbe, check_health
from handlers.launcher import DispatcherLauncher, QueueLauncher, dispatcher_argv, launcher_for

PG = "postgresql://runner:s3cret@db.internal:5432/railway"


def test_runs_execute_on_the_web_host_by_default() -> None:
    settings = Settings.from_env({})
    assert settings.run_dispatch == "local"
    assert isinstance(launcher_for(settings), DispatcherLauncher)
    assert dispatcher_argv(settings)[-2:] == ["-m", "handlers.dispatcher"]


def test_with_workers_the_web_host_only_records_and_its_dispatcher_never_claims() -> None:
    settings = Settings.from_env({"RUN_DISPATCH": "Workers", "DATABASE_URL": PG})
    assert settings.run_dispatch == "workers"
    assert isinstance(launcher_for(settings), QueueLauncher)
    assert dispatcher_argv(settings)[-1] == "--no-claims"


def test_workers_need_the_database_as_their_queue() -> None:
    with pytest.raises(ConfigError, match="RUN_DISPATCH=workers needs the database"):
        Settings.from_env({"RUN_DISPATCH": "workers"})
    with pytest.raises(ConfigError, match="RUN_DISPATCH='elsewhere' is not one of: local, workers"):
        Settings.from_env({"RUN_DISPATCH": "elsewhere"})


@pytest.mark.parametrize(("env", "durable", "words"), [
    ({}, True, "durable (local disk, not on Railway)"),
    ({"RAILWAY_ENVIRONMENT_NAME": "production"}, False, "ephemeral (on Railway without a volume)"),
    ({"RAILWAY_ENVIRONMENT_NAME": "production", "RAILWAY_VOLUME_MOUNT_PATH": "{tmp}"}, True,
     "durable (on the volume at {tmp})"),
    ({"RAILWAY_ENVIRONMENT_NAME": "production", "RAILWAY_VOLUME_MOUNT_PATH": "{tmp}", "OUTPUT_DIR": "/elsewhere"},
     False, "ephemeral (OUTPUT_DIR is outside the volume at {tmp})"),
    ({"OUTPUT_DURABILITY": "ephemeral"}, False, "ephemeral (declared by OUTPUT_DURABILITY)"),
    ({"RAILWAY_ENVIRONMENT_NAME": "production", "OUTPUT_DURABILITY": "durable"}, True,
     "durable (declared by OUTPUT_DURABILITY)"),
])
def test_durability_is_decided_from_the_volume_unless_declared(tmp_path: Path, env: dict[str, str], durable: bool,
                                                              words: str) -> None:
    tmp = str(tmp_path.resolve())
    settings = Settings.from_env({k: v.format(tmp=tmp) for k, v in env.items()})
    assert (settings.output_durable, settings.durability) == (durable, words.format(tmp=tmp))


def test_a_wrong_durability_word_is_an_error_that_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match="OUTPUT_DURABILITY='forever' is not one of: auto, durable, ephemeral"):
        Settings.from_env({"OUTPUT_DURABILITY": "forever"})


@pytest.mark.parametrize(("env", "durability"), [({}, "durable"), ({"OUTPUT_DURABILITY": "ephemeral"}, "ephemeral")])
def test_health_says_which_durability_the_deployment_has(tmp_path: Path, env: dict[str, str],
                                                        durability: str) -> None:
    settings = Settings.from_env({**env, "OUTPUT_DIR": str(tmp_path), "ENABLE_DATABASE_WRITES": "false"})
    health = check_health(settings, DatabaseProbe(None), breaker_state=lambda s: "closed", spool_backlog=lambda s: 0)
    assert health.body["durability"] == durability and health.body["durability_detail"] == settings.durability
    assert health.body["run_dispatch"] == "local"
