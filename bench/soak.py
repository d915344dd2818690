"""Soak: many zips uploaded at once to one server, every job followed to the end and downloaded.

    python bench/soak.py                          # 20 concurrent uploads of 50 images each
    python bench/soak.py --uploads 3 --images 5   # smoke run

Makes --uploads zips of --images synthetic 320x240 SAR scenes (`oilspill.sar.synth`;
each zip its own seeds), starts one `python -m oilspill serve --workers 2 --ttl 600`
subprocess on 127.0.0.1 (a free port, data in a temporary folder deleted at the end,
--max-queued-jobs above --uploads), waits for GET /healthz, then from one asyncio httpx
client POSTs every zip to /api/upload at the same time. Each job's GET /api/status/{id}
is polled every 0.2 s until SUCCESS or FAILURE (all within --timeout s of the first
upload); then every result is streamed from GET /api/download/{user_hash}, its bytes
counted against Content-Length, and opened with zipfile: every file the status says was
processed must be in it (and its mask, summary.csv, report.json; CRCs checked).

Meanwhile a thread samples the server's process tree RSS (VmRSS of the PID and every
descendant, summed) every 0.2 s and the data folder's disk use (file sizes under it)
every 0.5 s. Prints the peaks, the wall time from the first upload to the last SUCCESS,
images/s, the jobs per final status and the errors; the checks (every job finished,
none lost, every zip valid) fail the run (exit 1, server log tail printed).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import sys
import time
import zipfile
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
from _common import (
    MIB,
    REQUEST_TIMEOUT,
    Periodic,
    Row,
    finish,
    make_parser,
    say,
    scene_zip,
    session,
    start_service,
    tree_rss_mib,
)

WORKERS = 2
TTL_S = 600
POLL_S = 0.2  # status poll interval, per job
RSS_S = 0.2  # process tree RSS sampling interval
DISK_S = 0.5  # data folder disk use sampling interval
PROGRESS_S = 10.0  # a progress line this often while jobs run
DOWNLOAD_S = 300.0  # one result download may take at most this
SEED = 30000
REPORTS = ("summary.csv", "report.json")


# Sampling ----------------------------------------------------------------------
def disk_bytes(folder: Path) -> int:
    """Sum of the sizes of the files under `folder` (files vanishing meanwhile are skipped)."""
    total, todo = 0, [str(folder)]
    while todo:
        try:
            with os.scandir(todo.pop()) as it:
                for entry in it:
                    with contextlib.suppress(OSError):
                        if entry.is_dir(follow_symlinks=False):
                            todo.append(entry.path)
                        elif entry.is_file(follow_symlinks=False):
                            total += entry.stat(follow_symlinks=False).st_size
        except OSError:
            continue
    return total


def peak(old: float, new: float) -> float:
    return new if math.isnan(old) else max(old, new)


class Sampler(Periodic):
    """A thread noting the server tree's RSS every RSS_S s and the data folder every DISK_S s."""

    def __init__(self, pid: int, data_dir: Path) -> None:
        super().__init__(RSS_S)
        self.pid, self.data_dir = pid, data_dir
        self.peak_rss_mib = math.nan
        self.peak_procs = 0
        self.rss_samples = 0
        self.peak_disk_mib = math.nan
        self.last_rss_mib = math.nan
        self.last_disk_mib = math.nan
        self._next_disk = 0.0

    def sample(self) -> None:
        mib, procs = tree_rss_mib(self.pid)
        self.last_rss_mib = mib
        self.peak_rss_mib = peak(self.peak_rss_mib, mib)
        self.peak_procs = max(self.peak_procs, procs)
        self.rss_samples += 1
        if time.monotonic() >= self._next_disk:
            self._next_disk = time.monotonic() + DISK_S
            disk = disk_bytes(self.data_dir) / MIB
            self.last_disk_mib = disk
            self.peak_disk_mib = peak(self.peak_disk_mib, disk)


# Jobs --------------------------------------------------------------------------
@dataclass
class Track:
    """One upload, followed from POST to the checked result zip."""

    index: int
    zip_path: Path
    images: int
    job_id: str | None = None
    user_hash: str | None = None
    answered_at: float = math.nan  # perf_counter when the upload was answered
    done_at: float = math.nan  # perf_counter when SUCCESS/FAILURE was first seen
    status: dict[str, Any] | None = None  # the last status body
    final: str = "not uploaded"  # SUCCESS, FAILURE, lost, timeout, not uploaded
    image_errors: list[dict[str, str]] = field(default_factory=list)
    request_errors: list[str] = field(default_factory=list)  # HTTP errors, bad answers
    zip_problems: list[str] = field(default_factory=list)
    zip_bytes: int = 0
    downloaded: bool = False


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]


