"""/openapi.json describes exactly the routes the app serves, as OpenAPI 3.1."""

from __future__ import annotations

import re
from typing import Any

import requests

from config.settings import Settings
from handlers.app import create_app
from handlers.launcher import NullLauncher
from tests.e2e.webserver import WebServer

pytest_plugins = ["tests.e2e.web_fixtures"]
IGNORED_METHODS = {"HEAD", "OPTIONS"}


def served_routes(output_dir) -> set[tuple[str, str]]:
    app = create_app(Settings(enable_database_writes=False, output_dir=output_dir), launcher=NullLauncher())
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        routes |= {(method, path) for method in rule.methods or () if method not in IGNORED_METHODS}
    return routes


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def test_the_document_names_every_route_and_method_and_no_other(web: WebServer, output_dir):
    answer = requests.get(web.url("/openapi.json"), timeout=10)  # no token: it is public
    assert answer.status_code == 200
    doc = answer.json()
    assert doc["openapi"] == "3.1.0"
    documented = {(method.upper(), path) for path, item in doc["paths"].items() for method in item}
    assert documented == served_routes(output_dir)


def test_every_reference_resolves_and_every_operation_says_its_answers(web: WebServer):
    doc = requests.get(web.url("/openapi.json"), timeout=10).json()
    for ref in refs(doc):
        assert ref.removeprefix("#/components/schemas/") in doc["components"]["schemas"], ref
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert op["summary"] and op["responses"], (method, path)
            for name in re.findall(r"{([a-z_]+)}", path):
                assert any(p["name"] == name and p["in"] == "path" for p in op.get("parameters", [])), (path, name)
