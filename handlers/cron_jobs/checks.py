"""What a cron job produces: a list of checks, each ok, warning or failed, with value and threshold.

A job is a function of a ``JobContext``: it reads the settings (or the configuration error that
kept them from parsing) and the command-line options, announces each step (so a timeout can say
where the job hung) and records checks. It never prints: the runner turns the checks into the
JSON summary line and the exit code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from config.errors import ConfigError
from config.log import get_logger
from config.settings import Settings

log = get_logger("handlers.cron")

OK, WARNING, FAILED = "ok", "warning", "failed"
MIB = 1024 * 1024
GIB = 1024 * MIB


@dataclass(frozen=True)
class Check:
    """One verdict: ``value`` is what was measured, ``threshold`` what it is held against."""

    name: str
    status: str
    message: str
    value: Any = None
    threshold: Any = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form; value and threshold only when there is one."""
        out: dict[str, Any] = {"name": self.name, "status": self.status, "message": self.message}
        if self.value is not None:
            out["value"] = self.value
        if self.threshold is not None:
            out["threshold"] = self.threshold
        return out


class Checks:
    """The checks a job has recorded so far, in order, and the step it is on."""

    def __init__(self, send: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.items: list[Check] = []
        self.config_invalid = False  # a configuration problem: the CLI exits 2, not 1
        # Steps and checks go to the parent as they happen: a job killed at its deadline is
        # still reported with where it hung and what it had found until then.
        self._send = send or (lambda message: None)

    def step(self, name: str) -> None:
        """Announce what the job does next (the parent quotes it if the job times out)."""
        self._send({"step": name})

    def add(self, name: str, status: str, message: str, value: Any = None, threshold: Any = None) -> Check:
        """Record a check and log it (warnings and failures at their own level, for Railway's filters)."""
        check = Check(name, status, message, value, threshold)
        self.items.append(check)
        self._send({"check": check.as_dict()})
        emit = {OK: log.info, WARNING: log.warning, FAILED: log.error}[status]
        measured = {k: v for k, v in (("value", value), ("threshold", threshold)) if v is not None}
        emit("cron_check", check=name, status=status, reason=message, **measured)
        return check

    def ok(self, name: str, message: str, value: Any = None, threshold: Any = None) -> Check:
        """Record a passing check."""
        return self.add(name, OK, message, value, threshold)

    def warning(self, name: str, message: str, value: Any = None, threshold: Any = None) -> Check:
        """Record a problem that does not fail the job (exit 0) but needs a look."""
        return self.add(name, WARNING, message, value, threshold)

    def failed(self, name: str, message: str, value: Any = None, threshold: Any = None, *,
               config: bool = False) -> Check:
        """Record a failure (exit 1; exit 2 when ``config``: the configuration itself is wrong)."""
        self.config_invalid = self.config_invalid or config
        return self.add(name, FAILED, message, value, threshold)

    @property
    def any_failed(self) -> bool:
        """True when at least one check failed."""
        return any(check.status == FAILED for check in self.items)

    def as_list(self) -> list[dict[str, Any]]:
        """Every check, JSON-ready."""
        return [check.as_dict() for check in self.items]


@dataclass(frozen=True)
class Thresholds:
    """Limits the checks are held against; the command line may loosen or tighten them."""

    max_latency_ms: float = 100.0  # /health p50 and p95
    max_error_rate: float = 0.0  # share of /health answers that are not 200
    max_connections: int = 20  # client connections to the runner's database
    max_query_ms: float = 50.0  # EXPLAIN ANALYZE of the status query, planning + execution
    warn_free_bytes: int = GIB
    fail_free_bytes: int = 100 * MIB


@dataclass
class JobContext:
    """Everything a job may use: settings (or why they failed), options, and its checks."""

    settings: Settings | None
    config_error: ConfigError | None
    checks: Checks = field(default_factory=Checks)
    url: str | None = None
    requests: int = 20
    thresholds: Thresholds = Thresholds()

    def require_settings(self) -> Settings:
        """The parsed settings, or the ConfigError that kept them from parsing (CLI exit 2)."""
        if self.settings is None:
            raise self.config_error or ConfigError("settings were not loaded")
        return self.settings
