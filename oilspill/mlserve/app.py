"""The model service: `POST /segment`, `GET /health`, `GET /stats`.

The earlier system's ML service contract, exactly: `POST /segment` with the
image as multipart field `file` answers with the annotated image in the
input's format (PNG for TIFF inputs). With `Accept: application/json` it
answers with our JSON result instead (`backends.wire`: class mask, slicks,
ships, overlay, quicklook, timings), which is what the http backend asks for.
`?pixel_size_m=` gives the ground pixel size for files that state none.

One process; images are decoded and segmented in the CPU pool, at most
`--workers` at once, so the event loop keeps answering `/health`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from oilspill import __version__
from oilspill.backends import CpuPool, make_segmenter, wire
from oilspill.backends.base import Segmentation, Segmenter
from oilspill.config import Settings
from oilspill.errors import BadRequest, ConfigError, ImageError, OilspillError, error_body
from oilspill.io import images
from oilspill.io.images import Raster
from oilspill.server import results
from oilspill.server.upload import receive_file

log = logging.getLogger(__name__)


@dataclass
class Stats:
    requests: int = 0
    errors: int = 0
    in_flight: int = 0
    seconds: float = 0.0  # total processing time of the answered requests

    def to_dict(self) -> dict[str, Any]:
        answered = self.requests - self.errors
        return {
            "requests": self.requests,
            "errors": self.errors,
            "in_flight": self.in_flight,
            "mean_ms": round(1000 * self.seconds / answered, 1) if answered else None,
        }


@dataclass
class ModelService:
    settings: Settings
    cpu: CpuPool
    segmenter: Segmenter
    stats: Stats
    tmp: Path


def create_ml_app(settings: Settings, segmenter: Segmenter | None = None) -> Starlette:
    """The model service's ASGI app; its backend is `settings.backend` (sar or onnx)."""
    if segmenter is None and settings.backend not in ("sar", "onnx"):
        raise ConfigError("ml-serve runs an in-process backend: --backend sar or onnx")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        cpu = CpuPool(settings.worker_count)
        seg = segmenter or make_segmenter(settings, cpu)
        await seg.start()
        with tempfile.TemporaryDirectory(prefix="oilspill-ml-") as tmp:
            service = ModelService(settings, cpu, seg, Stats(), Path(tmp))
            log.info("ml-serve ready: backend=%s workers=%d", seg.name, settings.worker_count)
            try:
                yield {"ml": service}
            finally:
                await seg.aclose()
                await cpu.aclose()

    routes = [
        Route("/segment", segment, methods=["POST"]),
        Route("/health", health),
        Route("/stats", stats),
    ]
    handlers: dict[Any, Any] = {Exception: _error, HTTPException: _error, OilspillError: _error}
    return Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def stats(request: Request) -> Response:
    ml: ModelService = request.state.ml
    return JSONResponse(
        {"version": __version__, "backend": ml.segmenter.name, **ml.stats.to_dict()}
    )


async def segment(request: Request) -> Response:
    ml: ModelService = request.state.ml
    ml.stats.requests += 1
    ml.stats.in_flight += 1
    started = time.perf_counter()
    try:
        response = await _segment(request, ml)
    except BaseException:
        ml.stats.errors += 1
        raise
    finally:
        ml.stats.in_flight -= 1
    ml.stats.seconds += time.perf_counter() - started
    return response


async def _segment(request: Request, ml: ModelService) -> Response:
    pixel_size = _pixel_size(request.query_params.get("pixel_size_m"))
    fd, tmp = tempfile.mkstemp(dir=ml.tmp, suffix=".img")
    path = Path(tmp)
    os.close(fd)
    try:
        name = await receive_file(
            request,
            path,
            field="file",
            max_bytes=ml.settings.max_upload_bytes,
            what="the image",
        )
        t0 = time.perf_counter()
        raster = await ml.cpu.run(_load, path, name or "image", ml.settings)
        try:
            if pixel_size and not raster.pixel_size_m:
                raster.pixel_size_m = pixel_size
            t1 = time.perf_counter()
            seg = await ml.segmenter.segment(raster)
            t2 = time.perf_counter()
            want_json = _wants_json(request.headers.get("accept", ""))
            return await ml.cpu.run(_answer, raster, seg, want_json, (t0, t1, t2))
        finally:
            raster.close()
    finally:
        await anyio.Path(path).unlink(missing_ok=True)