async def upload(client: httpx.AsyncClient, track: Track) -> None:
    data = await anyio.Path(track.zip_path).read_bytes()
    try:
        response = await client.post(
            "/api/upload", files={"file": (track.zip_path.name, data, "application/zip")}
        )
    except httpx.HTTPError as exc:
        track.request_errors.append(f"upload: {_short(exc)}")
        return
    track.answered_at = time.perf_counter()
    if response.status_code != 200:
        track.final = f"upload {response.status_code}"
        track.request_errors.append(
            f"upload answered {response.status_code}: {response.text[:200]}"
        )
        return
    body = response.json()
    track.job_id, track.user_hash = str(body["job_id"]), str(body["user_hash"])
    track.final = "PENDING"


async def follow(client: httpx.AsyncClient, track: Track, deadline: float) -> None:
    """Poll the job's status every POLL_S s until SUCCESS/FAILURE, a 404 or the deadline."""
    while time.monotonic() < deadline:
        try:
            response = await client.get(f"/api/status/{track.job_id}")
        except httpx.HTTPError as exc:
            track.request_errors.append(f"status: {_short(exc)}")
            await asyncio.sleep(POLL_S)
            continue
        if response.status_code == 404:
            track.final = "lost"
            track.request_errors.append(f"status 404 for job {track.job_id}: {response.text[:200]}")
            return
        if response.status_code != 200:
            track.request_errors.append(f"status answered {response.status_code}")
        else:
            body: dict[str, Any] = response.json()
            track.status, track.final = body, str(body["status"])
            if track.final in ("SUCCESS", "FAILURE"):
                track.done_at = time.perf_counter()
                result = body.get("result")
                if isinstance(result, dict):
                    track.image_errors = list(result.get("errors") or [])
                return
        await asyncio.sleep(POLL_S)
    track.final = "timeout"


async def upload_and_follow(client: httpx.AsyncClient, track: Track, deadline: float) -> None:
    await upload(client, track)
    if track.job_id is not None:
        await follow(client, track, deadline)


def check_zip(path: Path, processed: Sequence[str]) -> list[str]:
    """What is wrong with a result zip, given the files the status says were processed."""
    problems = []
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            missing = [n for n in processed if n not in names]
            if missing:
                problems.append(f"{len(missing)} processed files missing, e.g. {missing[:3]}")
            masks = [n for n in names if n.startswith("masks/") and ".preview." not in n]
            previews = [n for n in names if n.startswith("masks/") and n.endswith(".preview.png")]
            if len(masks) != len(processed) or len(previews) != len(processed):
                problems.append(
                    f"{len(masks)} masks and {len(previews)} mask previews for "
                    f"{len(processed)} processed files"
                )
            problems += [f"no {r}" for r in REPORTS if r not in names]
            if (bad := zf.testzip()) is not None:
                problems.append(f"entry {bad} has a bad CRC")
    except (zipfile.BadZipFile, OSError) as exc:
        problems.append(f"not a readable zip: {_short(exc)}")
    return problems


async def fetch(client: httpx.AsyncClient, track: Track, dest: Path) -> None:
    """Stream the result zip to `dest`, count its bytes, check it and delete it."""
    assert track.status is not None
    result = track.status.get("result")
    processed = list(result.get("processed_files") or []) if isinstance(result, dict) else []
    if len(processed) != track.images or track.status.get("processed") != track.images:
        track.zip_problems.append(
            f"status says {track.status.get('processed')}/{track.status.get('total')} processed "
            f"({len(processed)} processed_files), not {track.images}"
        )
    size = 0
    try:
        async with asyncio.timeout(DOWNLOAD_S):
            async with client.stream("GET", f"/api/download/{track.user_hash}") as response:
                if response.status_code != 200:
                    await response.aread()
                    track.request_errors.append(
                        f"download answered {response.status_code}: {response.text[:200]}"
                    )
                    return
                declared = int(response.headers.get("content-length", "-1"))
                async with await anyio.open_file(dest, "wb") as out:
                    async for chunk in response.aiter_raw(MIB):
                        await out.write(chunk)
                        size += len(chunk)
    except (httpx.HTTPError, TimeoutError) as exc:
        track.request_errors.append(f"download: {_short(exc)}")
        return
    track.zip_bytes, track.downloaded = size, True
    if declared != size:
        track.zip_problems.append(f"{size} bytes but Content-Length said {declared}")
    track.zip_problems += await anyio.to_thread.run_sync(check_zip, dest, processed)
    await anyio.Path(dest).unlink(missing_ok=True)


