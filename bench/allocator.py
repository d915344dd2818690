"""What glibc's allocator costs an image: the parts with its defaults and as the service runs them.

    python bench/allocator.py                  # 40 scenes, 3 rounds
    python bench/allocator.py -n 6 --rounds 1 --quiet-wait 0   # smoke run

Each run is a fresh Python process that decodes, detects and writes the outputs of `-n`
1250x650 scenes (half PNG, half grey JPEG) on one thread (`results.process_file`, what a
worker runs), once to warm up and once timed: its user and system CPU, minor page faults
per image and its resident memory at the end. "glibc defaults" leaves malloc as it is;
"kept" calls `cpu.keep_freed_memory()` first, as the service's worker threads and
processes do. Rounds alternate the two. Linux with glibc only (elsewhere both are the
same). Prints figures; asserts nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from _common import (
    ROOT,
    SCENE_SIZE,
    Row,
    add_rounds_args,
    finish,
    make_parser,
    median,
    quiet_before,
    say,
    session,
)
from speed import mixed_zip

CHILD = """
import json, resource, sys, time, zipfile
from pathlib import Path
import cv2
from oilspill.backends import cpu
from oilspill.io import images
from oilspill.sar import oilnet
from oilspill.server import results
if sys.argv[2] == "kept":
    cpu.keep_freed_memory()
cv2.setNumThreads(1)
oilnet.load()
work = Path(sys.argv[1])
paths = sorted(p for p in (work / "scenes").iterdir())
out = work / ("out-" + sys.argv[2])
out.mkdir(exist_ok=True)
options = images.ReadOptions(10**9)
def one(i, p):
    fmt = "jpeg" if p.suffix == ".jpg" else "png"
    results.process_file(p, p.name, fmt, options, None, out, i, f"m/{p.stem}.png")
for i, p in enumerate(paths):
    one(i, p)
r0 = resource.getrusage(resource.RUSAGE_SELF)
t0 = time.perf_counter()
for i, p in enumerate(paths):
    one(i, p)
wall = time.perf_counter() - t0
r1 = resource.getrusage(resource.RUSAGE_SELF)
rss = next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmRSS"))
n = len(paths)
print(json.dumps({
    "user_ms": 1000 * (r1.ru_utime - r0.ru_utime) / n,
    "sys_ms": 1000 * (r1.ru_stime - r0.ru_stime) / n,
    "faults": (r1.ru_minflt - r0.ru_minflt) / n,
    "rate": n / wall,
    "rss_mib": rss / 1024,
}))
"""

MODES = ("glibc defaults", "kept")


def run_child(work: Path, mode: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(work), "kept" if mode == "kept" else "defaults"],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
        cwd=ROOT,
    )
    figures: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__)
    add_rounds_args(parser, images=40, rounds=3)
    args = parser.parse_args(argv)
    with session("glibc's allocator and the parts") as run:
        import zipfile

        with zipfile.ZipFile(mixed_zip(run.work / "scenes.zip", args.images, seed=1000)) as zf:
            zf.extractall(run.work / "scenes")
        say(f"\n== the parts on one thread, {args.images} scenes of {SCENE_SIZE}, per image ==")
        runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
        for rep in range(args.rounds):
            for mode in MODES if rep % 2 == 0 else MODES[::-1]:
                quiet_before(args.quiet_wait)
                f = run_child(run.work, mode)
                runs[mode].append(f)
                say(
                    f"  round {rep + 1} {mode:14s} user {f['user_ms']:5.1f} ms, system "
                    f"{f['sys_ms']:4.1f} ms, {f['faults']:6.0f} page faults, {f['rate']:5.1f} "
                    f"img/s; RSS at the end {f['rss_mib']:.0f} MiB"
                )

        def med(mode: str, key: str) -> float:
            return median([r[key] for r in runs[mode]])

        cpu = {m: med(m, "user_ms") + med(m, "sys_ms") for m in MODES}
        base, kept = MODES
        rows = [
            Row("CPU per image, glibc defaults", cpu[base], "ms"),
            Row("CPU per image, kept (as the service)", cpu[kept], "ms"),
            Row("  of which system, glibc defaults", med(base, "sys_ms"), "ms"),
            Row("  of which system, kept", med(kept, "sys_ms"), "ms"),
            Row("page faults per image, glibc defaults", med(base, "faults"), ""),
            Row("page faults per image, kept", med(kept, "faults"), ""),
            Row("CPU saved per image", 100 * (1 - cpu[kept] / cpu[base]), "%"),
            Row("RSS at the end, glibc defaults", med(base, "rss_mib"), "MiB"),
            Row("RSS at the end, kept", med(kept, "rss_mib"), "MiB"),
        ]
        finish(run, rows, __file__, parser, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
