"""Per-client limits against real servers: unfinished jobs and uploads per minute, by key
else by address (X-Forwarded-For believed only from --forwarded-allow-ips); 429 with
Retry-After past them."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
from helpers import Server, wait_for

KEY_A = "limit-key-a-0123456789"
KEY_B = "limit-key-b-0123456789"


def _post(http: httpx.Client, data: bytes, **headers: str) -> httpx.Response:
    return http.post("/api/v1/jobs", files={"file": ("x.zip", data)}, headers=headers)


def test_unfinished_jobs_per_address_behind_a_trusted_proxy(
    start_server: Callable[..., Server], gated_model: Any, tiny_zip: bytes
) -> None:
    server = start_server(
        "--backend", "http", "--ml-url", f"{gated_model.url}/segment",
        "--ml-retries", "0", "--max-jobs-per-client", "1",
    )  # fmt: skip
    one = {"X-Forwarded-For": "203.0.113.7"}  # the test connects from 127.0.0.1: a proxy
    two = {"X-Forwarded-For": "203.0.113.8"}
    with server.client() as http:
        first = _post(http, tiny_zip, **one)
        assert first.status_code == 202
        refused = _post(http, tiny_zip, **one)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"] == "too_many_requests"
        assert int(refused.headers["Retry-After"]) > 0
        assert _post(http, tiny_zip, **two).status_code == 202  # another client
        gated_model.release.set()
        wait_for(http, first.json()["id"])
        assert _post(http, tiny_zip, **one).status_code == 202  # its job is done: room again


def test_uploads_per_minute_by_key_else_by_address(
    start_server: Callable[..., Server], tiny_zip: bytes
) -> None:
    # The proxy header is not believed from 127.0.0.1 here: every keyless upload is ours.
    server = start_server(
        "--uploads-per-minute", "2", "--forwarded-allow-ips", "10.9.9.9",
        "--api-key", KEY_A, "--api-key", KEY_B,
    )  # fmt: skip
    with server.client() as http:
        a = {"Authorization": f"Bearer {KEY_A}"}
        for n in range(2):
            assert _post(http, tiny_zip, **a, **{"X-Forwarded-For": f"198.51.100.{n}"}).is_success
        started = time.monotonic()
        refused = _post(http, tiny_zip, **a, **{"X-Forwarded-For": "198.51.100.99"})
        assert refused.status_code == 429
        assert 0 < int(refused.headers["Retry-After"]) <= 60 - int(time.monotonic() - started)
        assert "--uploads-per-minute" in refused.json()["detail"]
        assert _post(http, tiny_zip, Authorization=f"Bearer {KEY_B}").status_code == 202
