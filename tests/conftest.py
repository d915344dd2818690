"""Fixtures: an in-process app client; real servers, stopped at teardown."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import Server
from starlette.testclient import TestClient

from oilspill.config import Settings
from oilspill.server.app import create_app


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """Build an app with test settings (overridable) and run its lifespan."""
    clients: list[TestClient] = []

    def factory(**overrides: Any) -> TestClient:
        # Threads unless a test asks for processes: a monkeypatched function runs in threads.
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "workers": 2,
            "ttl": 600,
            "worker_processes": "no",
        }
        values.update(overrides)
        client = TestClient(create_app(Settings(**values)))
        client.__enter__()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def factory(*args: str, data_dir: Path | None = None, command: str = "serve") -> Server:
        server = Server(data_dir or tmp_path / "data", *args, command=command)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop(kill=True)
