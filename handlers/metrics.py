"""``GET /metrics``: the runner in the Prometheus text format (prometheus_client).

Two kinds of figures:
- run figures computed at scrape time from the mode's RunQuery, the breaker and the spool: the
  same answer whichever gunicorn worker is asked, because they come from shared state;
- per-process counters (webhook answers), aggregated across gunicorn workers by the library's
  multiprocess mode: gunicorn.conf.py points PROMETHEUS_MULTIPROC_DIR at a fresh folder before
  any worker starts, and marks dead workers.

Names follow Prometheus conventions (base units, ``_total`` counters, ``_seconds``); LLM usage
follows OpenTelemetry's GenAI semantic conventions (``gen_ai.client.token.usage`` with
``gen_ai.token.type`` = input|output), translated to Prometheus names.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, generate_latest, multiprocess
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from config.errors import StoreError
from config.log import get_logger
from persistence.query.ports import DURATION_BUCKETS, RunQuery
from persistence.records import RunStatus, utcnow

log = get_logger(__name__)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BREAKER_STATES = ("closed", "open", "half_open")


def multiprocess_dir() -> str | None:
    """The folder of prometheus_client's multiprocess mode, when gunicorn set one up."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


@dataclass(frozen=True)
class HostProbes:
    """How to read the host's breaker state and spool backlog (persistence.factory's functions)."""

    breaker_state: Callable[[], str]
    spool_backlog: Callable[[], int]
    callbacks_pending: Callable[[], int] | None = None  # None: CALLBACK_URL is not set


class RunCollector(Collector):
    """Run figures computed from the store at each scrape."""

    def __init__(self, query: RunQuery | None, probes: HostProbes) -> None:
        self.query = query
        self.probes = probes

    def collect(self) -> Iterator[Metric]:
        """Every run figure; ``pipeline_store_up`` 0 (and no run figures) when the store fails."""
        up = GaugeMetricFamily("pipeline_store_up", "1 when the run store answered this scrape")
        stats = None
        if self.query is not None:
            try:
                stats = self.query.stats()
            except StoreError as exc:
                log.warning("metrics_store_unavailable", code=exc.code, reason=str(exc))
        up.add_metric([], 1 if stats is not None else 0)
        yield up
        yield from self._host()
        if stats is None:
            return
        runs = GaugeMetricFamily("pipeline_runs", "Runs by status", labels=["status"])
        for status in RunStatus:
            runs.add_metric([str(status)], stats.by_status.get(str(status), 0))
        yield runs
        yield GaugeMetricFamily("pipeline_queue_depth", "Runs waiting to start (QUEUED)",
                                value=stats.by_status.get("QUEUED", 0))
        age = (utcnow() - stats.oldest_queued_at).total_seconds() if stats.oldest_queued_at else 0.0
        yield GaugeMetricFamily("pipeline_oldest_queued_run_age_seconds",
                                "Age of the oldest QUEUED run (0 when none waits)", value=max(0.0, age))
        yield CounterMetricFamily("pipeline_run_attempts", "Attempts started over all stored runs",
                                  value=stats.attempts)
        durations = HistogramMetricFamily("pipeline_stage_duration_seconds", "Wall time of finished stages",
                                          labels=["stage"])
        for stage, hist in sorted(stats.stage_durations.items()):
            bounds = [*(f"{b:g}" for b in DURATION_BUCKETS), "+Inf"]
            durations.add_metric([str(stage)], list(zip(bounds, hist.buckets, strict=True)), hist.total)
        yield durations
        tokens = CounterMetricFamily("gen_ai_client_token_usage", "LLM tokens used (OpenTelemetry "
                                     "gen_ai.client.token.usage)", labels=["gen_ai_token_type"], unit="tokens")
        tokens.add_metric(["input"], stats.usage.get("prompt_tokens", 0.0))
        tokens.add_metric(["output"], stats.usage.get("completion_tokens", 0.0))
        yield tokens
        yield CounterMetricFamily("gen_ai_client_operations", "LLM calls made (OpenTelemetry "
                                  "gen_ai.client.operation)", value=stats.usage.get("calls", 0.0))
        yield CounterMetricFamily("pipeline_llm_cost_usd", "LLM cost in US dollars, as OpenRouter reported it",
                                  value=stats.usage.get("cost_usd", 0.0))

    def _host(self) -> Iterator[Metric]:
        breaker = GaugeMetricFamily("pipeline_circuit_breaker_state",
                                    "1 for the database breaker's current state", labels=["state"])
        current = self.probes.breaker_state()
        for state in BREAKER_STATES:
            breaker.add_metric([state], 1 if state == current else 0)
        yield breaker
        yield GaugeMetricFamily("pipeline_spool_backlog_records", "Writes waiting in the spool for PostgreSQL",
                                value=self.probes.spool_backlog())
        if self.probes.callbacks_pending is not None:
            try:
                pending = self.probes.callbacks_pending()
            except StoreError as exc:
                log.warning("metrics_outbox_unavailable", code=exc.code, reason=str(exc))
            else:
                yield GaugeMetricFamily("pipeline_callbacks_pending", "Completion callbacks not yet delivered",
                                        value=pending)


class WebMetrics:
    """The web process's metrics: the per-process counters and the scrape."""

    def __init__(self, query: RunQuery | None, probes: HostProbes) -> None:
        self._local = CollectorRegistry()
        self.multiprocess = multiprocess_dir() is not None
        # In multiprocess mode values live in files shared by the workers, not in a registry.
        self.webhook_responses = Counter(
            "pipeline_webhook_responses", "Answers to POST /run by HTTP status", ["code"],
            registry=None if self.multiprocess else self._local)
        self.collector = RunCollector(query, probes)

    def render(self) -> bytes:
        """The text exposition: counters of every worker (or this process) plus run figures."""
        registry = CollectorRegistry()
        if self.multiprocess:
            multiprocess.MultiProcessCollector(registry)
        else:
            registry.register(_Forward(self._local))
        registry.register(self.collector)
        return generate_latest(registry)


class _Forward(Collector):
    """Exposes another registry's metrics inside the scrape registry."""

    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        """The source registry's metrics."""
        yield from self.source.collect()
