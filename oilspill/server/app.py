"""HTTP routes: the legacy API, the v1 API, health, readiness, metrics and the web page.

The old ML service's `/segment` and `/health` are `oilspill ml-serve` (`mlserve.app`).

Handlers are thin: they parse the request, ask the `Service`, and render.
Every error leaves through `error_response`, so every 4xx/5xx body has the
same JSON shape.

Access: with API keys configured (`auth`), uploads, the job list, DELETE and
/metrics need one; the calls by job id or user hash (status, job resource, images,
downloads, time left) stay open to whoever holds those unguessable links, as the
legacy web client expects. Each upload counts against its client's limits (`limits`).
"""

from __future__ import annotations

import contextlib
import logging
import mimetypes
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.concurrency import iterate_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.endpoints import HTTPEndpoint
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.schemas import SchemaGenerator
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oilspill import __version__
from oilspill.backends.base import Segmenter
from oilspill.config import Settings
from oilspill.errors import (
    DISK_FULL_HINT,
    ArchiveTooLarge,
    BadRequest,
    DiskFull,
    Forbidden,
    NotFound,
    OilspillError,
    error_body,
    is_disk_full,
)
from oilspill.server import archive, downloads, logs, resources, results
from oilspill.server.auth import Keys
from oilspill.server.jobs import Item, ItemStatus, Job
from oilspill.server.limits import client_of
from oilspill.server.metrics import CONTENT_TYPE, Metrics, RequestMetrics
from oilspill.server.readiness import Readiness
from oilspill.server.service import Service
from oilspill.server.upload import receive_file

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


def _service(request: Request) -> Service:
    service: Service = request.state.service
    return service


def _keys(request: Request) -> Keys:
    keys: Keys = request.state.keys
    return keys


# Errors ----------------------------------------------------------------------
async def error_response(request: Request, exc: Exception) -> Response:
    headers = {}
    if isinstance(exc, OilspillError):
        status, message, code, extra = exc.status, exc.message, exc.code, exc.extra
        headers.update(exc.headers)  # Retry-After, WWW-Authenticate, Content-Range
    elif isinstance(exc, HTTPException):
        status, message, extra = exc.status_code, str(exc.detail), {}
        headers.update(exc.headers or {})  # e.g. the Allow of a 405 (RFC 9110)
        code = {404: "not_found", 405: "method_not_allowed"}.get(status, "http_error")
    else:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        status, message, code, extra = 500, "internal error; the log has details", "internal", {}
    return JSONResponse(error_body(status, message, code, **extra), status, headers=headers)


# Intake ----------------------------------------------------------------------
async def _receive_job(request: Request) -> Job:
    service = _service(request)
    owner = _keys(request).owner(request)
    client = client_of(request, owner)
    with service.clients.upload(client):
        service.check_accepting()
        callback = request.query_params.get("callback_url")
        if callback is not None:  # refused before a byte of the body is read
            await service.webhooks.check(callback)
        room = await service.check_disk()
        path = service.store.new_upload_path()
        form: dict[str, str] = {"callback_url": ""}
        upload_name = await _receive_upload(request, service, path, room, form)
        try:
            if callback is None and form["callback_url"]:
                callback = form["callback_url"]
                await service.webhooks.check(callback)
        except BaseException:
            await anyio.to_thread.run_sync(lambda: path.unlink(missing_ok=True))
            raise
        job = await service.create_job(
            path, upload_name, owner=owner, client=client, callback_url=callback
        )
    log.info("job %s created: %d images, %d skipped", job.id, job.total, len(job.skipped))
    return job


