"""Settings: every variable of contract §2, strict booleans, the mode table, secrets kept out."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.errors import ConfigError
from config.modes import Mode
from config.settings import APP_DIR, Settings, load_environment

PG = "postgresql://runner:s3cret@db.internal:5432/railway"


def test_defaults_with_an_empty_environment_are_file_only_and_offline():
    settings = Settings.from_env({})
    assert settings.mode is Mode.FILE_ONLY
    assert settings.engine == "offline"
    assert settings.output_dir == APP_DIR / "data" / "test-outputs"
    assert settings.data_dir == APP_DIR / "data"
    assert settings.brands_dir == APP_DIR / "data" / "brand-profiles"
    assert settings.blob_allowed_hosts == ("*.public.blob.vercel-storage.com", "*.private.blob.vercel-storage.com")
    assert (settings.max_document_bytes, settings.max_concurrent_runs) == (52_428_800, 2)
    assert (settings.run_lease_seconds, settings.max_run_attempts, settings.port) == (60, 3, 8000)
    assert settings.log_level == "INFO" and settings.llm_model == "google/gemini-2.5-flash"
    assert settings.openrouter_base_url == "https://openrouter.ai/api/v1"


def test_every_variable_is_read():
    env = {
        "DATABASE_URL": PG,
        "DATABASE_URL_NON_POOLING": "postgresql://runner:s3cret@db.internal:6543/railway",
        "ENABLE_DATABASE_WRITES": "yes",
        "ENABLE_FILE_FALLBACK": "off",
        "OUTPUT_DIR": "/srv/out",
        "DATA_DIR": "/srv/data",
        "WEBHOOK_SECRET": "whsec_abc",
        "API_TOKEN": "tok",
        "BLOB_ALLOWED_HOSTS": "blob.example.com, *.cdn.example.com:8443",
        "BLOB_ALLOW_HTTP": "TRUE",
        "BLOB_READ_WRITE_TOKEN": "vercel_blob_rw_x",
        "MAX_DOCUMENT_BYTES": "1000",
        "OPENROUTER_API_KEY": "sk-or-1",
        "OPENROUTER_BASE_URL": "http://127.0.0.1:9999/api/v1",
        "LLM_MODEL": "openai/gpt-4o-mini",
        "PIPELINE_ENGINE": "OpenRouter",
        "MAX_CONCURRENT_RUNS": "4",
        "RUN_LEASE_SECONDS": "30",
        "MAX_RUN_ATTEMPTS": "5",
        "LOG_LEVEL": "debug",
        "PORT": "9090",
        "RAILWAY_ENVIRONMENT_NAME": "production",
        "RAILWAY_DEPLOYMENT_DRAINING_SECONDS": "45",
    }
    s = Settings.from_env(env)
    assert s.database_url == PG and (s.migrations_url or "").endswith(":6543/railway")
    assert s.mode is Mode.DATABASE_ONLY
    assert s.output_dir == Path("/srv/out") and s.data_dir == Path("/srv/data")
    assert (s.webhook_secret, s.api_token, s.blob_read_write_token) == ("whsec_abc", "tok", "vercel_blob_rw_x")
    assert s.blob_allowed_hosts == ("blob.example.com", "*.cdn.example.com:8443")
    assert s.blob_allow_http is True
    assert s.max_document_bytes == 1000
    assert (s.openrouter_api_key, s.openrouter_base_url, s.llm_model) == (
        "sk-or-1", "http://127.0.0.1:9999/api/v1", "openai/gpt-4o-mini")
    assert s.pipeline_engine == "openrouter" and s.engine == "openrouter"
    assert (s.max_concurrent_runs, s.run_lease_seconds, s.max_run_attempts) == (4, 30, 5)
    assert (s.log_level, s.port, s.railway_environment, s.draining_seconds) == ("DEBUG", 9090, "production", 45)


def test_non_pooling_url_defaults_to_database_url():
    assert Settings.from_env({"DATABASE_URL": PG}).migrations_url == PG


def test_legacy_railway_environment_is_honoured_when_the_new_name_is_absent():
    assert Settings.from_env({"RAILWAY_ENVIRONMENT": "staging"}).railway_environment == "staging"
    both = {"RAILWAY_ENVIRONMENT": "old", "RAILWAY_ENVIRONMENT_NAME": "new"}
    assert Settings.from_env(both).railway_environment == "new"


def test_output_dir_defaults_to_the_railway_volume_when_one_is_mounted(tmp_path):
    s = Settings.from_env({"RAILWAY_VOLUME_MOUNT_PATH": str(tmp_path), "RAILWAY_ENVIRONMENT_NAME": "production"})
    assert s.output_dir == tmp_path.resolve() / "outputs"
    assert s.output_survives_redeploy is True


def test_output_outside_the_volume_on_railway_does_not_survive_a_redeploy(tmp_path):
    s = Settings.from_env({"RAILWAY_ENVIRONMENT_NAME": "production", "OUTPUT_DIR": str(tmp_path)})
    assert s.output_survives_redeploy is False


@pytest.mark.parametrize("word", ["true", "TRUE", "1", "yes", "Yes", "on", " On "])
def test_true_words(word):
    assert Settings.from_env({"BLOB_ALLOW_HTTP": word}).blob_allow_http is True


@pytest.mark.parametrize("word", ["false", "FALSE", "0", "no", "NO", "off", "Off"])
def test_false_words(word):
    assert Settings.from_env({"ENABLE_FILE_FALLBACK": word}).enable_file_fallback is False


@pytest.mark.parametrize("variable", ["ENABLE_DATABASE_WRITES", "ENABLE_FILE_FALLBACK", "BLOB_ALLOW_HTTP"])
@pytest.mark.parametrize("word", ["ture", "flase", "2", "y", "n", "enabled", "-1", "t rue"])
def test_malformed_booleans_are_errors_never_false(variable, word):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({variable: word})
    message = str(info.value)
    assert variable in message and repr(word.strip()) in message
    assert "true/false, 1/0, yes/no, on/off" in message


def test_every_problem_is_reported_at_once():
    env = {
        "ENABLE_DATABASE_WRITES": "ture",
        "PORT": "eighty",
        "MAX_CONCURRENT_RUNS": "0",
        "LOG_LEVEL": "LOUD",
        "PIPELINE_ENGINE": "gpt",
        "DATABASE_URL": "mysql://u:pw@h/db",
        "BLOB_ALLOWED_HOSTS": "https://blob.example.com/path",
    }
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    problems = info.value.problems
    assert len(problems) == 7
    for name in ("ENABLE_DATABASE_WRITES", "PORT", "MAX_CONCURRENT_RUNS", "LOG_LEVEL", "PIPELINE_ENGINE",
                 "DATABASE_URL", "BLOB_ALLOWED_HOSTS"):
        assert any(p.startswith(name) for p in problems), name


def test_a_bad_database_url_is_never_echoed_because_it_may_hold_a_password():
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"DATABASE_URL": "mysql://admin:hunter2@db/x"})
    assert "hunter2" not in str(info.value)


def test_openrouter_engine_without_a_key_is_an_error_that_says_how_to_fix_it():
    with pytest.raises(ConfigError, match="OPENROUTER_API_KEY"):
        Settings.from_env({"PIPELINE_ENGINE": "openrouter"})


def test_auto_engine_follows_the_api_key():
    assert Settings.from_env({"OPENROUTER_API_KEY": "k"}).engine == "openrouter"
    assert Settings.from_env({"OPENROUTER_API_KEY": "k", "PIPELINE_ENGINE": "offline"}).engine == "offline"


@pytest.mark.parametrize(
    ("database_writes", "url", "file_fallback", "mode"),
    [
        ("true", PG, "false", Mode.DATABASE_ONLY),
        ("true", PG, "true", Mode.DUAL_WRITE),
        ("false", PG, "true", Mode.FILE_ONLY),
        ("true", None, "true", Mode.FILE_ONLY),
        ("false", PG, "false", Mode.INVALID),
        ("true", None, "false", Mode.INVALID),
        ("false", None, "false", Mode.INVALID),
    ],
)
def test_mode_table(database_writes, url, file_fallback, mode):
    env = {"ENABLE_DATABASE_WRITES": database_writes, "ENABLE_FILE_FALLBACK": file_fallback}
    if url:
        env["DATABASE_URL"] = url
    settings = Settings.from_env(env)
    assert settings.mode is mode
    if mode is Mode.INVALID:
        with pytest.raises(ConfigError, match="ENABLE_FILE_FALLBACK=true"):
            settings.require_runnable()
    else:
        settings.require_runnable()


def test_public_summary_hides_every_secret():
    env = {"DATABASE_URL": PG, "WEBHOOK_SECRET": "whsec_zzz", "API_TOKEN": "tok-zzz",
           "OPENROUTER_API_KEY": "sk-zzz", "BLOB_READ_WRITE_TOKEN": "blob-zzz"}
    summary = Settings.from_env(env).public_summary()
    text = repr(summary)
    for secret in ("s3cret", "whsec_zzz", "tok-zzz", "sk-zzz", "blob-zzz", "db.internal"):
        assert secret not in text
    assert summary["database_url"] == "set" and summary["mode"] == "DUAL_WRITE"


def test_a_local_env_file_is_read_and_the_real_environment_wins(tmp_path, monkeypatch):
    env_file = tmp_path / ".env"
    env_file.write_text("LOG_LEVEL=DEBUG\nMAX_RUN_ATTEMPTS=7\n")
    monkeypatch.setenv("MAX_RUN_ATTEMPTS", "4")
    monkeypatch.chdir(tmp_path)
    values = load_environment()
    assert values["LOG_LEVEL"] == "DEBUG" and values["MAX_RUN_ATTEMPTS"] == "4"
    settings = Settings.from_env()
    assert settings.log_level == "DEBUG" and settings.max_run_attempts == 4


def test_settings_are_frozen():
    settings = Settings()
    with pytest.raises(AttributeError):
        settings.port = 1  # type: ignore[misc]


def test_callback_and_retention_variables_are_read_and_checked():
    settings = Settings.from_env({"CALLBACK_URL": "https://app.example.com/api/runner-callback",
                                  "WEBHOOK_SECRET": "whsec_abc", "RUN_RETENTION_DAYS": "30"})
    assert settings.callback_url == "https://app.example.com/api/runner-callback"
    assert settings.callback_signing_secret == "whsec_abc" and settings.run_retention_days == 30
    assert Settings.from_env({"CALLBACK_SECRET": "whsec_cb", "WEBHOOK_SECRET": "whsec_abc"}).callback_signing_secret \
        == "whsec_cb"
    assert Settings.from_env({}).run_retention_days is None
    assert Settings.from_env({}).public_summary()["callback_url"] == "unset"  # it may carry a token
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"CALLBACK_URL": "http://app.example.com/cb", "RUN_RETENTION_DAYS": "0"})
    problems = str(caught.value)
    assert "CALLBACK_URL must be https" in problems and "CALLBACK_SECRET or WEBHOOK_SECRET" in problems
    assert "RUN_RETENTION_DAYS" in problems
