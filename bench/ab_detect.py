"""Paired A/B of the embedded detector: this checkout against an earlier commit, alternating.

    python bench/ab_detect.py --base af10129            # 20 scenes, 4 pairs
    python bench/ab_detect.py --base HEAD~1 -n 4 --pairs 1   # smoke run

The base commit is cloned from this repository into a temporary folder. Each side
runs in a process of its own with its checkout first on PYTHONPATH, one after the
other, `--pairs` times: `pipeline.detect` on `-n` synthetic 1250x650 scenes (seeds
3000..), each once to warm up and once timed, OpenCV on one thread (as in one of the
service's workers). Each run prints the median CPU ms per scene; the summary gives
each side's median over the runs and the ratios pair by pair. On a host whose pace
drifts, pairs run minutes apart see the same host, where figures of two separate
runs do not. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from _common import ROOT, finish, make_parser, median, say, session


def child(n: int) -> float:
    """Median CPU ms per scene of `pipeline.detect` on `n` synthetic scenes (this process)."""
    import time

    import cv2

    from oilspill.sar import pipeline, synth

    cv2.setNumThreads(1)
    scenes = [synth.make_scene(3000 + i).image for i in range(n)]
    for scene in scenes:
        pipeline.detect(scene)
    times = []
    for scene in scenes:
        start = time.process_time()
        pipeline.detect(scene)
        times.append(time.process_time() - start)
    return 1000 * median(times)


def run_side(checkout: Path, n: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    out = subprocess.run(
        [sys.executable, __file__, "--child", "-n", str(n)],
        capture_output=True,
        text=True,
        env=env,
        cwd=checkout,
        timeout=1800,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--base", required=False, help="the commit to compare with (git rev)")
    parser.add_argument("-n", type=int, default=20, help="scenes per run (default 20)")
    parser.add_argument("--pairs", type=int, default=4, help="alternating pairs (default 4)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(f"{child(args.n):.2f}")
        return 0
    if not args.base:
        parser.error("--base is required")
    with session("paired A/B of the detector") as run:
        base = run.work / "base"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(base)], check=True)
        subprocess.run(["git", "-C", str(base), "checkout", "-q", args.base], check=True)
        rev = subprocess.run(
            ["git", "-C", str(base), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        pairs: list[tuple[float, float]] = []
        for i in range(args.pairs):
            b = run_side(base, args.n)
            t = run_side(ROOT, args.n)
            pairs.append((b, t))
            say(f"pair {i + 1}: base {rev} {b:.2f} ms, this checkout {t:.2f} ms ({t / b:.2f}x)")
        mb, mt = median([p[0] for p in pairs]), median([p[1] for p in pairs])
        say(f"\nmedian CPU per 1250x650 scene: base {rev} {mb:.2f} ms, this checkout {mt:.2f} ms")
        say(
            f"ratio of the medians {mt / mb:.2f}x; pairs "
            + ", ".join(f"{t / b:.2f}" for b, t in pairs)
        )
        finish(run, [], "bench/ab_detect.py", parser, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
