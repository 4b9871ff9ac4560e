"""The offline engine's quality harness: ``python -m bench.quality``.

On every bundled sample (plus a copy of each with running headers, footers and page numbers
added), generated junk (bench/junk.py) and every shipped brand, it measures and checks:

- junk refused: 100 % of junk documents refused by the input gate with their own code;
- document dependence: two different on-topic documents share at most one of five card titles;
- evidence support: at least 90 % of cards cite evidence sharing a content word with the title;
- brand dependence: stages 4-5 differ for every pair of brands, stage 1 does not;
- determinism: outputs are byte-identical across processes with different PYTHONHASHSEED;
- clean evidence: no front matter, markup or page furniture in any evidence quote.

Prints a table and, as its last stdout line, a JSON summary. Exit 0 when every check holds,
1 when one fails, 2 on a usage error. tests/integration/test_quality_harness.py runs it in CI.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.junk import JUNK
from config.errors import RunnerError
from config.log import configure_logging
from config.settings import APP_DIR
from pipeline.brands import BrandProfile, load_brand
from pipeline.document import Document
from pipeline.documents import RawDocument, parse_document
from pipeline.offline import OfflineEngine
from pipeline.offline.text import content_keys
from pipeline.stages import run_stage

SAMPLES = APP_DIR / "data" / "samples"
BRANDS = APP_DIR / "data" / "brand-profiles"
MIN_JUNK_REFUSED = 1.0
MAX_SHARED_TITLES = 1
MIN_EVIDENCE_SUPPORT = 0.9
# What must never reach an evidence quote: front matter, template tags, markdown, HTML, furniture.
_DIRTY = re.compile(
    r"^---|^\w[\w-]*:\s*[\"'\[]|\{%|\{\{|<!--|</?[a-z]+[ >]|^#{1,6}\s|\*\*|`|\]\(|^\s*[-*+]\s|\|\s*\w+\s*\||"
    r"\bPage \d+ of \d+\b|CONFIDENTIAL DRAFT",
    re.IGNORECASE,
)
_HEADER = "Trend Watch 2026 | CONFIDENTIAL DRAFT"


@dataclass(frozen=True)
class Check:
    """One measured figure against its threshold."""

    name: str
    value: float
    threshold: str
    passed: bool
    detail: str = ""


def samples() -> list[Path]:
    """The bundled on-topic documents."""
    return sorted(p for p in SAMPLES.iterdir() if p.suffix in (".pdf", ".md", ".txt"))


def brands() -> list[BrandProfile]:
    """Every shipped brand profile."""
    return [load_brand(BRANDS, p.stem) for p in sorted(BRANDS.glob("*.yaml"))]


def with_furniture(path: Path) -> RawDocument:
    """A text sample with a running header and page footer between every three paragraphs, as a PDF gives."""
    paragraphs = path.read_text(encoding="utf-8").split("\n\n")
    pages = [paragraphs[i:i + 3] for i in range(0, len(paragraphs), 3)]
    text = "\n\n".join(f"{_HEADER}\n\n" + "\n\n".join(page) + f"\n\nPage {n} of {len(pages)}"
                       for n, page in enumerate(pages, start=1))
    return RawDocument(f"furniture-{path.name}", str(path), text.encode("utf-8"))


def load(raw: RawDocument) -> Document:
    """A document through the same intake (and input gate) as a run."""
    return parse_document(raw)


def run_all(document: Document, brand: BrandProfile) -> dict[int, dict[str, Any]]:
    """The five validated stage outputs of the offline engine."""
    engine = OfflineEngine()
    outputs: dict[int, dict[str, Any]] = {}
    for number in (1, 2, 3, 4, 5):
        outputs[number] = run_stage(number, engine, document=document, brand=brand, previous=outputs)
    return outputs


def corpus() -> list[Document]:
    """Every on-topic document: the samples, and the text ones again with page furniture added."""
    docs = [load(RawDocument(p.name, str(p), p.read_bytes())) for p in samples()]
    docs += [load(with_furniture(p)) for p in samples() if p.suffix in (".md", ".txt")]
    return docs


def digest(results: Mapping[str, Mapping[str, Mapping[int, Any]]]) -> str:
    """SHA-256 of every output, serialised canonically."""
    blob = json.dumps({d: {b: {str(k): v for k, v in o.items()} for b, o in per.items()} for d, per in results.items()},
                      ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def compute() -> dict[str, dict[str, dict[int, Any]]]:
    """Outputs per document name, per brand id."""
    return {doc.name: {brand.brand_id: run_all(doc, brand) for brand in brands()} for doc in corpus()}


def junk_check() -> Check:
    """Every junk kind refused by the gate with its own code."""
    misses = []
    for kind, junk in JUNK.items():
        try:
            load(RawDocument(junk.name, junk.name, junk.build()))
            misses.append(f"{kind}: admitted")
        except RunnerError as exc:
            if exc.code != junk.code:
                misses.append(f"{kind}: {exc.code}, expected {junk.code}")
    share = 1 - len(misses) / len(JUNK)
    return Check("junk refused", share, f">= {MIN_JUNK_REFUSED:.0%}", share >= MIN_JUNK_REFUSED, "; ".join(misses))


def _titles(outputs: Mapping[int, Any]) -> list[str]:
    return [str(c["title"]) for c in outputs[5]["opportunities"]]


def document_dependence(results: Mapping[str, Mapping[str, Mapping[int, Any]]]) -> Check:
    """The most card titles two different samples share, for any brand."""
    worst, where = 0, ""
    originals = [d for d in results if not d.startswith("furniture-")]
    for first, second in itertools.combinations(originals, 2):
        for brand in results[first]:
            shared = len(set(_titles(results[first][brand])) & set(_titles(results[second][brand])))
            if shared > worst:
                worst, where = shared, f"{first} vs {second} for {brand}"
    return Check("most card titles shared by two documents", worst, f"<= {MAX_SHARED_TITLES}",
                 worst <= MAX_SHARED_TITLES, where)


def evidence_support(results: Mapping[str, Mapping[str, Mapping[int, Any]]]) -> Check:
    """The share of cards whose evidence shares a content word with the card's title."""
    cards = [c for per in results.values() for o in per.values() for c in o[5]["opportunities"]]
    unsupported = [c["title"] for c in cards
                   if not set(content_keys(c["title"])) & set(content_keys(" ".join(c.get("evidence", []))))]
    share = 1 - len(unsupported) / max(len(cards), 1)
    return Check("cards whose evidence supports the title", round(share, 4), f">= {MIN_EVIDENCE_SUPPORT:.0%}",
                 share >= MIN_EVIDENCE_SUPPORT, "; ".join(unsupported[:3]))


