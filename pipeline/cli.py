"""``python -m pipeline``: run the pipeline on a document, or list and validate brands.

Exit codes (contract §4): 0 success, 1 the work ran and failed, 2 usage or configuration error.
Progress and the human summary go to stderr; structured logs go to stdout (JSON unless stdout
is a terminal) and the last stdout line is a JSON summary, so scripts can read the outcome.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from config.errors import ConfigError, Conflict, InvalidInput, NotFound, RunnerError
from config.log import configure_logging
from config.modes import Mode
from config.paths import check_run_id
from config.settings import Settings
from persistence.commands import CreateRun
from persistence.records import RunErrorInfo, RunRequest, RunStatus
from pipeline.blob_rules import display_url
from pipeline.brands import list_brand_ids, load_all_brands, load_brand
from pipeline.documents import is_url, read_local

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

DESCRIPTION = """\
Turn a trend report (PDF, .txt or .md) into five brand-specific innovation opportunities.

The run goes through five stages (input processing, signal amplification, general translation,
brand contextualization, opportunity generation) and writes a markdown report. Where outputs go
depends on ENABLE_DATABASE_WRITES, ENABLE_FILE_FALLBACK and DATABASE_URL (see README, "Modes");
with no DATABASE_URL they go to files under OUTPUT_DIR (default data/test-outputs/<run_id>/).
"""

RUN_EXAMPLES = """\
examples:
  python -m pipeline run data/samples/convenience-reinvented.md --brand mccormick-usa
  python -m pipeline run report.pdf --brand decathlon --run-id q3-review
  python -m pipeline run report.pdf --brand decathlon --run-id q3-review   # again: resumes or reports the finished run

exit codes: 0 completed, 1 the run failed (see the error), 2 bad arguments or configuration.
"""


class StderrProgress:
    """Shows each stage's start and elapsed time on stderr."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def _say(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def stage_started(self, stage: int, name: str) -> None:
        """Say a stage began."""
        self._say(f"[{stage}/5] {name} ...")

    def stage_finished(self, stage: int, name: str, seconds: float) -> None:
        """Say a stage finished and how long it took."""
        self._say(f"[{stage}/5] {name} done in {seconds:.2f}s")

    def stage_skipped(self, stage: int, name: str) -> None:
        """Say a stage was already done by an earlier attempt."""
        self._say(f"[{stage}/5] {name} already done (resumed)")


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser, with help that teaches."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline", description=DESCRIPTION, epilog=RUN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run", help="run the five stages on a document for one brand",
        description="Run the five stages on DOCUMENT for BRAND_ID and write the report.",
        epilog=RUN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("document", metavar="DOCUMENT", help="a .pdf, .txt or .md path, or an allowed https URL")
    run.add_argument("--brand", required=True, metavar="BRAND_ID",
                     help="brand profile id from data/brand-profiles (list them: python -m pipeline brands)")
    run.add_argument("--run-id", metavar="RUN_ID",
                     help="1-64 of A-Z a-z 0-9 _ -; default: generated. Reusing an id resumes that run")
    run.add_argument("--engine", choices=("offline", "openrouter"),
                     help="override PIPELINE_ENGINE for this run (openrouter needs OPENROUTER_API_KEY)")
    run.add_argument("--no-cache", action="store_true",
                     help="recompute stages 1-3 even when the stage cache holds them (LLM_STAGE_CACHE=false)")
    run.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                     help="log level for stdout (default: LOG_LEVEL, or WARNING on a terminal)")
    commands.add_parser(
        "brands", help="list valid brand ids and validate every profile",
        description="List the brand ids a run can use; exit 2 if any profile is invalid.",
    )
    return parser


