"""/readyz: can this instance take jobs now? Each check says what it found.

The checks: the worker pool and the TTL scheduler run, the service is taking jobs
(not shutting down), the data folder can be written (a file is made and removed),
its disk has more free space than --min-free-mb, and, for a remote backend, its
model server answers (`/health` beside an --ml-url, or the --v2-url server's model
ready). The backend's answer is kept for a few seconds so frequent probes do not
load it. Everything that blocks runs in a thread.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import anyio.to_thread
import httpx

from oilspill.server.service import Service

PROBE = ".readyz-probe"
BACKEND_TTL_S = 3.0


class Readiness:
    def __init__(self, service: Service, timeout: float = 2.0) -> None:
        self.service = service
        self._client = httpx.AsyncClient(timeout=timeout, trust_env=False)
        self._backend: tuple[float, dict[str, Any]] | None = None

    async def aclose(self) -> None:
        await self._client.aclose()

    async def checks(self) -> dict[str, dict[str, Any]]:
        service = self.service
        found: dict[str, dict[str, Any]] = {
            "workers": {"ok": service.runner.alive},
            "scheduler": {"ok": service.expiry.alive},
            "accepting": {"ok": service.accepting},
            "data_dir": await anyio.to_thread.run_sync(_writable, service.store.root),
            "disk": await anyio.to_thread.run_sync(
                _free, service.store.root, service.settings.min_free_mb << 20
            ),
        }
        if service.settings.backend in ("http", "v2"):
            found["backend"] = await self._remote()
        return found

    async def _remote(self) -> dict[str, Any]:
        now = time.monotonic()
        if self._backend is not None and now - self._backend[0] < BACKEND_TTL_S:
            return self._backend[1]
        settings = self.service.settings
        if settings.backend == "http":
            urls = [_health_url(u) for u in settings.ml_urls]
        else:
            base = settings.v2_url.rstrip("/")
            urls = [f"{base}/v2/models/{quote(settings.v2_model, safe='')}/ready"]
        answers: dict[str, int | str] = {}
        for url in urls:
            try:
                answers[url] = (await self._client.get(url)).status_code
            except httpx.HTTPError as exc:
                answers[url] = f"{type(exc).__name__}: {exc}"
        ok = any(a == 200 for a in answers.values())
        result = {"ok": ok, "answers": answers}
        self._backend = (now, result)
        return result


def _health_url(url: str) -> str:
    """`/health` beside an --ml-url, as the http backend probes it."""
    parts = urlsplit(url)
    path = parts.path.rsplit("/", 1)[0] + "/health"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _writable(root: Path) -> dict[str, Any]:
    probe = root / PROBE
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"ok")
        finally:
            os.close(fd)
        probe.unlink()
    except OSError as exc:
        return {"ok": False, "detail": f"cannot write in {root}: {exc.strerror or exc}"}
    return {"ok": True}


def _free(root: Path, floor: int) -> dict[str, Any]:
    try:
        free = shutil.disk_usage(root).free
    except OSError as exc:
        return {"ok": False, "detail": f"cannot measure the disk of {root}: {exc}"}
    return {"ok": free > floor, "free_bytes": free, "floor_bytes": floor}