def brand_dependence(results: Mapping[str, Mapping[str, Mapping[int, Any]]]) -> Check:
    """Pairs of brands whose stage 4 or 5 is identical, or whose stage 1 differs, on one document."""
    bad = []
    pairs = 0
    for doc, per in results.items():
        for first, second in itertools.combinations(per, 2):
            pairs += 1
            a, b = per[first], per[second]
            if a[1] != b[1] or a[4] == b[4] or a[5] == b[5]:
                bad.append(f"{doc}: {first} vs {second}")
    return Check("brand pairs where stages 4-5 differ and stage 1 does not", (pairs - len(bad)) / max(pairs, 1),
                 "= 100%", not bad, "; ".join(bad[:3]))


def clean_evidence(results: Mapping[str, Mapping[str, Mapping[int, Any]]]) -> Check:
    """Evidence quotes holding front matter, markup or page furniture."""
    quotes = []
    for per in results.values():
        for o in per.values():
            quotes += [q for i in o[1]["inspirations"] for q in i["evidence"]]
            quotes += [q for s in o[2]["signals"] for q in s.get("evidence", [])]
            quotes += [q for c in o[5]["opportunities"] for q in c.get("evidence", [])]
    dirty = sorted({q for q in quotes if _DIRTY.search(q)})
    return Check("evidence quotes with markup or furniture", len(dirty), "= 0", not dirty,
                 "; ".join(q[:80] for q in dirty[:3]))


def determinism(expected: str) -> Check:
    """The digest of all outputs computed again in two processes with other hash seeds."""
    seen = []
    for seed in ("0", "987654"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run([sys.executable, "-m", "bench.quality", "--digest-only"], cwd=APP_DIR, env=env,
                              capture_output=True, text=True, timeout=600, check=False)
        seen.append(done.stdout.strip().splitlines()[-1] if done.returncode == 0 and done.stdout.strip()
                    else f"failed: {done.stderr.strip()[-200:]}")
    same = all(s == expected for s in seen)
    return Check("processes with other hash seeds giving identical bytes", sum(s == expected for s in seen),
                 "= 2", same, "" if same else f"expected {expected[:12]}, got {[s[:12] for s in seen]}")


def _table(checks: Sequence[Check]) -> str:
    rows = [("check", "value", "threshold", "result")]
    rows += [(c.name, f"{c.value:g}", c.threshold, "pass" if c.passed else f"FAIL {c.detail}") for c in checks]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(" | ".join([*(r[i].ljust(widths[i]) for i in range(3)), r[3]]) for r in rows)


def main(argv: list[str] | None = None) -> int:
    """Run every check, print the table and a JSON summary; 0 all pass, 1 one failed, 2 usage error."""
    parser = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__.splitlines()[0])
    parser.add_argument("--digest-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    configure_logging("WARNING", stream=sys.stderr)  # stdout carries the table and the summary only
    results = compute()
    expected = digest(results)
    if args.digest_only:
        print(expected)
        return 0
    checks = [junk_check(), document_dependence(results), evidence_support(results), brand_dependence(results),
              determinism(expected), clean_evidence(results)]
    print(_table(checks))
    passed = all(c.passed for c in checks)
    print(json.dumps({"benchmark": "quality", "passed": passed, "documents": len(results), "brands": len(brands()),
                      "junk_kinds": len(JUNK),
                      "checks": [dict(vars(c)) for c in (replace(c, detail=c.detail[:300]) for c in checks)]}))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
