"""/readyz of a real server: each check listed; 503 naming the failing ones while the data
folder is read-only or the model server is away, and 200 again after."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import Server, free_port


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """Make `folder` unwritable for its server while inside. As root (CI) a mode does not stop
    writes: the folder is made immutable instead (chattr +i), or the test is skipped where
    that cannot be done."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    chattr = shutil.which("chattr")
    made = chattr and subprocess.run([chattr, "+i", str(folder)], capture_output=True)
    if not made or made.returncode != 0:
        pytest.skip("as root, and `chattr +i` is not possible here (no e2fsprogs or capability)")
    assert chattr is not None
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(folder)], check=True)


def test_a_read_only_data_folder_makes_it_unready_until_writable(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    server = start_server()
    ready = httpx.get(f"{server.url}/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert set(ready.json()["checks"]) == {"workers", "scheduler", "accepting", "data_dir", "disk"}
    with read_only(tmp_path / "data"):
        unready = httpx.get(f"{server.url}/readyz")
    assert unready.status_code == 503
    body = unready.json()
    assert body["error"] == "not_ready" and body["failing"] == ["data_dir"]
    assert "cannot write" in body["checks"]["data_dir"]["detail"]
    assert httpx.get(f"{server.url}/healthz").status_code == 200  # alive all the same
    assert httpx.get(f"{server.url}/readyz").status_code == 200


def test_the_disk_floor_and_a_remote_backend_are_checked(
    start_server: Callable[..., Server], gated_model: Any, tmp_path: Path
) -> None:
    server = start_server("--backend", "http", "--ml-url", f"{gated_model.url}/segment")
    ready = httpx.get(f"{server.url}/readyz").json()
    assert ready["checks"]["backend"] == {
        "ok": True,
        "answers": {f"{gated_model.url}/health": 200},
    }
    dead = f"http://127.0.0.1:{free_port()}/segment"
    floor = "100000000"  # MiB: no disk has that free
    away = start_server(
        "--backend", "http", "--ml-url", dead, "--min-free-mb", floor, data_dir=tmp_path / "d2"
    )  # fmt: skip
    answer = httpx.get(f"{away.url}/readyz")
    assert answer.status_code == 503 and answer.json()["failing"] == ["disk", "backend"]
    assert "ConnectError" in str(answer.json()["checks"]["backend"]["answers"])
