"""Runs one cron job in a forked child with a hard deadline, so a hung job never blocks the next tick.

    parent ──fork──► child (its own process group) runs the job, sends JSON lines up a pipe:
                     {"step": "database reachable"}, {"check": {…}} … then {"result": {…}}
    parent waits for the result or the deadline; at the deadline it sends SIGTERM to the whole
    group, SIGKILL 2 s later, and reports {"status": "timeout", "message": "… stuck at …"}

A job that hangs inside a C call (a database that accepted the TCP connection and then went
silent, a blocked NFS write) cannot be interrupted from within Python; killing its process group
always works, and takes any subprocess the job started with it. Nothing the job left behind
survives: once the child exits, the rest of its group is killed too.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from config.log import get_logger

log = get_logger("handlers.cron")

KILL_GRACE_S = 2.0  # between SIGTERM and SIGKILL
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

Send = Callable[[dict[str, Any]], None]  # a message to the parent: {"step": …} or {"check": {…}}
Target = Callable[[Send], dict[str, Any]]


def run_bounded(name: str, target: Target, timeout_s: float) -> dict[str, Any]:
    """Run ``target(send)`` in a forked child; its result dict, or a timeout/error result.

    ``target`` returns a dict with ``status``, ``checks`` and ``exit_code`` (see handlers.cron);
    the checks it sent before a timeout are kept in the timeout's result.
    """
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()  # or the child would print the parent's buffered lines a second time
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_fd)
        _child(name, target, write_fd)
    os.close(write_fd)
    # Also done by the child, whichever runs first closes the race; if the child already did it,
    # or already exited, its group is set either way.
    with contextlib.suppress(PermissionError, ProcessLookupError):
        os.setpgid(pid, pid)
    try:
        return _wait(name, pid, read_fd, timeout_s)
    finally:
        os.close(read_fd)


def _child(name: str, target: Target, write_fd: int) -> None:
    """Child side: own process group, run the job, send the result, exit without cleanup handlers."""
    code = EXIT_FAILED
    try:
        os.setpgid(0, 0)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)

        def send(message: dict[str, Any]) -> None:
            os.write(write_fd, (json.dumps(message, default=str) + "\n").encode())

        result = target(send)
        send({"result": result})
        code = EXIT_OK
    except Exception as exc:  # the process boundary: any bug must become an "error" summary
        log.exception("cron_job_crashed", job=name)
        crashed = {"status": "error", "checks": [], "exit_code": EXIT_FAILED,
                   "message": f"{name} crashed: {type(exc).__name__}: {exc} (traceback in the log line above)"}
        with contextlib.suppress(OSError):  # the parent is gone: nobody is left to tell
            os.write(write_fd, (json.dumps({"result": crashed}, default=str) + "\n").encode())
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # no atexit handlers, no inherited pytest/gunicorn cleanup in the child


def _wait(name: str, pid: int, read_fd: int, timeout_s: float) -> dict[str, Any]:
    """Collect the child's messages until its result, its death or the deadline."""
    deadline = time.monotonic() + timeout_s
    buffer = b""
    step: str | None = None
    checks: list[dict[str, Any]] = []
    result: dict[str, Any] | None = None
    eof = False
    while not eof:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return _timeout(name, pid, timeout_s, step, checks)
        if select.select([read_fd], [], [], min(remaining, 0.5))[0]:
            chunk = os.read(read_fd, 65536)
            eof = not chunk
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                message = json.loads(line)
                step = message.get("step", step)
                if "check" in message:
                    checks.append(message["check"])
                result = message.get("result", result)
        elif _exited(pid):
            break  # died without closing the pipe: a grandchild of its own holds the write end
    while not _exited(pid):  # the result is in; the child is only exiting
        if time.monotonic() >= deadline:
            return _timeout(name, pid, timeout_s, step, checks)
        time.sleep(0.01)
    _kill_group(pid, signal.SIGKILL)  # whatever the job started and left running
    _, status = os.waitpid(pid, 0)
    if result is None:
        return {"status": "error", "checks": checks, "exit_code": EXIT_FAILED,
                "message": f"{name} ended without a result ({_describe(status)}) at step {step!r}"}
    return result


def _exited(pid: int) -> bool:
    """True once the child has exited, without reaping it (its group id stays valid to kill)."""
    info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    return info is not None and info.si_pid == pid


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # nobody left in the group
        os.killpg(pgid, sig)


def _timeout(name: str, pid: int, timeout_s: float, step: str | None, checks: list[dict[str, Any]]) -> dict[str, Any]:
    """Kill the job's process group (SIGTERM, then SIGKILL) and say where it was stuck."""
    _kill_group(pid, signal.SIGTERM)
    grace = time.monotonic() + KILL_GRACE_S
    while not _exited(pid) and time.monotonic() < grace:
        time.sleep(0.02)
    how = "stopped by SIGTERM" if _exited(pid) else f"ignored SIGTERM for {KILL_GRACE_S:g} s, killed by SIGKILL"
    _kill_group(pid, signal.SIGKILL)  # the child and anything of its group that outlived it
    os.waitpid(pid, 0)
    where = f"stuck at step {step!r}" if step else "stuck before its first step"
    message = f"{name} did not finish within {timeout_s:g} s: {where} ({how}); raise --timeout or see the log"
    log.error("cron_job_timeout", job=name, timeout_s=timeout_s, step=step, how=how)
    return {"status": "timeout", "checks": checks, "exit_code": EXIT_FAILED, "message": message}


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        return f"killed by {signal.Signals(number).name if number in signal.valid_signals() else number}"
    return f"exit code {os.WEXITSTATUS(status)}"
