"""A whole run's wall time while the database is down, against FILE_ONLY measured in the same run.

``python -m bench.outage_run [--runs 15] [--quick] [--profile] [--server-url URL]``

Each run is the offline engine on data/samples/convenience-reinvented.md for mccormick-usa, in a
fresh interpreter with the pipeline stack imported beforehand (as the dispatcher's fork server
has it), timed from ``bootstrap(settings)`` through create_run, get_run, ``execute_run`` and
``store.close()``:

    FILE_ONLY                 the reference
    DATABASE_ONLY healthy     the throwaway database, reached directly (for context)
    DATABASE_ONLY refused     DATABASE_URL at a port nothing listens on
    DATABASE_ONLY blackholed  through tests/faultproxy.py in blackhole mode: the TCP connection
                              is accepted, then nothing ever answers

An outage scenario's FIRST run starts with a fresh breaker state folder, so it pays the connect
attempts until the breaker opens; the NEXT runs share that folder (a new process each) and skip
the database while the breaker is open. The later runs of all scenarios take turns. Timeouts:
DbTimeouts(connect_s=2, deadline_s=2), the production RetryPolicy and BreakerPolicy except
break_seconds=60, so the breaker stays open for every later run instead of letting one probe.
Each run also reports the seconds spent in each store verb (``VerbClock``); ``--profile`` adds
cProfile of one more later FILE_ONLY and refused run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from bench.scratch import (
    SAMPLE_BRAND,
    SAMPLE_DOCUMENT,
    exit_on_sigterm,
    print_table,
    profile_text,
    quiet_logging,
    refused_url,
    rounded,
    server_url,
    throwaway_database,
)
from config.settings import APP_DIR
from persistence.commands import Command
from persistence.ports import CommandVerbs, RunStore, SourcedRun

T = TypeVar("T")

CONNECT_S = 2.0
DEADLINE_S = 2.0
BREAK_S = 60.0
LATER_AIM = 1.1


class VerbClock(CommandVerbs):
    """A RunStore wrapper that adds up the seconds spent per command kind and read (a few µs of overhead)."""

    def __init__(self, store: RunStore) -> None:
        self._store = store
        self.name = store.name
        self.seconds: dict[str, float] = {}

    def _timed(self, name: str, call: Callable[[], T]) -> T:
        t0 = time.perf_counter()
        try:
            return call()
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0

    def apply(self, command: Command) -> bool:
        """Apply through the wrapped store, timed under the command's kind."""
        return self._timed(command.kind, lambda: self._store.apply(command))

    def read_run(self, run_id: str) -> SourcedRun:
        """Read through the wrapped store, timed."""
        return self._timed("get_run", lambda: self._store.read_run(run_id))

    def load_stage_outputs(self, run_id: str) -> dict[int, Mapping[str, Any]]:
        """Read through the wrapped store, timed."""
        return self._timed("load_stage_outputs", lambda: self._store.load_stage_outputs(run_id))

    def close(self) -> None:
        """Close the wrapped store."""
        self._store.close()


