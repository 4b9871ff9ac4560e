"""Regenerate the dependency locks from the direct requirements, or check that they are in step.

    python scripts/lock.py            # rewrite requirements.txt and requirements-dev.txt
    python scripts/lock.py --check    # exit 1 (and say what differs) when a lock is stale
    python scripts/lock.py --allow-drop   # accept that a package leaves the lock

Direct dependencies live in ``requirements.in`` (production) and ``requirements-dev.in`` (tests
and tools, constrained to the production lock, so both locks hold the same versions). The locks
are ``uv pip compile --universal --generate-hashes`` output: one file valid for Python 3.11 and
3.13 on any platform, every distribution hashed, installed with ``pip install --require-hashes``.

An existing lock is the preference: regenerating keeps every pin that still satisfies the .in
files, so the check is stable and does not drift to newer releases by itself. A lock with merge
conflict markers is resolved afresh (merge both branches' .in files, then run this script).

A package that was in the old lock and is not in the new one is refused unless --allow-drop:
after a merge, a pin another branch added by hand to requirements.txt would otherwise vanish
silently; put it in requirements.in (if it is a direct dependency) and run the script again.
"""

from __future__ import annotations

import argparse
import difflib
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# (direct requirements, lock); order matters: the dev lock is constrained by the production lock.
LOCKS = (("requirements.in", "requirements.txt"), ("requirements-dev.in", "requirements-dev.txt"))
PYTHON_FLOOR = "3.11"  # --universal covers this version and every newer one (CI runs 3.11 and 3.13)
COMMAND = "python scripts/lock.py"
CONFLICT = re.compile(r"^(<<<<<<<|=======|>>>>>>>)", re.MULTILINE)
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", re.MULTILINE)


def normalize(name: str) -> str:
    """PEP 503 name: case and runs of -_. do not matter."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned(text: str) -> set[str]:
    """The package names a requirements file pins (also from a file with conflict markers)."""
    return {normalize(name) for name in PIN.findall(text)}


def uv_compile(source: Path, output: Path) -> None:
    """Run uv on ``source`` into ``output``; an existing ``output`` is the version preference."""
    argv = [sys.executable, "-m", "uv", "pip", "compile", "--quiet", "--universal",
            "--python-version", PYTHON_FLOOR, "--generate-hashes", "--no-strip-markers",
            "--custom-compile-command", COMMAND,
            str(source.name), "-o", str(output.name)]
    result = subprocess.run(argv, cwd=source.parent, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise SystemExit(f"uv pip compile {source.name} failed:\n{result.stderr.strip()}")


def regenerate(folder: Path, allow_drop: bool) -> list[str]:
    """Compile every lock inside ``folder`` (which holds copies of the .in and lock files).

    Returns the complaints about dropped packages (empty when none or allowed).
    """
    complaints = []
    for source, lock in LOCKS:
        target = folder / lock
        old = target.read_text() if target.exists() else ""
        if CONFLICT.search(old):
            target.unlink()  # not a usable preference; its names still count for the drop check
        uv_compile(folder / source, target)
        dropped = sorted(pinned(old) - pinned(target.read_text()))
        if dropped and not allow_drop:
            complaints.append(f"{lock}: {', '.join(dropped)} would leave the lock. If one is a direct "
                              f"dependency, add it to {source} with its exact version; if the removal is "
                              f"intended, run `{COMMAND} --allow-drop`")
    return complaints


def stage(folder: Path) -> None:
    """Copy the .in files and the current locks into ``folder``."""
    for source, lock in LOCKS:
        shutil.copy2(REPO / source, folder / source)
        if (REPO / lock).exists():
            shutil.copy2(REPO / lock, folder / lock)


def check() -> int:
    """Regenerate into a temporary folder and compare with the committed locks."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        stage(folder)
        complaints = regenerate(folder, allow_drop=False)
        for _, lock in LOCKS:
            current = (REPO / lock).read_text() if (REPO / lock).exists() else ""
            fresh = (folder / lock).read_text()
            if current != fresh:
                diff = "".join(difflib.unified_diff(current.splitlines(True), fresh.splitlines(True),
                                                    f"{lock} (committed)", f"{lock} (from the .in files)", n=1))
                complaints.append(f"{lock} is not what the .in files lock to; run `{COMMAND}`:\n{diff[:4000]}")
    for complaint in complaints:
        print(complaint, file=sys.stderr)
    return 1 if complaints else 0


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when a lock is stale")
    parser.add_argument("--allow-drop", action="store_true", help="accept packages leaving a lock")
    args = parser.parse_args(argv)
    if args.check:
        return check()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        stage(folder)
        complaints = regenerate(folder, allow_drop=args.allow_drop)
        if complaints:
            print("\n".join(complaints), file=sys.stderr)
            return 1
        for _, lock in LOCKS:  # only once both compiled: never one new lock beside one old one
            shutil.copy2(folder / lock, REPO / lock)
            print(f"wrote {lock}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
