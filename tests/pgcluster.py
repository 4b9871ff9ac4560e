"""A private PostgreSQL cluster that a test may stop, restart or SIGKILL.

    cluster = PrivateCluster.create()       # initdb into a temp dir, start on a free port
    url = cluster.create_database("db1")     # migrated with persistence.migrate.upgrade
    cluster.kill(); cluster.start()          # crash and crash recovery
    cluster.cleanup()                        # stop and remove everything

``initdb`` and ``pg_ctl`` refuse to run as root, so as root they run as ``postgres`` through
``runuser`` and the cluster's folder is handed to that user.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

from persistence.migrate import upgrade

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
OWNER = "postgres"
# The private cluster skips fsync for speed: a SIGKILL of PostgreSQL (not of the host) still
# recovers every commit, since the kernel keeps the written WAL. synchronous_commit stays on:
# without it a commit is acknowledged before its WAL leaves shared memory, and a kill loses it.
SERVER_OPTIONS = "-c fsync=off -c full_page_writes=off -c max_connections=50 -c shared_buffers=16MB"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_owner(*argv: str) -> list[str]:
    return ["runuser", "-u", OWNER, "--", *argv] if os.geteuid() == 0 else list(argv)


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (the postmaster's backends and workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited while we looked
        # The command name is in parentheses and may hold spaces: the ppid follows the last ')'.
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class PrivateCluster:
    """One throwaway PostgreSQL cluster in a temp dir, on its own port."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or Path(tempfile.mkdtemp(prefix="pgcluster-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "sock"
        self.logfile = self.root / "server.log"
        self.port = free_port()

    @classmethod
    def create(cls) -> PrivateCluster:
        """initdb a new cluster and start it."""
        cluster = cls()
        cluster.init()
        cluster.start()
        return cluster

    def _run(self, *argv: str) -> None:
        done = subprocess.run(_as_owner(*argv), capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = self.logfile.read_text() if self.logfile.exists() else ""
            raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr or done.stdout}\n{log[-2000:]}")

    def init(self) -> None:
        """Create the cluster's files (trust auth, user postgres)."""
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            for path in (self.root, self.socket_dir):
                shutil.chown(path, OWNER, OWNER)
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                  "-E", "UTF8", "--locale=C", "--no-sync")

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while it runs, else None."""
        pidfile = self.data / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return None
        return pid if _alive(pid) else None

    @property
    def running(self) -> bool:
        """True while the postmaster is alive."""
        return self.pid is not None

    def start(self) -> None:
        """Start the server (after a kill this includes crash recovery) and wait until it accepts."""
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 {SERVER_OPTIONS}"
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.logfile), "-w", "-t", "60",
                  "-o", options, "start")

    def stop(self) -> None:
        """Stop the server cleanly (fast mode: open sessions are cut)."""
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def kill(self) -> None:
        """SIGKILL the postmaster and all its processes, like the OOM killer would."""
        pid = self.pid
        if pid is None:
            return
        # Freeze the postmaster first: it can neither fork nor die, so no backend gets to notice
        # its death and say goodbye to its client (a real crash sends nothing at all).
        os.kill(pid, signal.SIGSTOP)
        victims = [*_children(pid), pid]
        for victim in victims:
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                continue  # already gone
        deadline = time.monotonic() + 30
        while any(_alive(v) for v in victims):
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres processes {victims} survived SIGKILL")
            time.sleep(0.02)

    def url(self, dbname: str = "postgres") -> str:
        """URL of database ``dbname`` on this cluster."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str, *, migrate: bool = True) -> str:
        """Create database ``name`` (migrated unless told otherwise) and return its URL."""
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        url = self.url(name)
        if migrate:
            upgrade(url)
        return url

    def drop_database(self, name: str) -> None:
        """Drop database ``name``, cutting its sessions."""
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def cleanup(self) -> None:
        """Stop the server (killing it if it will not stop) and remove every file."""
        if self.running:
            try:
                self.stop()
            except (RuntimeError, subprocess.TimeoutExpired):
                self.kill()  # a stuck server must not keep the temp dir alive
        shutil.rmtree(self.root, ignore_errors=True)