async def _receive_upload(
    request: Request, service: Service, path: Path, room: int, form: dict[str, str]
) -> str:
    """Stream the upload's zip to `path` (deleted on error); its text fields into `form`."""
    try:
        try:
            upload_name = await receive_file(
                request,
                path,
                field="file",
                max_bytes=min(service.settings.max_upload_bytes, room),
                fields=form,
            )
        except OSError as exc:
            if is_disk_full(exc):
                raise DiskFull(DISK_FULL_HINT) from exc
            raise
        except ArchiveTooLarge as exc:
            if room < service.settings.max_upload_bytes:
                raise DiskFull(
                    f"the upload does not fit in the {room >> 20} MiB the data folder has room for "
                    "(above the disk's free-space floor, --min-free-mb, and under its cap, "
                    "--max-data-mb); nothing was kept: try again later, or send a smaller zip"
                ) from exc
            raise
    except BaseException:
        await anyio.to_thread.run_sync(lambda: path.unlink(missing_ok=True))
        raise
    size = await anyio.to_thread.run_sync(lambda: path.stat().st_size)
    service.metrics.uploaded.inc(size)
    return upload_name


async def legacy_upload(request: Request) -> Response:
    """
    summary: Upload a zip of images (legacy API)
    requestBody:
      content:
        multipart/form-data:
          schema:
            type: object
            properties:
              file: {type: string, format: binary}
              callback_url: {type: string, description: "Where the finished job is POSTed"}
    responses:
      200: {description: '{"status": "processing", "job_id": ..., "user_hash": ...}'}
      400: {description: "Not a zip, damaged, encrypted, unsafe names, no images, bad callback"}
      401: {description: "API keys are on and the request has no valid one"}
      413: {description: "Over a size limit (upload, entries, unpacked size, ratio, pixels)"}
      429: {description: "Past this client's limits; see Retry-After"}
      503: {description: "Queue full or shutting down; see Retry-After"}
    """
    job = await _receive_job(request)
    return JSONResponse({"status": "processing", "job_id": job.id, "user_hash": job.user_hash})


async def create_job(request: Request) -> Response:
    """
    summary: Upload a zip of images; answers with the new job resource
    requestBody:
      content:
        multipart/form-data:
          schema:
            type: object
            properties:
              file: {type: string, format: binary}
              callback_url: {type: string, description: "Where the finished job is POSTed"}
    responses:
      202: {description: "The job resource; Location points at it"}
      400: {description: "Not a zip, damaged, encrypted, unsafe names, no images, bad callback"}
      401: {description: "API keys are on and the request has no valid one"}
      413: {description: "Over a size limit"}
      429: {description: "Past this client's limits; see Retry-After"}
      503: {description: "Queue full or shutting down; see Retry-After"}
    """
    job = await _receive_job(request)
    return JSONResponse(
        resources.job_resource(job), 202, headers={"Location": f"/api/v1/jobs/{job.id}"}
    )


async def list_jobs(request: Request) -> Response:
    """
    summary: The caller's jobs (by API key), newest first, without their images
    responses:
      200: {description: '{"jobs": [...]}: each job resource without images'}
      401: {description: "No valid API key"}
      403: {description: "The server has no API keys: jobs belong to no one to list them by"}
    """
    keys = _keys(request)
    if not keys.enabled:
        raise Forbidden(
            "jobs are listed by API key and this server has none (--api-key); keep the "
            "job ids your uploads answered with"
        )
    owner = keys.owner(request)
    assert owner is not None
    service = _service(request)
    listed = []
    for job in service.owned_jobs(owner):
        resource = resources.job_resource(job, 0, 1)
        listed.append({k: v for k, v in resource.items() if k not in ("images", "page")})
    return JSONResponse({"jobs": listed})


# Status ----------------------------------------------------------------------
async def legacy_status(request: Request) -> Response:
    """
    summary: A job's status (legacy API)
    responses:
      200:
        description: '{"status": PENDING|STARTED|SUCCESS|FAILURE, "result", "processed", "total"}'
      404: {description: "Unknown job"}
    """
    job = _service(request).get(request.path_params["job_id"])
    return JSONResponse(resources.legacy_status(job))


