"""Command line: `oilspill serve`, `ml-serve`, `segment`, `synth` and `settings`.

Only this module configures logging. `serve` flags are generated from
`config.SETTINGS`, and each falls back to its `OILSPILL_<NAME>` variable.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

# Before NumPy loads (`config` imports it): the workers are the commands' parallelism, and a
# BLAS thread pool (OpenBLAS starts one as NumPy loads) would only compete with them; its idle
# threads would also leave the service no moment without threads to fork its worker
# processes in (`cpu.CpuPool`).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from oilspill import __version__
from oilspill.config import (
    ENV_PREFIX,
    SETTINGS,
    Settings,
    load_settings,
    markdown_table,
)
from oilspill.errors import OilspillError

if TYPE_CHECKING:
    from oilspill.server.jobs import Item

log = logging.getLogger("oilspill")
REPEATABLE = {"ml_url", "api_key", "webhook_allow"}
# Commands whose work is all done (files closed, worker processes ended) when `main` returns.
FAST_EXIT = {"segment", "synth"}
ML_SERVE_PORT = 8002
ML_SERVE_SETTINGS = [
    "host", "port", "workers", "backend", "model", "model_kind", "device", "model_size",
    "model_mean", "model_std", "model_channels", "model_classes", "model_conf", "model_iou",
    "pixel_size_m", "max_upload_mb", "max_image_mpx", "log_level", "log_format",
]  # fmt: skip  # flags given once per value; the values are joined with commas


def _setup_logging(level: str, fmt: str = "text") -> None:
    """Text lines, or one JSON object per line (`--log-format json`), on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        from oilspill.server.logs import JsonFormatter

        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def _add_setting_flags(parser: argparse.ArgumentParser, names: Sequence[str] | None = None) -> None:
    for setting in SETTINGS:
        if names is not None and setting.name not in names:
            continue
        flag = "--" + setting.name.replace("_", "-")
        env = ENV_PREFIX + setting.name.upper()
        default = setting.default if setting.name != "workers" else "0 (one per core)"
        parser.add_argument(
            flag,
            dest=setting.name,
            type=setting.cast,
            default=None,
            action="append" if setting.name in REPEATABLE else "store",
            help=f"{setting.help} [env {env}; default {default}]",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oilspill",
        description="Find oil spills in SAR satellite images. Serve the batch service, "
        "segment files on the command line, or make synthetic scenes to try it.",
    )
    parser.add_argument("--version", action="version", version=f"oilspill {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="run the web service (upload a zip, poll, download results)",
        description="Run the service: HTTP API, web page, in-process workers and TTL cleanup. "
        "Settings come from flags, then OILSPILL_<NAME> variables, then a .env file.",
    )
    _add_setting_flags(serve)

    ml = sub.add_parser(
        "ml-serve",
        help="run a model service (POST /segment) for `serve --backend http` to call",
        description="Serve the embedded detector (or --backend onnx --model X.onnx) with the "
        "earlier ML service's API: POST /segment (multipart field `file`) answers with the "
        "annotated image, or with the JSON result (mask, slicks, ships) under "
        "`Accept: application/json`; GET /health; GET /stats. Port 8002 unless --port.",
    )
    _add_setting_flags(ml, ML_SERVE_SETTINGS)

    segment = sub.add_parser(
        "segment",
        help="segment image files and write the result files to a folder",
        description="Segment images (files, folders or zips) or Sentinel-1 GRD products "
        "(ESA's product .zip or a .SAFE folder) with the same outputs as the service's result "
        "zip: annotated images, masks/, summary.csv, report.json, slicks.geojson.",
    )
    segment.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
    segment.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="output folder (it holds a hidden .oilspill-work-* folder while the command runs)",
    )
    segment.add_argument(
        "-v", "--verbose", action="store_true", help="show the log (else errors only)"
    )
    _add_setting_flags(
        segment,
        ["workers", "pixel_size_m", "max_image_mpx", "polarisation", "noise_removal", "log_level"],
    )

    synth = sub.add_parser(
        "synth",
        help="write a zip of synthetic Sentinel-1-like SAR scenes to try the service",
        description="Deterministic synthetic SAR scenes with oil slicks, look-alikes, ships "
        "and land. Upload the zip to the service, or segment it.",
    )
    synth.add_argument("-n", type=int, default=10, help="number of scenes (default 10)")
    synth.add_argument(
        "-o", "--output", type=Path, default=Path("scenes.zip"), help="zip to write (scenes.zip)"
    )
    synth.add_argument(
        "--seed",
        type=int,
        default=0,
        help="first scene's seed (default 0); scene files are named by their seed, "
        "so --seed 7 -n 3 writes scenes 7, 8 and 9",
    )
    synth.add_argument("--size", default="1250x650", help="scene size WxH (default 1250x650)")
    synth.add_argument("--geotiff", action="store_true", help="write georeferenced GeoTIFFs")
    synth.add_argument(
        "--form",
        choices=("amplitude16", "sigma0", "db"),
        default="amplitude16",
        help="GeoTIFF pixels: uint16 amplitude (GRD-like), float32 linear sigma0, or float32 dB",
    )
    synth.add_argument(
        "--with-truth", action="store_true", help="add ground-truth label maps under truth/"
    )
    sub.add_parser(
        "settings",
        help="print every setting (flag, variable, default, meaning) as a Markdown table",
        description="Print the table of settings that the README shows.",
    )
    return parser


