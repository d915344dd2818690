"""End-to-end throughput of the embedded detector: --workers 1 vs 2, upload to SUCCESS and download.

    python bench/throughput.py                            # 100 images, 5 rounds
    python bench/throughput.py -n 4 --rounds 1 --quiet-wait 0   # smoke run

Starts two `python -m oilspill serve` subprocesses on 127.0.0.1 (free ports, data in
a temporary folder deleted at the end), one with --workers 1 and one with --workers 2,
and uploads the same zip of synthetic 1250x650 SAR scenes to each in turn, round-robin,
so the 2-vs-1 ratio compares runs made under the same machine noise. Each job is timed
from upload start to SUCCESS and to the last byte of the result zip; the result zip is
checked (CRCs on the first round) and the job deleted. Prints figures; asserts nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from _common import (
    Config,
    Row,
    add_rounds_args,
    finish,
    make_parser,
    median,
    run_rounds,
    say,
    session,
    timed_zip,
    warm_zip,
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__)
    add_rounds_args(parser, images=100, rounds=5)
    args = parser.parse_args(argv)
    with session("end-to-end throughput, embedded detector") as run:
        say(
            f"\n== end-to-end throughput: {args.images} images, {args.rounds} interleaved rounds =="
        )
        scenes, warm = timed_zip(run.work, args.images), warm_zip(run.work)
        w1 = Config("w1", "embedded detector, --workers 1", ["--workers", "1"])
        w2 = Config("w2", "embedded detector, --workers 2", ["--workers", "2"])
        for cfg in (w1, w2):
            cfg.start(run.work, run.stack, warm)
        run_rounds([w1, w2], scenes, args.images, args.rounds, run.work, args.quiet_wait)
        for cfg in (w1, w2):
            assert cfg.server is not None
            cfg.server.stop()
            say(cfg.summary())
        if w1.quiet_runs and w2.quiet_runs:
            w2_rate = median([r.rate_success for r in w2.quiet_runs])
            speedup = w2_rate / median([r.rate_success for r in w1.quiet_runs])
            how = "medians of the undisturbed runs"
        else:
            speedup, how = w2.best() / w1.best(), "best runs (none undisturbed)"
        say(f"  2 vs 1 workers: {speedup:.2f}x to SUCCESS ({how})")
        rows = [
            Row("embedded, 1 worker: img/s to SUCCESS", w1.rate(), "img/s"),
            Row("embedded, 2 workers: img/s to SUCCESS", w2.rate(), "img/s"),
            Row("embedded, 2 workers: img/s downloaded", w2.rate("dl"), "img/s"),
            Row("speed-up 2 vs 1 workers (to SUCCESS)", speedup, "x"),
            Row("embedded: CPU per image", w2.cpu_ms(), "ms"),
        ]
        finish(run, rows, __file__, parser, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