async def get_job(request: Request) -> Response:
    """
    summary: The job resource, with progress and per-image results (?offset=&limit=, pages of 1000)
    responses:
      200: {description: "State, progress, images (one page), timestamps and links"}
      400: {description: "offset or limit not a whole number"}
      404: {description: "Unknown, expired or deleted job"}
    """
    service = _service(request)
    job = service.get(request.path_params["job_id"])
    offset = _int_param(request, "offset", 0)
    limit = _int_param(request, "limit", resources.PAGE_LIMIT)
    busy = service.runner.processing(job.id)
    if min(limit, job.total - offset) <= 200:
        pages: resources.PageCache = request.state.pages
        return Response(pages.body(job, offset, limit, busy), media_type="application/json")
    # A big page is built and encoded off the event loop (~0.15 ms per image).
    body = await anyio.to_thread.run_sync(
        lambda: JSONResponse(resources.job_resource(job, offset, limit, busy)).body
    )
    return Response(body, media_type="application/json")


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()):
        raise BadRequest(f"?{name}= takes a whole number >= 0, not {raw!r}")
    return int(raw)


async def delete_job(request: Request) -> Response:
    """
    summary: Cancel a job and delete its files now
    responses:
      204: {description: "Deleted"}
      401: {description: "API keys are on and the request has no valid one"}
      404: {description: "Unknown job (or another key's)"}
    """
    owner = _keys(request).owner(request)
    await _service(request).delete(request.path_params["job_id"], owner)
    return Response(status_code=204)


async def legacy_time_left(request: Request) -> Response:
    """
    summary: Seconds until a result is deleted (legacy API); 0 when unknown or not ready
    responses:
      200: {description: '{"seconds_left": N}'}
    """
    try:
        job = _service(request).get_by_hash(request.path_params["user_hash"])
    except NotFound:
        return JSONResponse({"seconds_left": 0})
    return JSONResponse({"seconds_left": job.seconds_left()})


# Results ---------------------------------------------------------------------
async def _zip_response(request: Request, service: Service, job: Job) -> Response:
    """The result zip (or one byte range of it), streamed under a read lease: expiry or
    DELETE waits for it to end."""
    service.finished_job(job)
    service.lease(job)
    try:
        result = await anyio.to_thread.run_sync(archive.build, service.store, job)
        validators = downloads.Validators(f'"{result.version}"', result.modified)
        wanted = downloads.requested(request.headers, result.size, validators)
    except BaseException:
        service.release(job.id)
        raise
    headers = {
        "Content-Disposition": f'attachment; filename="result_{job.user_hash}.zip"',
        "Content-Length": str(result.size),
        **validators.headers(),
    }
    status = 200
    if wanted is not None:
        status = 206
        headers.update(downloads.partial_headers(*wanted, result.size))
    if request.method == "HEAD":  # no body: the lease ends now, not with a stream never read
        service.release(job.id)
        return Response(None, status, headers=headers, media_type="application/zip")
    chunks = result.chunks(*wanted) if wanted else iter(result)
    body = _leased(service, job.id, iterate_in_threadpool(chunks))
    return StreamingResponse(body, status, media_type="application/zip", headers=headers)


async def _leased(
    service: Service, job_id: str, chunks: AsyncIterator[bytes]
) -> AsyncIterator[bytes]:
    """Pass `chunks` through, counting them, releasing the job's read lease when done,
    failed or dropped."""
    try:
        async for chunk in chunks:
            service.metrics.downloaded.inc(len(chunk))
            yield chunk
    finally:
        service.release(job_id)