async def progress(tracks: Sequence[Track], sampler: Sampler, t0: float) -> None:
    """A line every PROGRESS_S s: jobs finished, images processed, RSS and disk now."""
    while True:
        await asyncio.sleep(PROGRESS_S)
        done = sum(t.final in ("SUCCESS", "FAILURE") for t in tracks)
        processed = sum(int(t.status["processed"]) for t in tracks if t.status)
        total = sum(t.images for t in tracks)
        say(
            f"  t={time.perf_counter() - t0:5.0f}s: {done}/{len(tracks)} jobs finished, "
            f"{processed}/{total} images; server RSS {sampler.last_rss_mib:.0f} MiB, "
            f"data {sampler.last_disk_mib:.1f} MiB"
        )


@dataclass
class Soak:
    tracks: list[Track]
    t_first: float  # first upload start (perf_counter)
    uploaded_s: float  # first upload start to last upload answer
    download_s: float
    health: dict[str, Any] | None


async def soak(
    url: str, tracks: list[Track], budget_s: float, sampler: Sampler, dl_dir: Path
) -> Soak:
    limits = httpx.Limits(max_connections=len(tracks) + 10, max_keepalive_connections=len(tracks))
    async with httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT, limits=limits) as client:
        t_first = time.perf_counter()
        deadline = time.monotonic() + budget_s
        ticker = asyncio.create_task(progress(tracks, sampler, t_first))
        try:
            await asyncio.gather(*(upload_and_follow(client, t, deadline) for t in tracks))
        finally:
            ticker.cancel()
        answered = [t.answered_at for t in tracks if not math.isnan(t.answered_at)]
        uploaded_s = max(answered, default=math.nan) - t_first
        health: dict[str, Any] | None = None
        with contextlib.suppress(httpx.HTTPError, ValueError):
            health = (await client.get("/healthz")).json()
        t_dl = time.perf_counter()
        done = [t for t in tracks if t.final == "SUCCESS"]
        await asyncio.gather(
            *(fetch(client, t, dl_dir / f"result-{t.index:03d}.zip") for t in done)
        )
        download_s = time.perf_counter() - t_dl
    return Soak(tracks, t_first, uploaded_s, download_s, health)


# Main --------------------------------------------------------------------------
def parse_size(text: str) -> tuple[int, int]:
    w, sep, h = text.lower().partition("x")
    if not sep or not w.isdigit() or not h.isdigit() or int(w) < 64 or int(h) < 64:
        raise SystemExit(f"--size: {text!r} is not WIDTHxHEIGHT (each >= 64)")
    return int(w), int(h)


def make_zips(work: Path, uploads: int, images: int, size: tuple[int, int]) -> list[Path]:
    """One zip per upload, seeds SEED + k * images onwards, made on every core."""
    paths = [work / f"upload-{k:03d}.zip" for k in range(uploads)]
    seeds = [SEED + k * images for k in range(uploads)]
    with ProcessPoolExecutor(max_workers=min(uploads, os.cpu_count() or 1)) as pool:
        list(pool.map(scene_zip, paths, [images] * uploads, seeds, [size] * uploads))
    return paths


