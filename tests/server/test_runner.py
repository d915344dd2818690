"""The worker pool's hand-off: a worker segments its next image while the previous image's
commit (report parts, record, fsync) runs, an image counts only once committed, and a
shutdown waits for commits in flight. The commit is held by a gate on the record's write."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import image_zip, upload, wait_for
from starlette.testclient import TestClient

from oilspill.config import Settings
from oilspill.server import results
from oilspill.server.app import create_app
from oilspill.server.store import RECORD_SUFFIX, JobStore


class Gate:
    """Holds every record write until opened; counts the images segmented."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.open = threading.Event()
        self.held = threading.Event()  # a record write is waiting at the gate
        self.segmented = 0
        real_save, real_process = JobStore.save_item_result, results.process_file

        def save(store: JobStore, *args: Any) -> None:
            self.held.set()
            assert self.open.wait(30), "the test never opened the gate"
            real_save(store, *args)

        def process(*args: Any) -> dict[str, Any]:
            record = real_process(*args)
            self.segmented += 1
            return record

        monkeypatch.setattr(JobStore, "save_item_result", save)
        monkeypatch.setattr(results, "process_file", process)

    def wait_until(self, check: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.01)


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    box = Gate(monkeypatch)
    yield box
    box.open.set()  # never leave a thread waiting


def test_a_worker_segments_its_next_image_while_the_last_one_commits(
    make_client: Callable[..., TestClient], gate: Gate
) -> None:
    client = make_client(workers=1)
    job_id = upload(client, image_zip(3)).json()["job_id"]
    assert gate.held.wait(30)
    # The one worker's first commit is held, and it has gone on to the second image.
    gate.wait_until(lambda: gate.segmented == 2)
    job = client.get(f"/api/v1/jobs/{job_id}").json()
    assert job["status"] == "STARTED" and job["progress"]["done"] == 0
    assert gate.segmented == 2  # one commit in flight per worker: the third waits
    gate.open.set()
    status = wait_for(client, job_id)
    assert status["status"] == "SUCCESS" and len(status["result"]["processed_files"]) == 3


def test_a_shutdown_waits_for_the_commits_in_flight(tmp_path: Path, gate: Gate) -> None:
    data = tmp_path / "data"
    client = TestClient(create_app(Settings(data_dir=data, workers=1, shutdown_grace=30)))
    client.__enter__()
    job_id = upload(client, image_zip(1)).json()["job_id"]
    assert gate.held.wait(30)
    closing = threading.Thread(target=client.__exit__, args=(None, None, None))
    closing.start()
    time.sleep(0.3)  # the shutdown has begun and waits for the commit
    assert closing.is_alive()
    gate.open.set()
    closing.join(30)
    assert not closing.is_alive()
    assert (data / job_id / "out" / f"00000{RECORD_SUFFIX}").is_file()
