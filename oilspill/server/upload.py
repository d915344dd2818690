"""Receive a multipart upload straight to a file, in chunks, with a size limit.

Starlette's `request.form()` would spool the file to a temporary file and we
would copy it again; parsing the stream ourselves writes each byte once and
stops at the limit, whatever the client sends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiofiles
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from oilspill.errors import ArchiveTooLarge, BadRequest, ClientGone, SlowUpload

_FLUSH_BYTES = 1 << 20
IDLE_S = 30.0  # longest wait for the next piece of a body
MIN_RATE = 8 << 10  # bytes/s a body must average once GRACE_S have passed
GRACE_S = 30.0
_OVERHEAD = 1 << 20  # multipart headers and small fields allowed beyond the file's limit
MAX_TEXT_FIELD = 4096  # bytes of a text field read beside the file (`fields`)


async def _paced(request: Request) -> AsyncIterator[bytes]:
    """The request body, refused when it stalls or trickles (a slow-loris client)."""
    started = time.monotonic()
    received = 0
    chunks = request.stream().__aiter__()
    while True:
        try:
            async with asyncio.timeout(IDLE_S):
                chunk = await chunks.__anext__()
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise SlowUpload(f"no data for {IDLE_S:.0f} s; the upload was dropped") from None
        except ClientDisconnect:
            raise ClientGone("the client disconnected during the upload") from None
        received += len(chunk)
        elapsed = time.monotonic() - started
        if elapsed > GRACE_S and received < MIN_RATE * elapsed:
            raise SlowUpload(
                f"the upload arrives at {received / elapsed / 1024:.1f} KiB/s, under the "
                f"{MIN_RATE >> 10} KiB/s the server waits for; try a faster connection"
            )
        yield chunk


async def receive_file(
    request: Request,
    dest: Path,
    *,
    field: str,
    max_bytes: int,
    what: str = "the zip",
    fields: dict[str, str] | None = None,
) -> str:
    """Stream multipart field `field` of `request` into `dest`; return the client's file name.

    Text fields named by the keys of `fields` (before or after the file) are read into
    it, each up to MAX_TEXT_FIELD bytes. Raises ArchiveTooLarge past `max_bytes` and
    BadRequest when the body is not multipart or has no such field. The caller deletes
    `dest` on error.
    """
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + 64 * 1024:
        raise _too_large(max_bytes)
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise BadRequest(f"send {what} as multipart/form-data in a field named {field!r}")

    state: dict[str, object] = {"in_field": False, "found": False, "filename": "", "text": None}
    texts: dict[str, bytearray] = {}
    header_field = bytearray()
    header_value = bytearray()
    headers: dict[bytes, bytes] = {}
    pending: list[bytes] = []

    def on_part_begin() -> None:
        headers.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_field.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        headers[bytes(header_field).lower()] = bytes(header_value)
        header_field.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        _, disp = parse_options_header(headers.get(b"content-disposition", b""))
        is_ours = disp.get(b"name", b"").decode("utf-8", "replace") == field
        is_ours = is_ours and not state["found"]
        state["in_field"] = is_ours
        if is_ours:
            state["found"] = True
            state["filename"] = disp.get(b"filename", b"").decode("utf-8", "replace")
        name = disp.get(b"name", b"").decode("utf-8", "replace")
        wanted = fields is not None and name in fields and b"filename" not in disp
        state["text"] = name if wanted and name not in texts else None
        if state["text"] is not None:
            texts[name] = bytearray()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["in_field"]:
            pending.append(data[start:end])
        elif state["text"] is not None:
            text = texts[str(state["text"])]
            text.extend(data[start:end])
            if len(text) > MAX_TEXT_FIELD:
                raise BadRequest(f"the field {state['text']!r} is over {MAX_TEXT_FIELD} bytes")

    def on_part_end() -> None:
        state["in_field"] = False
        state["text"] = None

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    written = 0
    buffered = 0
    received = 0  # every part counts, not only the file's: junk fields are bytes too
    async with aiofiles.open(dest, "wb") as out:
        async for chunk in _paced(request):
            received += len(chunk)
            if received > max_bytes + _OVERHEAD:
                raise _too_large(max_bytes)
            try:
                parser.write(chunk)
            except BadRequest:
                raise
            except Exception as exc:  # python-multipart raises its own error types
                raise BadRequest(f"the multipart body is malformed: {exc}") from exc
            buffered = sum(len(p) for p in pending)
            if buffered >= _FLUSH_BYTES:
                written += await _flush(out, pending)
                if written > max_bytes:
                    raise _too_large(max_bytes)
        parser.finalize()
        written += await _flush(out, pending)
    if not state["found"]:
        raise BadRequest(f"the form has no file field named {field!r}")
    if fields is not None:
        for name, value in texts.items():
            fields[name] = value.decode("utf-8", "replace").strip()
    if written > max_bytes:
        raise _too_large(max_bytes)
    return str(state["filename"])


async def _flush(out: aiofiles.threadpool.binary.AsyncBufferedIOBase, pending: list[bytes]) -> int:
    if not pending:
        return 0
    data = b"".join(pending)
    pending.clear()
    await out.write(data)
    return len(data)


def _too_large(max_bytes: int) -> ArchiveTooLarge:
    return ArchiveTooLarge(
        f"the upload is larger than {max_bytes // (1024 * 1024)} MiB "
        "(split the zip, or raise --max-upload-mb)"
    )
