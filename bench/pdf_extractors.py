"""Benchmark the PDF text extractors we could ship: pypdf, pypdfium2 and pdfminer.six.

Run from the repository root: ``python -m bench.pdf_extractors [--pages 100] [--repeats 5]``

It builds a text PDF with reportlab in a temporary directory (nothing is committed), then for
each extractor measures the median wall time of extracting every page, the peak resident memory
of a fresh subprocess (``ru_maxrss``: tracemalloc cannot see native allocations made by pdfium),
and text fidelity: the share of the source words found again in the extracted text.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

WORD_RE = re.compile(r"[a-z0-9]+")


def _extract_pypdf(data: bytes) -> str:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() or "" for page in reader.pages)


def _extract_pypdfium2(data: bytes) -> str:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(data)
    try:
        parts = []
        for index in range(len(pdf)):
            page = pdf[index]
            textpage = page.get_textpage()
            parts.append(textpage.get_text_bounded())
            textpage.close()
            page.close()
        return "\n".join(parts)
    finally:
        pdf.close()


def _extract_pdfminer(data: bytes) -> str:
    from pdfminer.high_level import extract_text

    return extract_text(io.BytesIO(data))


def _extract_pipeline(data: bytes) -> str:
    from pipeline.pdf_text import extract_pdf_text

    return extract_pdf_text(data).text


EXTRACTORS: dict[str, Callable[[bytes], str]] = {
    "pypdf": _extract_pypdf,
    "pypdfium2": _extract_pypdfium2,
    "pdfminer.six": _extract_pdfminer,
    # What production runs: pypdfium2 plus paragraph detection and whitespace normalisation.
    "pipeline": _extract_pipeline,
}

_IMPORTS = {"pypdf": "pypdf", "pypdfium2": "pypdfium2", "pdfminer.six": "pdfminer.high_level",
            "pipeline": "pipeline.pdf_text"}


def build_pdf(path: Path, pages: int, seed: int = 7) -> list[str]:
    """Write a ``pages``-page text PDF to ``path`` and return the words it contains."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate

    # A fixed vocabulary and seed keep the document, and so the figures, reproducible.
    rng = random.Random(seed)
    vocabulary = (
        "subscription premium spice blend yogurt cheese trail running jacket rental resale "
        "repair circular flavour convenience format occasion kitchen pantry delivery retail "
        "consumer market growth margin channel digital analog friction bundle model brand "
        "launch portfolio customer household weekly monthly percent survey data insight"
    ).split()
    styles = getSampleStyleSheet()
    story, words = [], []
    for page in range(pages):
        story.append(Paragraph(f"Section {page + 1}", styles["Heading2"]))
        words += ["section", str(page + 1)]
        for _ in range(6):
            sentence = [rng.choice(vocabulary) for _ in range(60)]
            words += sentence
            story.append(Paragraph(" ".join(sentence).capitalize() + ".", styles["BodyText"]))
        story.append(PageBreak())
    SimpleDocTemplate(str(path), pagesize=A4, invariant=1).build(story)
    return words


def fidelity(source_words: list[str], text: str) -> float:
    """Fraction of source words (as a multiset) present in ``text``."""
    found = Counter(WORD_RE.findall(text.lower()))
    wanted = Counter(source_words)
    hits = sum(min(count, found[word]) for word, count in wanted.items())
    return hits / sum(wanted.values())


def sample_fidelity(name: str) -> float:
    """Fidelity on the committed sample PDF (title, headings, bullets, page footers)."""
    root = Path(__file__).resolve().parent.parent / "data" / "samples"
    source = (root / "sources" / "flavor-trends-2026.txt").read_text(encoding="utf-8")
    text = EXTRACTORS[name]((root / "flavor-trends-2026.pdf").read_bytes())
    return fidelity(WORD_RE.findall(source.lower()), text)


def time_extractor(name: str, data: bytes, repeats: int) -> tuple[float, str]:
    """Median seconds over ``repeats`` full extractions (after one warm-up), and the text."""
    extract = EXTRACTORS[name]
    text = extract(data)  # warm-up: imports and lazy initialisation are not what we compare
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        text = extract(data)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), text


def _measure_in_child(name: str, path: str) -> None:
    """Child process body: print peak RSS (KiB) after import and after one extraction."""
    before_import = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    __import__(_IMPORTS[name])
    after_import = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    EXTRACTORS[name](Path(path).read_bytes())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"before_import_kib": before_import, "after_import_kib": after_import,
                      "peak_kib": peak}))


# Linux carries the parent's RSS high-water mark into a forked child's ru_maxrss across exec,
# so a child spawned straight from this (large) process would report our peak, not its own.
# A tiny launcher interpreter in between resets the inherited mark to its own few MiB.
_LAUNCHER = "import subprocess, sys; sys.exit(subprocess.run(sys.argv[1:]).returncode)"


def peak_memory(name: str, path: Path) -> dict[str, int]:
    """Peak RSS of a fresh interpreter extracting ``path`` with ``name`` (KiB on Linux)."""
    # A fresh process per extractor: ru_maxrss is a high-water mark that never goes down.
    child = [sys.executable, "-m", "bench.pdf_extractors", "--child", name, str(path)]
    out = subprocess.run(
        [sys.executable, "-S", "-c", _LAUNCHER, *child],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    """Build the PDF, measure each extractor and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--child", nargs=2, metavar=("EXTRACTOR", "PDF"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _measure_in_child(*args.child)
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.pdf"
        words = build_pdf(path, args.pages)
        data = path.read_bytes()
        print(f"PDF: {args.pages} pages, {len(words)} words, {len(data) / 1024:.0f} KiB; "
              f"median of {args.repeats} runs; Python {sys.version.split()[0]}")
        rows = []
        for name in EXTRACTORS:
            seconds, text = time_extractor(name, data, args.repeats)
            memory = peak_memory(name, path)
            rows.append((name, seconds, memory, fidelity(words, text), sample_fidelity(name)))

    # Ratios compare the three libraries; the pipeline row shows what our layout pass adds.
    libraries = [row for row in rows if row[0] != "pipeline"]
    fastest = min(row[1] for row in libraries)
    leanest = min(row[2]["peak_kib"] for row in libraries)
    header = (f"{'extractor':<14}{'median s':>10}{'x fastest':>11}{'pages/s':>9}"
              f"{'peak RSS MiB':>14}{'x leanest':>11}{'extract +MiB':>14}{'fidelity':>10}"
              f"{'sample fid.':>13}")
    print(header)
    print("-" * len(header))
    for name, seconds, memory, fid, sample_fid in rows:
        peak_mib = memory["peak_kib"] / 1024
        delta_mib = (memory["peak_kib"] - memory["after_import_kib"]) / 1024
        print(f"{name:<14}{seconds:>10.3f}{seconds / fastest:>11.1f}{args.pages / seconds:>9.0f}"
              f"{peak_mib:>14.1f}{memory['peak_kib'] / leanest:>11.2f}{delta_mib:>14.1f}"
              f"{fid:>10.4f}{sample_fid:>13.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
