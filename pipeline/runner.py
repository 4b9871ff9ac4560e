"""The run: the one place that does I/O around the pure stages.

It gathers inputs (brand, document, stages already finished), calls each missing stage, hands
every output to the store as soon as it exists, then renders and stores the report. A run that
was interrupted resumes from its last finished stage: finished stages are never recomputed.

With an LLM engine (a ``CostedEngine``) the run also: reuses stages 1-3 from the stage cache
(same document, model and prompt version), meters every call's usage and cost per stage against
LLM_MAX_COST_PER_RUN, and, when the provider is down after bounded retries, stops with its
finished stages saved so the dispatcher requeues it (``interrupted`` with ``retry_in_s``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from config.errors import InvalidInput, NotFound, ProviderUnavailable, StageError, StoreUnavailable
from config.log import bind_run, get_logger
from persistence.commands import CompleteRun, FailRun, RecordUsage, SaveStage, StartAttempt
from persistence.ports import RunStore
from persistence.records import (
    STAGE_NAMES,
    STAGE_NUMBERS,
    RunErrorInfo,
    RunRequest,
    RunStatus,
    StageResult,
    utcnow,
)
from pipeline.blob_rules import display_url
from pipeline.brands import load_brand
from pipeline.document import Document
from pipeline.engine import CostedEngine, Engine
from pipeline.prefetch import Prefetch
from pipeline.report import render_report
from pipeline.run_llm import LlmRun, written_by
from pipeline.stage_cache import NoCache, StageCache
from pipeline.stages import run_stage
from pipeline.usage import Usage

log = get_logger(__name__)


class Progress(Protocol):
    """Receives a run's progress, for a person watching (the CLI) or for tests."""

    def stage_started(self, stage: int, name: str) -> None:
        """A stage begins."""

    def stage_finished(self, stage: int, name: str, seconds: float) -> None:
        """A stage finished and its output is stored."""

    def stage_skipped(self, stage: int, name: str) -> None:
        """A stage was already finished by an earlier attempt."""


class NoProgress:
    """A Progress that shows nothing (the web run subprocess logs instead)."""

    def stage_started(self, stage: int, name: str) -> None:
        """Ignore."""

    def stage_finished(self, stage: int, name: str, seconds: float) -> None:
        """Ignore."""

    def stage_skipped(self, stage: int, name: str) -> None:
        """Ignore."""


@dataclass(frozen=True)
class RunServices:
    """What a run needs from the outside, built once by the composition root."""

    store: RunStore
    engine: Engine
    brands_dir: Path
    load_document: Callable[[str], Document]
    stage_cache: StageCache = NoCache()
    max_cost_usd: float | None = None  # LLM_MAX_COST_PER_RUN




@dataclass(frozen=True)
class RunOutcome:
    """How a run ended; ``interrupted`` runs stay PROCESSING and are resumed by a later attempt."""

    run_id: str
    status: RunStatus
    error: RunErrorInfo | None = None
    resumed_from: int = 0
    interrupted: bool = False
    retry_in_s: float | None = None  # set when the LLM provider is down: requeue after this long
    usage: Mapping[int, Usage] | None = None  # per stage, this attempt (None without an LLM)
    cache_hits: tuple[int, ...] = ()

    @property
    def total_usage(self) -> Usage | None:
        """This attempt's calls, tokens and cost, summed (None without an LLM)."""
        if self.usage is None:
            return None
        total = Usage()
        for usage in self.usage.values():
            total = total + usage
        return total


def start_document(services: RunServices, request: RunRequest, attempt: int) -> Prefetch[Document]:
    """Bind the run's log context and start loading its document in a thread (``pipeline.prefetch``)."""
    bind_run(request.run_id, attempt=attempt)
    return Prefetch(services.load_document, request.document_url)


