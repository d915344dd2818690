"""Test helpers: SAR-like images made in code, zips, polling, and a real server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import uvicorn


def sar_image(seed: int = 0, size: tuple[int, int] = (320, 240), slick: bool = True) -> np.ndarray:
    """A small 8-bit SAR-like quicklook: speckled sea with one dark, sharp, elongated slick."""
    rng = np.random.default_rng(seed)
    width, height = size
    ramp = np.linspace(-6.0, -14.0, width, dtype=np.float32)[None, :]  # incidence falloff, dB
    sigma0 = 10 ** (ramp / 10) * rng.gamma(3.0, 1 / 3.0, (height, width)).astype(np.float32)
    if slick:
        mask = np.zeros((height, width), np.uint8)
        cx, cy = width // 2, height // 2
        cv2.ellipse(mask, (cx, cy), (width // 4, height // 14), 20, 0, 360, 1, -1)
        sigma0[mask > 0] *= 10 ** (-8 / 10)
    db = 10 * np.log10(np.maximum(sigma0, 1e-6))
    return np.clip((db + 25) * 255 / 25, 0, 255).astype(np.uint8)


def encode(img: np.ndarray, ext: str = ".png") -> bytes:
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return bytes(buf)


def make_zip(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def image_zip(n: int = 3, size: tuple[int, int] = (320, 240), prefix: str = "scene") -> bytes:
    return make_zip({f"{prefix}_{i:02d}.png": encode(sar_image(i, size)) for i in range(n)})


def wait_for(client: Any, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    """Poll the legacy status until the job finishes or the deadline passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(f"/api/status/{job_id}").json()
        if body["status"] in ("SUCCESS", "FAILURE"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish in {timeout}s")


def upload(client: Any, data: bytes, name: str = "images.zip", url: str = "/api/upload") -> Any:
    return client.post(url, files={"file": (name, data, "application/zip")})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """`python -m oilspill serve` (or `ml-serve`, without a data folder) as a subprocess on
    127.0.0.1."""

    def __init__(self, data_dir: Path, *args: str, command: str = "serve") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir.parent / f"{command}-{self.port}.log"
        self.health = "/healthz" if command == "serve" else "/health"
        cmd = [sys.executable, "-m", "oilspill", command, "--port", str(self.port)]
        if command == "serve":
            cmd += ["--data-dir", str(data_dir)]
        cmd += args
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._log_fh = self.log.open("wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log_fh, stderr=subprocess.STDOUT, env=env)
        self.wait_until_responds()

    def wait_until_responds(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}{self.health}", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError(f"server did not answer in {timeout}s: {self.log.read_text()}")

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def stop(self, kill: bool = False) -> int:
        if self.proc.poll() is None:
            self.proc.kill() if kill else self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_fh.close()
        return self.proc.returncode


@contextlib.contextmanager
def serve_in_thread(app: Any, **config: Any) -> Iterator[uvicorn.Server]:
    """An ASGI app under uvicorn on 127.0.0.1 in a thread, on `server.config.port` (a free
    one), until the block ends; start and stop are bounded."""
    port = free_port()
    options = {"log_level": "error", **config}
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, f"the test server on port {port} did not start"
    try:
        yield server
    finally:
        server.should_exit = True
        thread.join(timeout=10)
