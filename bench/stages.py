"""Where one image's time goes: wall and CPU ms per 1250x650 image of each step of the pipeline.

    python bench/stages.py                    # 20 scenes
    python bench/stages.py -n 2 --quiet-wait 0    # smoke run

Runs in this process, on one thread, no server: decode, detect (incl. overlay
drawing), overlay encode, mask encode, original preview, thumbnail, write_outputs,
and the http backend's work around its remote call (the remote answered with the
input itself, as the earlier system's echo model does). Each scene goes through
twice; the first pass warms up, the second is timed. CPU time is the whole
process's (OpenCV may spread one call over its own threads), so, unlike wall
time, it does not depend on other processes' load.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from _common import add_quiet_arg, finish, make_parser, quiet_before, say, session


def stages(work: Path, n: int) -> dict[str, tuple[float, float]]:
    """Wall and CPU ms per image of each step, over `n` synthetic scenes (seeds 3000..)."""
    import cv2

    from oilspill.backends import http as http_backend
    from oilspill.backends import sar as sar_backend
    from oilspill.backends import transport
    from oilspill.io import images
    from oilspill.io.images import Raster
    from oilspill.sar import synth
    from oilspill.server import results

    paths = []
    for i in range(n):
        path = work / f"stage_{i}.png"
        ok, buf = cv2.imencode(".png", synth.make_scene(3000 + i).image)
        assert ok
        path.write_bytes(buf.tobytes())
        paths.append(path)
    totals: dict[str, tuple[float, float]] = {}

    def timed(key: str, func: Callable[..., Any], *args: Any) -> Any:
        t0, c0 = time.perf_counter(), time.process_time()
        out = func(*args)
        wall, cpu = totals.get(key, (0.0, 0.0))
        totals[key] = (wall + time.perf_counter() - t0, cpu + time.process_time() - c0)
        return out

    def preview(raster: Raster) -> bytes:
        small = images.fit_within(images.to_display(raster.pixels), results.PREVIEW_PX)
        return images.encode(small, "jpeg")

    def encode_mask(mask: Any) -> bytes:
        return images.encode(mask, "png", labels=True)

    out = work / "stages-out"
    out.mkdir()
    for rep in range(2):  # the first pass warms up; the second is timed
        totals.clear()
        for i, path in enumerate(paths):
            options = images.ReadOptions(10**9)
            raster = timed("decode (PNG)", images.load, path, path.name, "png", options)
            seg = timed("detect (incl. overlay drawing)", sar_backend.segment_raster, raster)
            timed("overlay encode (PNG, BGR)", images.encode, seg.overlay, "png")
            timed("mask encode (PNG)", encode_mask, seg.mask)
            timed("original preview (JPEG)", preview, raster)
            thumb = images.fit_within(seg.overlay[..., :3], results.THUMB_PX)
            timed("thumbnail (JPEG)", images.encode, thumb, "jpeg")
            timed(
                "write_outputs (all 5 files)",
                results.write_outputs,
                raster,
                seg,
                out,
                i + rep * n,
                f"masks/{path.stem}.png",
            )
            # The http backend's work around the remote call, answered with the input itself
            # (an echo model server of the earlier API): no pixel is decoded.
            header = timed("http: read the header", images.header, path, path.name, "png", options)
            header.source = path
            timed("http: read the file, multipart", http_backend._form, path, "png")
            echoed = transport.Answer(200, {"content-type": "image/png"}, path.read_bytes())
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
    return {k: (wall * 1000 / n, cpu * 1000 / n) for k, (wall, cpu) in totals.items()}


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
        say(f"  OpenCV threads per call: {cv2_threads()}")
        for key, (wall, cpu) in stages(run.work, args.images).items():
            say(f"  {key:34s} {wall:7.1f} ms wall {cpu:7.1f} ms CPU")
        finish(run, [], __file__, parser, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