def log_lines(log: Path) -> Counter[str]:
    """How many server log lines are ERROR/CRITICAL, WARNING, or tracebacks."""
    counts: Counter[str] = Counter()
    with contextlib.suppress(OSError):
        for line in log.read_text(errors="replace").splitlines():
            for word in ("ERROR", "CRITICAL", "WARNING", "Traceback"):
                if word in line:
                    counts[word] += 1
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument(
        "--uploads", type=int, default=20, help="zips uploaded at the same time (default 20)"
    )
    parser.add_argument("--images", type=int, default=50, help="images per zip (default 50)")
    parser.add_argument("--size", default="320x240", help="scene size WxH (default 320x240)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=900.0,
        help="seconds from the first upload for every job to finish (default 900)",
    )
    args = parser.parse_args(argv)
    if args.uploads < 1 or args.images < 1:
        raise SystemExit("--uploads and --images must be >= 1")
    size = parse_size(args.size)
    queued = max(100, 2 * args.uploads)
    with session("soak, concurrent uploads to one server") as run:
        say(
            f"\n== soak: {args.uploads} concurrent uploads x {args.images} images "
            f"({size[0]}x{size[1]}), --workers {WORKERS} =="
        )
        t0 = time.perf_counter()
        zips = make_zips(run.work, args.uploads, args.images, size)
        zip_mib = sum(p.stat().st_size for p in zips) / MIB
        say(f"made {len(zips)} zips ({zip_mib:.1f} MiB) in {time.perf_counter() - t0:.1f}s")
        server = start_service(
            "soak",
            run.work,
            *("--workers", str(WORKERS), "--ttl", str(TTL_S), "--max-queued-jobs", str(queued)),
        )
        run.stack.callback(server.stop)
        data_dir = run.work / "soak-data"
        dl_dir = run.work / "downloads"
        dl_dir.mkdir()
        base_mib, _ = tree_rss_mib(server.pid)
        say(
            f"server PID {server.pid} on {server.url} (--workers {WORKERS} --ttl {TTL_S} "
            f"--max-queued-jobs {queued}), tree RSS {base_mib:.0f} MiB before the uploads"
        )
        tracks = [Track(k, p, args.images) for k, p in enumerate(zips)]
        with Sampler(server.pid, data_dir) as sampler:
            result = asyncio.run(soak(server.url, tracks, args.timeout, sampler, dl_dir))
            time.sleep(2 * RSS_S)
        end_disk = sampler.last_disk_mib
        server_alive = server.proc.poll() is None
        server.stop()
        say(f"server stopped (exit code {server.proc.returncode})")

        by_status = Counter(t.final for t in tracks)
        finished = [t for t in tracks if t.final in ("SUCCESS", "FAILURE")]
        succeeded = [t for t in tracks if t.final == "SUCCESS"]
        ends = [t.done_at for t in succeeded]
        wall = max(ends, default=math.nan) - result.t_first
        processed = sum(int(t.status["processed"]) for t in tracks if t.status)
        image_errors = sum(len(t.image_errors) for t in tracks)
        request_errors = sum(len(t.request_errors) for t in tracks)
        zip_problems = sum(len(t.zip_problems) for t in tracks)
        log_counts = log_lines(server.log)
        dl_mib = sum(t.zip_bytes for t in tracks) / MIB
        created = [t.job_id for t in tracks if t.job_id]
        say(
            f"uploads answered: {len(created)}/{len(tracks)}, the last "
            f"{result.uploaded_s:.1f}s after the first started"
        )
        say(
            f"downloaded {sum(t.downloaded for t in tracks)}/{len(succeeded)} result zips "
            f"({dl_mib:.1f} MiB) in {result.download_s:.1f}s, all at once"
        )
        say("jobs per final status: " + ", ".join(f"{k} {v}" for k, v in sorted(by_status.items())))
        say(f"images processed: {processed}/{args.uploads * args.images}")
        say(
            f"errors: {image_errors + request_errors + zip_problems} in all "
            f"({image_errors} per-image, {request_errors} requests, {zip_problems} result zips)"
        )
        say(
            "server log: "
            + ", ".join(f"{w} {log_counts[w]}" for w in ("ERROR", "CRITICAL", "Traceback"))
            + f" lines ({log_counts['WARNING']} WARNING)"
        )
        jobs_known = result.health.get("jobs") if result.health else None
        say(
            f"RSS sampled {sampler.rss_samples} times, {sampler.peak_procs} processes at most in "
            f"the tree; data folder {end_disk:.1f} MiB at the end; /healthz counted "
            f"{jobs_known} jobs after the last one finished"
        )
        for t in tracks:
            for text in (*t.request_errors, *t.zip_problems):
                say(f"  job {t.index} ({t.job_id}): {text}")
            for err in t.image_errors[:3]:
                say(f"  job {t.index} ({t.job_id}): image {err.get('file')}: {err.get('error')}")

        checks = {
            "all jobs complete": len(finished) == len(tracks),
            "none lost (every job id known)": (
                len(created) == len(tracks)
                and len(set(created)) == len(created)
                and by_status["lost"] == 0
                and jobs_known == len(created)
            ),
            "every zip valid": (
                all(t.downloaded for t in succeeded)
                and zip_problems == 0
                and len(succeeded) == len(tracks)
            ),
            "no errors": image_errors + request_errors == 0,
            "server log clean": sum(log_counts[w] for w in ("ERROR", "CRITICAL", "Traceback")) == 0,
            "server alive to the end": server_alive,
        }
        for name, ok in checks.items():
            say(f"check: {name}: {'ok' if ok else 'FAILED'}")
        failed = not all(checks.values())
        if failed or log_counts:
            say(f"--- {server.log.name} (tail) ---\n{server.log_tail(40)}")
        rows = [
            Row("peak RSS, server process tree", sampler.peak_rss_mib, "MiB", None, False),
            Row("peak disk use, data folder", sampler.peak_disk_mib, "MiB", None, False),
            Row("wall, first upload to last SUCCESS", wall, "s", None, False),
            Row("images/s, first upload to last SUCCESS", processed / wall, "img/s"),
        ]
        finish(run, rows, __file__, parser, args)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
