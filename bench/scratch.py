"""What the persistence benchmarks share: a throwaway database, realistic outputs, figures.

    with throwaway_database(server_url(None)) as url:   # bench_<random>, migrated, dropped after
        ...
    outputs, report = sample_run()                      # the offline engine on the sample document

Nothing here opens anything at import time; each benchmark calls these from its ``main``.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from config.settings import APP_DIR

DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SAMPLE_DOCUMENT = APP_DIR / "data" / "samples" / "convenience-reinvented.md"
SAMPLE_BRAND = "mccormick-usa"


def server_url(given: str | None) -> str:
    """The server to create throwaway databases on: --server-url, $BENCH_DATABASE_URL, $TEST_DATABASE_URL."""
    return given or os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL") or DEFAULT_SERVER_URL


def url_for_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` (credentials, host and query kept)."""
    return urlsplit(url)._replace(path="/" + name).geturl()


@contextmanager
def throwaway_database(server: str, *, migrate: bool = True) -> Iterator[str]:
    """CREATE DATABASE bench_<random>, migrate it, yield its URL; DROP it afterwards, even on error."""
    import psycopg
    from psycopg import sql

    from persistence.migrate import upgrade

    name = f"bench_{secrets.token_hex(6)}"
    with psycopg.connect(server, autocommit=True, connect_timeout=5) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = url_for_database(server, name)
        if migrate:
            upgrade(url)
        yield url
    finally:
        with psycopg.connect(server, autocommit=True, connect_timeout=5) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so ``finally`` blocks (the DROP DATABASE) still run."""
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))


def quiet_logging(path: Path) -> TextIO:
    """Production logging (JSON at INFO) into ``path`` instead of stdout: same cost, clean output."""
    from config.log import configure_logging

    path.parent.mkdir(parents=True, exist_ok=True)
    stream = open(path, "a", encoding="utf-8")  # noqa: SIM115 (lives as long as the process)
    configure_logging("INFO", json=True, stream=stream)
    return stream


def sample_run(run_id: str = "bench-sample") -> tuple[dict[int, dict[str, Any]], Any]:
    """The five stage outputs and the FinalReport of the offline engine on the sample document."""
    from config.settings import Settings
    from pipeline.bootstrap import load_document
    from pipeline.brands import load_brand
    from pipeline.offline import OfflineEngine
    from pipeline.report import render_report
    from pipeline.stages import run_stage

    settings = Settings()
    document = load_document(settings, str(SAMPLE_DOCUMENT))
    brand = load_brand(settings.brands_dir, SAMPLE_BRAND)
    engine = OfflineEngine()
    outputs: dict[int, dict[str, Any]] = {}
    for number in (1, 2, 3, 4, 5):
        outputs[number] = run_stage(number, engine, document=document, brand=brand, previous=outputs)
    return outputs, render_report(run_id=run_id, brand=brand, document=document, outputs=outputs,
                                  engine=engine.name, model=None)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def refused_url(url: str) -> str:
    """``url`` with its host and port replaced by a 127.0.0.1 port nothing listens on."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    address = f"127.0.0.1:{free_port()}"
    return parts._replace(netloc=f"{userinfo}@{address}" if userinfo else address).geturl()


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, out: TextIO | None = None) -> None:
    """A GitHub-markdown table, numbers right-aligned, so it pastes into bench/README.md as is."""
    out = out or sys.stdout
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [all(_is_number(row[i]) or row[i] is None for row in rows) and any(_is_number(row[i]) for row in rows)
               for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        padded = (c.rjust(w) if n else c.ljust(w) for c, w, n in zip(row, widths, numeric, strict=True))
        return "| " + " | ".join(padded) + " |"

    print(line(cells[0]), file=out)
    rules = (("-" * (w + 1) + ":") if n else ("-" * (w + 2)) for w, n in zip(widths, numeric, strict=True))
    print("|" + "|".join(rules) + "|",
          file=out)
    for row in cells[1:]:
        print(line(row), file=out)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) >= 10 else f"{value:.3f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "" if value is None else str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def profile_text(source: Any, limit: int = 30) -> str:
    """cProfile statistics (a Profile or a dump file) as text: the top ``limit`` by cumulative time."""
    import io
    import pstats

    text = io.StringIO()
    pstats.Stats(source, stream=text).strip_dirs().sort_stats("cumulative").print_stats(limit)
    return text.getvalue()


def rounded(figures: Mapping[str, Any], digits: int = 3) -> dict[str, Any]:
    """``figures`` with every float rounded, nested dicts included (for the final JSON line)."""
    out: dict[str, Any] = {}
    for key, value in figures.items():
        if isinstance(value, float):
            out[key] = round(value, digits)
        elif isinstance(value, Mapping):
            out[key] = rounded(value, digits)
        else:
            out[key] = value
    return out
