"""Node.js tool folders the tests use (.railway/, prisma/): installed from their package-lock.json.

Each folder pins its packages exactly (package.json) and by integrity hash (package-lock.json);
``npm ci`` installs exactly that into the folder's node_modules/ (ignored by git). Node.js and
npm come from the machine (tests/run.sh installs Debian's when missing).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_installed: set[Path] = set()


def npm_ci(folder: Path) -> Path:
    """Install ``folder``'s locked packages once per test session; return the folder."""
    npm = shutil.which("npm")
    assert npm and shutil.which("node"), "Node.js and npm are needed: tests/run.sh installs them (apt nodejs npm)"
    if folder not in _installed:
        result = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=folder,
                                capture_output=True, text=True, timeout=540)
        assert result.returncode == 0, f"npm ci in {folder} failed:\n{result.stdout[-2000:]}{result.stderr[-3000:]}"
        _installed.add(folder)
    return folder


def run_bin(folder: Path, tool: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``node_modules/.bin/<tool>`` of ``folder`` (installed by npm_ci) with ``args``."""
    binary = folder / "node_modules" / ".bin" / tool
    assert binary.exists(), f"{binary} is missing: npm_ci({folder.name}) first"
    return subprocess.run([str(binary), *args], cwd=cwd or folder, capture_output=True, text=True, timeout=300)


def run_node(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``node args…`` inside ``folder`` (so its node_modules resolve)."""
    node = shutil.which("node")
    assert node, "Node.js is needed: tests/run.sh installs it (apt nodejs npm)"
    return subprocess.run([node, *args], cwd=folder, capture_output=True, text=True, timeout=120)
