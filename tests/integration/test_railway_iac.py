"""The Railway infrastructure file (.railway/railway.ts): typed, evaluated and checked against the code.

The SDK's own package (``railway`` 3.11.0, locked in .railway/package-lock.json) type-checks the
file with tsc; .railway/check.ts evaluates it as the Railway CLI does and runs the SDK's
validateGraph; this module then checks what the graph says against what the code needs.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from tests.e2e.test_dockerfile import DOCKERFILE, parse_dockerfile
from tests.nodetools import REPO, npm_ci, run_bin

IAC = REPO / ".railway"
SECRETS = {"WEBHOOK_SECRET", "API_TOKEN", "BLOB_READ_WRITE_TOKEN", "OPENROUTER_API_KEY", "DATABASE_URL"}
# Variables the code reads besides config/settings.py: gunicorn's and the cron start command's.
OTHER_READERS = {"WEB_CONCURRENCY": REPO / "handlers" / "gunicorn.conf.py"}


@pytest.fixture(scope="module")
def tools() -> Path:
    return npm_ci(IAC)


@pytest.fixture(scope="module")
def graph(tools: Path) -> dict[str, Any]:
    result = run_bin(tools, "tsx", "check.ts", "production")
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def resources(graph: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in graph["resources"] if r["type"] == kind}


def test_no_config_as_code_file_is_left() -> None:
    # Railway stops reading them on 2026-12-01, and a service cannot be managed by both systems.
    ignored = (".venv", "node_modules")  # virtualenvs (.venv, .venv313) and npm folders are not ours
    found = [p for name in ("railway.json", "railway.toml") for p in REPO.rglob(name)
             if not any(part.startswith(ignored) for part in p.relative_to(REPO).parts)]
    assert not found, found


def test_the_sdk_type_checks_the_file(tools: Path) -> None:
    result = run_bin(tools, "tsc", "-p", "tsconfig.json")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("mistake", "replacement", "expected"), [
    ("drainingSeconds: DRAINING_SECONDS,", "drainSeconds: DRAINING_SECONDS,", "drainSeconds"),
    ('restartPolicyType: "NEVER"', 'restartPolicyType: "NO"', "NO"),
    ('healthcheck: "/health"', "healthcheck: 200", "not assignable to type 'string'"),
])
def test_a_wrong_setting_fails_the_type_check(tools: Path, tmp_path: Path, mistake: str, replacement: str,
                                             expected: str) -> None:
    source = (IAC / "railway.ts").read_text()
    assert mistake in source
    for name in ("tsconfig.json", "check.ts", "package.json"):
        shutil.copy2(IAC / name, tmp_path / name)
    (tmp_path / "railway.ts").write_text(source.replace(mistake, replacement, 1))
    os.symlink(tools / "node_modules", tmp_path / "node_modules")
    result = run_bin(tools, "tsc", "-p", "tsconfig.json", cwd=tmp_path)
    assert result.returncode != 0 and expected in result.stdout, result.stdout


def test_the_services_and_their_deploy_settings(graph: dict[str, Any]) -> None:
    services = resources(graph, "service")
    assert set(services) == {"web", "cron", "worker"}
    assert set(resources(graph, "database")) == {"Postgres"}
    web, cron, worker = services["web"]["deploy"], services["cron"]["deploy"], services["worker"]["deploy"]
    assert web["healthcheckPath"] == "/health" and web["healthcheckTimeout"] >= 30
    assert web["drainingSeconds"] >= 30 and worker["drainingSeconds"] >= 30  # Railway's default is 0
    assert [shlex.split(c)[-4:] for c in web["preDeployCommand"]] == [["python", "-m", "persistence.migrate", "up"]]
    assert cron["restartPolicyType"] == "NEVER"
    assert re.fullmatch(r"(\S+ ){4}\S+", cron["cronSchedule"]), cron["cronSchedule"]
    assert "python -m handlers.cron all" in cron["startCommand"]
    assert shlex.split(worker["startCommand"])[-3:] == ["python", "-m", "handlers.dispatcher"]
    # Runs execute where a dispatcher claims them: with RUN_DISPATCH=workers, on the worker service.
    dispatch = {name: s["variables"]["RUN_DISPATCH"]["value"] for name, s in services.items()}
    assert dispatch == {"web": "workers", "cron": "workers", "worker": "workers"}
    assert worker["numReplicas"] >= 1 and "--no-claims" not in worker["startCommand"]
    assert services["worker"]["variables"]["ENABLE_FILE_FALLBACK"]["value"] == "false"
    for name, service in services.items():
        assert service["build"] == {"builder": "DOCKERFILE", "dockerfilePath": "Dockerfile"}, name
        assert (REPO / service["build"]["dockerfilePath"]).is_file()


def test_the_health_path_is_served_by_the_app(graph: dict[str, Any]) -> None:
    from handlers.app import create_app

    app = create_app(Settings(enable_database_writes=False))
    paths = {rule.rule for rule in app.url_map.iter_rules()}
    assert resources(graph, "service")["web"]["deploy"]["healthcheckPath"] in paths


def test_every_command_starts_through_the_image_entrypoint(graph: dict[str, Any]) -> None:
    # On Railway a start command replaces the image's ENTRYPOINT: without it, the app would run as root.
    entrypoint = parse_dockerfile(DOCKERFILE.read_text()).entrypoint
    for name, service in resources(graph, "service").items():
        deploy = service["deploy"]
        commands = ([deploy["startCommand"]] if "startCommand" in deploy else []) + deploy.get("preDeployCommand", [])
        for command in commands:
            assert shlex.split(command)[:len(entrypoint)] == entrypoint, f"{name}: {command}"
    assert "startCommand" not in resources(graph, "service")["web"]["deploy"], "web runs the image's ENTRYPOINT+CMD"


def test_a_volume_is_mounted_only_on_a_single_replica_service(graph: dict[str, Any]) -> None:
    volumes = set(resources(graph, "volume"))
    mounted = {}
    for name, service in resources(graph, "service").items():
        for attachment in service.get("volumeAttachments", {}).values():
            mounted[attachment["volume"]] = (name, attachment["mountPath"])
            assert service["deploy"].get("numReplicas") == 1, f"{name} has a volume: Railway allows one replica"
    assert {f"volume.{v}" for v in volumes} == set(mounted) and mounted["volume.runner-data"] == ("web", "/data")


def test_every_variable_is_read_by_the_code_and_its_values_parse(graph: dict[str, Any]) -> None:
    settings_source = (REPO / "config" / "settings.py").read_text()
    for name, service in resources(graph, "service").items():
        variables = service["variables"]
        start = service["deploy"].get("startCommand", "")
        for key in variables:
            readers = [settings_source, *(p.read_text() for k, p in OTHER_READERS.items() if k == key), start]
            assert any(f'"{key}"' in text or f"${key}" in text for text in readers), f"{name}: nothing reads {key}"
        for key in SECRETS & set(variables):
            assert variables[key]["type"] != "literal", f"{name}: {key} is a secret and must be a reference"
        assert variables["DATABASE_URL"] == {"type": "reference", "resource": "database.Postgres",
                                             "output": "DATABASE_URL"}
        # Literals as Railway would set them, references as placeholders: the settings parse cleanly.
        env = {key: value.get("value", "") if value["type"] == "literal" else "placeholder"
               for key, value in variables.items()}
        env.update(DATABASE_URL="postgresql://runner@postgres.railway.internal:5432/railway",
                   WEBHOOK_SECRET="whsec_" + "A" * 44)
        Settings.from_env(env)


def test_the_cron_service_reaches_the_web_service_by_reference(graph: dict[str, Any]) -> None:
    cron = resources(graph, "service")["cron"]
    assert cron["variables"]["WEB_PRIVATE_DOMAIN"] == {"type": "reference", "resource": "service.web",
                                                       "output": "RAILWAY_PRIVATE_DOMAIN"}
    web_port = resources(graph, "service")["web"]["variables"]["PORT"]["value"]
    assert f":{web_port}" in cron["deploy"]["startCommand"]


def test_the_file_names_the_sdk_version_it_was_checked_with() -> None:
    header = (IAC / "railway.ts").read_text().split("import", 1)[0]
    locked = json.loads((IAC / "package-lock.json").read_text())["packages"]["node_modules/railway"]["version"]
    assert f"`railway` {locked}" in header, f"say which SDK version the file is written against ({locked})"
