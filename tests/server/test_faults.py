"""A full disk at every write site: the request or the job fails cleanly, saying so, and the
service goes on (other jobs finish, /healthz is 200). Faults are injected OSError(ENOSPC)."""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import image_zip, upload, wait_for
from starlette.testclient import TestClient

from oilspill.server import reports, results
from oilspill.server import upload as upload_module
from oilspill.server.store import JobStore


def full_disk(*_: Any, **__: Any) -> Any:
    raise OSError(errno.ENOSPC, "No space left on device")


def once(real: Callable[..., Any]) -> Callable[..., Any]:
    """`real`, except that its first call fails as on a full disk."""
    calls = {"n": 0}

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            full_disk()
        return real(*args, **kwargs)

    return wrapper


def files_left(data: Path) -> list[Path]:
    return [p for p in data.rglob("*") if p.is_file() and p.name != ".lock"]


def still_serving(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    body = upload(client, image_zip(2)).json()
    assert wait_for(client, body["job_id"])["status"] == "SUCCESS"


@pytest.mark.parametrize("site", ["receiving", "unpacking"])
def test_a_full_disk_during_intake_is_507_and_keeps_nothing(
    site: str, make_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:  # fmt: skip
    client = make_client()
    if site == "receiving":
        monkeypatch.setattr(upload_module, "_flush", full_disk)
    else:  # writing an entry into the job's input folder
        real_open = Path.open

        def full_on_input_writes(self: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            if "w" in mode and "input" in self.parts:
                full_disk()
            return real_open(self, mode, *args, **kwargs)

        monkeypatch.setattr(Path, "open", full_on_input_writes)
    response = upload(client, image_zip(2))
    assert response.status_code == 507 and "disk" in response.json()["detail"]
    assert files_left(tmp_path / "data") == []
    monkeypatch.undo()
    still_serving(client)


def test_a_full_disk_while_writing_one_image_fails_that_image_only(
    make_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(workers=1)
    monkeypatch.setattr(results, "write_outputs", once(results.write_outputs))
    body = upload(client, image_zip(3)).json()
    status = wait_for(client, body["job_id"])
    assert status["status"] == "SUCCESS" and len(status["result"]["processed_files"]) == 2
    (error,) = status["result"]["errors"]
    assert "disk filled up" in error["error"]
    still_serving(client)


def test_a_full_disk_when_saving_a_record_fails_that_image_only(
    make_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(workers=1)
    monkeypatch.setattr(JobStore, "save_item_result", once(JobStore.save_item_result))
    body = upload(client, image_zip(3)).json()
    status = wait_for(client, body["job_id"])
    assert status["status"] == "SUCCESS" and len(status["result"]["processed_files"]) == 2
    assert "could not save results" in status["result"]["errors"][0]["error"]
    still_serving(client)


def test_a_full_disk_at_the_finish_fails_the_job_with_its_reason(
    make_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client()
    monkeypatch.setattr(reports, "write_reports", once(reports.write_reports))
    body = upload(client, image_zip(2)).json()
    wait_for(client, body["job_id"])
    job = client.get(f"/api/v1/jobs/{body['job_id']}").json()
    assert job["state"] == "failed" and "free disk space" in job["error"]
    still_serving(client)
