"""--log-format json on a real server: every line one JSON object with time, level, event,
job_id and request_id; X-Request-ID taken when sane, else made, and echoed back."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from helpers import Server, wait_for


def _lines(server: Server) -> list[dict[str, Any]]:
    text = server.log.read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_json_lines_carry_the_job_and_the_request(
    start_server: Callable[..., Server], tiny_zip: bytes
) -> None:
    server = start_server("--log-format", "json")
    with server.client() as http:
        answer = http.post(
            "/api/v1/jobs", files={"file": ("x.zip", tiny_zip)}, headers={"X-Request-ID": "req-42"}
        )
        assert answer.headers["X-Request-ID"] == "req-42"
        job_id = answer.json()["id"]
        wait_for(http, job_id)
        made = http.get("/healthz").headers["X-Request-ID"]
        bad = http.get("/healthz", headers={"X-Request-ID": "no spaces\tor tabs"})
    assert len(made) == 32 and bad.headers["X-Request-ID"] != "no spaces\tor tabs"
    server.stop()
    lines = _lines(server)  # each line parses: nothing else is written
    assert all({"time", "level", "event", "job_id", "request_id"} <= set(line) for line in lines)
    created = [line for line in lines if line["event"].startswith(f"job {job_id} created")]
    assert created and created[0]["request_id"] == "req-42" and created[0]["job_id"] == job_id
    assert created[0]["level"] == "info" and created[0]["time"].endswith("+00:00")
    finished = [line for line in lines if f"job {job_id} SUCCESS" in line["event"]]
    assert finished and finished[0]["job_id"] == job_id and finished[0]["request_id"] is None
    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    assert any(line["request_id"] == "req-42" and "POST /api/v1/jobs" in line["event"]
               for line in access)  # fmt: skip
    assert any(line["event"].startswith("service ready") for line in lines)
