"""Fixtures of the operations tests: real servers shared by a module, a webhook receiver that
checks signatures, and a model server that holds its answers until told (all on 127.0.0.1)."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from helpers import Server, image_zip


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Server]]:
    """Start `oilspill serve` with flags, once for a whole module; stopped at its end."""
    servers: list[Server] = []

    def factory(*args: str) -> Server:
        server = Server(tmp_path_factory.mktemp("srv") / "data", *args)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop(kill=True)


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    signed: bool  # the signature matched the body under the receiver's secret

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook receiver: records every POST and whether its signature is right. `plan`
    maps a path to what to do for each request to it, in turn: 'ok', a status code,
    ('redirect', url) or ('sleep', seconds); past the plan, 200."""

    secret: str
    url: str = ""
    deliveries: list[Delivery] = field(default_factory=list)
    plan: dict[str, list[Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def at(self, path: str) -> list[Delivery]:
        with self.lock:
            return [d for d in self.deliveries if d.path == path]

    def wait(self, path: str, count: int = 1, timeout: float = 20.0) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(found := self.at(path)) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"{count} deliveries to {path} expected, got {self.at(path)}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    box = Receiver(secret="test-webhook-secret")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            expected = hmac.new(box.secret.encode(), body, hashlib.sha256).hexdigest()
            given = self.headers.get("X-Oilspill-Signature", "")
            signed = hmac.compare_digest(given, f"sha256={expected}")
            with box.lock:
                box.deliveries.append(Delivery(self.path, dict(self.headers), body, signed))
                steps = box.plan.get(self.path, [])
                step = steps.pop(0) if steps else "ok"
            if isinstance(step, tuple) and step[0] == "sleep":
                time.sleep(step[1])
                step = "ok"
            if isinstance(step, tuple) and step[0] == "redirect":
                self.send_response(307)
                self.send_header("Location", step[1])
            else:
                self.send_response(200 if step == "ok" else int(step))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    box.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield box
    server.shutdown()
    server.server_close()


@dataclass
class GatedModel:
    """A model server of the earlier API whose /segment answers 400 (the image fails) only
    once `release` is set: jobs on it stay unfinished until then. /health answers 200."""

    url: str = ""
    release: threading.Event = field(default_factory=threading.Event)
    seen: int = 0


@pytest.fixture
def gated_model() -> Iterator[GatedModel]:
    box = GatedModel()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/health" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            box.seen += 1
            box.release.wait(30)
            body = b'{"detail": "held, then refused by the test"}'
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    box.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield box
    box.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def tiny_zip() -> bytes:
    """Two small SAR-like images: fast to segment."""
    return image_zip(2, size=(96, 64))
