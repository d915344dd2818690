"""Log context and the JSON log format.

`request_id` and `job_id` are context variables: the request middleware sets the
first (from `X-Request-ID`, or a new one, echoed back), a worker sets the second
for the image it has in hand. `JsonFormatter` writes each record as one JSON
object per line with both; a line that names a job ("job <id> ...", or a request
line's /jobs/<id> or /status/<id>) without that context gets its id from the text.
The CLI installs the formatter (only it configures logging).
"""

from __future__ import annotations

import contextvars
import datetime
import json
import logging
import re
import uuid
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "oilspill_request_id", default=None
)
job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("oilspill_job_id", default=None)

_JOB_IN_TEXT = re.compile(r"\bjob ([0-9a-f]{32})\b|/(?:jobs|status)/([0-9a-f]{32})\b")
_GOOD_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")  # what we echo and log as given


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, event, job_id,
    request_id, and exception when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        event = record.getMessage()
        job = getattr(record, "job_id", None) or job_id.get()
        if job is None and (found := _JOB_IN_TEXT.search(event)):
            job = found.group(1) or found.group(2)
        line: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": event,
            "job_id": job,
            "request_id": getattr(record, "request_id", None) or request_id.get(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class RequestId:
    """ASGI middleware: each request's id, taken from `X-Request-ID` when it is a sane token
    (at most 128 characters), else a new one; in the log context and echoed back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"")
        text = given.decode("latin-1")
        rid = text if _GOOD_ID.match(text) else uuid.uuid4().hex
        token = request_id.set(rid)

        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["X-Request-ID"] = rid
            await send(message)

        try:
            await self.app(scope, receive, tagged)
        finally:
            request_id.reset(token)