async def _open_file(
    request: Request, service: Service, path: Path, job: Job, headers: dict[str, str]
) -> Response:
    """Stream one output file (or a byte range of it), opened now: a deletion after this
    cannot cut it short."""
    try:
        fh = await anyio.open_file(path, "rb")
    except FileNotFoundError:
        raise NotFound(f"the files of job {job.id} are gone (expired or deleted)") from None
    try:
        stat = await anyio.to_thread.run_sync(os.fstat, fh.wrapped.fileno())
        validators = downloads.Validators(
            f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"', stat.st_mtime_ns / 1e9
        )
        wanted = downloads.requested(request.headers, stat.st_size, validators)
        first, last = wanted or (0, stat.st_size - 1)
        if first:
            await fh.seek(first)
    except BaseException:
        await fh.aclose()
        raise

    async def body() -> AsyncIterator[bytes]:
        left = last - first + 1
        try:
            while left > 0 and (chunk := await fh.read(min(1 << 16, left))):
                left -= len(chunk)
                service.metrics.downloaded.inc(len(chunk))
                yield chunk
        finally:
            await fh.aclose()

    media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    headers = {**headers, **validators.headers(), "Content-Length": str(stat.st_size)}
    if wanted is not None:
        headers.update(downloads.partial_headers(first, last, stat.st_size))
    status = 206 if wanted else 200
    if request.method == "HEAD":  # no body: the file is closed now, not by a stream never read
        await fh.aclose()
        return Response(None, status, headers=headers, media_type=media)
    return StreamingResponse(body(), status, media_type=media, headers=headers)


async def legacy_download(request: Request) -> Response:
    """
    summary: Download the result zip (legacy API), streamed; Range requests resume it
    responses:
      200: {description: "application/zip"}
      206: {description: "The byte range asked for (Range, If-Range)"}
      404: {description: "Unknown or expired"}
      409: {description: "Not finished yet"}
      416: {description: "The range starts past the end"}
    """
    service = _service(request)
    job = service.get_by_hash(request.path_params["user_hash"])
    return await _zip_response(request, service, job)


async def job_result(request: Request) -> Response:
    """
    summary: Download the job's result zip, streamed; Range requests resume it
    responses:
      200: {description: "application/zip"}
      206: {description: "The byte range asked for (Range, If-Range)"}
      404: {description: "Unknown or expired"}
      409: {description: "Not finished yet"}
      416: {description: "The range starts past the end"}
    """
    service = _service(request)
    return await _zip_response(request, service, service.get(request.path_params["job_id"]))


def _done_item(service: Service, job: Job, raw_index: str) -> int:
    if not (raw_index.isascii() and raw_index.isdigit()) or int(raw_index) >= job.total:
        raise NotFound(f"job {job.id} has no image {raw_index!r}")
    index = int(raw_index)
    if job.items[index].status is not ItemStatus.DONE:
        raise NotFound(f"image {index} of job {job.id} has no results ({job.items[index].status})")
    return index


async def image_detail(request: Request) -> Response:
    """
    summary: One image's full record (slicks with features and confidence, ships, detector info)
    responses:
      200: {description: "The record"}
      404: {description: "Unknown job or image, or image not processed"}
    """
    service = _service(request)
    job = service.get(request.path_params["job_id"])
    index = _done_item(service, job, request.path_params["index"])
    record = await anyio.to_thread.run_sync(service.store.load_item_result, job.id, index)
    if record is None:
        raise NotFound(f"image {index} of job {job.id} has no record")
    return JSONResponse({"index": index, "name": job.items[index].name, **record})


async def image_file(request: Request) -> Response:
    """
    summary: An image's overlay, original preview, thumbnail or class mask, while the job lives
    responses:
      200: {description: "The image"}
      206: {description: "The byte range asked for (Range, If-Range)"}
      404: {description: "Unknown job, image or kind"}
      416: {description: "The range starts past the end"}
    """
    service = _service(request)
    job = service.get(request.path_params["job_id"])
    index = _done_item(service, job, request.path_params["index"])
    kind = request.path_params["kind"]
    item = job.items[index]
    suffixes = results.output_suffixes(kind, item)
    if not suffixes:
        raise NotFound(f"no image kind {kind!r}; use one of {', '.join(results.KINDS)}")
    if not item.masks and kind in results.MASK_KINDS:
        raise NotFound(
            f"this image has no {kind}: the model server answered with an annotated image only"
        )
    paths = [service.store.out_path(job.id, index, suffix) for suffix in suffixes]
    path = paths[0] if len(paths) == 1 else await anyio.to_thread.run_sync(_first_file, paths)
    name = _file_name(item, kind, path.suffix)
    headers = {
        "Cache-Control": "private, max-age=600",
        "Content-Disposition": downloads.content_disposition("inline", name),
    }
    return await _open_file(request, service, path, job, headers)