def run() -> NoReturn:
    """The `oilspill` command (and `python -m oilspill`): `main`, then, after a command that
    has finished all its work (`segment`, `synth`), an exit that skips the interpreter's
    teardown: freeing every module of NumPy, OpenCV and the rest took ~0.13 s of a 0.8 s
    `segment` of one scene on a 2-core host, after the last file was written and closed."""
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    code = main()
    if command in FAST_EXIT:
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe: nothing more can be said
                code = code or 1
        os._exit(code)
    raise SystemExit(code)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if k in {s.name for s in SETTINGS}}
    for name in REPEATABLE & overrides.keys():
        if overrides[name] is not None:
            overrides[name] = ",".join(overrides[name])
    try:
        if args.command == "synth":
            return _synth(args)
        if args.command == "settings":
            print(markdown_table(), end="")
            return 0
        settings = load_settings(overrides)
        quiet = args.command == "segment" and not args.verbose
        _setup_logging("error" if quiet else settings.log_level, settings.log_format)
        if args.command == "serve":
            return _serve(settings)
        if args.command == "ml-serve":
            if args.port is None:
                settings = dataclasses.replace(settings, port=ML_SERVE_PORT)
            return _ml_serve(settings)
        return _segment(settings, args.inputs, args.output)
    except OilspillError as exc:
        print(f"oilspill: {exc.message}", file=sys.stderr)
        return 2


def _serve(settings: Settings) -> int:
    import uvicorn

    from oilspill.server.app import create_app
    from oilspill.server.store import JobStore

    # Say so before the server starts if another one owns the data folder (the service
    # takes the lock for good when it starts).
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    probe = JobStore(settings.data_dir)
    probe.lock()
    probe.release()
    # The event loop takes the GIL back from the worker threads' Python code at each
    # switch interval: at CPython's 5 ms a status request waited 34-74 ms at p99 with two
    # images in work and 50 pollers, at 1 ms 22-40 ms (bench/speed.py, section 3).
    sys.setswitchinterval(0.001)
    app = create_app(settings)
    keys = app.state.keys
    if keys.enabled:
        log.info("API keys on: %d keys", len(keys))
        if not len(keys):
            log.warning("the API key file holds no key: every upload is refused until it does")
    # SIGHUP reads the key file again, in a thread: the handler must not block the loop.
    signal.signal(
        signal.SIGHUP,
        lambda *_: threading.Thread(target=keys.reload, name="reload-keys", daemon=True).start(),
    )
    log.info("oilspill %s on http://%s:%d/", __version__, settings.host, settings.port)
    uvicorn.run(
        app,
        **_uvicorn_options(settings),
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        timeout_graceful_shutdown=int(settings.shutdown_grace),
    )
    return 0


