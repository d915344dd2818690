"""Blocking HTTP/1.1 exchanges with one model server, for worker threads.

The http backend's work per image is to move bytes: the file out, the answer
back. On this project's 2-core machine an httpx.AsyncClient round trip of a
365 KB JPEG to an echo server costs 3.6 ms of CPU, all of it on the event loop
(h11 parsing 64 KiB reads, anyio stream wrappers, cancel scopes); the standard
library's http.client does the same exchange in 0.67 ms, in a thread, with the
GIL released while it waits on the socket (bench/http_backend.py). So the
backend runs its requests here, in threads, and the event loop only schedules.

`Connections` keeps idle keep-alive connections to one endpoint; `exchange`
sends one request under a total deadline (each socket operation gets the time
left) and reads the whole answer.
"""

from __future__ import annotations

import contextlib
import http.client
import queue
import ssl
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

READ_CHUNK = 1 << 20


class Timeout(Exception):
    """The deadline passed before the whole answer arrived."""


class Unreachable(Exception):
    """The connection could not be made or broke (refused, reset, closed early)."""


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def media_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def text(self) -> str:
        return self.body[:200].decode("utf-8", "replace").strip() or "(empty body)"


def multipart(field: str, filename: str, content_type: str, data: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body holding one file; (body, its Content-Type)."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
        f'filename="{filename}"\r\nContent-Type: {content_type}\r\n\r\n'
    ).encode()
    body = b"".join((head, data, f"\r\n--{boundary}--\r\n".encode()))
    return body, f"multipart/form-data; boundary={boundary}"


class Connections:
    """Idle keep-alive connections to the endpoint `url`, shared by threads."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        self.path = parts.path or "/"
        self.query = parts.query
        self._idle: queue.LifoQueue[http.client.HTTPConnection] = queue.LifoQueue()
        self._ssl = ssl.create_default_context() if self.https else None

    def target(self, path: str | None = None, params: dict[str, str] | None = None) -> str:
        """The request target: this endpoint's path (or `path`) with its query and `params`."""
        query = "&".join(
            q for q in (self.query if path is None else "", urlencode(params or {})) if q
        )
        return (path or self.path) + (f"?{query}" if query else "")

    def _new(self, timeout: float) -> http.client.HTTPConnection:
        if self._ssl is not None:
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=timeout, context=self._ssl
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def exchange(
        self,
        method: str,
        target: str,
        body: bytes | None,
        headers: dict[str, str],
        timeout: float,
    ) -> Answer:
        """One request and its whole answer (blocking), within `timeout` seconds in all.

        A kept-alive connection the server has closed meanwhile is retried once on a
        new one (it never reached the server); any other failure raises Unreachable or
        Timeout.
        """
        deadline = time.monotonic() + timeout
        for attempt in range(2):
            try:
                conn = self._idle.get_nowait()
                reused = True
            except queue.Empty:
                conn, reused = self._new(timeout), False
            try:
                answer, keep = _exchange(conn, method, target, body, headers, deadline)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                conn.close()
                if reused and attempt == 0:
                    continue  # a stale keep-alive connection: the request was not taken
                raise Unreachable(f"{type(exc).__name__}: {exc}") from exc
            except TimeoutError as exc:
                conn.close()
                raise Timeout(f"no complete answer in {timeout:g}s") from exc
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise Unreachable(f"{type(exc).__name__}: {exc}") from exc
            if keep:
                self._idle.put(conn)
            else:
                conn.close()
            return answer
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        while True:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                return
            with contextlib.suppress(OSError):
                conn.close()


def _exchange(
    conn: http.client.HTTPConnection,
    method: str,
    target: str,
    body: bytes | None,
    headers: dict[str, str],
    deadline: float,
) -> tuple[Answer, bool]:
    """Send and read under `deadline`; (the answer, whether the connection may be reused)."""
    _left(conn, deadline)
    conn.request(method, target, body=body, headers=headers)
    _left(conn, deadline)
    response = conn.getresponse()
    chunks = []
    while True:
        _left(conn, deadline)
        chunk = response.read(READ_CHUNK)
        if not chunk:
            break
        chunks.append(chunk)
    names = {k.lower(): v for k, v in response.getheaders()}
    return Answer(response.status, names, b"".join(chunks)), not response.will_close


def _left(conn: http.client.HTTPConnection, deadline: float) -> None:
    """Give the next socket operation the time left; Timeout when there is none."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    conn.timeout = left
    if conn.sock is not None:
        conn.sock.settimeout(left)
