"""The http backend: each image file POSTed to model servers speaking the earlier API.

`POST <url>` with the image as multipart field `file`, asking for
`Accept: application/json` first. Two answers are understood:

* our JSON result (`wire`: what `oilspill ml-serve` sends): class mask, slicks,
  ships, overlay, so the result zip is as complete as the embedded backend's;
* an image: the earlier system's annotated picture. It is kept as it came, under
  the input's name; there is no mask for it and the records say so. A mask is
  never guessed from a picture.

The coordinator decodes no input pixel: it reads the file, sends it, and writes
the answer. Several endpoints share the load (least requests in flight first,
each at most `--ml-concurrency` at once); a request that fails on a connection
error, a timeout, a 5xx or a 429 is retried on the least busy endpoint with
exponential backoff and jitter (a 429's or 503's Retry-After is honoured), never
after another 4xx. An endpoint that fails `DOWN_AFTER` times in a row is taken
out and probed (`GET /health` beside its URL) until it answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import random
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import httpx

from oilspill.backends import wire
from oilspill.backends.base import Segmentation
from oilspill.backends.cpu import CpuPool
from oilspill.config import Settings
from oilspill.errors import BackendError, ImageError
from oilspill.io import images
from oilspill.io.images import Raster

log = logging.getLogger(__name__)

ACCEPT = "application/json, image/*;q=0.9"
DOWN_AFTER = 3  # consecutive failures that take an endpoint out
BACKOFF_S = 0.2  # first retry after 0.2-0.4 s, then doubling
BACKOFF_MAX_S = 10.0
PROBE_S = 1.0  # an endpoint taken out is probed this often
NO_MASK = (
    "the model server answered with an annotated image only: no mask and no slick records "
    "(serve the model with `oilspill ml-serve`, which answers JSON, to get them)"
)


class _Retry(Exception):
    """A failure worth another try, on this or another endpoint."""

    def __init__(self, message: str, after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.after = after


@dataclass
class Endpoint:
    url: str
    slots: asyncio.Semaphore
    in_flight: int = 0
    failures: int = 0  # in a row
    down: bool = False
    outages: int = 0  # times it was taken out
    served: int = 0
    probe: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def health_url(self) -> str:
        parts = urlsplit(self.url)
        path = parts.path.rsplit("/", 1)[0] + "/health"
        return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


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
        self.endpoints = [Endpoint(u, asyncio.Semaphore(per)) for u in settings.ml_urls]
        total = per * len(self.endpoints)
        limits = httpx.Limits(max_connections=total, max_keepalive_connections=total)
        self._client = httpx.AsyncClient(timeout=self.timeout, limits=limits)
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
        data = await asyncio.to_thread(path.read_bytes)
        suffix = {"jpeg": "jpg"}.get(raster.fmt, raster.fmt)
        files = {"file": (f"image.{suffix}", data, f"image/{raster.fmt}")}
        # Our ml-serve reads the pixel size of files that state none from the query.
        pixel_size = raster.pixel_size_m or self.pixel_size_m
        params = {"pixel_size_m": str(pixel_size)} if pixel_size else {}
        response, endpoint = await self._post(files, params)
        kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == wire.MEDIA_TYPE:
            try:
                body = response.json()
            except ValueError as exc:
                raise BackendError(f"the model server at {endpoint.url} sent broken JSON") from exc
            seg = await self.cpu.run(wire.from_json, body, raster.shape, endpoint.url)
            seg.info.setdefault("backend", "http")
            seg.info["model_server"] = endpoint.url
            return seg
        return _annotated_only(response, endpoint.url)

    async def _post(
        self, files: dict[str, tuple[str, bytes, str]], params: dict[str, str]
    ) -> tuple[httpx.Response, Endpoint]:
        """POST to the least busy endpoint, retrying transient failures; the 200 answer."""
        last = "no model server configured"
        for attempt in range(self.retries + 1):
            endpoint = self._pick()
            try:
                response = await self._try(endpoint, files, params)
            except _Retry as exc:
                last = exc.message
                if attempt == self.retries:
                    break
                delay = min(BACKOFF_S * 2**attempt, BACKOFF_MAX_S)
                delay += random.uniform(0, delay)
                if exc.after is not None:
                    delay = max(delay, min(exc.after, self.timeout))
                log.info("%s; retry %d of %d in %.2fs", last, attempt + 1, self.retries, delay)
                await asyncio.sleep(delay)
                continue
            return response, endpoint
        raise BackendError(f"{last} (after {self.retries + 1} tries)")

    async def _try(
        self, endpoint: Endpoint, files: dict[str, tuple[str, bytes, str]], params: dict[str, str]
    ) -> httpx.Response:
        async with endpoint.slots:
            endpoint.in_flight += 1
            try:
                response = await self._client.post(
                    endpoint.url, files=files, params=params, headers={"Accept": ACCEPT}
                )
            except httpx.TimeoutException as exc:
                self._failed(endpoint)
                raise _Retry(f"the model server at {endpoint.url} timed out") from exc
            except httpx.HTTPError as exc:
                self._failed(endpoint)
                raise _Retry(f"the model server at {endpoint.url} failed: {exc!r}") from exc
            finally:
                endpoint.in_flight -= 1
        status = response.status_code
        if status == 429 or status >= 500:
            self._failed(endpoint)
            raise _Retry(
                f"the model server at {endpoint.url} answered {status}: {_text(response)}",
                _retry_after(response),
            )
        endpoint.failures = 0
        if status != 200:
            raise BackendError(
                f"the model server at {endpoint.url} refused the image ({status}): "
                f"{_text(response)}"
            )
        endpoint.served += 1
        return response

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
                endpoint.health_url,
            )
            endpoint.probe = asyncio.create_task(self._probe(endpoint))

    async def _probe(self, endpoint: Endpoint) -> None:
        """Probe an endpoint taken out until its /health answers 200, then put it back."""
        while endpoint.down:
            await asyncio.sleep(PROBE_S)
            with contextlib.suppress(httpx.HTTPError):
                answer = await self._client.get(endpoint.health_url, timeout=min(5.0, self.timeout))
                if answer.status_code == 200:
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
        await self._client.aclose()


def _annotated_only(response: httpx.Response, url: str) -> Segmentation:
    """An answer that should be the annotated image: checked by its magic bytes, kept as is."""
    body = response.content
    fmt = images.sniff(body[:64])
    if fmt is None:
        kind = response.headers.get("content-type", "no content type")
        raise BackendError(
            f"the model server at {url} did not answer with an image or a JSON result "
            f"({kind}, {len(body)} bytes)"
        )
    info = {"backend": "http", "model_server": url, "masks": False, "warnings": [NO_MASK]}
    return Segmentation(None, None, info=info, overlay_file=(fmt, body))


def _text(response: httpx.Response) -> str:
    return response.text[:200].strip() or "(empty body)"


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds a Retry-After header asks to wait (a number or an HTTP date), else None."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    with contextlib.suppress(ValueError):
        return max(0.0, float(value))
    with contextlib.suppress(TypeError, ValueError):
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    return None