def _uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Where and how uvicorn listens and logs, for `serve` and `ml-serve`."""
    import uvicorn.config

    return {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        # JSON: uvicorn's own lines (access log included) go through our handler too.
        "log_config": None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG,
    }


def _ml_serve(settings: Settings) -> int:
    import uvicorn

    from oilspill.mlserve.app import create_ml_app

    app = create_ml_app(settings)
    log.info(
        "oilspill ml-serve %s on http://%s:%d/segment", __version__, settings.host, settings.port
    )
    uvicorn.run(app, **_uvicorn_options(settings))
    return 0


def _synth(args: argparse.Namespace) -> int:
    from oilspill.sar import synth

    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        print(f"oilspill: --size must look like 1250x650, not {args.size!r}", file=sys.stderr)
        return 2
    synth.write_zip(
        args.output,
        args.n,
        seed=args.seed,
        size=(width, height),
        geotiff=args.geotiff,
        with_truth=args.with_truth,
        form=args.form,
    )
    print(f"wrote {args.n} scenes to {args.output}")
    return 0


def _expand(inputs: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    files: list[Path] = []
    zips: list[Path] = []
    for path in inputs:
        if path.is_dir() and (path / "manifest.safe").is_file():
            files.append(path)  # a Sentinel-1 product folder is one input
        elif path.is_dir():
            files.extend(p for p in sorted(path.rglob("*")) if p.is_file())
        elif path.suffix.lower() == ".zip":
            zips.append(path)
        elif path.is_file():
            files.append(path)
        else:
            raise OilspillError(f"{path} does not exist")
    return files, zips


def _segment(settings: Settings, inputs: Sequence[Path], output: Path) -> int:
    files, zips = _expand(inputs)
    output.mkdir(parents=True, exist_ok=True)
    return asyncio.run(_segment_async(settings, files, zips, output))


async def _segment_async(
    settings: Settings, files: list[Path], zips: list[Path], output: Path
) -> int:
    from oilspill.server import archive
    from oilspill.server.service import Service

    # The job's folder is a hidden one in the output folder: its results are then moved into
    # place (renamed), not copied, and the inputs linked, not copied, on one filesystem.
    with tempfile.TemporaryDirectory(prefix=".oilspill-work-", dir=output) as tmp:
        work = dataclasses.replace(settings, data_dir=Path(tmp), ttl=86400)
        # No page: no thumbnails or original previews, which no result holds. No fsync: the
        # work folder does not outlive the command (0.3-0.9 ms of CPU an image, scratch).
        async with Service(work, page_files=False, durable=False) as service:
            jobs, folders = [], []
            if files:
                jobs.append(await service.create_job_from_files(files))
                folders.append(output)
            for zip_path in zips:
                copy = service.store.new_upload_path()
                shutil.copyfile(zip_path, copy)
                jobs.append(await service.create_job(copy))
                # One zip alone writes to the output folder; several get a folder each.
                folders.append(output if len(zips) == 1 and not files else output / zip_path.stem)
            total = sum(job.total for job in jobs)
            started = shown = time.monotonic()
            # Looked at every 20 ms (the result is copied out as soon as it is there), shown
            # every 200 ms.
            while not all(job.finished for job in jobs):
                if time.monotonic() - shown >= 0.2:
                    _progress(sum(job.processed for job in jobs), total, started)
                    shown = time.monotonic()
                await asyncio.sleep(0.02)
            _progress(total, total, started)
            print(file=sys.stderr)
            failed = 0
            for job, folder in zip(jobs, folders, strict=True):
                failed += job.failed
                await asyncio.to_thread(_move_out, archive.entries(service.store, job), folder)
            _summary_table([item for job in jobs for item in job.items])
    print(f"{total - failed} of {total} images segmented; results in {output}")
    return 1 if failed == total else 0


def _move_out(results: Iterable[tuple[str, Path]], folder: Path) -> None:
    """Put each (name, file) of a finished job's results (`archive.entries`, which stats
    files: here, off the loop) at folder/name: renamed, or copied when the folder is on
    another filesystem."""
    for name, path in results:
        dest = folder / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(path, dest)
        except OSError:
            shutil.copyfile(path, dest)


def _summary_table(items: Sequence[Item], most: int = 30) -> None:
    """One line per image: slicks, oil area (km² when the pixel size is known), or the error."""
    width = min(max((len(i.name) for i in items), default=5), 48)
    print(f"{'image':<{width}}  {'slicks':>6}  {'oil':>12}  note")
    for item in items[:most]:
        if item.error:
            print(f"{item.name[:width]:<{width}}  {'-':>6}  {'-':>12}  failed: {item.error}")
            continue
        if not item.masks:
            note = "annotated image only (the model server gives no mask)"
            print(f"{item.name[:width]:<{width}}  {'-':>6}  {'-':>12}  {note}")
            continue
        if item.oil_area_km2 is not None:
            oil = f"{item.oil_area_km2:.3f} km²"
        else:
            oil = f"{item.oil_pixels} px"
        print(f"{item.name[:width]:<{width}}  {item.slicks:>6}  {oil:>12}")
    if len(items) > most:
        print(f"… and {len(items) - most} more (summary.csv has them all)")


def _progress(done: int, total: int, started: float) -> None:
    width = 30
    filled = int(width * done / max(total, 1))
    rate = done / max(time.monotonic() - started, 1e-9)
    bar = "#" * filled + "." * (width - filled)
    print(f"\r[{bar}] {done}/{total} images, {rate:.1f}/s", end="", file=sys.stderr, flush=True)