def new_run_id() -> str:
    """A readable, unique run id: ``run-YYYYmmdd-HHMMSS-xxxxxx``."""
    return f"run-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def main(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> int:
    """Entry point of ``python -m pipeline``; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env(environ)
        if args.command == "brands":
            configure_logging(settings.log_level)
            return _brands(settings)
        if args.engine:
            settings = replace(settings, pipeline_engine=args.engine)
            if args.engine == "openrouter" and not settings.openrouter_api_key:
                raise ConfigError("--engine openrouter needs OPENROUTER_API_KEY: set it, or use --engine offline")
        if args.no_cache:
            settings = replace(settings, llm_stage_cache=False)
        level = args.log_level or (settings.log_level if not sys.stdout.isatty() else "WARNING")
        configure_logging(level)
        return _run(settings, args)
    except ConfigError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except (InvalidInput, NotFound, Conflict) as exc:
        _error(f"{exc.message} [{exc.code}]")
        return EXIT_USAGE


def _run(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.bootstrap import bootstrap  # after settings: importing it opens nothing, but keeps --help fast
    from pipeline.runner import execute_run

    settings.require_runnable()
    run_id = check_run_id(args.run_id) if args.run_id is not None else new_run_id()
    load_brand(settings.brands_dir, args.brand)  # unknown brand: exit 2 before anything is recorded
    document = args.document
    if not is_url(document):
        read_local(Path(document), settings.max_document_bytes)  # missing, wrong type, too large: exit 2
        document = str(Path(document).resolve())
    app = bootstrap(settings)
    store = app.services.store
    try:
        request = RunRequest(run_id=run_id, company_id=args.brand, user_id="cli", document_url=document)
        store.apply(CreateRun(request))
        state = store.get_run(run_id)
        if state is not None and state.status is RunStatus.COMPLETED:
            _error(f"run {run_id} already completed; nothing to do (use a new --run-id to run again)")
            return _summary(settings, run_id, RunStatus.COMPLETED, None)
        attempt = (state.attempt if state else 0) + 1
        print(f"run {run_id}: {args.brand} <- {display_url(args.document)} "
              f"(mode {settings.mode}, engine {settings.engine})", file=sys.stderr, flush=True)
        outcome = execute_run(app.services, request, attempt=attempt, progress=StderrProgress(sys.stderr))
    finally:
        store.close()
    if outcome.retry_in_s is not None:
        _error(f"OpenRouter is down: stopped with the finished stages kept; run the same command again "
               f"(--run-id {run_id}) in {outcome.retry_in_s:.0f}s to resume")
    total = outcome.total_usage
    return _summary(settings, run_id, outcome.status, outcome.error,
                    usage=total.as_dict() if total else None, cache_hits=list(outcome.cache_hits))


def _summary(settings: Settings, run_id: str, status: RunStatus, error: RunErrorInfo | None, *,
             usage: dict[str, object] | None = None, cache_hits: list[int] | None = None) -> int:
    files = settings.mode.writes_files
    run_dir = settings.output_dir / run_id
    summary: dict[str, Any] = {
        "status": str(status),
        "run_id": run_id,
        "mode": str(settings.mode),
        "output_dir": str(run_dir) if files else None,
        "report": str(run_dir / "report.md") if files and status is RunStatus.COMPLETED else None,
        "error": error.as_dict() if error is not None else None,
        "usage": usage,
        "cache_hits": cache_hits or [],
    }
    lines = [f"status: {status}", f"run id: {run_id}"]
    if files:
        lines.append(f"output: {run_dir}")
    if settings.mode is Mode.DATABASE_ONLY:
        lines.append('output: PostgreSQL ("PipelineRun" row ' + run_id + ")")
    if usage:
        lines.append(f"llm: {usage['calls']} calls, {usage['prompt_tokens']} prompt + {usage['completion_tokens']} "
                     f"completion tokens, ${usage['cost_usd']}" + (f"; stages {cache_hits} from the cache"
                                                                    if cache_hits else ""))
    if summary["report"]:
        lines.append(f"report: {summary['report']}")
    if error is not None:
        lines.append(f"error: stage {error.stage}: {error.message} [{error.code}]")
    print("\n".join(lines), file=sys.stderr, flush=True)
    print(json.dumps(summary), flush=True)
    return EXIT_OK if status is RunStatus.COMPLETED else EXIT_FAILED


def _brands(settings: Settings) -> int:
    try:
        brands = load_all_brands(settings.brands_dir)
    except RunnerError as exc:
        _error(str(exc))
        valid = list_brand_ids(settings.brands_dir) if settings.brands_dir.is_dir() else []
        print(json.dumps({"status": "invalid", "brands": valid, "error": str(exc)}))
        return EXIT_USAGE
    for brand in brands:
        print(f"{brand.brand_id:<24} {brand.brand_name} ({brand.industry}, {brand.country})", file=sys.stderr)
    print(json.dumps({"status": "ok", "brands": [b.brand_id for b in brands]}))
    return EXIT_OK


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
