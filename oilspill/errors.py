"""One error hierarchy; each error knows its HTTP status and says what to do.

The app turns any `OilspillError` into `error_body(...)` JSON, the shape the
old FastAPI service used (`detail`), plus a machine-readable `error` code.
"""

from __future__ import annotations

import errno
from typing import Any


class OilspillError(Exception):
    """Base: a message for a person, an HTTP status and a short code for programs."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra
        self.headers: dict[str, str] = {}  # sent with the error response (Retry-After, ...)


class ConfigError(OilspillError):
    """A setting has a value the service cannot run with."""

    code = "bad_config"


class DataDirInUse(ConfigError):
    """Another server holds the data folder's lock."""

    code = "data_dir_in_use"


class BadRequest(OilspillError):
    status = 400
    code = "bad_request"


class BadArchive(BadRequest):
    """The upload is not a zip we can safely read: not a zip, truncated, encrypted, unsafe."""

    code = "bad_archive"


class NoImages(BadRequest):
    code = "no_images"


class SlowUpload(BadRequest):
    """The client sent its body too slowly (idle, or under the minimum rate)."""

    status = 408
    code = "request_timeout"


class ClientGone(BadRequest):
    """The client disconnected before its request was read; nobody reads the answer."""

    status = 499
    code = "client_closed_request"


class ArchiveTooLarge(OilspillError):
    """Upload, entry count, unpacked size or ratio beyond a configured limit."""

    status = 413
    code = "too_large"


class CallbackRefused(BadRequest):
    """A webhook destination the service will not call (SSRF guard, --webhook-allow)."""

    code = "callback_refused"


class Unauthorized(OilspillError):
    """No API key, or one the server does not hold, on a call that needs one."""

    status = 401
    code = "unauthorized"

    def __init__(self, message: str, *, invalid: bool = False) -> None:
        super().__init__(message)
        error = ', error="invalid_token"' if invalid else ""
        self.headers["WWW-Authenticate"] = f'Bearer realm="oilspill"{error}'


class Forbidden(OilspillError):
    status = 403
    code = "forbidden"


class TooManyRequests(OilspillError):
    """A client is past its own limit (unfinished jobs, uploads per minute)."""

    status = 429
    code = "too_many_requests"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.headers["Retry-After"] = str(retry_after)


class RangeNotSatisfiable(OilspillError):
    status = 416
    code = "range_not_satisfiable"

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.headers["Content-Range"] = f"bytes */{size}"


class NotFound(OilspillError):
    status = 404
    code = "not_found"


class ExpiredOrDeleted(NotFound):
    """A job that existed here but expired or was deleted (still 404, as the old API had)."""

    code = "gone"


class NotReady(OilspillError):
    status = 409
    code = "not_ready"


class Busy(OilspillError):
    """The queue is full or the service is shutting down; try again later."""

    status = 503
    code = "busy"

    def __init__(self, message: str, retry_after: int = 30) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.headers["Retry-After"] = str(retry_after)


class DiskFull(OilspillError):
    """The data folder's disk is below its free-space floor; nothing was kept."""

    status = 507
    code = "insufficient_storage"


def is_disk_full(exc: BaseException) -> bool:
    """True for the OSErrors of a full disk or an exhausted quota."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


DISK_FULL_HINT = "the server's disk is full: nothing was kept; try again later"


class ImageError(OilspillError):
    """One image cannot be read or segmented; it is reported and the job goes on."""

    status = 422
    code = "bad_image"


class WorkerDied(ImageError):
    """The worker process segmenting an image died (killed for memory, or a native crash)."""

    code = "worker_died"


class NotRun(OilspillError):
    """A call a worker process had not started when the service began to stop: never run
    (its image stays pending, and is processed after the restart)."""

    status = 503
    code = "stopping"


class BackendError(ImageError):
    """The remote segmenter failed for one image."""

    code = "backend_error"


def error_body(status: int, message: str, code: str, **extra: Any) -> dict[str, Any]:
    """The JSON body of every error response."""
    return {"detail": message, "error": code, "status": status, **extra}
