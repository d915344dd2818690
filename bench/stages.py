"""Where one image's time goes: wall and CPU ms per 1250x650 image of each step of the pipeline.

    python bench/stages.py                    # 20 scenes
    python bench/stages.py -n 2 --quiet-wait 0    # smoke run

Runs in this process, on one thread (OpenCV too, as in one of the service's
workers), no server, on scenes half PNG and half grey JPEG: decode, detect (and
each of its stages, from its own wall-time record), each output (overlay, mask
and its preview, original preview, thumbnail, record), write_outputs as a whole, and
the http backend's work around its remote call (the remote answered with the
input itself, as the earlier system's echo model does). Each scene goes through
twice; the first pass warms up, the second is timed. Each figure is the mean of the
PNGs' median and the JPEGs' median: a pause of the host during one image moves none.
CPU time, unlike wall time, does not depend on other processes' load.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import math
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from _common import add_quiet_arg, finish, make_parser, median, quiet_before, say, session


def stages(work: Path, n: int, threads: int = 1) -> dict[str, tuple[float, float]]:
    """Wall and CPU ms per image of each step over `n` synthetic scenes (seeds 3000..):
    half PNG, half grey JPEG (quality 90), as users send them; for each step, the mean of
    the PNGs' median and the JPEGs' (`_typical`).

    OpenCV runs `threads` threads per call: 1, as in the service's workers, so the CPU
    times are one worker's. The detector's own stages are its wall times (`timings_ms`).
    """
    import cv2

    from oilspill.backends import cpu, transport
    from oilspill.backends import http as http_backend
    from oilspill.backends import sar as sar_backend
    from oilspill.io import images
    from oilspill.io.images import Raster
    from oilspill.sar import synth
    from oilspill.server import results
    from oilspill.server.store import dumps

    cv2.setNumThreads(threads)
    cpu.keep_freed_memory()  # as the service's workers run
    paths = []
    for i in range(n):
        jpeg = i % 2 == 1
        path = work / f"stage_{i}.{'jpg' if jpeg else 'png'}"
        image = synth.make_scene(3000 + i).image
        if jpeg:
            image = cv2.convertScaleAbs(image, alpha=255.0 / max(int(image.max()), 1))
            ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        else:
            ok, buf = cv2.imencode(".png", image)
        assert ok
        path.write_bytes(buf.tobytes())
        paths.append(path)
    # (format, wall s, CPU s), image by image
    times: dict[str, list[tuple[str, float, float]]] = {}
    fmt = ""

    def timed(key: str, func: Callable[..., Any], *args: Any) -> Any:
        t0, c0 = time.perf_counter(), time.process_time()
        out = func(*args)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        times.setdefault(key, []).append((fmt, wall, cpu))
        return out

    def encode_masks(mask: Any) -> tuple[bytes, bytes]:
        return images.encode_class_pngs(mask, results.MASK_PALETTE)

    def record(raster: Raster, seg: Any) -> bytes:
        return dumps(results.describe(raster, seg))  # as the service saves it

    out = work / "stages-out"
    out.mkdir()
    for rep in range(2):  # the first pass warms up; the second is timed
        times.clear()
        for i, path in enumerate(paths):
            fmt = "jpeg" if path.suffix == ".jpg" else "png"
            options = images.ReadOptions(10**9)
            raster = timed("decode", images.load, path, path.name, fmt, options)
            seg = timed("detect (all stages)", sar_backend.segment_raster, raster)
            for stage, ms in seg.info.get("timings_ms", {}).items():
                times.setdefault(f"  detect: {stage}", []).append((fmt, ms / 1000, math.nan))
            timed(f"  output: overlay encode ({fmt.upper()})", images.encode, seg.overlay, fmt)
            timed("  output: mask + preview (one deflate)", encode_masks, seg.mask)
            timed("  output: original preview (PNG, stored)", results.original_preview, raster, seg)
            timed("  output: thumbnail (JPEG)", results.drawn_thumbnail, raster, seg)
            timed("  output: record (JSON)", record, raster, seg)
            timed(
                "write_outputs (all files + record)",
                results.write_outputs,
                raster,
                seg,
                out,
                i + rep * n,
                f"masks/{path.stem}.png",
            )
            # The http backend's work around the remote call, answered with the input itself
            # (an echo model server of the earlier API): no pixel is decoded.
            header = timed("http: read the header", images.header, path, path.name, fmt, options)
            header.source = path
            timed("http: read the file, multipart", http_backend._form, path, fmt)
            echoed = transport.Answer(200, {"content-type": f"image/{fmt}"}, path.read_bytes())
            remote = timed("http: check the answer", http_backend._annotated_only, echoed, "x")
            timed(
                "http: write_outputs (the answer)",
                results.write_outputs,
                header,
                remote,
                out,
                i + (2 + rep) * n,
                f"masks/{path.stem}.png",
            )
    shutil.rmtree(out)
    for path in paths:
        path.unlink()
    return {key: _typical(rows) for key, rows in times.items()}


def _typical(rows: list[tuple[str, float, float]]) -> tuple[float, float]:
    """Wall and CPU ms of a typical image: the mean over formats of each format's median,
    so that one image the host paused during moves no figure."""
    formats = sorted({f for f, _, _ in rows})
    walls = [median([w for f, w, _ in rows if f == one]) for one in formats]
    cpus = [median([c for f, _, c in rows if f == one]) for one in formats]
    return 1000 * statistics.fmean(walls), 1000 * statistics.fmean(cpus)


def cv2_threads() -> int:
    import cv2

    threads: int = cv2.getNumThreads()
    return threads


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("-n", "--images", type=int, default=20, help="scenes (default 20)")
    add_quiet_arg(parser)
    args = parser.parse_args(argv)
    with session("per-stage costs per image") as run:
        quiet_before(args.quiet_wait)
        say("\n== where one image's time goes (this process, one thread, 1250x650) ==")
        for key, (wall, cpu) in stages(run.work, args.images).items():
            say(f"  {key:40s} {wall:7.1f} ms wall {cpu:7.1f} ms CPU")
        say(f"  OpenCV threads per call: {cv2_threads()} (as in one of the service's workers)")
        finish(run, [], __file__, parser, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
