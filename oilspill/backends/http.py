"""The http backend: each image file POSTed to model servers speaking the earlier API.

`POST <url>` with the image as multipart field `file`, asking for
`Accept: application/json` first. Two answers are understood:

* our JSON result (`wire`: what `oilspill ml-serve` sends): class mask, slicks,
  ships, overlay, so the result zip is as complete as the embedded backend's;
* an image: the earlier system's annotated picture. It is kept as it came, under
  the input's name; there is no mask for it and the records say so. A mask is
  never guessed from a picture.

The coordinator decodes no input pixel: it reads the file, sends it, and writes
the answer. Requests run in threads on the standard library's http.client
(`transport`: 5x less CPU per image than an async client on the event loop).

Several endpoints share the load (least requests in flight first, each at most
`--ml-concurrency` at once); a request that fails on a connection error, a
timeout, a 5xx or a 429 is retried on the least busy endpoint with exponential
backoff and jitter (a 429's or 503's Retry-After is honoured), never after
another 4xx. An endpoint that fails `DOWN_AFTER` times in a row is taken out and
probed (`GET /health` beside its URL) until it answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from oilspill.backends import retry, transport, wire
from oilspill.backends.base import Segmentation
from oilspill.backends.cpu import CpuPool
from oilspill.config import Settings
from oilspill.errors import BackendError, ConfigError, ImageError
from oilspill.io import images
from oilspill.io.images import Raster

log = logging.getLogger(__name__)

ACCEPT = "application/json, image/*;q=0.9"
DOWN_AFTER = 3  # consecutive failures that take an endpoint out
PROBE_S = 1.0  # an endpoint taken out is probed this often
NO_MASK = (
    "the model server answered with an annotated image only: no mask and no slick records "
    "(serve the model with `oilspill ml-serve`, which answers JSON, to get them)"
)


@dataclass
class Endpoint:
    url: str
    slots: asyncio.Semaphore
    conns: transport.Connections
    in_flight: int = 0
    failures: int = 0  # in a row
    down: bool = False
    outages: int = 0  # times it was taken out
    served: int = 0
    probe: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def health_target(self) -> str:
        """`/health` beside the endpoint's path (`/segment` -> `/health`)."""
        return self.conns.path.rsplit("/", 1)[0] + "/health"


