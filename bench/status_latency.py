"""Latency of GET /api/status/{id} while every worker is busy: p50, p99 and max.

    python bench/status_latency.py                            # 100 images, 5 rounds, 2 workers
    python bench/status_latency.py -n 8 --rounds 1 --quiet-wait 0   # smoke run

Starts a `python -m oilspill serve --workers N` subprocess on 127.0.0.1 (a free port,
data in a temporary folder deleted at the end) and uploads a zip of synthetic
1250x650 SAR scenes, `--rounds` times. While each job runs its status is polled
every 20 ms; only polls made while the queue still holds more images than there
are workers count (so every worker is busy). Prints figures; asserts nothing.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence

from _common import (
    Config,
    Row,
    add_rounds_args,
    finish,
    make_parser,
    percentile,
    run_rounds,
    say,
    session,
    timed_zip,
    warm_zip,
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__)
    add_rounds_args(parser, images=100, rounds=5)
    parser.add_argument("--workers", type=int, default=2, help="service workers (default 2)")
    args = parser.parse_args(argv)
    with session("status latency with every worker busy") as run:
        say(f"\n== status latency: {args.images} images, {args.rounds} rounds ==")
        scenes, warm = timed_zip(run.work, args.images), warm_zip(run.work)
        workers = ["--workers", str(args.workers)]
        cfg = Config(f"w{args.workers}", f"embedded detector, --workers {args.workers}", workers)
        cfg.early_poll = None  # the latencies are the polls': every POLL_S s, all job long
        cfg.start(run.work, run.stack, warm)
        run_rounds([cfg], scenes, args.images, args.rounds, run.work, args.quiet_wait)
        assert cfg.server is not None
        cfg.server.stop()
        say(cfg.summary())
        lat = cfg.status_ms()
        busy = f"{cfg.busy_slots} workers busy"
        rows = [
            Row(f"status p50, {busy}", percentile(lat, 50), "ms"),
            Row(f"status p99, {busy}", percentile(lat, 99), "ms"),
            Row(f"status max, {busy} (n={len(lat)})", max(lat, default=math.nan), "ms"),
        ]
        finish(run, rows, __file__, parser, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
