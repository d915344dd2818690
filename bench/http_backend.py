"""Throughput of the http backend against a fake model server, beside the old system's figures.

    python bench/http_backend.py                            # 100 images, 5 rounds
    python bench/http_backend.py -n 4 --rounds 1 --quiet-wait 0   # smoke run

Starts two fake model servers on 127.0.0.1 (Starlette under uvicorn, this script
with a hidden flag; `POST /segment` answers with the uploaded image unchanged,
instantly or after `asyncio.sleep(0.1)`, so it serves many images at once like a
batching GPU model server) and two `python -m oilspill serve --backend http`
subprocesses, one per fake model, then uploads the same zip of synthetic 1250x650
SAR scenes to each in turn, round-robin. Each job is timed from upload start to
SUCCESS and to the last byte of the result zip. The old system (FastAPI + Celery +
Redis + a YOLO microservice) did 56.6 img/s with an instant model and 8 img/s with
a 100 ms one (one image at a time). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from _common import (
    Config,
    Proc,
    Row,
    add_rounds_args,
    finish,
    free_port,
    make_parser,
    run_rounds,
    say,
    session,
    timed_zip,
    warm_zip,
)

# The system we replace, as measured.
OLD_INSTANT = 56.6  # images/s with an instant model
OLD_100MS = 8.0  # images/s with a 100 ms model (one image at a time)


def start_fake_ml(name: str, workdir: Path, delay: float) -> Proc:
    """This script as a fake model server on 127.0.0.1, answering after `delay` s."""
    port = free_port()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--fake-ml", str(port), str(delay)]
    return Proc(name, cmd, port, workdir, "/health")


def run_fake_ml(port: int, delay: float) -> None:
    """The fake model server: POST /segment answers with the uploaded image bytes unchanged."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def segment(request: Request) -> Response:
        async with request.form() as form:
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                return JSONResponse({"detail": "no file field"}, 400)
            data = await upload.read()
            media_type = upload.content_type or "application/octet-stream"
        if delay > 0:
            await asyncio.sleep(delay)  # a model server that batches: many images at once
        return Response(data, media_type=media_type)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    app = Starlette(routes=[Route("/segment", segment, methods=["POST"]), Route("/health", health)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__)
    add_rounds_args(parser, images=100, rounds=5)
    parser.add_argument("--fake-ml", nargs=2, metavar=("PORT", "DELAY"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.fake_ml:
        run_fake_ml(int(args.fake_ml[0]), float(args.fake_ml[1]))
        return 0
    with session("http backend against a fake model server") as run:
        say(f"\n== http backend: {args.images} images, {args.rounds} interleaved rounds ==")
        scenes, warm = timed_zip(run.work, args.images), warm_zip(run.work)
        h0 = Config("http0", "http backend, instant model", [])
        h100 = Config("http100", "http backend, 100 ms model", [])
        for cfg, delay in ((h0, 0.0), (h100, 0.1)):
            cfg.ml = start_fake_ml(f"fake-ml-{cfg.key}", run.work, delay)
            run.stack.callback(cfg.ml.stop)
            cfg.args = ["--backend", "http", "--ml-url", f"{cfg.ml.url}/segment"]
            cfg.start(run.work, run.stack, warm)
        run_rounds([h0, h100], scenes, args.images, args.rounds, run.work, args.quiet_wait)
        for cfg in (h0, h100):
            assert cfg.server is not None and cfg.ml is not None
            cfg.server.stop()
            cfg.ml.stop()
            say(cfg.summary())
        rows = [
            Row("http, instant model: img/s to SUCCESS", h0.rate(), "img/s", OLD_INSTANT),
            Row("http, instant model: img/s downloaded", h0.rate("dl"), "img/s", OLD_INSTANT),
            Row("http, instant: CPU-bound ceiling", h0.ceiling(), "img/s", OLD_INSTANT),
            Row("http, 100 ms model: img/s to SUCCESS", h100.rate(), "img/s", OLD_100MS),
            Row("http, 100 ms model: img/s downloaded", h100.rate("dl"), "img/s", OLD_100MS),
        ]
        finish(run, rows, __file__, parser, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