def execute_run(
    services: RunServices,
    request: RunRequest,
    *,
    attempt: int,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    claimed: bool = False,
    prefetched: Prefetch[Document] | None = None,
) -> RunOutcome:
    """Run (or resume) ``request`` as ``attempt``; the outcome is also recorded in the store.

    ``should_stop`` is asked between stages: when it says yes (a redeploy is draining the
    host), the run stops with every finished stage saved, to be resumed by a later attempt.
    ``claimed``: a queue claim already started ``attempt`` (the dispatcher's children), so the
    start is not repeated. The document is loaded in a thread meanwhile (``pipeline.prefetch``);
    ``prefetched``: that load, already started by the caller (``start_document``).
    """
    progress = progress or NoProgress()
    store = services.store
    document_loading = prefetched if prefetched is not None else start_document(services, request, attempt)
    if not claimed:
        store.apply(StartAttempt(request.run_id, attempt))
    done = store.load_stage_outputs(request.run_id)
    recorded = store.get_run(request.run_id)
    llm = LlmRun.begin(services.engine, services.stage_cache, services.max_cost_usd,
                       recorded.usage if recorded else None)
    store.apply(RecordUsage(request.run_id, attempt, written_by(services.engine, llm)))
    # Never the query or fragment: a signed blob URL carries its token there.
    log.info("run_started", brand=request.company_id, document=display_url(request.document_url),
             stages_done=sorted(done), engine=services.engine.name)
    current = 1
    try:
        brand = load_brand(services.brands_dir, request.company_id)
        document = document_loading.result()
        log.info("document_loaded", document=document.name, media_type=document.media_type,
                 words=document.words, truncated=document.truncated)
        outputs: dict[int, Mapping[str, Any]] = dict(done)
        for current in STAGE_NUMBERS:
            name = STAGE_NAMES[current]
            if current in outputs:
                progress.stage_skipped(current, name)
                log.info("stage_skipped", stage=current, stage_name=name, reason="finished by an earlier attempt")
                continue
            if should_stop():
                log.warning("run_interrupted", next_stage=current, reason="shutdown requested; resumes later")
                return RunOutcome(request.run_id, RunStatus.PROCESSING, resumed_from=len(done), interrupted=True,
                                  **_llm_outcome(llm))
            cached = llm.from_cache(current, document, outputs) if llm else None
            if cached is not None:
                _save(services, request, attempt, current, cached, progress, seconds=0.0)
                outputs[current] = cached
            else:
                outputs[current] = _run_one(services, request, attempt, current, document, brand, outputs, progress)
                if llm:
                    llm.to_cache(current, document, outputs)
            if llm:
                store.apply(RecordUsage(request.run_id, attempt, llm.snapshot()))
        current = 0
        report = render_report(run_id=request.run_id, brand=brand, document=document, outputs=outputs,
                               engine=services.engine.name, model=_model_of(services.engine))
        store.apply(CompleteRun(request.run_id, attempt, report))
    except StoreUnavailable as exc:
        # Nowhere could record the run's progress (database down and spool unwritable): stop,
        # with every recorded stage kept, so a later attempt resumes it. Never a FAILED run.
        log.warning("run_interrupted", next_stage=current or None, code=exc.code,
                    reason=f"the run's progress cannot be recorded right now: {exc.message}; it resumes later")
        return RunOutcome(request.run_id, RunStatus.PROCESSING, resumed_from=len(done), interrupted=True,
                          **_llm_outcome(llm))
    except ProviderUnavailable as exc:
        # Not the run's fault and not final: keep what is finished, go back to QUEUED, resume later.
        _record_spend(store, request, attempt, llm)
        log.warning("run_requeue_provider_down", stage=exc.stage, retry_in_s=round(exc.retry_in_s, 1),
                    error=exc.message)
        return RunOutcome(request.run_id, RunStatus.PROCESSING, resumed_from=len(done), interrupted=True,
                          retry_in_s=exc.retry_in_s, **_llm_outcome(llm))
    except (StageError, InvalidInput, NotFound) as exc:
        stage = exc.stage if isinstance(exc, StageError) else current
        error = RunErrorInfo(stage=stage or None, code=exc.code, message=exc.message)
        _record_spend(store, request, attempt, llm)  # the failed stage's calls cost money too
        store.apply(FailRun(request.run_id, attempt, error))
        log.error("run_failed", stage=error.stage, code=error.code, error=error.message)
        return RunOutcome(request.run_id, RunStatus.FAILED, error, resumed_from=len(done), **_llm_outcome(llm))
    except Exception as exc:
        # A bug, not bad input: record it so the run does not sit in PROCESSING, then re-raise
        # so the traceback reaches the logs and the process exits non-zero.
        error = RunErrorInfo(stage=current or None, code="INTERNAL_ERROR", message=f"{type(exc).__name__}: {exc}")
        store.apply(FailRun(request.run_id, attempt, error))
        log.exception("run_crashed", stage=error.stage)
        raise
    outcome = RunOutcome(request.run_id, RunStatus.COMPLETED, resumed_from=len(done), **_llm_outcome(llm))
    total = outcome.total_usage
    log.info("run_completed", stages_resumed=len(done), cache_hits=list(outcome.cache_hits),
             usage=total.as_dict() if total else None)
    return outcome


def _llm_outcome(llm: LlmRun | None) -> dict[str, Any]:
    return llm.outcome() if llm else {}


def _record_spend(store: RunStore, request: RunRequest, attempt: int, llm: LlmRun | None) -> None:
    """Put the calls of a stage that did not finish on record too (when there were any)."""
    if llm is not None and llm.meter.stages():
        store.apply(RecordUsage(request.run_id, attempt, llm.snapshot()))


def _model_of(engine: Engine) -> str | None:
    """The model the report names in its first lines (contract §10); None for the offline engine."""
    return engine.model if isinstance(engine, CostedEngine) else None


def _save(services: RunServices, request: RunRequest, attempt: int, stage: int, output: Mapping[str, Any],
          progress: Progress, *, seconds: float) -> None:
    now = utcnow()
    services.store.apply(SaveStage(request.run_id, attempt, StageResult(stage, output, now, now)))
    progress.stage_finished(stage, STAGE_NAMES[stage], seconds)
    log.info("stage_completed", stage=stage, stage_name=STAGE_NAMES[stage], duration_ms=0.0, cached=True)


def _run_one(
    services: RunServices,
    request: RunRequest,
    attempt: int,
    stage: int,
    document: Document,
    brand: Any,
    outputs: Mapping[int, Mapping[str, Any]],
    progress: Progress,
) -> Mapping[str, Any]:
    name = STAGE_NAMES[stage]
    progress.stage_started(stage, name)
    log.info("stage_started", stage=stage, stage_name=name)
    started_at, clock = utcnow(), time.perf_counter()
    output = run_stage(stage, services.engine, document=document, brand=brand, previous=outputs)
    result = StageResult(stage, output, started_at, utcnow())
    services.store.apply(SaveStage(request.run_id, attempt, result))
    seconds = time.perf_counter() - clock
    progress.stage_finished(stage, name, seconds)
    log.info("stage_completed", stage=stage, stage_name=name, duration_ms=round(seconds * 1000, 1))
    return output
