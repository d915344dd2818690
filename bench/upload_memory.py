"""RSS growth and the longest /healthz stall while the service receives and unpacks a 1 GiB zip.

    python bench/upload_memory.py                           # 1 GiB zip (~381 2500x1300 PNGs)
    python bench/upload_memory.py --size-mb 20 --quiet-wait 0   # smoke run

Makes a zip of stored 2500x1300 synthetic SAR PNGs, starts a fresh
`python -m oilspill serve --workers 2` subprocess on 127.0.0.1 (a free port, data
in a temporary folder deleted at the end), runs a 4-image warm-up job, then
uploads the zip streamed from disk. Meanwhile one thread polls the VmRSS of the server
and its worker processes (summed) every 5 ms and another times GET /healthz every 20 ms
on its own connection.
The upload's growth is the RSS peak from upload start until /healthz first counts
the new job (workers start on it a few ms before the upload is answered), above
the RSS before; VmHWM is reset before the upload where the kernel allows it. Then
the job is processed and its result downloaded: the peak over that is a working
set per worker, so it is reported in MiB, not per GiB. The old system grew 1 GiB
per GiB uploaded and its API froze 3.5 s while unpacking. Prints figures; asserts
nothing.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from _common import (
    GIB,
    MIB,
    POLL_S,
    REQUEST_TIMEOUT,
    Periodic,
    Row,
    add_quiet_arg,
    big_zip,
    download,
    finish,
    make_parser,
    percentile,
    quiet_before,
    run_job,
    say,
    session,
    start_service,
    tree_rss_mib,
    upload,
    wait_job,
    warm_zip,
)

# The system we replace, as measured.
OLD_MIB_PER_GIB = 1024.0  # memory growth per GiB uploaded
OLD_FREEZE_MS = 3500.0  # API frozen while unpacking


def proc_kib(pid: int, key: str) -> int:
    """A /proc/PID/status field in KiB (VmRSS, VmHWM)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def reset_hwm(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0, `echo 5 > /proc/PID/clear_refs`)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class Sampler(Periodic):
    """A background thread that calls `probe` every `interval` s and keeps (time, value)."""

    def __init__(self, probe: Callable[[], float], interval: float) -> None:
        super().__init__(interval)
        self.probe = probe
        self.samples: list[tuple[float, float]] = []

    def sample(self) -> None:
        t = time.perf_counter()
        self.samples.append((t, self.probe()))

    def between(self, t0: float, t1: float) -> list[float]:
        return [v for t, v in self.samples if t0 <= t <= t1]


class HealthProbe:
    """Times GET /healthz on its own keep-alive connection; a failure counts as its wait."""

    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url, timeout=httpx.Timeout(60.0))
        self.failures = 0
        self.jobs: list[tuple[float, int]] = []  # (poll start, jobs the service holds)

    def __call__(self) -> float:
        t0 = time.perf_counter()
        try:
            response = self.client.get("/healthz")
            response.raise_for_status()
            elapsed = (time.perf_counter() - t0) * 1000
            with contextlib.suppress(ValueError, KeyError, TypeError):
                self.jobs.append((t0, int(response.json()["jobs"])))
        except httpx.HTTPError:
            self.failures += 1
            elapsed = (time.perf_counter() - t0) * 1000
        return elapsed

    def first_seen(self, jobs: int, after: float) -> float | None:
        """When a poll begun after `after` first saw more than `jobs` jobs."""
        return next((t for t, n in self.jobs if t >= after and n > jobs), None)

    def close(self) -> None:
        self.client.close()


@dataclass
class MemoryResult:
    upload_gib: float
    images: int
    rss_before_mib: float
    upload_growth_mib: float  # peak over the upload + unpack, above RSS before it
    hwm_reset: bool
    process_growth_mib: float | None  # peak while processing and downloading, above RSS before
    freeze_ms: float
    health_p50_ms: float
    health_n: int
    health_failures: int
    busy_health_max_ms: float | None
    upload_s: float
    job_s: float | None
    download_s: float | None
    problems: list[str]


