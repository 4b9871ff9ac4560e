"""The composition root for the CLI, the run subprocess and cron: settings in, services out.

Nothing is opened at import time; ``bootstrap`` builds each adapter once and hands them inward.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from config.log import get_logger
from config.settings import Settings
from persistence.factory import Persistence, build_persistence
from pipeline.document import Document
from pipeline.documents import RawDocument, is_url, parse_document, read_local
from pipeline.engine import Engine
from pipeline.runner import RunServices
from pipeline.stage_cache import NoCache, StageCache, TieredCache

log = get_logger(__name__)


@dataclass(frozen=True)
class App:
    """Everything a process of the runner uses, built from one Settings."""

    settings: Settings
    services: RunServices
    persistence: Persistence


def build_engine(settings: Settings) -> Engine:
    """The stage engine chosen by PIPELINE_ENGINE and OPENROUTER_API_KEY."""
    if settings.engine == "openrouter":
        from pipeline.openrouter import OpenRouterEngine  # only loaded when chosen

        return OpenRouterEngine.from_settings(settings)
    from pipeline.offline import OfflineEngine

    return OfflineEngine()


def build_stage_cache(settings: Settings) -> StageCache:
    """Where stages 1-3 of the LLM engine are reused from, per mode: the table, files, or both."""
    if settings.engine != "openrouter" or not settings.llm_stage_cache:
        return NoCache()
    from persistence.stage_cache_files import FileStageCache

    files = FileStageCache(settings.output_dir / ".stage-cache")
    if not settings.mode.uses_database or not settings.database_url:
        return files
    from persistence.stage_cache_postgres import PostgresStageCache

    table = PostgresStageCache(settings.database_url)
    return TieredCache(table, files) if settings.mode.writes_files else table


def load_document(settings: Settings, source: str) -> Document:
    """Fetch (URL) or read (path) a document and parse it, within MAX_DOCUMENT_BYTES."""
    raw: RawDocument
    if is_url(source):
        from pipeline.fetch import fetch_document  # the network only when a URL is given

        raw = fetch_document(settings, source)
    else:
        from pathlib import Path

        raw = read_local(Path(source), settings.max_document_bytes)
    return parse_document(raw)


def bootstrap(settings: Settings, *, quiet: bool = False) -> App:
    """Build the store, engine and document loader for ``settings`` (refusing INVALID mode).

    ``quiet`` skips the configuration log line, for run subprocesses whose parent logged it.
    """
    settings.require_runnable()
    if not quiet:
            log.info(
            "runner_configured",
            mode=str(settings.mode),
            database_writes=settings.enable_database_writes,
            file_fallback=settings.enable_file_fallback,
            engine=settings.engine,
            output_dir=str(settings.output_dir),
            output_survives_redeploy=settings.output_survives_redeploy,
            environment=settings.railway_environment,
        )
    persistence = build_persistence(settings)
    services = RunServices(
        store=persistence.store,
        engine=build_engine(settings),
        brands_dir=settings.brands_dir,
        load_document=partial(load_document, settings),
        stage_cache=build_stage_cache(settings),
        max_cost_usd=settings.llm_max_cost_per_run,
    )
    return App(settings=settings, services=services, persistence=persistence)