class HttpSegmenter:
    """Sends each image file to model servers (the earlier system's `/segment` API)."""

    name = "http"
    decodes = False

    def __init__(self, cpu: CpuPool, settings: Settings) -> None:
        self.cpu = cpu
        self.timeout = settings.ml_timeout
        self.retries = settings.ml_retries
        self.pixel_size_m = settings.pixel_size_m
        per = settings.ml_concurrency
        self.endpoints = []
        for url in settings.ml_urls:
            try:
                conns = transport.Connections(url)
            except ValueError as exc:
                raise ConfigError(f"--ml-url: {exc}") from exc
            self.endpoints.append(Endpoint(url, asyncio.Semaphore(per), conns))
        # Threads for requests in flight (and probes), apart from the CPU pool's.
        self._threads = anyio.CapacityLimiter(per * len(self.endpoints) + len(self.endpoints))
        self._turn = 0

    async def segment(self, raster: Raster) -> Segmentation:
        if raster.source is None or raster.fmt == "safe":
            raise ImageError(
                "the http backend sends image files: Sentinel-1 products need --backend sar"
            )
        path = raster.source
        size = path.stat().st_size
        if size > images.WINDOWED_ABOVE_BYTES:
            raise ImageError(
                f"the http backend sends whole image files; this one is {size >> 20} MiB, "
                f"over {images.WINDOWED_ABOVE_BYTES >> 20} MiB: use --backend sar"
            )
        body, ctype = await anyio.to_thread.run_sync(_form, path, raster.fmt)
        # Our ml-serve reads the pixel size of files that state none from the query.
        pixel_size = raster.pixel_size_m or self.pixel_size_m
        params = {"pixel_size_m": str(pixel_size)} if pixel_size else {}
        headers = {"Content-Type": ctype, "Accept": ACCEPT}
        answer, endpoint = await self._post(body, headers, params)
        if answer.media_type == wire.MEDIA_TYPE:
            seg = await self.cpu.run(_from_json, answer.body, raster.shape, endpoint.url)
            seg.info.setdefault("backend", "http")
            seg.info["model_server"] = endpoint.url
            return seg
        return _annotated_only(answer, endpoint.url)

    async def _post(
        self, body: bytes, headers: dict[str, str], params: dict[str, str]
    ) -> tuple[transport.Answer, Endpoint]:
        """POST to the least busy endpoint, retrying transient failures; the 200 answer."""

        async def attempt() -> tuple[transport.Answer, Endpoint]:
            endpoint = self._pick()  # each try goes to the least busy endpoint then
            return await self._try(endpoint, body, headers, params), endpoint

        return await retry.with_retries(attempt, self.retries, self.timeout)

    async def _try(
        self, endpoint: Endpoint, body: bytes, headers: dict[str, str], params: dict[str, str]
    ) -> transport.Answer:
        target = endpoint.conns.target(params=params)
        async with endpoint.slots:
            endpoint.in_flight += 1
            try:
                answer = await anyio.to_thread.run_sync(
                    endpoint.conns.exchange,
                    "POST",
                    target,
                    body,
                    headers,
                    self.timeout,
                    limiter=self._threads,
                    abandon_on_cancel=True,
                )
            except transport.Timeout as exc:
                self._failed(endpoint)
                raise retry.Retry(f"the model server at {endpoint.url} timed out") from exc
            except transport.Unreachable as exc:
                self._failed(endpoint)
                raise retry.Retry(f"the model server at {endpoint.url} failed: {exc}") from exc
            finally:
                endpoint.in_flight -= 1
        status = answer.status
        if status == 429 or status >= 500:
            self._failed(endpoint)
            raise retry.Retry(
                f"the model server at {endpoint.url} answered {status}: {answer.text}",
                retry.retry_after(answer.headers.get("retry-after")),
            )
        endpoint.failures = 0
        if status != 200:
            raise BackendError(
                f"the model server at {endpoint.url} refused the image ({status}): {answer.text}"
            )
        endpoint.served += 1
        return answer

    def _pick(self) -> Endpoint:
        """The endpoint with the fewest requests in flight among those up (round robin among
        equals); when all are down, the least recently failing one is tried anyway."""
        if not self.endpoints:
            raise BackendError("no model server configured (--ml-url)")
        up = [e for e in self.endpoints if not e.down] or self.endpoints
        self._turn += 1
        n = len(up)
        ordered = [up[(self._turn + i) % n] for i in range(n)]
        return min(ordered, key=lambda e: (e.in_flight, e.failures))

    def _failed(self, endpoint: Endpoint) -> None:
        endpoint.failures += 1
        if endpoint.failures >= DOWN_AFTER and not endpoint.down:
            endpoint.down = True
            endpoint.outages += 1
            log.warning(
                "model server %s failed %d times in a row: taken out, probing %s",
                endpoint.url,
                endpoint.failures,
                endpoint.health_target,
            )
            endpoint.probe = asyncio.create_task(self._probe(endpoint))

    async def _probe(self, endpoint: Endpoint) -> None:
        """Probe an endpoint taken out until its /health answers 200, then put it back."""
        while endpoint.down:
            await asyncio.sleep(PROBE_S)
            with contextlib.suppress(transport.Timeout, transport.Unreachable):
                answer = await anyio.to_thread.run_sync(
                    endpoint.conns.exchange,
                    "GET",
                    endpoint.health_target,
                    None,
                    {},
                    min(5.0, self.timeout),
                    limiter=self._threads,
                    abandon_on_cancel=True,
                )
                if answer.status == 200:
                    endpoint.down, endpoint.failures = False, 0
                    log.warning("model server %s answers again: back in", endpoint.url)

    async def start(self) -> None:
        """Nothing to wait for: a model server that is not up yet is retried, then taken
        out and probed, per request."""
        return None

    async def aclose(self) -> None:
        for endpoint in self.endpoints:
            if endpoint.probe is not None:
                endpoint.probe.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await endpoint.probe
            endpoint.conns.close()


def _form(path: Path, fmt: str) -> tuple[bytes, str]:
    """The image file as the multipart body of the earlier API (field `file`)."""
    suffix = {"jpeg": "jpg"}.get(fmt, fmt)
    return transport.multipart("file", f"image.{suffix}", f"image/{fmt}", path.read_bytes())


def _from_json(body: bytes, shape: tuple[int, int], url: str) -> Segmentation:
    try:
        value: Any = json.loads(body)
    except ValueError as exc:
        raise BackendError(f"the model server at {url} sent broken JSON") from exc
    return wire.from_json(value, shape, url)


def _annotated_only(answer: transport.Answer, url: str) -> Segmentation:
    """An answer that should be the annotated image: checked by its magic bytes, kept as is."""
    body = answer.body
    fmt = images.sniff(body[:64])
    if fmt is None:
        kind = answer.headers.get("content-type", "no content type")
        raise BackendError(
            f"the model server at {url} did not answer with an image or a JSON result "
            f"({kind}, {len(body)} bytes)"
        )
    info = {"backend": "http", "model_server": url, "masks": False, "warnings": [NO_MASK]}
    return Segmentation(None, None, info=info, overlay_file=(fmt, body))
