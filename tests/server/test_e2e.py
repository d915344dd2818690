"""End to end against a real `oilspill serve` on 127.0.0.1: upload, poll, download, restart."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from helpers import Server, image_zip, upload, wait_for


def test_upload_poll_download(start_server: Callable[..., Server]) -> None:
    server = start_server("--workers", "2")
    with server.client() as client:
        body = upload(client, image_zip(4)).json()
        assert wait_for(client, body["job_id"])["status"] == "SUCCESS"
        with client.stream("GET", f"/api/download/{body['user_hash']}") as response:
            assert response.status_code == 200
            data = b"".join(response.iter_bytes())
        assert int(response.headers["content-length"]) == len(data)
        names = zipfile.ZipFile(io.BytesIO(data)).namelist()
        assert "summary.csv" in names and "masks/scene_03.png" in names
        seconds = client.get(f"/api/archive_time_left/{body['user_hash']}").json()["seconds_left"]
        assert 0 < seconds <= 600


def test_restart_resumes_a_job_without_redoing_images(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    server = start_server("--workers", "1", data_dir=data_dir)
    with server.client() as client:
        body = upload(client, image_zip(40, size=(640, 480))).json()
        deadline = time.monotonic() + 60
        while client.get(f"/api/status/{body['job_id']}").json()["processed"] < 3:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    server.stop(kill=True)  # a crash: no chance to save anything
    done_before = {p.name for p in (data_dir / body["job_id"] / "out").glob("*.record.json")}
    assert 0 < len(done_before) < 40

    restarted = start_server("--workers", "2", data_dir=data_dir)
    with restarted.client() as client:
        status = wait_for(client, body["job_id"])
        assert status["status"] == "SUCCESS" and status["processed"] == 40
        assert len(status["result"]["processed_files"]) == 40
    log = restarted.log.read_text()
    assert f"job {body['job_id']} resumes: {len(done_before)} of 40 done" in log


def test_finished_results_survive_a_restart(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    server = start_server(data_dir=data_dir)
    with server.client() as client:
        body = upload(client, image_zip(1)).json()
        wait_for(client, body["job_id"])
        left = client.get(f"/api/archive_time_left/{body['user_hash']}").json()["seconds_left"]
    assert server.stop() in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM after shutdown
    assert "service stopped" in server.log.read_text()
    again = start_server(data_dir=data_dir)
    with again.client() as client:
        response = client.get(f"/api/download/{body['user_hash']}")
        assert response.status_code == 200
        after = client.get(f"/api/archive_time_left/{body['user_hash']}").json()["seconds_left"]
        assert left - 30 <= after <= left


def test_expired_and_orphaned_folders_are_deleted_at_start(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    server = start_server("--ttl", "1", data_dir=data_dir)
    with server.client() as client:
        job_id = upload(client, image_zip(1)).json()["job_id"]
        wait_for(client, job_id)
    server.stop()
    orphan = data_dir / ("a" * 32)
    orphan.mkdir()
    (orphan / "input").mkdir()
    time.sleep(1.2)
    start_server(data_dir=data_dir)
    assert not (data_dir / job_id).exists()
    assert not orphan.exists()


@pytest.mark.parametrize("workers", ["1", "2"])  # 2: worker processes, each with its next image
def test_sigterm_stops_cleanly_and_a_restart_finishes_the_job(
    start_server: Callable[..., Server], tmp_path: Path, workers: str
) -> None:
    data_dir = tmp_path / "data"
    server = start_server("--workers", workers, data_dir=data_dir)
    with server.client() as client:
        body = upload(client, image_zip(20, size=(640, 480))).json()
        deadline = time.monotonic() + 60
        while client.get(f"/api/status/{body['job_id']}").json()["status"] == "PENDING":
            assert time.monotonic() < deadline
            time.sleep(0.02)
    server.proc.send_signal(signal.SIGTERM)
    # uvicorn re-raises SIGTERM once it has shut down, so the exit is by that signal.
    assert server.proc.wait(timeout=30) in (0, -signal.SIGTERM)
    assert "service stopped" in server.log.read_text()
    # Every image is either done (its record written) or still has its input: none half-done.
    job_dir = data_dir / body["job_id"]
    done = {int(p.name[:5]) for p in (job_dir / "out").glob("*.record.json")}
    waiting = {int(p.name) for p in (job_dir / "input").iterdir()}
    assert done | waiting == set(range(20)) and not done & waiting
    with start_server(data_dir=data_dir).client() as client:
        status = wait_for(client, body["job_id"])
    assert status["status"] == "SUCCESS" and len(status["result"]["processed_files"]) == 20
    assert status["result"]["errors"] == []  # the images not run at the stop were run after it


def test_status_answers_while_workers_are_busy(start_server: Callable[..., Server]) -> None:
    server = start_server("--workers", "2")
    with server.client() as client:
        body = upload(client, image_zip(30, size=(1250, 650))).json()
        answered = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = client.get(f"/api/status/{body['job_id']}", timeout=5).json()
            answered += 1
            if status["status"] == "SUCCESS":
                break
        assert status["status"] == "SUCCESS"
        assert answered > 5


def test_http_backend_reports_a_dead_remote_per_image(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    coordinator = start_server(
        "--backend", "http", "--ml-url", "http://127.0.0.1:9/segment", "--ml-retries", "1"
    )
    with coordinator.client() as client:
        job_id = upload(client, image_zip(2)).json()["job_id"]
        status = wait_for(client, job_id)
        job = client.get(f"/api/v1/jobs/{job_id}").json()
    # Every image failed on its own: legacy SUCCESS with each in `errors`, v1 `failed`.
    assert status["status"] == "SUCCESS" and len(status["result"]["errors"]) == 2
    assert all("model server" in e["error"] for e in status["result"]["errors"])
    assert job["state"] == "failed" and "model server" in job["error"]
    assert httpx.get(f"{coordinator.url}/healthz").status_code == 200


def test_a_second_server_on_the_same_data_folder_exits_saying_why(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    first = start_server(data_dir=data_dir)
    second = subprocess.run(
        [sys.executable, "-m", "oilspill", "serve", "--port", "0", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert second.returncode == 2
    assert f"pid {first.proc.pid}" in second.stderr and "--data-dir" in second.stderr
    assert httpx.get(f"{first.url}/healthz").status_code == 200


def test_a_download_in_progress_outlives_delete_and_expiry(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    # A zip big enough to be mid-stream (socket buffers hold far less than 10 MB), read
    # slowly while the job is deleted: the download ends whole, later requests get 404/410,
    # and the files go once it has ended. The TTL of 2 s fires during the download too.
    data_dir = tmp_path / "data"
    server = start_server("--workers", "2", "--ttl", "2", data_dir=data_dir)
    with server.client() as client:
        body = upload(client, image_zip(6, size=(1600, 1200))).json()
        assert wait_for(client, body["job_id"])["status"] == "SUCCESS"
        got = bytearray()
        with client.stream("GET", f"/api/download/{body['user_hash']}") as response:
            assert response.status_code == 200
            chunks = response.iter_bytes(1 << 16)
            got += next(chunks)
            assert client.delete(f"/api/v1/jobs/{body['job_id']}").status_code == 204
            assert client.get(f"/api/v1/jobs/{body['job_id']}").status_code in (404, 410)
            image = client.get(f"/api/v1/jobs/{body['job_id']}/images/0/overlay")
            assert image.status_code in (404, 410)
            assert (data_dir / body["job_id"]).exists()  # still read
            time.sleep(2.5)  # past the TTL as well
            for chunk in chunks:
                got += chunk
        assert len(got) == int(response.headers["content-length"])
        assert zipfile.ZipFile(io.BytesIO(bytes(got))).testzip() is None
        deadline = time.monotonic() + 10
        while (data_dir / body["job_id"]).exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not (data_dir / body["job_id"]).exists()


def test_kill_9_at_ten_random_moments_loses_no_image(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    import random

    rng = random.Random(8)  # seeded: the same ten moments on every run
    data_dir = tmp_path / "data"
    server = start_server("--workers", "2", data_dir=data_dir)
    with server.client() as client:
        first = upload(client, image_zip(40, size=(480, 360))).json()
    second = None
    for n in range(10):
        time.sleep(rng.uniform(0.05, 0.5))
        if n == 4:  # a second job, uploaded between two crashes
            with server.client() as client:
                second = upload(client, image_zip(8, size=(480, 360), prefix="late")).json()
        server.stop(kill=True)
        server = start_server("--workers", "2", data_dir=data_dir)
    assert second is not None
    with server.client() as client:
        for body, total in ((first, 40), (second, 8)):
            status = wait_for(client, body["job_id"], timeout=120)
            assert status["status"] == "SUCCESS" and status["result"]["errors"] == []
            assert status["processed"] == status["total"] == total
            data = client.get(f"/api/download/{body['user_hash']}").content
            archive = zipfile.ZipFile(io.BytesIO(data))
            assert archive.testzip() is None
            images = [n for n in archive.namelist() if not n.startswith("masks/")]
            assert sorted(images) == sorted(status["result"]["processed_files"] + [
                "summary.csv", "report.json", "slicks.geojson"])  # fmt: skip
            assert client.delete(f"/api/v1/jobs/{body['job_id']}").status_code == 204

    def left() -> list[Path]:
        return [p for p in data_dir.rglob("*") if p.is_file() and p.name != ".lock"]

    deadline = time.monotonic() + 30
    while left() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left() == []  # nothing left behind: no stray upload, input or output