def _first_file(paths: list[Path]) -> Path:
    """The first of `paths` that is a file, else the first (which then cannot be opened)."""
    return next((path for path in paths if path.is_file()), paths[0])


def _file_name(item: Item, kind: str, suffix: str) -> str:
    """The name a saved image file gets: the input's, or its stem, what it is and `suffix`."""
    stem = item.name.replace("\\", "/").rpartition("/")[2].rpartition(".")[0] or "image"
    if kind == "overlay":
        return item.name
    if kind == "mask":
        return item.mask_name
    if kind == "mask-preview":
        return item.mask_preview_name
    return f"{stem}.{kind}{suffix}"


# Health ----------------------------------------------------------------------------
async def healthz(request: Request) -> Response:
    """
    summary: Liveness and load
    responses:
      200: {description: "Status, backend, workers, jobs and queued images"}
      503: {description: 'The worker pool or the TTL scheduler has died (status "broken")'}
    """
    service = _service(request)
    alive = service.runner.alive and service.expiry.alive
    return JSONResponse(
        {
            "status": ("ok" if service.accepting else "stopping") if alive else "broken",
            "version": __version__,
            "backend": service.segmenter.name,
            "workers": service.runner.workers,
            "jobs": len(service.jobs),
            "queued_images": service.runner.queued_images,
            "ttl": service.settings.ttl,
            "max_upload_bytes": service.settings.max_upload_bytes,
        },
        200 if alive else 503,
    )


async def readyz(request: Request) -> Response:
    """
    summary: Readiness to take jobs, each check listed
    responses:
      200: {description: '{"ready": true, "checks": {...}}'}
      503: {description: "Not ready: the failing checks are listed"}
    """
    readiness: Readiness = request.state.readiness
    checks = await readiness.checks()
    failing = [name for name, check in checks.items() if not check["ok"]]
    if not failing:
        return JSONResponse({"ready": True, "checks": checks})
    message = f"not ready: {', '.join(failing)} failing"
    body = error_body(503, message, "not_ready", ready=False, failing=failing, checks=checks)
    return JSONResponse(body, 503, headers={"Retry-After": "10"})


async def metrics(request: Request) -> Response:
    """
    summary: Prometheus metrics (text format); needs an API key when keys are on
    responses:
      200: {description: "text/plain; version=0.0.4"}
      401: {description: "API keys are on and the request has no valid one"}
    """
    _keys(request).owner(request)
    service = _service(request)
    found = service.metrics
    found.set_jobs(service.job_states())
    found.queue_depth.set(service.runner.queued_images)
    found.busy_workers.set(service.runner.busy)
    found.workers.set(service.runner.workers)
    found.data_bytes.set(await service.data_bytes())
    usage = await anyio.to_thread.run_sync(shutil.disk_usage, service.store.root)
    found.disk_free.set(usage.free)
    body = await anyio.to_thread.run_sync(found.render)
    return Response(body, headers={"Content-Type": CONTENT_TYPE})


# Web page and schema -----------------------------------------------------------
async def index(request: Request) -> Response:
    page = STATIC / "index.html"
    if not page.is_file():
        raise NotFound("the web page is not installed")
    return FileResponse(page, headers={"Cache-Control": "no-cache"})


