"""Webhooks against a real server and a real receiver on 127.0.0.1, which checks each
signature. The receiver is reached as `localhost`, the name --webhook-allow allows
explicitly; the other pattern, '*', lets any host through whose addresses are public, so
127.0.0.1 by its address is refused, as a redirect to it is."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any
from unittest import mock

import httpx
import pytest
from helpers import Server, wait_for

from oilspill.config import Settings
from oilspill.errors import CallbackRefused
from oilspill.server import webhooks
from oilspill.server.metrics import Metrics

SECRET = "test-webhook-secret"


@pytest.fixture(scope="module")
def strict(module_server: Callable[..., Server]) -> Server:
    """A secret and no --webhook-allow: only public addresses."""
    return module_server("--webhook-secret", SECRET)


@pytest.fixture(scope="module")
def hooked(module_server: Callable[..., Server]) -> Server:
    return module_server(
        "--webhook-secret", SECRET, "--webhook-allow", "localhost", "--webhook-allow", "*",
        "--webhook-timeout", "1", "--webhook-retries", "2",
    )  # fmt: skip


def _local(receiver: Any, path: str) -> str:
    """The receiver's URL by the name the server allows."""
    return receiver.url.replace("127.0.0.1", "localhost") + path


def _job(http: httpx.Client, data: bytes, callback: str, *, in_query: bool = False) -> str:
    form = {} if in_query else {"callback_url": callback}
    params = {"callback_url": callback} if in_query else {}
    answer = http.post("/api/v1/jobs", files={"file": ("x.zip", data)}, data=form, params=params)
    assert answer.status_code == 202, answer.text
    job_id: str = answer.json()["id"]
    return job_id


def test_a_finished_job_is_posted_signed(hooked: Server, receiver: Any, tiny_zip: bytes) -> None:
    with hooked.client() as http:
        job_id = _job(http, tiny_zip, _local(receiver, "/hook"))
        (delivery,) = receiver.wait("/hook")
    assert delivery.signed
    assert delivery.headers["X-Oilspill-Event"] == "job.succeeded"
    assert abs(int(delivery.headers["X-Oilspill-Timestamp"]) - time.time()) < 60
    body = delivery.json()
    assert body["id"] == job_id and body["state"] == "succeeded"
    assert body["progress"] == {"done": 2, "total": 2, "failed": 0}


def test_the_callback_may_come_in_the_query_and_failures_are_retried(
    hooked: Server, receiver: Any, tiny_zip: bytes
) -> None:
    receiver.plan["/flaky"] = [503, 500]
    with hooked.client() as http:
        _job(http, tiny_zip, _local(receiver, "/flaky"), in_query=True)
        attempts = receiver.wait("/flaky", 3)
    assert all(a.signed for a in attempts)
    assert len({a.headers["X-Oilspill-Delivery"] for a in attempts}) == 1
    log = hooked.log.read_text()
    assert "attempt 1" in log and "HTTP 503" in log and "delivered" in log


def test_a_slow_receiver_delays_no_job(hooked: Server, receiver: Any, tiny_zip: bytes) -> None:
    receiver.plan["/slow"] = [("sleep", 3), ("sleep", 3), ("sleep", 3)]
    with hooked.client() as http:
        _job(http, tiny_zip, _local(receiver, "/slow"))
        receiver.wait("/slow")  # the first attempt hangs now
        started = time.monotonic()
        upload = http.post("/api/upload", files={"file": ("x.zip", tiny_zip)}).json()
        assert wait_for(http, upload["job_id"])["status"] == "SUCCESS"
        assert time.monotonic() - started < 2.5
    deadline = time.monotonic() + 15
    while "no answer in 1 s" not in hooked.log.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_redirect_to_a_loopback_address_is_refused(
    hooked: Server, receiver: Any, tiny_zip: bytes
) -> None:
    receiver.plan["/moved"] = [("redirect", f"{receiver.url}/hook-behind")]  # 127.0.0.1
    with hooked.client() as http:
        _job(http, tiny_zip, _local(receiver, "/moved"))
        receiver.wait("/moved")
        deadline = time.monotonic() + 10
        while "not delivered" not in hooked.log.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert receiver.at("/hook-behind") == []
    assert len(receiver.at("/moved")) == 1  # a refusal is not retried
    assert "resolves to a loopback address (127.0.0.1)" in hooked.log.read_text()
    with hooked.client() as http:
        metrics = http.get("/metrics").text
    assert 'oilspill_webhook_deliveries_total{outcome="refused"} 1.0' in metrics


