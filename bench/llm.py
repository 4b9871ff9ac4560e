"""LLM engine: whole runs against the strict fake OpenRouter adding a fixed latency L to every call.

    python -m bench.llm [--latency 0.3] [--repeats 3] [--pages 300] [--quick]

Three scenarios, each a ratio to its floor in the same run (the calls that must happen one
after another, times L):

* a run on a new document: 5 calls, floor 5L, aim <= 1.1x;
* a second brand on the same document: stages 1-3 from the stage cache, 2 calls, floor 2L;
* a generated long report (300 pages): stage 1 read in sections in parallel, then combined, then
  stages 2-5: floor (map rounds + 5) x L, aim <= 1.1x.

Runs go through the real runner (FILE_ONLY store in a temporary folder) and the real HTTP client.
Tokens and cost per run come from the ``usage`` of the answers. The last stdout line is JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import requests

from config.log import configure_logging
from config.settings import Settings
from persistence.factory import build_store
from persistence.records import RunRequest, RunStatus
from pipeline.bootstrap import build_stage_cache, load_document
from pipeline.openrouter import LlmPolicy, OpenRouterEngine
from pipeline.runner import RunOutcome, RunServices, execute_run
from tests.fake_openrouter import DEFAULT_MODEL, FakeOpenRouter, start_fake_openrouter

AIM = 1.1
# The fake model's context per page of the long report: ~2,000 characters a page against a prompt budget of
# 0.6 x 3.5 characters per context token, so the report needs two sections (300 pages: 195,000 tokens).
CONTEXT_TOKENS_PER_PAGE = 650
WORDS = ("shoppers", "retailers", "convenience", "premium", "format", "occasion", "refill", "delivery",
         "subscription", "snack", "meal", "breakfast", "protein", "fibre", "plant", "dairy", "frozen", "chilled",
         "ambient", "price", "promotion", "loyalty", "app", "store", "online", "weekly", "monthly", "growth",
         "share", "volume", "value", "region", "urban", "rural", "family", "single", "student")


def generated_report(pages: int, seed: int = 7) -> str:
    """A report of ``pages`` pages (~2,000 characters each): headings and paragraphs with figures."""
    rng = random.Random(seed)
    out = []
    for page in range(1, pages + 1):
        out.append(f"## Section {page}: {rng.choice(WORDS).title()} and {rng.choice(WORDS)}")
        for _ in range(4):
            # Prose, not keyword soup: the input gate refuses text with no function words as DOCUMENT_NOT_PROSE.
            words = " ".join(f"The {rng.choice(WORDS)} and the {rng.choice(WORDS)} of {rng.choice(WORDS)} "
                             f"grew for the {rng.choice(WORDS)} in this {rng.choice(WORDS)}." for _ in range(5))
            out.append(f"In page {page}, {rng.randint(5, 95)}% of shoppers said so. {words} "
                       f"It is up {rng.randint(2, 40)}% on last year.")
    return "\n\n".join(out)


def services(fake: FakeOpenRouter, out: Path, policy: LlmPolicy) -> RunServices:
    settings = Settings(enable_database_writes=False, output_dir=out, openrouter_api_key=fake.api_key,
                        openrouter_base_url=fake.base_url, pipeline_engine="openrouter")
    engine = OpenRouterEngine.from_settings(settings, policy=policy, session=requests.Session())
    return RunServices(store=build_store(settings), engine=engine, brands_dir=settings.brands_dir,
                       load_document=partial(load_document, settings), stage_cache=build_stage_cache(settings))


def timed_run(svc: RunServices, run_id: str, brand: str, document: Path) -> tuple[float, RunOutcome]:
    request = RunRequest(run_id=run_id, company_id=brand, user_id="bench", document_url=str(document))
    svc.store.create_run(request)
    started = time.perf_counter()
    outcome = execute_run(svc, request, attempt=1)
    seconds = time.perf_counter() - started
    if outcome.status is not RunStatus.COMPLETED:
        raise SystemExit(f"run {run_id} ended {outcome.status}: {outcome.error}")
    return seconds, outcome


def measure(latency: float, repeats: int, pages: int) -> dict[str, Any]:
    fake = start_fake_openrouter()
    fake.set_model(DEFAULT_MODEL, context_length=CONTEXT_TOKENS_PER_PAGE * pages)
    policy = LlmPolicy()
    results: dict[str, list[float]] = {"run": [], "second_brand": [], "long_report": []}
    usage: dict[str, dict[str, Any]] = {}
    calls: dict[str, int] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-llm-") as tmp:
            root = Path(tmp)
            long_doc = root / "long-report.md"
            long_doc.write_text(generated_report(pages))
            fake.latency_s = latency
            for i in range(repeats):
                svc = services(fake, root / f"out{i}", policy)
                doc = root / f"report-{i}.md"  # a new document each repeat: no cache hit on the first run
                doc.write_text(generated_report(12, seed=100 + i))
                for name, run_id, brand, path in (("run", f"a{i}", "decathlon", doc),
                                                  ("second_brand", f"b{i}", "mccormick-usa", doc),
                                                  ("long_report", f"c{i}", "decathlon", long_doc)):
                    before = len(fake.completions)
                    seconds, outcome = timed_run(svc, run_id, brand, path)
                    results[name].append(seconds)
                    calls[name] = len(fake.completions) - before
                    total = outcome.total_usage
                    usage[name] = total.as_dict() if total else {}
                svc.store.close()
                # the long report must not come from the cache on the next repeat
                long_doc.write_text(generated_report(pages, seed=1000 + i))
            sections = len([r for r in fake.completions if r.schema_name == "stage1_section"]) // repeats
    finally:
        fake.close()
    map_rounds = math.ceil(sections / policy.map_concurrency)
    floors = {"run": 5 * latency, "second_brand": 2 * latency, "long_report": (map_rounds + 5) * latency}
    table = {}
    for name, timings in results.items():
        median = statistics.median(timings)
        table[name] = {"median_s": round(median, 4), "floor_s": round(floors[name], 4),
                       "overhead_s": round(median - floors[name], 4),
                       "ratio": round(median / floors[name], 3), "calls": calls[name], "usage": usage[name],
                       "met": median / floors[name] <= AIM}
    return {"latency_s": latency, "repeats": repeats, "pages": pages, "sections": sections,
            "map_concurrency": policy.map_concurrency, "scenarios": table}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table, then the JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=1.0,
                        help="seconds the fake adds to every call (L; real completions take seconds)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="L=0.1 s, one repeat (smoke)")
    args = parser.parse_args(argv)
    if args.quick:
        args = replace_args(args, latency=0.1, repeats=1, pages=60)
    if args.latency <= 0:
        parser.error("--latency must be positive: every ratio is to a multiple of it")
    configure_logging("ERROR", json=True)
    m = measure(args.latency, args.repeats, args.pages)
    print(f"L = {m['latency_s']} s, {m['repeats']} repeat(s); the {m['pages']}-page report was read in "
          f"{m['sections']} section(s), {m['map_concurrency']} at a time\n", file=sys.stderr)
    for name, row in m["scenarios"].items():
        u = row["usage"]
        print(f"{name:<13} {row['median_s']:.3f} s  floor {row['floor_s']:.3f} s  ratio {row['ratio']:.3f}× "
              f"(+{row['overhead_s']:.3f} s) "
              f"(aim ≤ {AIM}×: {'met' if row['met'] else 'MISSED'})  {row['calls']} calls, "
              f"{u.get('prompt_tokens', 0):,} prompt + {u.get('completion_tokens', 0):,} completion tokens "
              f"({u.get('cached_tokens', 0):,} cached), ${u.get('cost_usd', 0):.4f}", file=sys.stderr)
    print(json.dumps({"benchmark": "llm", "aim": AIM, **m}))
    return 0


def replace_args(args: argparse.Namespace, **changes: Any) -> argparse.Namespace:
    """A copy of ``args`` with ``changes``."""
    return argparse.Namespace(**{**vars(args), **changes})


if __name__ == "__main__":
    raise SystemExit(main())
