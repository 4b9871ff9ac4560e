"""Settings: every environment variable of contract §2, parsed once into a frozen dataclass.

``Settings.from_env()`` is called at each entry point (the CLI, the web app factory, the run
subprocess, cron) and the result is passed inward; nothing below reads ``os.environ``.
All problems are collected and raised together as one ``ConfigError``, so an operator fixes a
bad deploy in one round instead of one variable at a time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from config.errors import ConfigError
from config.modes import Mode

APP_DIR = Path(__file__).resolve().parent.parent

TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
ENGINES = ("auto", "offline", "openrouter")
# Where runs execute: "local" (the web host's dispatcher) or "workers" (a worker service, any host).
RUN_DISPATCH_MODES = ("local", "workers")
# Whether OUTPUT_DIR outlives the container: "auto" decides from the Railway volume.
DURABILITY_CHOICES = ("auto", "durable", "ephemeral")
# Strict structured outputs, 1M-token context, low price per token (README: "The LLM engine").
DEFAULT_LLM_MODEL = "google/gemini-2.5-flash"
DEFAULT_APP_TITLE = "Innovation Pipeline Runner"
DEFAULT_BLOB_HOSTS = "*.public.blob.vercel-storage.com,*.private.blob.vercel-storage.com"
SECRET_FIELDS = frozenset(
    {"database_url", "database_url_non_pooling", "webhook_secret", "api_token",
     "blob_read_write_token", "openrouter_api_key", "callback_url", "callback_secret"}
)


@dataclass(frozen=True)
class Settings:
    """The runner's whole configuration. Tests build it directly; production uses from_env()."""

    database_url: str | None = None
    database_url_non_pooling: str | None = None
    enable_database_writes: bool = True
    enable_file_fallback: bool = True
    # Server-side prepared statements for the hot writes; false behind a transaction-mode pooler.
    database_prepared_statements: bool = True
    output_dir: Path = APP_DIR / "data" / "test-outputs"
    data_dir: Path = APP_DIR / "data"
    webhook_secret: str | None = None
    api_token: str | None = None
    blob_allowed_hosts: tuple[str, ...] = tuple(DEFAULT_BLOB_HOSTS.split(","))
    blob_allow_http: bool = False
    blob_read_write_token: str | None = None
    max_document_bytes: int = 52_428_800
    openrouter_api_key: str | None = None
    openrouter_base_url: str = "https://openrouter.ai/api/v1"
    llm_model: str = DEFAULT_LLM_MODEL
    llm_fallback_models: tuple[str, ...] = ()
    llm_max_cost_per_run: float | None = None
    llm_stage_cache: bool = True
    report_language: str | None = None
    openrouter_app_url: str | None = None
    openrouter_app_title: str = DEFAULT_APP_TITLE
    pipeline_engine: str = "auto"
    max_concurrent_runs: int = 2
    run_lease_seconds: int = 60
    max_run_attempts: int = 3
    # A stage (or the document intake) running longer is killed and retried or failed with
    # STAGE_TIMEOUT. Generous: an LLM stage with retries on a long report takes minutes.
    stage_timeout_seconds: int = 900
    log_level: str = "INFO"
    port: int = 8000
    railway_environment: str | None = None
    volume_mount_path: Path | None = None
    draining_seconds: int = 0
    callback_url: str | None = None  # CALLBACK_URL: POSTed when a run ends (may carry a token: a secret)
    callback_secret: str | None = None  # CALLBACK_SECRET; WEBHOOK_SECRET signs callbacks when unset
    run_retention_days: int | None = None  # RUN_RETENTION_DAYS; unset: runs are kept until pruned by hand
    run_dispatch: str = "local"
    output_durability: str = "auto"
    app_dir: Path = APP_DIR
    extras: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def mode(self) -> Mode:
        """The persistence mode of contract §3."""
        return Mode.choose(
            database_writes=self.enable_database_writes,
            database_configured=bool(self.database_url),
            file_fallback=self.enable_file_fallback,
        )

    @property
    def engine(self) -> str:
        """The stage engine actually used: 'openrouter' or 'offline'."""
        if self.pipeline_engine == "auto":
            return "openrouter" if self.openrouter_api_key else "offline"
        return self.pipeline_engine

    @property
    def migrations_url(self) -> str | None:
        """The URL migrations use: the non-pooling one when set."""
        return self.database_url_non_pooling or self.database_url

    @cached_property  # a Path built once: every webhook asks for it
    def brands_dir(self) -> Path:
        """Folder of the brand profile YAML files."""
        return self.data_dir / "brand-profiles"

    @cached_property  # a Path built once: every webhook asks for it
    def spool_dir(self) -> Path:
        """Durable journal of database writes not yet confirmed."""
        return self.output_dir / ".spool"

    @cached_property  # a Path built once: every webhook asks for it
    def state_dir(self) -> Path:
        """Host-local coordination files (breaker state, locks)."""
        return self.output_dir / ".state"

    @property
    def output_survives_redeploy(self) -> bool:
        """True when OUTPUT_DIR lies on the Railway volume (or we are not on Railway at all)."""
        if self.volume_mount_path is None:
            return self.railway_environment is None
        mount = self.volume_mount_path.resolve()
        out = self.output_dir.resolve()
        return out == mount or mount in out.parents

    @property
    def callback_signing_secret(self) -> str | None:
        """The secret completion callbacks are signed with: CALLBACK_SECRET, else WEBHOOK_SECRET."""
        return self.callback_secret or self.webhook_secret

    @property
    def output_durable(self) -> bool:
        """True when OUTPUT_DIR (and so the spool) outlives this container: declared, or on the volume."""
        if self.output_durability == "auto":
            return self.output_survives_redeploy
        return self.output_durability == "durable"

    @property
    def durability(self) -> str:
        """Why OUTPUT_DIR is (not) durable, in words for /health, logs and cron validate."""
        if self.output_durability != "auto":
            return f"{self.output_durability} (declared by OUTPUT_DURABILITY)"
        if self.volume_mount_path is None:
            return ("ephemeral (on Railway without a volume)" if self.railway_environment
                    else "durable (local disk, not on Railway)")
        if self.output_survives_redeploy:
            return f"durable (on the volume at {self.volume_mount_path})"
        return f"ephemeral (OUTPUT_DIR is outside the volume at {self.volume_mount_path})"

    def require_runnable(self) -> None:
        """Raise ConfigError if nothing would be saved (mode INVALID)."""
        if self.mode is Mode.INVALID:
            raise ConfigError(
                "ENABLE_DATABASE_WRITES and ENABLE_FILE_FALLBACK leave nowhere to save outputs "
                f"(database writes={'on' if self.enable_database_writes else 'off'}, "
                f"DATABASE_URL {'set' if self.database_url else 'unset'}, file fallback=off): "
                "set ENABLE_FILE_FALLBACK=true, or set DATABASE_URL and ENABLE_DATABASE_WRITES=true"
            )

    def public_summary(self) -> dict[str, Any]:
        """Settings safe to log or show: secrets become 'set'/'unset', paths become strings."""
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if key == "extras":
                continue
            if key in SECRET_FIELDS:
                out[key] = "set" if value else "unset"
            elif isinstance(value, Path):
                out[key] = str(value)
            elif isinstance(value, tuple):
                out[key] = list(value)
            else:
                out[key] = value
        out["mode"] = str(self.mode)
        out["engine"] = self.engine
        return out

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Parse settings from ``environ`` (default: a local ``.env`` overlaid by os.environ)."""
        env = dict(load_environment() if environ is None else environ)
        return _Parser(env).settings()


def load_environment(env_file: Path | None = None) -> dict[str, str]:
    """The process environment over the values of a local ``.env`` file, if one exists."""
    path = env_file or Path.cwd() / ".env"
    values: dict[str, str] = {}
    if path.is_file():
        from dotenv import dotenv_values  # imported lazily: production on Railway has no .env

        values = {k: v for k, v in dotenv_values(path).items() if v is not None}
    values.update(os.environ)
    return values


class _Parser:
    """Reads each variable, collecting every problem instead of stopping at the first."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def raw(self, name: str) -> str | None:
        value = self.env.get(name)
        if value is None:
            return None
        value = value.strip()
        return value or None

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        word = value.lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        self.problems.append(
            f"{name}={value!r} is not a boolean: use one of true/false, 1/0, yes/no, on/off"
        )
        return default

    def integer(self, name: str, default: int, *, low: int, high: int) -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            number = None
        if number is None or not low <= number <= high:
            self.problems.append(f"{name}={value!r} must be a whole number from {low} to {high}")
            return default
        return number

    def models(self, name: str) -> tuple[str, ...]:
        value = self.raw(name)
        if value is None:
            return ()
        models = tuple(m.strip() for m in value.split(",") if m.strip())
        for model in models:
            if "/" not in model or " " in model:
                self.problems.append(f"{name} entry {model!r} is not an OpenRouter model id: use 'vendor/model', "
                                     "comma-separated (e.g. openai/gpt-4.1-mini)")
        return models

    def money(self, name: str) -> float | None:
        value = self.raw(name)
        if value is None:
            return None
        try:
            amount = float(value.removeprefix("$"))
        except ValueError:
            amount = -1.0
        if not (0 < amount < 1e6):  # also refuses nan and inf
            self.problems.append(f"{name}={value!r} must be a positive amount in USD (e.g. 0.50); "
                                 "unset it for no ceiling")
            return None
        return amount

    def choice(self, name: str, default: str, choices: tuple[str, ...], *, upper: bool = False) -> str:
        value = self.raw(name)
        if value is None:
            return default
        value = value.upper() if upper else value.lower()
        if value not in choices:
            self.problems.append(f"{name}={value!r} is not one of: {', '.join(choices)}")
            return default
        return value

    def url(self, name: str, schemes: tuple[str, ...]) -> str | None:
        value = self.raw(name)
        if value is None:
            return None
        if urlsplit(value).scheme not in schemes:
            # Never echo the value back: a database URL may hold a password.
            self.problems.append(f"{name} must be a URL starting with {' or '.join(s + '://' for s in schemes)}")
            return None
        return value

    def path(self, name: str, default: Path) -> Path:
        value = self.raw(name)
        return Path(value).expanduser().resolve() if value else default

    def hosts(self, name: str) -> tuple[str, ...]:
        value = self.raw(name) or DEFAULT_BLOB_HOSTS
        hosts = tuple(h.strip().lower() for h in value.split(",") if h.strip())
        for host in hosts:
            bare = host.removeprefix("*.")
            if not bare or "/" in bare or "*" in bare or "://" in host:
                self.problems.append(
                    f"{name} entry {host!r} is not a host: use 'host', 'host:port' or '*.domain'"
                )
        return hosts

    def settings(self) -> Settings:
        volume = self.raw("RAILWAY_VOLUME_MOUNT_PATH")
        volume_path = Path(volume).resolve() if volume else None
        default_out = volume_path / "outputs" if volume_path else APP_DIR / "data" / "test-outputs"
        pg = ("postgresql", "postgres")
        database_url = self.url("DATABASE_URL", pg)
        settings = Settings(
            database_url=database_url,
            database_url_non_pooling=self.url("DATABASE_URL_NON_POOLING", pg)
            or database_url,
            enable_database_writes=self.boolean("ENABLE_DATABASE_WRITES", True),
            enable_file_fallback=self.boolean("ENABLE_FILE_FALLBACK", True),
            database_prepared_statements=self.boolean("DATABASE_PREPARED_STATEMENTS", True),
            output_dir=self.path("OUTPUT_DIR", default_out),
            data_dir=self.path("DATA_DIR", APP_DIR / "data"),
            webhook_secret=self.raw("WEBHOOK_SECRET"),
            api_token=self.raw("API_TOKEN"),
            blob_allowed_hosts=self.hosts("BLOB_ALLOWED_HOSTS"),
            blob_allow_http=self.boolean("BLOB_ALLOW_HTTP", False),
            blob_read_write_token=self.raw("BLOB_READ_WRITE_TOKEN"),
            max_document_bytes=self.integer("MAX_DOCUMENT_BYTES", 52_428_800, low=1, high=1 << 31),
            openrouter_api_key=self.raw("OPENROUTER_API_KEY"),
            openrouter_base_url=self.url("OPENROUTER_BASE_URL", ("https", "http"))
            or "https://openrouter.ai/api/v1",
            llm_model=self.raw("LLM_MODEL") or DEFAULT_LLM_MODEL,
            llm_fallback_models=self.models("LLM_FALLBACK_MODELS"),
            llm_max_cost_per_run=self.money("LLM_MAX_COST_PER_RUN"),
            llm_stage_cache=self.boolean("LLM_STAGE_CACHE", True),
            report_language=self.raw("REPORT_LANGUAGE"),
            openrouter_app_url=self.url("OPENROUTER_APP_URL", ("https", "http")),
            openrouter_app_title=self.raw("OPENROUTER_APP_TITLE") or DEFAULT_APP_TITLE,
            pipeline_engine=self.choice("PIPELINE_ENGINE", "auto", ENGINES),
            max_concurrent_runs=self.integer("MAX_CONCURRENT_RUNS", 2, low=1, high=64),
            run_lease_seconds=self.integer("RUN_LEASE_SECONDS", 60, low=5, high=3600),
            max_run_attempts=self.integer("MAX_RUN_ATTEMPTS", 3, low=1, high=20),
            stage_timeout_seconds=self.integer("STAGE_TIMEOUT_SECONDS", 900, low=1, high=86_400),
            log_level=self.choice("LOG_LEVEL", "INFO", LOG_LEVELS, upper=True),
            port=self.integer("PORT", 8000, low=1, high=65535),
            railway_environment=self.raw("RAILWAY_ENVIRONMENT_NAME") or self.raw("RAILWAY_ENVIRONMENT"),
            volume_mount_path=volume_path,
            draining_seconds=self.integer("RAILWAY_DEPLOYMENT_DRAINING_SECONDS", 0, low=0, high=3600),
            callback_url=self.url("CALLBACK_URL", ("https", "http")),
            callback_secret=self.raw("CALLBACK_SECRET"),
            run_retention_days=(self.integer("RUN_RETENTION_DAYS", 0, low=1, high=36500)
                                if self.raw("RUN_RETENTION_DAYS") else None),
            run_dispatch=self.choice("RUN_DISPATCH", "local", RUN_DISPATCH_MODES),
            output_durability=self.choice("OUTPUT_DURABILITY", "auto", DURABILITY_CHOICES),
            extras={k: v for k, v in self.env.items() if k.startswith("RAILWAY_")},
        )
        if settings.pipeline_engine == "openrouter" and not settings.openrouter_api_key:
            self.problems.append(
                "PIPELINE_ENGINE=openrouter needs OPENROUTER_API_KEY: set the key, or use PIPELINE_ENGINE=offline"
            )
        if settings.callback_url and not settings.callback_signing_secret:
            self.problems.append("CALLBACK_URL needs a signing secret: set CALLBACK_SECRET or WEBHOOK_SECRET")
        if settings.callback_url and settings.callback_url.startswith("http:") and not settings.blob_allow_http:
            self.problems.append("CALLBACK_URL must be https (http only with BLOB_ALLOW_HTTP=true, for local testing)")
        if settings.run_dispatch == "workers" and settings.mode is Mode.FILE_ONLY:
            self.problems.append(
                "RUN_DISPATCH=workers needs the database as the queue (worker services on other hosts claim runs "
                "from PostgreSQL): set DATABASE_URL and ENABLE_DATABASE_WRITES=true, or use RUN_DISPATCH=local"
            )
        if self.problems:
            raise ConfigError(self.problems)
        return settings
