"""The cron runner's hard deadline, in-process: real forks, real signals, real process groups."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

from handlers.cron_runner import run_bounded


def gone(pid: int) -> bool:
    """True once ``pid`` no longer runs (exited and reaped, or a zombie waiting for init)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_result_passes_through_with_the_checks_it_sent():
    def target(send):
        send({"step": "one"})
        return {"status": "ok", "checks": [{"name": "x", "status": "ok", "message": "fine"}], "exit_code": 0}

    assert run_bounded("demo", target, 30) == {"status": "ok", "exit_code": 0,
                                              "checks": [{"name": "x", "status": "ok", "message": "fine"}]}


def test_a_hung_job_and_the_subprocess_it_started_are_killed_at_the_deadline():
    def target(send):
        sleeper = subprocess.Popen(["sleep", "300"])
        send({"check": {"name": "before the hang", "status": "ok", "message": "found"}})
        send({"step": f"waiting on pid {sleeper.pid}"})
        time.sleep(300)
        return {}

    result = run_bounded("stuck", target, 0.5)
    assert (result["status"], result["exit_code"]) == ("timeout", 1)
    assert result["message"].startswith("stuck did not finish within 0.5 s: stuck at step 'waiting on pid ")
    assert "stopped by SIGTERM" in result["message"]
    assert result["checks"] == [{"name": "before the hang", "status": "ok", "message": "found"}]
    pid = re.search(r"pid (\d+)", result["message"])
    assert pid is not None, f"no subprocess pid in {result['message']!r}"
    sleeper = int(pid.group(1))
    give_up = time.monotonic() + 30  # a hang guard, not a timing assertion
    while not gone(sleeper) and time.monotonic() < give_up:
        time.sleep(0.05)
    assert gone(sleeper), "the job's subprocess outlived its process group"


def test_a_job_that_ignores_sigterm_is_killed_with_sigkill():
    def target(send):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        send({"step": "ignoring SIGTERM"})
        time.sleep(300)
        return {}

    result = run_bounded("stubborn", target, 0.5)
    assert result["status"] == "timeout" and "killed by SIGKILL" in result["message"]


def test_an_unexpected_exception_becomes_an_error_result():
    def target(send):
        raise ValueError("a bug in the job")

    result = run_bounded("buggy", target, 30)
    assert (result["status"], result["exit_code"]) == ("error", 1)
    assert result["message"].startswith("buggy crashed: ValueError: a bug in the job")


def test_a_child_that_dies_without_a_result_is_reported():
    def target(send):
        send({"step": "about to vanish"})
        os._exit(3)

    result = run_bounded("vanished", target, 30)
    assert result["status"] == "error"
    assert result["message"] == "vanished ended without a result (exit code 3) at step 'about to vanish'"
