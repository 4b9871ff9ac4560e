"""Pytest fixtures for fault injection: a private cluster to kill and a proxy to misbehave.

    private_cluster       session   a PrivateCluster of its own (restarted for each test that uses it)
    private_database_url  function  a fresh migrated database on it, dropped afterwards
    fault_proxy           function  a FaultProxy in front of the shared test server (pg_server_url)

Import the names you use: ``from tests.faultfixtures import private_cluster, ...``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.faultproxy import FaultProxy
from tests.pgcluster import PrivateCluster

__all__ = ["fault_proxy", "private_cluster", "private_database_url"]


@pytest.fixture(scope="session")
def private_cluster() -> Iterator[PrivateCluster]:
    """A private PostgreSQL cluster; tests may stop or SIGKILL it."""
    cluster = PrivateCluster.create()
    try:
        yield cluster
    finally:
        cluster.cleanup()


@pytest.fixture
def private_database_url(private_cluster: PrivateCluster) -> Iterator[str]:
    """A fresh migrated database on the private cluster (started again if a test left it down)."""
    if not private_cluster.running:
        private_cluster.start()
    name = f"fault_{uuid.uuid4().hex[:12]}"
    url = private_cluster.create_database(name)
    yield url
    if not private_cluster.running:
        private_cluster.start()
    private_cluster.drop_database(name)


@pytest.fixture
def fault_proxy(pg_server_url: str) -> Iterator[FaultProxy]:
    """A pass-through proxy in front of the shared test server; use ``url_for(database_url)``."""
    proxy = FaultProxy.in_front_of(pg_server_url).start()
    try:
        yield proxy
    finally:
        proxy.close()
