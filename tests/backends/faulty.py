"""A deliberately faulty model server on 127.0.0.1, run by uvicorn in a thread.

Each path is one behaviour of the earlier `/segment` API gone wrong; `/echo` is
the earlier system's own echo model (answers with the uploaded image).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from helpers import serve_in_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route


class Faulty:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.port = 0  # set by `running`
        self.url = ""
        self.fail_first = 2  # /flaky answers 500 this many times, then echoes
        self.slow_s = 3.0
        self.die_after = 3  # /dying serves this many, then the server shuts down
        self.server: uvicorn.Server | None = None

    async def _upload(self, request: Request) -> tuple[bytes, str]:
        async with request.form() as form:
            part = form["file"]
            assert not isinstance(part, str)
            return await part.read(), part.content_type or "application/octet-stream"

    async def handle(self, request: Request) -> Response:
        kind = request.path_params["kind"]
        self.calls[kind] += 1
        n = self.calls[kind]
        data, ctype = await self._upload(request)
        if kind == "flaky" and n <= self.fail_first:
            return PlainTextResponse("overloaded", 500)
        if kind == "limited" and n == 1:
            return PlainTextResponse("slow down", 429, headers={"Retry-After": "1"})
        if kind == "refuse":
            return JSONResponse({"detail": "this model takes RGB only"}, 400)
        if kind == "garbage":
            return PlainTextResponse("hello, I am not an image")
        if kind == "truncated":
            return Response(data[:200], media_type=ctype)
        if kind == "slow":
            await asyncio.sleep(self.slow_s)
        if kind == "dying" and n >= self.die_after and self.server is not None:
            self.server.should_exit = True
        return Response(data, media_type=ctype)

    async def health(self, request: Request) -> Response:
        self.calls["health"] += 1
        return JSONResponse({"status": "ok"})

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/{kind}/segment", self.handle, methods=["POST"]),
                Route("/{kind}/health", self.health),
            ]
        )


@contextmanager
def running(faulty: Faulty | None = None) -> Iterator[Faulty]:
    """Serve `faulty` on 127.0.0.1 until the block ends (bounded start and stop)."""
    faulty = faulty or Faulty()
    with serve_in_thread(faulty.app) as server:
        faulty.server, faulty.port = server, server.config.port
        faulty.url = f"http://127.0.0.1:{faulty.port}"
        yield faulty
