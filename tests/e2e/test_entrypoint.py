"""The image's entrypoint, started as root the way Railway starts it, on a root-owned volume.

No Docker here: the test lays out the image as the Dockerfile says (its COPY lines, root-owned,
into a folder others can read; its locked requirements into a virtualenv of the system Python,
which the app user can execute, unlike a Python under /root), runs the Dockerfile's ENTRYPOINT
and CMD as root with a root-owned folder as the volume, and checks the effective user of every
process the server starts, a run's included.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.e2e.test_dockerfile import DOCKERFILE, Image, build_root, parse_dockerfile
from tests.e2e.webserver import API_TOKEN, WEBHOOK_SECRET, payload, post_run, start_gunicorn

APP_USER = "app"
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, as python:3.11-slim's lives outside any home folder


@dataclass
class Layout:
    """The image's /app (``root``) and the virtualenv holding its locked requirements (``bin``)."""

    image: Image
    root: Path
    bin: Path

    def entrypoint(self, *command: str) -> list[str]:
        """The Dockerfile's ENTRYPOINT (its /app path mapped onto ``root``) followed by ``command``."""
        script = self.root / os.path.relpath(self.image.entrypoint[0], self.image.workdir)
        return [str(script), *self.image.entrypoint[1:], *command]


def app_user() -> pwd.struct_passwd:
    """The image's app user; created here (as the Dockerfile does) when this machine lacks it."""
    try:
        return pwd.getpwnam(APP_USER)
    except KeyError:
        subprocess.run(["groupadd", "--system", APP_USER], check=True, capture_output=True)
        subprocess.run(["useradd", "--system", "--gid", APP_USER, "--no-create-home", "--shell",
                        "/usr/sbin/nologin", APP_USER], check=True, capture_output=True)
        return pwd.getpwnam(APP_USER)


def ids(pid: int) -> dict[str, list[str]]:
    """The Uid, Gid, Groups and CapEff lines of /proc/<pid>/status."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Uid", "Gid", "Groups", "CapEff"):
            fields[key] = value.split()
    return fields


def descendants(root: int) -> dict[int, str]:
    """``root`` and every process below it: pid -> command line."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # gone while we looked
    found = {root}
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in found and pid not in found:
                found.add(pid)
                grew = True
    tree = {}
    for pid in found:
        try:
            tree[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
    return tree


@pytest.fixture(scope="module")
def layout() -> Iterator[Layout]:
    """The image's files and its locked requirements, readable by every user, owned by root."""
    assert os.geteuid() == 0, "this test starts the entrypoint as root, as Railway does: run it as root (CI does)"
    base = Path(tempfile.mkdtemp(prefix="image-", dir="/tmp"))
    base.chmod(0o755)
    try:
        image = parse_dockerfile(DOCKERFILE.read_text())
        root = base / "app"
        root.mkdir()
        build_root(image, root)
        env_dir = base / "venv"
        subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(env_dir)], check=True, capture_output=True, timeout=300)
        install = subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet",
                                  "--disable-pip-version-check", *image.pip_options, "-r",
                                  str(root / "requirements.txt")], capture_output=True, text=True, timeout=540)
        assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
        subprocess.run(["chmod", "-R", "a+rX", str(base)], check=True)
        yield Layout(image, root, env_dir / "bin")
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)


@pytest.fixture
def volume() -> Iterator[Path]:
    """A root-owned folder that other users can traverse, like a fresh Railway volume mount."""
    base = Path(tempfile.mkdtemp(prefix="entrypoint-", dir="/tmp"))
    base.chmod(0o755)
    mount = base / "volume"
    (mount / "old-run").mkdir(parents=True)
    # What an image that ran as root (RAILWAY_RUN_UID=0) left behind: it must change hands too.
    (mount / "old-run" / "run.json").write_text("{}")
    try:
        yield mount
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)


def test_every_process_runs_as_the_app_user_and_the_volume_becomes_theirs(layout: Layout, volume: Path,
                                                                           tmp_path: Path) -> None:
    user = app_user()
    env = {**layout.image.env, "RAILWAY_VOLUME_MOUNT_PATH": str(volume), "WEBHOOK_SECRET": WEBHOOK_SECRET,
           "API_TOKEN": API_TOKEN,
           "ENABLE_DATABASE_WRITES": "false", "PIPELINE_ENGINE": "offline",
           # The document's host refuses connections: the run starts, writes its files and fails.
           "BLOB_ALLOW_HTTP": "true", "BLOB_ALLOWED_HOSTS": "127.0.0.1:9",
           "PATH": f"{layout.bin}{os.pathsep}/usr/sbin:/usr/bin:/sbin:/bin"}
    assert os.stat(volume).st_uid == 0
    server = start_gunicorn(tmp_path, env, command=layout.entrypoint(*layout.image.cmd), cwd=layout.root,
                            own_output_dir=False)
    seen: dict[int, str] = {}
    try:
        body = payload("entrypoint_run", blob_url="http://127.0.0.1:9/report.pdf")
        assert post_run(server, body).status_code == 202
        deadline = time.monotonic() + 120
        state = None
        while time.monotonic() < deadline:
            for pid, cmdline in descendants(server.process.pid).items():
                try:
                    fields = ids(pid)
                except OSError:
                    continue  # exited between the listing and the read
                seen[pid] = cmdline
                assert fields["Uid"] == [str(user.pw_uid)] * 4, f"{cmdline} runs with uids {fields['Uid']}"
                assert fields["Gid"] == [str(user.pw_gid)] * 4, f"{cmdline} runs with gids {fields['Gid']}"
                assert fields["Groups"] in ([], [str(user.pw_gid)]), f"{cmdline} keeps groups {fields['Groups']}"
                assert int(fields["CapEff"][0], 16) == 0, f"{cmdline} keeps capabilities {fields['CapEff']}"
            status = requests.get(server.url("/api/pipeline/entrypoint_run/status"),
                                  headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=10)
            state = status.json().get("status") if status.status_code == 200 else None
            if state in ("FAILED", "COMPLETED"):
                break
            time.sleep(0.05)
        assert state == "FAILED", f"the run did not finish: {state}"
    finally:
        assert server.stop() == 0
    commands = " | ".join(seen.values())
    assert "gunicorn" in commands and "handlers.dispatcher" in commands, commands
    # Every file any of those processes wrote (the run's included) and the old ones belong to app.
    owners = {path: path.stat().st_uid for path in [volume, *volume.rglob("*")]}
    assert any("entrypoint_run" in str(path) for path in owners), sorted(map(str, owners))
    assert {uid for uid in owners.values()} == {user.pw_uid}, {str(p): u for p, u in owners.items() if u != user.pw_uid}


def test_started_as_another_user_it_only_execs(layout: Layout, volume: Path) -> None:
    user = app_user()
    argv = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups",
            *layout.entrypoint("id", "-u")]
    result = subprocess.run(argv, env={**os.environ, "RAILWAY_VOLUME_MOUNT_PATH": str(volume)},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stdout.strip() == str(user.pw_uid), result.stderr
    assert os.stat(volume).st_uid == 0  # nothing it could change, nothing it tried


def test_it_refuses_to_give_away_the_root_folder(layout: Layout) -> None:
    app_user()
    result = subprocess.run(layout.entrypoint("true"), env={**os.environ, "OUTPUT_DIR": "/"},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "refusing to change the owner of /" in result.stderr
    assert os.stat("/").st_uid == 0
