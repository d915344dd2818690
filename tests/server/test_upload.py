"""Receiving the upload body: every part counted, slow and vanishing clients dropped."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import image_zip
from starlette.requests import Request
from starlette.testclient import TestClient

from oilspill.errors import ClientGone, SlowUpload
from oilspill.server import upload


def fake_request(messages: list[tuple[float, dict[str, Any]]]) -> Request:
    """A request whose body arrives as `messages`, each after its delay in seconds."""
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        delay, message = queue.pop(0) if queue else (3600.0, {"type": "http.disconnect"})
        await asyncio.sleep(delay)
        return message

    boundary = "xyz"
    scope = {"type": "http", "method": "POST", "path": "/", "headers": [
        (b"content-type", f"multipart/form-data; boundary={boundary}".encode())]}  # fmt: skip
    return Request(scope, receive)


def body(data: bytes, more: bool = True) -> dict[str, Any]:
    return {"type": "http.request", "body": data, "more_body": more}


def test_a_stalled_body_is_dropped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(upload, "IDLE_S", 0.2)
    request = fake_request([(0.0, body(b"--xyz\r\n")), (1.0, body(b"late"))])
    with pytest.raises(SlowUpload, match="no data"):
        asyncio.run(upload.receive_file(request, tmp_path / "u", field="file", max_bytes=1 << 20))


def test_a_trickling_body_is_dropped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(upload, "GRACE_S", 0.2)
    head = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.zip"\r\n\r\n'
    request = fake_request([(0.0, body(head))] + [(0.05, body(b"a")) for _ in range(20)])
    with pytest.raises(SlowUpload, match="KiB/s"):
        asyncio.run(upload.receive_file(request, tmp_path / "u", field="file", max_bytes=1 << 20))


def test_a_client_that_disconnects_is_no_server_error(tmp_path: Path) -> None:
    request = fake_request([(0.0, body(b"--xyz\r\n")), (0.0, {"type": "http.disconnect"})])
    with pytest.raises(ClientGone):
        asyncio.run(upload.receive_file(request, tmp_path / "u", field="file", max_bytes=1 << 20))


def test_parts_other_than_the_file_count_against_the_limit(
    make_client: Callable[..., TestClient],
) -> None:
    # Chunked, so no Content-Length tells the size up front: 3 MiB of a junk field, a 1 MiB limit.
    client = make_client(max_upload_mb=1)
    junk = b'--xyz\r\nContent-Disposition: form-data; name="junk"\r\n\r\n' + b"x" * (3 << 20)
    file = b'\r\n--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.zip"\r\n\r\n'
    tail = image_zip(1) + b"\r\n--xyz--\r\n"
    chunks = [junk[i : i + (1 << 16)] for i in range(0, len(junk), 1 << 16)] + [file, tail]
    response = client.post(
        "/api/upload",
        content=iter(chunks),
        headers={"content-type": "multipart/form-data; boundary=xyz"},
    )
    assert response.status_code == 413
