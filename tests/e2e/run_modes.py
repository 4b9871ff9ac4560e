"""Helpers for tests that exercise one feature in each persistence mode, over real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.e2e.webserver import REPO, SCRUBBED_PREFIXES

MODES = ("FILE_ONLY", "DUAL_WRITE", "DATABASE_ONLY")
SAMPLES = REPO / "data" / "samples"


def mode_env(mode: str, database_url: str, output_dir: Path) -> dict[str, str]:
    """The variables that select ``mode`` (contract §3) with ``output_dir`` as OUTPUT_DIR."""
    env = {"OUTPUT_DIR": str(output_dir), "PIPELINE_ENGINE": "offline"}
    if mode == "FILE_ONLY":
        return {**env, "ENABLE_DATABASE_WRITES": "false"}
    return {**env, "DATABASE_URL": database_url, "ENABLE_FILE_FALLBACK": "true" if mode == "DUAL_WRITE" else "false"}


def run_module(module: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m module args`` in a scrubbed environment plus ``env``."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_PREFIXES)}
    full.update({"LOG_LEVEL": "INFO", **env})
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=full, capture_output=True,
                          text=True, timeout=180)


def last_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON summary a command prints as its last stdout line."""
    lines = result.stdout.strip().splitlines()
    assert lines, f"no output; stderr: {result.stderr[-2000:]}"
    parsed: dict[str, Any] = json.loads(lines[-1])
    return parsed


def pipeline_run(env: dict[str, str], document: Path, brand: str, run_id: str) -> subprocess.CompletedProcess[str]:
    """One whole run through ``python -m pipeline run`` (offline engine)."""
    return run_module("pipeline", "run", str(document), "--brand", brand, "--run-id", run_id, env=env)