def _load(path: Path, name: str, settings: Settings) -> Raster:
    with path.open("rb") as fh:
        fmt = images.sniff(fh.read(64))
    if fmt is None:
        raise ImageError("the file is not a PNG, JPEG, WebP, BMP or TIFF image")
    raster = images.load(path, name, fmt, settings.read_options)
    if raster.windowed:
        raster.close()
        raise ImageError(
            f"images over {images.WINDOWED_ABOVE_BYTES >> 20} MiB decoded are segmented by "
            "`oilspill serve --backend sar`, which reads them window by window"
        )
    if settings.pixel_size_m and not raster.pixel_size_m:
        raster.pixel_size_m = settings.pixel_size_m
    return raster


def _answer(
    raster: Raster, seg: Segmentation, want_json: bool, times: tuple[float, float, float]
) -> Response:
    """The overlay in the input's format (PNG for TIFF), or the JSON result (blocking)."""
    assert seg.overlay is not None
    fmt = raster.fmt if raster.fmt in ("png", "jpeg", "webp", "bmp") else "png"
    overlay = seg.overlay
    if fmt == "jpeg" and overlay.ndim == 3 and overlay.shape[2] == 4:
        overlay = overlay[..., :3]
    encoded = images.encode(overlay, fmt)
    if not want_json:
        return Response(encoded, media_type=f"image/{fmt}")
    t0, t1, t2 = times
    timings = {
        "decode": round(1000 * (t1 - t0), 1),
        "segment": round(1000 * (t2 - t1), 1),
        "encode": round(1000 * (time.perf_counter() - t2), 1),
    }
    if seg.quicklook is not None:
        seg.quicklook = images.fit_within(seg.quicklook, 1600)
    assert seg.mask is not None
    thumb, preview = results.thumbnail(seg.overlay), results.mask_preview(seg.mask)
    body = wire.to_json(seg, (fmt, encoded), raster.shape, timings, thumb, preview)
    return JSONResponse(body, media_type=wire.MEDIA_TYPE)


def _wants_json(accept: str) -> bool:
    """True when the client ranks JSON at least as high as images."""
    best: dict[str, float] = {}
    for part in accept.split(","):
        kind, _, params = part.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            key, _, value = p.strip().partition("=")
            if key == "q":
                with contextlib.suppress(ValueError):
                    q = float(value)
        best[kind.strip().lower()] = max(q, best.get(kind.strip().lower(), 0.0))
    as_json = best.get(wire.MEDIA_TYPE, 0.0)
    as_image = max((q for k, q in best.items() if k.startswith("image/") or k == "*/*"), default=0)
    return as_json > 0 and as_json >= as_image


def _pixel_size(value: str | None) -> float | None:
    if not value:
        return None
    try:
        size = float(value)
    except ValueError as exc:
        raise BadRequest(f"pixel_size_m must be a number of metres, not {value!r}") from exc
    if not 0 < size < 1e6:
        raise BadRequest(f"pixel_size_m must be a positive number of metres, not {value!r}")
    return size


async def _error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, OilspillError):
        status, message, code = exc.status, exc.message, exc.code
    elif isinstance(exc, HTTPException):
        status, message = exc.status_code, str(exc.detail)
        code = {404: "not_found", 405: "method_not_allowed"}.get(status, "http_error")
    else:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        status, message, code = 500, "internal error; the log has details", "internal"
    return JSONResponse(error_body(status, message, code), status)
