"""The dependency locks stay generated from the direct requirements (scripts/lock.py).

These run uv against PyPI (the lock's hashes come from there); uv's cache keeps them quick.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
import lock  # noqa: E402  (a script, not a package)

DIRECT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", re.MULTILINE)


def locked_versions(text: str) -> dict[str, str]:
    """name -> version of every pin in a lock."""
    return {lock.normalize(name): version for name, version in DIRECT.findall(text)}


def test_every_direct_requirement_is_locked_at_its_version_with_hashes() -> None:
    for source, lock_name in lock.LOCKS:
        locked = locked_versions((REPO / lock_name).read_text())
        for name, version in DIRECT.findall((REPO / source).read_text()):
            assert locked.get(lock.normalize(name)) == version, f"{name}=={version} of {source} is not in {lock_name}"
        entries = re.split(r"\n(?=[A-Za-z0-9])", (REPO / lock_name).read_text().split("\n", 2)[2].strip())
        assert entries and all("--hash=sha256:" in entry for entry in entries), f"{lock_name} has an unhashed pin"


def test_the_dev_lock_holds_the_production_lock_versions() -> None:
    prod = locked_versions((REPO / "requirements.txt").read_text())
    dev = locked_versions((REPO / "requirements-dev.txt").read_text())
    assert {name: dev.get(name) for name in prod} == prod


def test_the_locks_are_in_step_with_the_in_files() -> None:
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "lock.py"), "--check"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr


@pytest.fixture
def staged(tmp_path: Path) -> Path:
    lock.stage(tmp_path)
    return tmp_path


def test_a_stale_lock_is_reported_with_the_command_that_fixes_it(staged: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (staged / "requirements.in").write_text((staged / "requirements.in").read_text() + "six==1.16.0\n")
    monkeypatch.setattr(lock, "REPO", staged)
    # The check regenerates from copies, so the staged folder's committed lock stays stale.
    assert lock.check() == 1
    assert "six" not in locked_versions((staged / "requirements.txt").read_text())


def test_a_pin_that_would_silently_leave_the_lock_is_refused(staged: Path) -> None:
    # What a merge of a branch that added a dependency by hand to requirements.txt looks like.
    text = (staged / "requirements.txt").read_text()
    (staged / "requirements.txt").write_text(text.replace("blinker==", "<<<<<<< HEAD\n=======\nsix==1.16.0\n"
                                                          ">>>>>>> issue9\nblinker==", 1))
    complaints = lock.regenerate(staged, allow_drop=False)
    assert complaints and "six" in complaints[0] and "requirements.in" in complaints[0]
    assert "<<<<<<<" not in (staged / "requirements.txt").read_text()  # resolved afresh, not parsed


def test_pip_in_require_hashes_mode_refuses_an_unhashed_pin(tmp_path: Path) -> None:
    # pip refuses a requirement without a hash in this mode: proves the lock is complete.
    bad = tmp_path / "bad.txt"
    bad.write_text((REPO / "requirements.txt").read_text() + "six==1.16.0\n")
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--require-hashes",
                             "--no-deps", "-r", str(bad)], capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "hash" in result.stderr.lower()
    assert shutil.which("uv", path=str(Path(sys.executable).parent)), "uv is part of requirements-dev.txt"
