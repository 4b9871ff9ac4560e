"""Compare checkouts of the web service on ``POST /run``, each against the floor, in the same run.

Run from the repository root:
``python -m bench.webhook_ab NAME=CHECKOUT [NAME=CHECKOUT ...] [--env NAME:KEY=VALUE] [--rounds 6]``

bench/webhook.py answers "how far from the floor are we?"; this answers "did my change move
that?", which that bench cannot: its rounds restart every server and its spread between runs
(0.57-0.70 of the floor for the same code) is larger than most changes. Here every server is
started once, warmed up, and kept: the floor (bench/floor_app.py, from this checkout) and one
server per variant, each a checkout of this repository (``git worktree add ../before HEAD~1``)
run from its own directory with its own code and migrations, in DATABASE_ONLY on a throwaway
database of its own. Each round then loads every server in turn with ``--requests`` new signed
webhooks (wrk when installed), in an order that rotates from round to round so a drift of the
machine falls on every server alike. A variant's ratio is the median over the rounds of its
throughput over the floor's in the same round.

``--env NAME:KEY=VALUE`` (repeatable) sets a variable for one variant only, so one checkout can
be run twice with different settings (``--env b:WEB_CONCURRENCY=3 a=. b=.``).

Measured on this machine (2 shared cores): two variants of the same checkout land within 0.02 of
each other over 8 rounds; a change worth keeping should move its ratio by more than that, in more
than one run. Prints a line per round, a table of medians, then one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from bench.webhook import (
    DEFAULT_SERVER_URL,
    FLOOR_CONF,
    REPO,
    children,
    cpu_seconds,
    database,
    dispatcher_pids,
    exit_on_sigterm,
    measure,
    ours_env,
    python_load,
    signed_requests,
    stop_server,
    wait_for_dispatcher,
    wait_for_workers,
)

if TYPE_CHECKING:
    from tests.e2e.webserver import WebServer

FLOOR = "floor"


@dataclass
class Server:
    """One server under load for the whole run, and what its rounds measured."""

    name: str
    server: WebServer
    rps: list[float]
    cpu_ms: list[float]
    p99_ms: list[float]
    non_202: int = 0

    @property
    def port(self) -> int:
        """The port gunicorn listens on."""
        return int(urlsplit(self.server.base).port or 0)

    def workers(self) -> list[int]:
        """gunicorn's worker processes (the master's children, less the dispatcher)."""
        output_dir = Path(self.server.env.get("OUTPUT_DIR", "/-"))
        dispatchers = set(dispatcher_pids(output_dir))
        return [pid for pid in children(self.server.process.pid) if pid not in dispatchers]


def parse_variants(specs: list[str], envs: list[str]) -> dict[str, tuple[Path, dict[str, str]]]:
    """``NAME=CHECKOUT`` and ``NAME:KEY=VALUE`` pairs → {name: (checkout, extra environment)}."""
    variants: dict[str, tuple[Path, dict[str, str]]] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        checkout = Path(path).expanduser().resolve()
        if not sep or not name.isidentifier() or name == FLOOR:
            raise SystemExit(f"variant {spec!r}: write NAME=CHECKOUT, NAME a short word other than 'floor'")
        if not (checkout / "handlers" / "gunicorn.conf.py").is_file():
            raise SystemExit(f"variant {name}: {checkout} is not a checkout of this repository "
                             "(no handlers/gunicorn.conf.py); make one with `git worktree add ../before HEAD~1`")
        if name in variants:
            raise SystemExit(f"variant {name} is given twice")
        variants[name] = (checkout, {})
    for item in envs:
        name, _, assignment = item.partition(":")
        key, sep, value = assignment.partition("=")
        if name not in variants or not sep or not key:
            raise SystemExit(f"--env {item!r}: write NAME:KEY=VALUE for a variant given as NAME=CHECKOUT")
        variants[name][1][key] = value
    return variants


def migrate(checkout: Path, url: str) -> None:
    """Bring ``url`` to the schema of ``checkout``, with that checkout's own migrations."""
    env = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "WARNING"}
    done = subprocess.run([sys.executable, "-m", "persistence.migrate", "up"], cwd=checkout, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise SystemExit(f"migrating the database of {checkout} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def load_round(target: Server, args: argparse.Namespace, blob_url: str, tag: str, tmp: Path) -> None:
    """One measured load on ``target``: throughput, p99 and its workers' CPU per request."""
    batch = signed_requests(args.requests + args.concurrency, f"{tag}-{target.name}", blob_url)
    workers = target.workers()
    before = cpu_seconds(workers)
    load = measure(target.port, batch, args.concurrency, args.client, tmp)
    target.cpu_ms.append((cpu_seconds(workers) - before) * 1000 / load.requests)
    target.rps.append(load.rps)
    target.p99_ms.append(load.p99_ms)
    target.non_202 += load.non_202


def summary(target: Server, floor: Server) -> dict[str, object]:
    """Medians over the rounds; the ratios are against the floor of the same round."""
    return {
        "rps": round(statistics.median(target.rps), 1),
        "x_floor_rps": round(statistics.median(r / f for r, f in zip(target.rps, floor.rps, strict=True)), 3),
        "x_floor_p99": round(statistics.median(p / f for p, f in zip(target.p99_ms, floor.p99_ms, strict=True)), 3),
        "worker_cpu_ms_per_request": round(statistics.median(target.cpu_ms), 3),
        "non_202": target.non_202,
        "per_round_rps": [round(r, 1) for r in target.rps],
    }


def main(argv: list[str] | None = None) -> int:
    """Start the floor and every variant, load them in rotating rounds, print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="example: git worktree add ../before HEAD~1 && "
                                            "python -m bench.webhook_ab before=../before after=.")
    parser.add_argument("variants", nargs="+", metavar="NAME=CHECKOUT", help="a checkout of this repository")
    parser.add_argument("--env", action="append", default=[], metavar="NAME:KEY=VALUE",
                        help="an environment variable for one variant's server")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--requests", type=int, default=3000, help="webhooks per server and round")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--quick", action="store_true", help="1 round of 200 requests, for a smoke test")
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL", DEFAULT_SERVER_URL),
                        help="a server where this user may CREATE DATABASE bench_*")
    args = parser.parse_args(argv)
    variants = parse_variants(args.variants, args.env)
    if args.quick:
        args.rounds, args.requests = 1, 200
    if args.client == "auto":
        args.client = "wrk" if shutil.which("wrk") else "python"
    exit_on_sigterm()

    sys.path.insert(0, str(REPO))
    from config.log import configure_logging
    from persistence.migrate import upgrade
    from tests.blobserver import start_blob_server
    from tests.e2e.webserver import GUNICORN, start_gunicorn

    configure_logging("WARNING")
    tag = uuid.uuid4().hex[:8]
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-webhook-ab-")))
        blob = start_blob_server()
        stack.callback(blob.close)
        stack.callback(blob.gate.set)  # runs after the servers stop: held fetches end at once
        blob_url = blob.url("/gated/report.txt")
        floor_url = stack.enter_context(database(args.database_url, f"bench_ab_floor_{tag}", upgrade))
        (tmp / "floor.conf.py").write_text(FLOOR_CONF)
        floor_cmd = [str(GUNICORN), "-c", str(tmp / "floor.conf.py"), "bench.floor_app:create_app()"]
        servers: list[Server] = []

        def keep(name: str, server: WebServer) -> None:
            stack.callback(stop_server, server)
            wait_for_workers(server)
            servers.append(Server(name, server, [], [], []))

        keep(FLOOR, start_gunicorn(tmp / FLOOR, {"FLOOR_DATABASE_URL": floor_url}, command=floor_cmd,
                                   json_logs=False))
        for index, (name, (checkout, extra)) in enumerate(variants.items()):
            url = stack.enter_context(database(args.database_url, f"bench_ab_{index}_{tag}",
                                               partial(migrate, checkout)))
            server = start_gunicorn(tmp / name, {**ours_env(blob.host, tmp / f"out-{name}", url), **extra},
                                    cwd=checkout)
            keep(name, server)
            wait_for_dispatcher(server)
        print(f"POST /run, DATABASE_ONLY: {args.rounds} round(s) of {args.requests} new signed webhooks per server, "
              f"concurrency {args.concurrency}, client {args.client}; "
              + ", ".join(f"{name} = {checkout}" for name, (checkout, _) in variants.items()), flush=True)
        for target in servers:  # unmeasured: connections, pools, prepared statements, caches
            warm = signed_requests(max(args.concurrency, args.requests // 10), f"warm-{target.name}", blob_url)
            python_load(target.port, warm, min(args.concurrency, len(warm)))
        for round_number in range(args.rounds):
            shift = round_number % len(servers)
            for target in servers[shift:] + servers[:shift]:
                load_round(target, args, blob_url, f"r{round_number}", tmp)
            floor = servers[0]
            print(f"  round {round_number + 1}: floor {floor.rps[-1]:.0f} req/s; " + "; ".join(
                f"{t.name} {t.rps[-1]:.0f} req/s ({t.rps[-1] / floor.rps[-1]:.2f}x, {t.cpu_ms[-1]:.2f} ms CPU)"
                for t in servers[1:]), flush=True)
        results = {t.name: summary(t, servers[0]) for t in servers}
    print(f"\n{'server':<12}{'req/s':>9}{'x floor req/s':>15}{'x floor p99':>13}{'worker CPU ms/req':>19}"
          f"{'non-202':>9}")
    for name, row in results.items():
        print(f"{name:<12}{row['rps']:>9.0f}{row['x_floor_rps']:>15.3f}{row['x_floor_p99']:>13.3f}"
              f"{row['worker_cpu_ms_per_request']:>19.3f}{row['non_202']:>9}")
    print(json.dumps({"bench": "webhook_ab", "rounds": args.rounds, "requests": args.requests,
                      "concurrency": args.concurrency, "client": args.client, "cpus": os.cpu_count(),
                      "variants": {name: str(checkout) for name, (checkout, _) in variants.items()},
                      "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