def child(spec: dict[str, Any]) -> None:
    """One run in this fresh process; prints its seconds, time in store verbs, breaker and spool as JSON."""
    import cProfile
    from dataclasses import replace

    from config.log import configure_logging
    from config.settings import Settings
    from persistence.breaker import BreakerPolicy
    from persistence.factory import breaker_state, build_store, spool_backlog
    from persistence.records import RunRequest
    from pipeline.bootstrap import bootstrap
    from pipeline.offline import OfflineEngine  # noqa: F401  (preloaded, as in the dispatcher)
    from pipeline.runner import execute_run

    if spec["database_url"]:
        from persistence.postgres import DbTimeouts  # the dispatcher's bootstrap loaded the driver

    output_dir = Path(spec["output_dir"])
    profiler = cProfile.Profile() if spec.get("profile") else None
    with open(output_dir.parent / f"{spec['run_id']}.log", "a", encoding="utf-8") as log_file:
        configure_logging("INFO", json=True, stream=log_file)
        settings = Settings(database_url=spec["database_url"], enable_file_fallback=not spec["database_url"],
                            output_dir=output_dir)
        request = RunRequest(spec["run_id"], SAMPLE_BRAND, "bench", str(SAMPLE_DOCUMENT))
        if profiler:
            profiler.enable()
        started = time.perf_counter()
        services = bootstrap(settings, quiet=True).services
        if settings.database_url:
            # bootstrap() uses production timeouts; the benchmark's own are swapped in (nothing
            # has connected yet: PostgresStore connects on its first verb).
            services.store.close()
            services = replace(services, store=build_store(
                settings, timeouts=DbTimeouts(connect_s=CONNECT_S, deadline_s=DEADLINE_S),
                breaker_policy=BreakerPolicy(break_seconds=BREAK_S)))
        store = VerbClock(services.store)
        services = replace(services, store=store)
        try:
            store.create_run(request)
            state = store.get_run(request.run_id)
            outcome = execute_run(services, request, attempt=(state.attempt if state else 0) + 1)
        finally:
            store.close()
        seconds = time.perf_counter() - started
        if profiler:
            profiler.disable()
            profiler.dump_stats(spec["profile"])
    print(json.dumps({"seconds": seconds, "status": str(outcome.status), "store_s": sum(store.seconds.values()),
                      "verbs_s": store.seconds,
                      "breaker": breaker_state(settings) if settings.database_url else None,
                      "spooled": spool_backlog(settings)}))


