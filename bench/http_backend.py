"""The http backend against model servers, beside the system it replaces and the embedded one.

    python bench/http_backend.py                      # 200 + 100 images, 3 rounds
    python bench/http_backend.py -n 8 --rounds 1 --quiet-wait 0   # smoke run

Part 1, the coordinator alone: `oilspill serve --backend http --workers 2` against an
echo model server (this script with a hidden flag: Starlette under uvicorn, `POST
/segment` answers with the uploaded image, instantly or after `asyncio.sleep(0.1)` —
the earlier system's own echo model, and a 100 ms model that serves many images at
once like a batching GPU server), on `-n` grayscale 1250x650 JPEGs. The earlier
system (FastAPI + Celery + Redis + a YOLO microservice) did 56.6 img/s with the
instant model and 8 img/s with the 100 ms one.

Part 2, scaling out: the same 100 synthetic scenes (PNG) through `oilspill serve`
with the embedded detector (2 workers) and through a coordinator calling two
`oilspill ml-serve --workers 1` processes (JSON results: masks, slicks), on this
one machine — so the second measures what the split costs, not extra hardware.

Each job is timed from upload start to SUCCESS and to the last byte of the result
zip; configurations run round-robin so their ratios share the machine's noise.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

from _common import (
    MIB,
    SCENE_SIZE,
    Config,
    Proc,
    Row,
    add_rounds_args,
    finish,
    free_port,
    make_parser,
    run_rounds,
    say,
    scene_zip,
    session,
    warm_zip,
)

# The system we replace, as measured.
OLD_INSTANT = 56.6  # images/s with an instant model
OLD_100MS = 8.0  # images/s with a 100 ms model (one image at a time)
TARGET_ECHO = 170.0  # issue 11: 3x the earlier system


def start_echo(name: str, workdir: Path, delay: float) -> Proc:
    """This script as an echo model server on 127.0.0.1, answering after `delay` s."""
    port = free_port()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--echo-ml", str(port), str(delay)]
    return Proc(name, cmd, port, workdir, "/health")


def start_ml_serve(name: str, workdir: Path) -> Proc:
    port = free_port()
    cmd = [sys.executable, "-m", "oilspill", "ml-serve", "--port", str(port), "--workers", "1"]
    return Proc(name, [*cmd, "--log-level", "warning"], port, workdir, "/health")


def run_echo(port: int, delay: float) -> None:
    """The echo model server: POST /segment answers with the uploaded image bytes."""
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


def jpeg_zip(path: Path, n: int, seed: int) -> Path:
    """`n` synthetic scenes as grayscale JPEGs (quality 90), stored in a zip."""
    import cv2

    from oilspill.sar import synth

    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for k in range(n):
            scene = synth.make_scene(seed=seed + k, size=SCENE_SIZE)
            image = cv2.convertScaleAbs(scene.image, alpha=255.0 / max(int(scene.image.max()), 1))
            ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
            assert ok
            zf.writestr(f"scene_{seed + k:05d}.jpg", data.tobytes())
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__)
    add_rounds_args(parser, images=200, rounds=3)
    parser.add_argument(
        "--scale-images", type=int, default=100, help="scenes of part 2 (default 100)"
    )
    parser.add_argument("--echo-ml", nargs=2, metavar=("PORT", "DELAY"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.echo_ml:
        run_echo(int(args.echo_ml[0]), float(args.echo_ml[1]))
        return 0
    with session("http backend against model servers") as run:
        jpegs = jpeg_zip(run.work / "jpegs.zip", args.images, seed=1000)
        scenes = scene_zip(run.work / "scenes.zip", args.scale_images, seed=1000)
        say(
            f"made {args.images} grayscale JPEGs ({jpegs.stat().st_size / MIB:.1f} MiB) and "
            f"{args.scale_images} PNG scenes ({scenes.stat().st_size / MIB:.1f} MiB), "
            f"{SCENE_SIZE[0]}x{SCENE_SIZE[1]}"
        )
        warm = warm_zip(run.work)
        two = ["--workers", "2"]
        echo = Config("echo", "http, echo model", [])
        slow = Config("echo100", "http, 100 ms model", [])
        for cfg, delay in ((echo, 0.0), (slow, 0.1)):
            cfg.ml, cfg.masks = [start_echo(f"ml-{cfg.key}", run.work, delay)], False
            run.stack.callback(cfg.ml[0].stop)
            cfg.args = [*two, "--backend", "http", "--ml-url", f"{cfg.ml[0].url}/segment"]
            cfg.start(run.work, run.stack, warm)
        say(f"\n== part 1: {args.images} JPEGs, {args.rounds} interleaved rounds ==")
        run_rounds([echo, slow], jpegs, args.images, args.rounds, run.work, args.quiet_wait)
        for cfg in (echo, slow):
            assert cfg.server is not None
            cfg.server.stop()
            for proc in cfg.ml:
                proc.stop()
            say(cfg.summary())

        embedded = Config("sar", "embedded detector, 2 workers", two)
        split = Config("split", "coordinator + 2 ml-serve", [])
        split.ml = [start_ml_serve(f"ml-serve-{n}", run.work) for n in range(2)]
        for proc in split.ml:
            run.stack.callback(proc.stop)
        urls = [w for p in split.ml for w in ("--ml-url", f"{p.url}/segment")]
        split.args = [*two, "--backend", "http", *urls, "--ml-concurrency", "2"]
        for cfg in (embedded, split):
            cfg.start(run.work, run.stack, warm)
        say(f"\n== part 2: {args.scale_images} scenes, {args.rounds} interleaved rounds ==")
        run_rounds(
            [embedded, split], scenes, args.scale_images, args.rounds, run.work, args.quiet_wait
        )
        for cfg in (embedded, split):
            say(cfg.summary())
        rows = [
            Row("http, echo model: img/s to SUCCESS", echo.rate(), "img/s", OLD_INSTANT),
            Row("http, echo model: img/s downloaded", echo.rate("dl"), "img/s", OLD_INSTANT),
            Row("http, echo model: vs the 170 img/s target", echo.rate(), "img/s", TARGET_ECHO),
            Row("http, echo model: CPU-bound ceiling", echo.ceiling(), "img/s", OLD_INSTANT),
            Row("http, 100 ms model: img/s to SUCCESS", slow.rate(), "img/s", OLD_100MS),
            Row("embedded, 2 workers: img/s to SUCCESS", embedded.rate(), "img/s"),
            Row("coordinator + 2 ml-serve: img/s", split.rate(), "img/s", embedded.rate()),
        ]
        finish(run, rows, __file__, parser, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