async def openapi(request: Request) -> Response:
    return JSONResponse(_with_path_parameters(_schemas.get_schema(routes=request.app.routes)))


def _with_path_parameters(schema: dict[str, Any]) -> dict[str, Any]:
    """Declare each `{name}` of a path as a required path parameter (Starlette does not)."""
    for path, operations in schema.get("paths", {}).items():
        names = re.findall(r"{(\w+)}", path)
        for operation in operations.values():
            params = []
            for n in names:
                kind = {"type": "integer", "minimum": 0} if n == "index" else {"type": "string"}
                params.append({"name": n, "in": "path", "required": True, "schema": kind})
            operation.setdefault("parameters", params)
    return schema


class _JobsEndpoint(HTTPEndpoint):
    """POST (a new job) and GET (the caller's jobs) of the job collection."""

    post = staticmethod(create_job)
    get = staticmethod(list_jobs)


class _JobEndpoint(HTTPEndpoint):
    """GET and DELETE of one job, on one route: a 405 lists both in Allow."""

    get = staticmethod(get_job)
    delete = staticmethod(delete_job)


_schemas = SchemaGenerator(
    {"openapi": "3.0.0", "info": {"title": "oilspill", "version": __version__}}
)


class _SafeHeaders:
    """ASGI middleware: `X-Content-Type-Options: nosniff` on every answer, and no Referer
    leaves the page (its address holds a job id, which is a capability)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def safe(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Content-Type-Options"] = "nosniff"
                headers.setdefault("Referrer-Policy", "no-referrer")
            await send(message)

        await self.app(scope, receive, safe if scope["type"] == "http" else send)


def create_app(settings: Settings, segmenter: Segmenter | None = None) -> Starlette:
    """Build the ASGI app; the service starts and stops with the app's lifespan.

    `app.state.keys` holds the API keys (the CLI reloads them on SIGHUP) and
    `app.state.metrics` the metrics, both made here, before the service starts."""
    keys = Keys.from_settings(settings)
    found = Metrics(settings.backend)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with Service(settings, segmenter, metrics=found) as service:
            readiness = Readiness(service)
            app.state.service = service  # for tests and debugging; handlers use request.state
            try:
                pages = resources.PageCache()
                yield {"service": service, "keys": keys, "readiness": readiness, "pages": pages}
            finally:
                await readiness.aclose()

    job = "/api/v1/jobs/{job_id}"
    routes = [
        Route("/api/upload", legacy_upload, methods=["POST"]),
        Route("/api/status/{job_id}", legacy_status),
        Route("/api/download/{user_hash}", legacy_download),
        Route("/api/archive_time_left/{user_hash}", legacy_time_left),
        Route("/api/v1/jobs", _JobsEndpoint),
        Route(job, _JobEndpoint),
        Route(f"{job}/result.zip", job_result),
        Route(f"{job}/images/{{index}}", image_detail),
        Route(f"{job}/images/{{index}}/{{kind}}", image_file),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        Route("/openapi.json", openapi, include_in_schema=False),
        Route("/", index, include_in_schema=False),
        Route("/jobs/{job_id}", index, include_in_schema=False),
        Mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static"),
    ]
    middleware = [
        Middleware(logs.RequestId),
        Middleware(RequestMetrics, metrics=found),
        Middleware(_SafeHeaders),
        Middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["*"],
            expose_headers=[
                "Content-Disposition", "Content-Length", "Retry-After", "Location",
                "Accept-Ranges", "Content-Range", "ETag", "Last-Modified", "X-Request-ID",
            ],
        ),
    ]  # fmt: skip
    handlers: dict[Any, Any] = {Exception: error_response, HTTPException: error_response}
    handlers[OilspillError] = error_response
    app = Starlette(
        routes=routes, middleware=middleware, exception_handlers=handlers, lifespan=lifespan
    )
    app.state.keys = keys
    app.state.metrics = found
    return app