def memory_and_freeze(
    work: Path, target_bytes: int, workers: int, stack: contextlib.ExitStack, quiet_wait: float
) -> MemoryResult:
    big = work / "big.zip"
    t0 = time.perf_counter()
    count = big_zip(big, target_bytes, distinct=6, size=(2500, 1300))
    size = big.stat().st_size
    say(
        f"made {size / MIB:.0f} MiB zip of {count} stored 2500x1300 PNGs "
        f"in {time.perf_counter() - t0:.1f}s"
    )
    mib = math.ceil(size / MIB)
    limits = ["--max-upload-mb", str(2 * mib + 16), "--max-uncompressed-mb", str(4 * mib + 16)]
    server = start_service("mem", work, "--workers", str(workers), *limits)
    stack.callback(server.stop)
    warm = warm_zip(work)
    run_job(server, warm, 4, workers, work)
    warm.unlink()
    quiet_before(quiet_wait)
    time.sleep(0.5)
    pid = server.pid
    rss_before = tree_rss_mib(pid)[0]  # the service and its worker processes
    hwm_reset = reset_hwm(pid)
    problems: list[str] = []
    probe = HealthProbe(server.url)
    rss = Sampler(lambda: tree_rss_mib(pid)[0], 0.005)
    health = Sampler(probe, POLL_S)
    job_s = download_s = None
    process_growth = busy_health = None
    with rss, health, httpx.Client(base_url=server.url, timeout=REQUEST_TIMEOUT) as client:
        time.sleep(0.2)
        jobs_before = int(client.get("/healthz").json()["jobs"])
        sent: list[float] = []
        t_start = time.perf_counter()
        job = upload(client, big, sent.append)
        t_up = time.perf_counter()
        t_sent = sent[0] if sent and math.isfinite(sent[0]) else t_up
        hwm_up = proc_kib(pid, "VmHWM") / 1024
        # Workers start on the job as soon as it is unpacked, a little before the upload is
        # answered: the upload's own peak is the RSS until /healthz first counts the job.
        t_job = min(probe.first_seen(jobs_before, t_start) or t_up, t_up)
        upload_peak = max(rss.between(t_start, t_job), default=math.nan)
        freeze = health.between(t_start, t_up)
        receiving, unpacking = health.between(t_start, t_sent), health.between(t_sent, t_up)
        say(
            f"  sent in {t_sent - t_start:.1f}s ({size / MIB / (t_sent - t_start):.0f} MiB/s), "
            f"answered (unpacked) {t_up - t_sent:.1f}s later; RSS before {rss_before:.0f} MiB, "
            f"peak until the job was queued {upload_peak:.0f} MiB (VmHWM at the answer "
            f"{hwm_up:.0f} MiB{'' if hwm_reset else ', not reset'}, with the first images "
            "already processing)\n"
            f"  /healthz max while receiving {max(receiving, default=math.nan):.0f} ms "
            f"({len(receiving)} polls), while unpacking {max(unpacking, default=math.nan):.0f} ms "
            f"({len(unpacking)} polls)"
        )
        try:
            status = wait_job(client, job["job_id"], timeout=1800, interval=0.25)
            t_ok = time.perf_counter()
            job_s = t_ok - t_start
            if status["status"] != "SUCCESS":
                problems.append(f"big job failed: {status['result']}")
            elif status["result"]["errors"]:
                problems.append(f"big job errors: {status['result']['errors'][:2]}")
            busy_health = max(health.between(t_up, t_ok), default=0.0)
            say(
                f"  processed {count} images in {t_ok - t_up:.1f}s "
                f"({count / (t_ok - t_up):.1f} img/s); /healthz max while processing "
                f"{busy_health:.0f} ms"
            )
            try:
                download(client, job["user_hash"], None)
                download_s = time.perf_counter() - t_ok
                say(f"  result zip downloaded in {download_s:.1f}s")
            except RuntimeError as exc:
                problems.append(f"big job download: {exc}")
            t_end = time.perf_counter()
            hwm_all = proc_kib(pid, "VmHWM") / 1024
            process_peak = max([hwm_all if hwm_reset else 0.0, *rss.between(t_up, t_end)])
            process_growth = process_peak - rss_before
            say(f"  peak RSS while processing and downloading {process_peak:.0f} MiB")
        except (TimeoutError, RuntimeError) as exc:
            problems.append(f"big job: {exc}")
        finally:
            client.delete(f"/api/v1/jobs/{job['job_id']}")
    probe.close()
    server.stop()
    big.unlink()
    return MemoryResult(
        upload_gib=size / GIB,
        images=count,
        rss_before_mib=rss_before,
        upload_growth_mib=upload_peak - rss_before,
        hwm_reset=hwm_reset,
        process_growth_mib=process_growth,
        freeze_ms=max(freeze, default=float("nan")),
        health_p50_ms=percentile(freeze, 50),
        health_n=len(freeze),
        health_failures=probe.failures,
        busy_health_max_ms=busy_health,
        upload_s=t_up - t_start,
        job_s=job_s,
        download_s=download_s,
        problems=problems,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument(
        "--size-mb", type=int, default=1024, help="size of the zip uploaded, in MiB (default 1024)"
    )
    parser.add_argument("--workers", type=int, default=2, help="service workers (default 2)")
    add_quiet_arg(parser)
    args = parser.parse_args(argv)
    with session("memory and responsiveness during a big upload") as run:
        say(f"\n== memory and responsiveness: {args.size_mb} MiB upload ==")
        mem = memory_and_freeze(
            run.work, args.size_mb * MIB, args.workers, run.stack, args.quiet_wait
        )
        per_gib = mem.upload_growth_mib / mem.upload_gib
        how = "VmRSS polled every 5 ms until /healthz counts the new job"
        say(
            f"  RSS growth over upload + unpack: {mem.upload_growth_mib:.0f} MiB for "
            f"{mem.upload_gib:.2f} GiB = {per_gib:.0f} MiB per GiB ({how})"
        )
        say(
            f"  /healthz during upload + unpack: max {mem.freeze_ms:.0f} ms, p50 "
            f"{mem.health_p50_ms:.1f} ms, {mem.health_n} polls, {mem.health_failures} failed"
        )
        for problem in mem.problems:
            say(f"  PROBLEM: {problem}")
        rows = [
            Row("RSS growth, upload + unpack", per_gib, "MiB/GiB", OLD_MIB_PER_GIB, False),
            Row("/healthz max during upload + unpack", mem.freeze_ms, "ms", OLD_FREEZE_MS, False),
        ]
        if mem.process_growth_mib is not None:
            # Processing holds a working set per worker, not a share of the upload: absolute MiB.
            rows.append(
                Row("peak RSS growth incl. processing + download", mem.process_growth_mib, "MiB")
            )
        if mem.busy_health_max_ms is not None:
            label = f"/healthz max while processing it ({mem.images} images)"
            rows.append(Row(label, mem.busy_health_max_ms, "ms"))
        finish(run, rows, __file__, parser, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
