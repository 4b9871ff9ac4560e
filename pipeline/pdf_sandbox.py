"""Read an untrusted PDF's text in a child process under a ``PdfBudget``.

``extract_in_child(data, budget)`` starts ``python -m pipeline.pdf_sandbox``, which limits its own
address space (RLIMIT_AS, counting the interpreter and PDFium), CPU time and core dumps, reads the PDF from
stdin and writes one JSON answer to stdout. The parent waits at most ``budget.seconds``.

Why a child and not checks alone: PDFium's allocations cannot be counted from Python, and when
an allocation fails under a limit PDFium aborts the whole process. In a child, an abort, a
signal, a MemoryError or the clock all mean one thing, the document asked for more than the
budget, and the caller gets ``DOCUMENT_TOO_COMPLEX`` once instead of a dead run process that
the dispatcher would retry on the same bytes. It also holds a run's memory at the child's limit
plus the parent's own, whatever the document: see bench/poison.py.

The child is started with fork+exec (``subprocess``), never a bare fork, so it is safe from a
process that has threads, and it dies with its parent (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
from dataclasses import asdict

from config.errors import InvalidInput
from config.log import get_logger
from config.settings import APP_DIR
from pipeline.pdf_budget import MIB, PdfBudget, too_complex
from pipeline.pdf_text import PdfText, extract_in_process

log = get_logger(__name__)

EXIT_MEMORY = 3  # the child ran out of its address space in Python code (MemoryError)
PR_SET_PDEATHSIG = 1


def extract_in_child(data: bytes, budget: PdfBudget) -> PdfText:
    """The text of ``data`` read by a budgeted child; InvalidInput for a refused or too complex PDF."""
    argv = [sys.executable, "-m", "pipeline.pdf_sandbox", json.dumps(asdict(budget)), str(os.getpid())]
    try:
        done = subprocess.run(argv, input=data, capture_output=True, timeout=budget.seconds, cwd=APP_DIR,
                              check=False)
    except subprocess.TimeoutExpired as exc:  # subprocess.run has already killed and reaped the child
        raise too_complex(f"reading its text took longer than {budget.seconds:g} s", budget) from exc
    return _answer(done, budget)


def _answer(done: subprocess.CompletedProcess[bytes], budget: PdfBudget) -> PdfText:
    """Turn the child's exit and output into a PdfText or the right InvalidInput."""
    code = done.returncode
    if code < 0:
        name = _signal_name(-code)
        why = ("it needed more CPU time than allowed" if -code == signal.SIGXCPU
               else f"reading its text needed more than {budget.memory_bytes // MIB} MiB of memory")
        log.warning("pdf_extraction_stopped", signal=name, memory_mib=budget.memory_bytes // MIB)
        raise too_complex(why, budget)
    if code == EXIT_MEMORY or (code != 0 and b"MemoryError" in done.stderr[-2000:]):
        raise too_complex(f"reading its text needed more than {budget.memory_bytes // MIB} MiB of memory", budget)
    if code != 0:
        # A bug or a broken install, not the document: the detail goes to the log, never to the run's error.
        log.error("pdf_extraction_failed", exit_code=code, stderr=done.stderr[-2000:].decode("utf-8", "replace"))
        raise RuntimeError(f"the PDF text extractor failed (exit code {code}); see the log line pdf_extraction_failed")
    answer = json.loads(done.stdout)
    if "error" in answer:
        raise InvalidInput(answer["error"]["message"], code=answer["error"]["code"])
    return PdfText(**answer["ok"])


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _limit_self(budget: PdfBudget, parent: int) -> None:
    """Apply the budget to this process before anything large is loaded."""
    resource.setrlimit(resource.RLIMIT_AS, (budget.memory_bytes, budget.memory_bytes))
    cpu = int(budget.seconds) + 2  # a backstop: the parent's wall clock normally ends it first
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 2))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # an abort must not write a core file
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)


def main() -> int:
    """Child entry point: budget and parent pid in argv, the PDF on stdin, one JSON line on stdout."""
    budget = PdfBudget(**json.loads(sys.argv[1]))
    _limit_self(budget, int(sys.argv[2]))
    try:
        data = sys.stdin.buffer.read()
        result = extract_in_process(data, budget)
        answer = json.dumps({"ok": asdict(result)})
    except InvalidInput as exc:
        answer = json.dumps({"error": {"code": exc.code, "message": exc.message}})
    except MemoryError:
        os._exit(EXIT_MEMORY)  # nothing else is safe to do without memory
    sys.stdout.write(answer)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
