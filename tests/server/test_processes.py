"""--worker-processes: the embedded detector's images in worker processes, same results."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import Server, encode, image_zip, make_zip, sar_image, upload, wait_for
from starlette.testclient import TestClient


def _images(client: TestClient, data: bytes) -> list[dict[str, object]]:
    job_id = upload(client, data).json()["job_id"]
    wait_for(client, job_id)
    images: list[dict[str, object]] = client.get(f"/api/v1/jobs/{job_id}").json()["images"]
    return images


def test_processes_give_the_threads_results_and_keep_a_broken_image_its_own(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    scenes = {f"s{n}.png": encode(sar_image(n, (320, 240))) for n in range(3)}
    data = make_zip({**scenes, "broken.png": b"\x89PNG\r\n\x1a\n" + b"\0" * 40})
    threads = _images(make_client(data_dir=tmp_path / "threads"), data)
    processes = _images(make_client(data_dir=tmp_path / "processes", worker_processes="yes"), data)
    keys = ("name", "status", "slicks", "oil_pixels", "error_code")
    assert [{k: i[k] for k in keys} for i in processes] == [
        {k: i[k] for k in keys} for i in threads
    ]
    assert [i["status"] for i in processes] == ["done", "done", "done", "failed"]


def test_each_worker_process_holds_its_next_image(
    make_client: Callable[..., TestClient],
) -> None:
    """Two worker processes take four images: each runs one and has the next in the pool's
    queue, so that it starts it without waiting for the service's round trip. Two workers
    are what the service reports."""
    client = make_client(workers=2, worker_processes="yes")
    assert client.get("/healthz").json()["workers"] == 2
    job_id = upload(client, image_zip(8, size=(1250, 650))).json()["job_id"]
    most, deadline = 0, time.monotonic() + 60
    while time.monotonic() < deadline:
        job = client.get(f"/api/v1/jobs/{job_id}").json()
        most = max(most, [i["status"] for i in job["images"]].count("processing"))
        if job["state"] in ("succeeded", "failed"):
            break
        time.sleep(0.01)
    assert job["state"] == "succeeded" and most >= 4


def _children(pid: int) -> list[int]:
    """PIDs whose parent is `pid`, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.mark.skipif(sys.platform != "linux", reason="the kernel's parent-death signal is Linux's")
def test_worker_processes_die_with_a_killed_service(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    server = start_server("--workers", "2", "--worker-processes", "1")
    with server.client() as client:
        assert (
            wait_for(client, upload(client, image_zip(4)).json()["job_id"])["status"] == "SUCCESS"
        )
    workers = _workers(server.proc.pid)
    assert len(workers) == 2
    # Forked at the start, from a process with no other thread: no fresh interpreter.
    assert not [p for p in workers if "spawn_main" in _cmdline(p)]
    server.stop(kill=True)  # SIGKILL: nothing of ours runs to stop them
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in workers):
        time.sleep(0.05)
    assert not [p for p in workers if Path(f"/proc/{p}").exists() and _cmdline(p)]


@pytest.mark.skipif(sys.platform != "linux", reason="finds the worker processes in /proc")
def test_a_forked_worker_process_ends_on_sigterm(start_server: Callable[..., Server]) -> None:
    """A fork starts with the server's signal handlers; its pool terminates it (SIGTERM) when
    it is broken, and then it must end, not ask a server it does not run to stop."""
    server = start_server("--workers", "2")
    with server.client() as client:
        job = upload(client, image_zip(2)).json()["job_id"]
        assert wait_for(client, job)["status"] == "SUCCESS"
        worker = _workers(server.proc.pid)[0]
        os.kill(worker, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _cmdline(worker):
            time.sleep(0.05)
        assert not _cmdline(worker)  # gone, or a zombie until its pool reaps it
        job = upload(client, image_zip(2)).json()["job_id"]
        assert wait_for(client, job)["status"] == "SUCCESS"  # on new workers


def _workers(pid: int) -> list[int]:
    """The worker processes of the service `pid`: its children but multiprocessing's
    resource tracker (which spawned pools start)."""
    return [p for p in _children(pid) if "resource_tracker" not in _cmdline(p)]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.mark.skipif(sys.platform != "linux", reason="finds the worker processes in /proc")
def test_a_killed_worker_process_costs_no_image(start_server: Callable[..., Server]) -> None:
    """SIGKILL to a worker process (as the OOM killer sends) mid-job: its pool is replaced,
    the images it broke are tried again, and every image ends done."""
    server = start_server("--workers", "2")  # worker processes: the default with 2 workers
    scenes = {f"s{n:02d}.png": encode(sar_image(n, (1250, 650))) for n in range(16)}
    with server.client() as client:
        job_id = upload(client, make_zip(scenes)).json()["job_id"]
        deadline = time.monotonic() + 60
        while client.get(f"/api/v1/jobs/{job_id}").json()["progress"]["done"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        workers = _workers(server.proc.pid)
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)
        status = wait_for(client, job_id)
        assert status["status"] == "SUCCESS" and status["result"]["errors"] == []
        assert len(status["result"]["processed_files"]) == 16
        next_job = upload(client, image_zip(2)).json()["job_id"]
        assert wait_for(client, next_job)["status"] == "SUCCESS"  # the new processes work
        # The service runs threads by now: its new workers are fresh interpreters, not forks.
        replaced = [p for p in _workers(server.proc.pid) if p not in workers]
        assert replaced and all("spawn_main" in _cmdline(p) for p in replaced)
    assert "worker process died" in server.log.read_text()