def test_a_cancelled_job_and_a_failed_one_are_posted(
    start_server: Callable[..., Server], gated_model: Any, receiver: Any, tiny_zip: bytes
) -> None:
    server = start_server(
        "--backend", "http", "--ml-url", f"{gated_model.url}/segment", "--ml-retries", "0",
        "--webhook-secret", SECRET, "--webhook-allow", "localhost",
    )  # fmt: skip
    with server.client() as http:
        cancelled = _job(http, tiny_zip, _local(receiver, "/cancelled"))
        assert http.delete(f"/api/v1/jobs/{cancelled}").status_code == 204
        (first,) = receiver.wait("/cancelled")
        failed = _job(http, tiny_zip, _local(receiver, "/failed"))
        gated_model.release.set()  # the model server refuses every image: the job fails
        (second,) = receiver.wait("/failed")
    assert first.signed and first.headers["X-Oilspill-Event"] == "job.cancelled"
    assert first.json()["id"] == cancelled
    assert second.signed and second.headers["X-Oilspill-Event"] == "job.failed"
    assert second.json()["id"] == failed and second.json()["state"] == "failed"


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:9/hook",  # a name that resolves to a loopback address
        "http://127.0.0.1:9/hook",
        "http://[::1]:9/hook",
        "http://169.254.169.254/latest/meta-data",
        "ftp://example.com/hook",
        "http://user:pw@localhost/hook",
    ],
)
def test_private_destinations_are_refused_at_upload(
    strict: Server, url: str, tiny_zip: bytes
) -> None:
    with strict.client() as http:
        answer = http.post(
            "/api/v1/jobs", files={"file": ("x.zip", tiny_zip)}, data={"callback_url": url}
        )
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"] == "callback_refused"
        query = http.post(
            "/api/upload", files={"file": ("x.zip", tiny_zip)}, params={"callback_url": url}
        )
        assert query.status_code == 400
    assert not [p for p in (strict.log.parent / "data").iterdir() if not p.name.startswith(".")]


def test_without_a_secret_no_callback_is_taken(
    start_server: Callable[..., Server], tiny_zip: bytes
) -> None:
    with start_server().client() as http:
        answer = http.post(
            "/api/v1/jobs",
            files={"file": ("x.zip", tiny_zip)},
            data={"callback_url": "https://example.com/hook"},
        )
    assert answer.status_code == 400 and "--webhook-secret" in answer.json()["detail"]


# The checks by themselves, with `webhooks._resolve` (the one resolver the module uses) patched
# so that public-looking names resolve to private addresses.
@pytest.mark.parametrize(
    "address",
    ["10.1.2.3", "192.168.0.7", "172.16.5.4", "169.254.169.254", "0.0.0.0", "224.0.0.1",
     "::ffff:127.0.0.1", "fe80::1", "fd00::5", "2002:7f00:1::1", "64:ff9b::a01:203"],
)  # fmt: skip
def test_a_name_resolving_to_a_private_address_is_refused(address: str) -> None:
    hooks = webhooks.Webhooks(Settings(webhook_secret=SECRET), Metrics("sar"))

    async def resolve(host: str, port: int) -> list[str]:
        return ["93.184.215.14", address]  # one public address does not excuse the other

    async def go() -> None:
        with mock.patch.object(webhooks, "_resolve", resolve):
            await hooks.check("https://hooks.example.com/x")

    with pytest.raises(CallbackRefused, match="resolves to"):
        asyncio.run(go())


def test_a_public_address_passes_and_the_allow_list_limits_hosts() -> None:
    async def resolve(host: str, port: int) -> list[str]:
        return ["93.184.215.14"]

    async def check(settings: Settings, url: str) -> None:
        with mock.patch.object(webhooks, "_resolve", resolve):
            await webhooks.Webhooks(settings, Metrics("sar")).check(url)

    asyncio.run(check(Settings(webhook_secret=SECRET), "https://hooks.example.com/x"))
    allow = Settings(webhook_secret=SECRET, webhook_allow="*.example.org")
    asyncio.run(check(allow, "https://a.example.org/x"))
    with pytest.raises(CallbackRefused, match="--webhook-allow"):
        asyncio.run(check(allow, "https://hooks.example.com/x"))
