"""Peak memory and time of a run's document intake on generated PDF bombs, against the 512 MiB aim.

    python -m bench.poison [--before] [--case SUBSTRING]

Each case is served by the local blob stand-in (tests/blobserver.py) and loaded the way a run
loads it, ``pipeline.bootstrap.load_document`` (fetch, then text extraction in the budgeted
child), in a fresh interpreter started through a tiny launcher (Linux carries a parent's RSS
high-water mark into ``ru_maxrss`` across exec; see bench/pdf_extractors.py). Reported per case:

* the run process's own peak RSS (VmHWM, which exec resets);
* the extraction child's peak RSS (``RUSAGE_CHILDREN``; an upper bound, since it may include the
  run process's mark at fork time) and its cap (PdfBudget.memory_bytes, RLIMIT_AS);
* their sum (both are alive at once) against the aim of 512 MiB (Railway's starter memory);
* wall time, against a real 100-page report measured the same way (the floor).

``--before`` also measures extraction in the run process itself, as main did (with this branch's
page and character checks, which main lacked), under a 3 GiB address-space cap so that the
machine survives it.
The cases are generated in tests/poison_pdfs.py; nothing is written to disk but a temp dir.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

AIM_MIB = 512
BEFORE_CAP_BYTES = 3 << 30
_LAUNCHER = "import subprocess, sys; sys.exit(subprocess.run(sys.argv[1:]).returncode)"
REPO = Path(__file__).resolve().parent.parent


def cases() -> dict[str, Callable[[], bytes]]:
    """Every input measured, by name, as builders: the floor, the largest legitimate upload, the bombs."""
    from tests.pdf_fixtures import valid_text_pdf
    from tests.poison_pdfs import BOMBS, image_heavy_report

    return {"report_100_pages (floor)": lambda: valid_text_pdf(pages=100),
            "image_heavy_50_MiB (legitimate, ~MAX_DOCUMENT_BYTES)": image_heavy_report,
            "text_50_MiB.txt (ASCII and one emoji: 4 bytes a character once decoded)": _wide_text, **BOMBS}


def _wide_text() -> bytes:
    """The costliest text document to decode: ASCII except one astral character, ~MAX_DOCUMENT_BYTES."""
    line = b"Subscription spice kits grew 18 percent as home cooks traded restaurant visits.\n"
    return "\U0001f336 ".encode() + line * ((50 << 20) // len(line) - 1)


def _vm_hwm_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def child(url: str, host: str, mode: str) -> None:
    """Child body: load the document like a run and print one JSON line of measurements."""
    from config.errors import RunnerError
    from config.settings import Settings

    settings = Settings(blob_allowed_hosts=(host,), blob_allow_http=True)
    if mode == "before":
        resource.setrlimit(resource.RLIMIT_AS, (BEFORE_CAP_BYTES, BEFORE_CAP_BYTES))
        import pipeline.pdf_text as pdf_text

        pdf_text.extract_pdf_text = lambda data, **_: pdf_text.extract_in_process(data)  # main's path
        import pipeline.documents as documents

        documents.extract_pdf_text = pdf_text.extract_pdf_text
    from pipeline.bootstrap import load_document

    started = time.perf_counter()
    try:
        document = load_document(settings, url)
        outcome = f"ok, {len(document.text):,} characters"
    except RunnerError as exc:
        outcome = exc.code
    except MemoryError:
        outcome = "MemoryError in the run process"
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": round(seconds, 3), "run_peak_kib": _vm_hwm_kib(),
                      "child_peak_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                      "outcome": outcome}))


def measure(url: str, host: str, mode: str) -> dict[str, Any]:
    """One fresh, launched interpreter loading ``url``; its JSON line, or how it died."""
    argv = [sys.executable, "-S", "-c", _LAUNCHER, sys.executable, "-m", "bench.poison", "--child", url, host, mode]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=600, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"seconds": round(time.perf_counter() - started, 3), "run_peak_kib": None, "child_peak_kib": None,
                "outcome": f"run process died (exit {done.returncode})"}
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    """Measure every case and print a table, then a JSON summary line."""
    parser = argparse.ArgumentParser(prog="python -m bench.poison", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", action="store_true",
                        help="also measure extraction inside the run process, as on main")
    parser.add_argument("--case", default="", help="only the cases whose name contains this (the floor always runs)")
    parser.add_argument("--child", nargs=3, metavar=("URL", "HOST", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0

    from pipeline.pdf_budget import MIB, PdfBudget
    from tests.blobserver import start_blob_server

    cap_mib = PdfBudget().memory_bytes // MIB
    blob = start_blob_server()
    rows: list[dict[str, Any]] = []
    try:
        for name, build in cases().items():
            if args.case not in name and not name.endswith("(floor)"):
                continue
            data = build()
            text = ".txt" in name
            url = blob.add_file(f"{len(rows)}{'.txt' if text else '.pdf'}", data,
                                "text/plain" if text else "application/pdf")
            for mode in (("child", "before") if args.before else ("child",)):
                result = measure(url, blob.host, mode)
                run_mib = (result["run_peak_kib"] or 0) / 1024
                child_mib = min((result["child_peak_kib"] or 0) / 1024, cap_mib) if mode == "child" else 0.0
                rows.append({"case": name, "mode": mode, "bytes": len(data), **result,
                             "run_mib": round(run_mib, 1), "child_mib": round(child_mib, 1),
                             "total_mib": round(run_mib + child_mib, 1)})
    finally:
        blob.close()
    floor = next(r["seconds"] for r in rows if r["case"].endswith("(floor)") and r["mode"] == "child")
    print(f"aim: a run stays under {AIM_MIB} MiB; extraction child capped at {cap_mib} MiB (RLIMIT_AS)")
    for r in rows:
        r["time_ratio"] = round(r["seconds"] / floor, 2) if floor else None
        r["under_aim"] = r["total_mib"] < AIM_MIB and not r["outcome"].startswith("run process died")
        print(f"{r['case']:<55} {r['mode']:<6} {r['bytes'] / MIB:7.2f} MiB in  {r['seconds']:7.2f} s "
              f"({r['time_ratio']}x floor)  run {r['run_mib']:7.1f} MiB + child <= {r['child_mib']:6.1f} MiB "
              f"= {r['total_mib']:7.1f} MiB  {'under' if r['under_aim'] else 'OVER'} aim  -> {r['outcome']}")
    print(json.dumps({"aim_mib": AIM_MIB, "child_cap_mib": cap_mib, "floor_seconds": floor, "cases": rows}))
    return 0 if all(r["under_aim"] for r in rows if r["mode"] == "child") else 1


if __name__ == "__main__":
    raise SystemExit(main())