def run_once(database_url: str | None, output_dir: Path, run_id: str, profile: Path | None = None) -> dict[str, Any]:
    """Start one child run and return its figures."""
    spec = {"database_url": database_url, "output_dir": str(output_dir), "run_id": run_id,
            "profile": str(profile) if profile else None}
    done = subprocess.run([sys.executable, "-m", "bench.outage_run", "--child", json.dumps(spec)],
                          cwd=APP_DIR, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"run {run_id} exited {done.returncode}: {done.stderr[-2000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    if figures["status"] != "COMPLETED":
        raise RuntimeError(f"run {run_id} ended {figures['status']}, not COMPLETED")
    return figures


def measure(url: str, root: Path, runs: int) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """Every scenario's first run, then ``runs`` rounds of one later run each, taking turns.

    Taking turns spreads the machine's noise over all scenarios alike. Also returns how many TCP
    connections the blackhole proxy accepted during the first runs and during the later ones.
    """
    from tests.faultproxy import FaultProxy

    proxy = FaultProxy.in_front_of(url).start()
    try:
        proxy.blackhole()
        # name: (folder, DATABASE_URL, has a first run on a fresh state folder)
        scenarios = {"FILE_ONLY": ("file_only", None, False),
                     "DATABASE_ONLY healthy": ("healthy", url, False),
                     "DATABASE_ONLY refused": ("refused", refused_url(url), True),
                     "DATABASE_ONLY blackholed": ("blackholed", proxy.url_for(url), True)}
        results: dict[str, dict[str, Any]] = {name: {"later": []} for name in scenarios}
        for name, (folder, database_url, first) in scenarios.items():
            (root / folder).mkdir()
            if first:
                results[name]["first"] = run_once(database_url, root / folder, f"{folder}-first")
        connections = {"first_run": proxy.accepted}
        for i in range(runs):
            for name, (folder, database_url, _) in scenarios.items():
                results[name]["later"].append(run_once(database_url, root / folder, f"{folder}-{i}"))
        connections["later_runs"] = proxy.accepted - connections["first_run"]
    finally:
        proxy.close()
    for result in results.values():
        result["later_median_s"] = statistics.median(r["seconds"] for r in result["later"])
    return results, connections


def profile_later_runs(root: Path, urls: dict[str, str | None]) -> dict[str, str]:
    """cProfile of one more later run per scenario (timed section only), top 30 by cumulative time."""
    out = {}
    for name, url in urls.items():
        path = root / f"{name}.prof"
        run_once(url, root / name, f"{name}-profiled", profile=path)
        out[name] = profile_text(str(path))
    return out


def summarise(results: dict[str, dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], list[list[Any]]]:
    """The figures of each scenario against FILE_ONLY's median, as JSON entries and table rows."""
    files = results["FILE_ONLY"]["later_median_s"]
    summary, rows = {}, []
    for name, result in results.items():
        later = result["later_median_s"]
        store = statistics.median(r["store_s"] for r in result["later"])
        entry: dict[str, Any] = {"later_median_s": later, "later_store_s": store, "later_vs_file_only": later / files}
        first = result.get("first")
        if first is not None:
            entry.update(first_s=first["seconds"], first_store_s=first["store_s"],
                         first_minus_file_only_s=first["seconds"] - files,
                         first_within_aim=first["seconds"] <= files + CONNECT_S,
                         later_within_aim=later / files <= LATER_AIM, breaker_after=result["later"][-1]["breaker"])
        summary[name] = entry
        rows.append([name, entry.get("first_s"), entry.get("first_minus_file_only_s"),
                     _yes(entry.get("first_within_aim")),
                     later, store, later / files, _yes(entry.get("later_within_aim"))])
    return summary, rows


def _yes(flag: bool | None) -> str:
    return "" if flag is None else "yes" if flag else "no"


def verb_rows(results: dict[str, dict[str, Any]]) -> list[list[Any]]:
    """Median milliseconds per store verb over each scenario's later runs."""
    verbs = sorted({verb for result in results.values() for run in result["later"] for verb in run["verbs_s"]})
    return [[verb, *(statistics.median(run["verbs_s"].get(verb, 0.0) for run in result["later"]) * 1000
                     for result in results.values())] for verb in verbs]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the tables and one final JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="later runs per scenario (default 15)")
    parser.add_argument("--quick", action="store_true", help="1 later run per scenario: a smoke run")
    parser.add_argument("--profile", action="store_true", help="also print cProfile of a later run per scenario")
    parser.add_argument("--server-url", help="PostgreSQL server for the throwaway database")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(json.loads(args.child))
        return 0
    runs = 1 if args.quick else args.runs
    exit_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="bench-outage-") as tmp:
        root = Path(tmp)
        quiet_logging(root / "bench.log")
        with throwaway_database(server_url(args.server_url)) as url:
            results, connections = measure(url, root, runs)
            profiles = profile_later_runs(root, {"file_only": None, "refused": refused_url(url)}) \
                if args.profile else {}

    summary, rows = summarise(results)
    print(f"whole offline run on {SAMPLE_DOCUMENT.name}, wall seconds; later = median of {runs} runs; "
          f"DbTimeouts(connect_s={CONNECT_S:g}, deadline_s={DEADLINE_S:g}), production retry and breaker "
          f"policies but a {BREAK_S:g} s break\n")
    print_table(["scenario", "first run s", "first − FILE_ONLY s", f"≤ FILE_ONLY + {CONNECT_S:g} s",
                 "later s", "later: in store s", "later × FILE_ONLY", f"≤ {LATER_AIM}×"], rows)
    print("\nlater runs, median ms per store verb (all calls of the run):\n")
    print_table(["verb", *results], verb_rows(results))
    print(f"\nblackhole proxy: {connections['first_run']} connections accepted during the first run, "
          f"{connections['later_runs']} during the {runs} later runs")
    for name, text in profiles.items():
        print(f"\ncProfile of one later {name} run (bootstrap to close):\n{text}")
    print(json.dumps({"benchmark": "outage_run", "runs": runs, "connect_s": CONNECT_S, "deadline_s": DEADLINE_S,
                      "break_s": BREAK_S, "file_only_median_s": round(results["FILE_ONLY"]["later_median_s"], 3),
                      "scenarios": {name: rounded(entry) for name, entry in summary.items()},
                      "blackhole_connections": connections}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
