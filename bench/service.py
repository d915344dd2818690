"""End-to-end benchmark of the oilspill service, against the old system's measured figures.

    python bench/service.py            # full run: 100-image zips, 1 GiB upload (a few minutes)
    python bench/service.py --quick    # smoke run: 10-image zips, 100 MiB upload

Starts its own servers (`python -m oilspill serve` subprocesses on 127.0.0.1,
free ports, data in a temporary folder that is deleted at the end) and a fake
ML server for `--backend http` (`POST /segment` answers with the uploaded image
unchanged, instantly or after an asyncio.sleep, so it serves many at once like a
batching GPU model server). Prints figures; asserts nothing about time.

1. End-to-end throughput (images/s) of a zip of SAR-like 1250x650 scenes, from
   upload start to SUCCESS and to the end of the result download: the embedded
   detector at --workers 1 and 2, and the http backend with an instant and a
   100 ms model. Servers run side by side and jobs are interleaved round-robin,
   so ratios (2 vs 1 workers) compare runs made under the same machine noise.
2. Status latency p50/p99 of GET /api/status/{id}, polled every ~20 ms while the
   job runs with all workers busy (the queue is not empty).
3. Peak RSS growth of a fresh server (VmHWM, reset before the upload where the
   kernel allows it, and VmRSS polled every ~5 ms) while a 1 GiB zip is uploaded
   and unpacked, then while it is processed and its result downloaded.
4. Longest /healthz answer time while that zip is uploaded and unpacked (the old
   system's API froze for 3.5 s).
5. Where one image's time goes, in this process on one thread: decode, detect,
   overlay encode, mask encode, previews.

The machine is small (2 cores) and shared: before each timed job the bench waits
(bounded, --quiet-wait) for a second in which other processes leave the CPUs
idle, and each job line says how many cores other processes used meanwhile and
how much CPU time the service (and the fake ML server) spent per image.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
MIB = 1 << 20
GIB = 1 << 30

# The system we replace: FastAPI + Celery + Redis + a YOLO microservice, as measured.
OLD_INSTANT = 57.0  # images/s with an instant model
OLD_100MS = 8.0  # images/s with a 100 ms model (one image at a time)
OLD_MIB_PER_GIB = 1024.0  # memory growth per GiB uploaded
OLD_FREEZE_MS = 3500.0  # API frozen while unpacking

POLL_S = 0.02
QUIET_CORES = 0.3  # a run during which other processes used more than this is "disturbed"
REQUEST_TIMEOUT = httpx.Timeout(120.0, connect=10.0)


# Servers -----------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _clean_env() -> dict[str, str]:
    """The environment of a server: no OILSPILL_* leaking in, this checkout first on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OILSPILL_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Proc:
    """A server subprocess on 127.0.0.1 with its log in the bench folder."""

    def __init__(self, name: str, cmd: list[str], port: int, workdir: Path, ready: str) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = workdir / f"{name}.log"
        self._log_fh = self.log.open("wb")
        # cwd = the bench folder, so no stray .env of the caller is read.
        self.proc = subprocess.Popen(
            cmd, cwd=workdir, env=_clean_env(), stdout=self._log_fh, stderr=subprocess.STDOUT
        )
        self._wait_ready(ready)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _wait_ready(self, path: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{self.log_tail()}")
            try:
                if httpx.get(self.url + path, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer in {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log_fh.close()


def start_service(name: str, workdir: Path, *args: str) -> Proc:
    port = free_port()
    data = workdir / f"{name}-data"
    cmd = [sys.executable, "-m", "oilspill", "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--data-dir", str(data), "--log-level", "warning", "--shutdown-grace", "5", *args]
    return Proc(name, cmd, port, workdir, "/healthz")


def start_fake_ml(name: str, workdir: Path, delay: float) -> Proc:
    port = free_port()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--fake-ml", str(port), str(delay)]
    return Proc(name, cmd, port, workdir, "/health")


def run_fake_ml(port: int, delay: float) -> None:
    """The fake ML server: POST /segment answers with the uploaded image bytes unchanged."""
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


# Jobs --------------------------------------------------------------------------
@dataclass
class JobRun:
    images: int
    upload_s: float  # upload start to the upload's answer (includes unpacking)
    success_s: float  # upload start to SUCCESS seen
    download_s: float  # upload start to the last byte of the result zip
    zip_bytes: int
    status_ms: list[float] = field(default_factory=list)  # latencies while all workers were busy
    errors: int = 0
    problems: list[str] = field(default_factory=list)
    server_cpu_s: float = math.nan  # CPU time of the service process, upload to download end
    ml_cpu_s: float = math.nan  # CPU time of the fake ML server, if any
    others_cores: float = math.nan  # mean cores busy with other processes (machine noise)

    @property
    def quiet(self) -> bool:
        return self.others_cores < QUIET_CORES

    @property
    def cpu_ms(self) -> float:
        """CPU ms per image of the service plus the fake ML server."""
        ml = 0.0 if math.isnan(self.ml_cpu_s) else self.ml_cpu_s
        return (self.server_cpu_s + ml) * 1000 / self.images

    @property
    def rate_success(self) -> float:
        return self.images / self.success_s

    @property
    def rate_download(self) -> float:
        return self.images / self.download_s


class TimedFile(io.FileIO):
    """A file that notes when it was read to the end: when the client has sent the upload."""

    sent_at = math.nan

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        if not data and math.isnan(self.sent_at):
            self.sent_at = time.perf_counter()
        return data or b""


def upload(
    client: httpx.Client, zip_path: Path, on_sent: Callable[[float], None] | None = None
) -> dict[str, Any]:
    """POST the zip, streamed from disk by httpx (the file object is read in chunks)."""
    with TimedFile(zip_path, "rb") as fh:
        response = client.post(
            "/api/upload", files={"file": (zip_path.name, fh, "application/zip")}
        )
        if on_sent is not None:
            on_sent(fh.sent_at)
    if response.status_code != 200:
        raise RuntimeError(f"upload answered {response.status_code}: {response.text[:300]}")
    body: dict[str, Any] = response.json()
    return body


def wait_job(
    client: httpx.Client,
    job_id: str,
    timeout: float,
    interval: float = POLL_S,
    busy_slots: int = 1,
    latencies: list[float] | None = None,
) -> dict[str, Any]:
    """Poll the legacy status until the job finishes.

    Latencies (ms) of polls made while the job runs and the queue still holds
    at least `busy_slots` images (so every worker is busy) go into `latencies`.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        t0 = time.perf_counter()
        response = client.get(f"/api/status/{job_id}")
        elapsed = time.perf_counter() - t0
        body: dict[str, Any] = response.json()
        if response.status_code != 200:
            raise RuntimeError(f"status answered {response.status_code}: {body}")
        if body["status"] in ("SUCCESS", "FAILURE"):
            return body
        if (
            latencies is not None
            and body["status"] == "STARTED"
            and body["total"] - body["processed"] > busy_slots
        ):
            latencies.append(elapsed * 1000)
        time.sleep(interval)
    raise TimeoutError(f"job {job_id} did not finish in {timeout:.0f}s")


def download(client: httpx.Client, user_hash: str, dest: Path | None) -> int:
    """Stream the result zip into `dest` (or nowhere); return its size; check Content-Length."""
    size = 0
    with client.stream("GET", f"/api/download/{user_hash}") as response:
        if response.status_code != 200:
            response.read()
            raise RuntimeError(f"download answered {response.status_code}: {response.text[:300]}")
        declared = int(response.headers.get("content-length", "-1"))
        with contextlib.ExitStack() as stack:
            out = stack.enter_context(dest.open("wb")) if dest else None
            for chunk in response.iter_raw(MIB):
                if out is not None:
                    out.write(chunk)
                size += len(chunk)
    if declared != size:
        raise RuntimeError(f"result zip is {size} bytes but Content-Length said {declared}")
    return size


def check_result(zip_path: Path, images: int, deep: bool) -> list[str]:
    """What is wrong with a downloaded result zip, if anything."""
    problems = []
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
        root_images = [n for n in names if "/" not in n and not n.endswith((".csv", ".json"))]
        root_images = [n for n in root_images if not n.endswith(".geojson")]
        masks = [n for n in names if n.startswith("masks/")]
        if len(root_images) != images or len(masks) != images:
            problems.append(f"{len(root_images)} images and {len(masks)} masks, not {images}")
        for needed in ("summary.csv", "report.json"):
            if needed not in names:
                problems.append(f"no {needed}")
        if deep and (bad := zf.testzip()) is not None:
            problems.append(f"entry {bad} has a bad CRC")
    return problems


def run_job(
    server: Proc,
    zip_path: Path,
    images: int,
    workers: int,
    scratch: Path,
    deep_check: bool = False,
    timeout: float = 600.0,
    ml: Proc | None = None,
) -> JobRun:
    """One job, timed from upload start to SUCCESS and to the end of the download."""
    with httpx.Client(base_url=server.url, timeout=REQUEST_TIMEOUT) as client:
        latencies: list[float] = []
        cpu0 = cpu_seconds(server.pid), cpu_seconds(ml.pid) if ml else math.nan
        own0, busy0 = own_cpu_seconds(), machine_busy_seconds()
        t0 = time.perf_counter()
        job = upload(client, zip_path)
        t_up = time.perf_counter()
        status = wait_job(client, job["job_id"], timeout, busy_slots=workers, latencies=latencies)
        t_ok = time.perf_counter()
        if status["status"] != "SUCCESS":
            raise RuntimeError(f"job failed on {server.name}: {status['result']}")
        result_zip = scratch / f"result-{server.name}.zip"
        try:
            size = download(client, job["user_hash"], result_zip)
            t_dl = time.perf_counter()
            problems = check_result(result_zip, images, deep_check)
        except RuntimeError as exc:  # a broken download is reported, not fatal
            size, t_dl, problems = 0, math.nan, [str(exc)]
        result_zip.unlink(missing_ok=True)
        cpu = cpu_seconds(server.pid) - cpu0[0], cpu_seconds(ml.pid) - cpu0[1] if ml else math.nan
        ours = cpu[0] + (cpu[1] if ml else 0.0) + own_cpu_seconds() - own0
        others = (machine_busy_seconds() - busy0 - ours) / (time.perf_counter() - t0)
        errors = len(status["result"].get("errors", []))
        if errors:
            problems.append(f"{errors} per-image errors: {status['result']['errors'][:2]}")
        if status["processed"] != images or status["total"] != images:
            problems.append(f"processed {status['processed']}/{status['total']}, not {images}")
        # Free the disk now rather than after the TTL.
        client.delete(f"/api/v1/jobs/{job['job_id']}")
    timing = t_up - t0, t_ok - t0, t_dl - t0
    return JobRun(images, *timing, size, latencies, errors, problems, *cpu, others)


# /proc -----------------------------------------------------------------------
def proc_kib(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def machine_busy_seconds() -> float:
    """CPU time all processes have used, summed over cores (/proc/stat, idle and iowait out)."""
    with open("/proc/stat") as fh:
        fields = [int(v) for v in fh.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def wait_for_quiet(max_wait: float, threshold: float = QUIET_CORES) -> float:
    """Wait (at most `max_wait` s) for a second in which the machine uses < `threshold` cores.

    Other people's test runs share this machine; starting a timed job while they
    hold a core would measure them, not us. Returns the cores busy in the last second.
    """
    deadline = time.monotonic() + max_wait
    while True:
        busy0, t0 = machine_busy_seconds(), time.perf_counter()
        time.sleep(1.0)
        cores = (machine_busy_seconds() - busy0) / (time.perf_counter() - t0)
        if cores < threshold or time.monotonic() >= deadline:
            return cores


def reset_hwm(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0, `echo 5 > /proc/PID/clear_refs`)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class Sampler:
    """A background thread that calls `probe` every `interval` s and keeps (time, value)."""

    def __init__(self, probe: Callable[[], float], interval: float) -> None:
        self.probe = probe
        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.is_set():
            t = time.perf_counter()
            with contextlib.suppress(Exception):
                self.samples.append((t, self.probe()))
            self._stop.wait(self.interval)

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


# Inputs ------------------------------------------------------------------------
def make_big_zip(path: Path, target_bytes: int, distinct: int, size: tuple[int, int]) -> int:
    """~target_bytes of SAR-like PNGs, stored: copies of `distinct` scenes under distinct names."""
    import cv2

    from oilspill.sar import synth

    blobs = []
    for i in range(distinct):
        image = synth.make_scene(7000 + i, size).image
        ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 3])
        assert ok
        blobs.append(buf.tobytes())
    count = math.ceil(target_bytes / statistics.mean(len(b) for b in blobs))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for n in range(count):
            zf.writestr(f"scene_{n:04d}.png", blobs[n % distinct])
    return count


# Figures -----------------------------------------------------------------------
def median(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.median(finite) if finite else math.nan


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


@dataclass
class Row:
    figure: str
    ours: float
    unit: str
    old: float | None = None
    higher_is_better: bool = True

    def cells(self) -> tuple[str, str, str, str]:
        ours = f"{self.ours:,.1f} {self.unit}"
        if self.old is None:
            return self.figure, ours, "-", "-"
        old = f"{self.old:,.1f} {self.unit}"
        if self.higher_is_better:
            ratio = self.ours / self.old
        else:
            ratio = self.old / self.ours if self.ours > 0 else float("inf")
        return self.figure, ours, old, f"{ratio:.2f}x"


def print_table(rows: Sequence[Row]) -> None:
    header = ("figure", "ours", "old system", "ratio (better when > 1)")
    cells = [header, *(r.cells() for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(4)]
    line = "+".join("-" * (w + 2) for w in widths)
    for n, row in enumerate(cells):
        padded = [row[0].ljust(widths[0])]
        padded += [row[i].rjust(widths[i]) for i in range(1, len(row))]
        print(" | ".join(padded))
        if n == 0:
            print(line)


def say(*args: object) -> None:
    print(*args, flush=True)


# Sections ----------------------------------------------------------------------
@dataclass
class Config:
    key: str
    label: str
    args: list[str]
    busy_slots: int  # images in flight when every worker is busy
    ml_delay: float | None = None
    server: Proc | None = None
    ml: Proc | None = None
    runs: list[JobRun] = field(default_factory=list)

    @property
    def quiet_runs(self) -> list[JobRun]:
        return [run for run in self.runs if run.quiet]

    @property
    def used(self) -> list[JobRun]:
        """The runs the figures come from: the undisturbed ones when there are 2, else all."""
        quiet = self.quiet_runs
        return quiet if len(quiet) >= 2 else self.runs

    def rate(self, to: str = "success") -> float:
        return median([r.rate_success if to == "success" else r.rate_download for r in self.used])

    def best(self, to: str = "success") -> float:
        return max(r.rate_success if to == "success" else r.rate_download for r in self.runs)

    def cpu_ms(self) -> float:
        """Median CPU ms per image (service + fake ML): what the work costs, noise or not."""
        return median([r.cpu_ms for r in self.runs])

    def ceiling(self) -> float:
        """Images/s the CPU cost allows on this machine's cores when nothing else runs."""
        return (os.cpu_count() or 1) * 1000 / self.cpu_ms()

    def status_ms(self) -> list[float]:
        return [ms for run in self.used for ms in run.status_ms]


def throughput(
    work: Path, images: int, repeats: int, stack: contextlib.ExitStack, quiet_wait: float
) -> dict[str, Config]:
    from oilspill.sar import synth

    zip_path = work / "scenes.zip"
    warm_path = work / "warmup.zip"
    t0 = time.perf_counter()
    synth.write_zip(zip_path, images, seed=1000, size=(1250, 650))
    synth.write_zip(warm_path, 4, seed=5000, size=(1250, 650))
    say(
        f"made {images} synthetic 1250x650 scenes ({zip_path.stat().st_size / MIB:.1f} MiB zip) "
        f"in {time.perf_counter() - t0:.1f}s"
    )
    configs = [
        Config("w1", "embedded detector, --workers 1", ["--workers", "1"], 1),
        Config("w2", "embedded detector, --workers 2", ["--workers", "2"], 2),
        Config("http0", "http backend, instant model", [], 8, ml_delay=0.0),
        Config("http100", "http backend, 100 ms model", [], 8, ml_delay=0.1),
    ]
    for cfg in configs:
        if cfg.ml_delay is not None:
            cfg.ml = start_fake_ml(f"fake-ml-{cfg.key}", work, cfg.ml_delay)
            stack.callback(cfg.ml.stop)
            cfg.args = ["--backend", "http", "--ml-url", f"{cfg.ml.url}/segment"]
        cfg.server = start_service(cfg.key, work, *cfg.args)
        stack.callback(cfg.server.stop)
        health = httpx.get(cfg.server.url + "/healthz", timeout=10).json()
        cfg.busy_slots = int(health["workers"])
        say(f"  {cfg.key}: {cfg.label}: backend={health['backend']} workers={health['workers']}")
        run_job(cfg.server, warm_path, 4, cfg.busy_slots, work, True, ml=cfg.ml)  # warm-up

    def measure(cfg: Config, label: str, deep: bool, wait: float) -> None:
        assert cfg.server is not None
        if wait > 0:
            t_wait = time.perf_counter()
            cores = wait_for_quiet(wait)
            if cores >= QUIET_CORES:
                say(
                    f"  (machine still busy after {time.perf_counter() - t_wait:.0f}s: "
                    f"{cores:.2f} cores; measuring anyway)"
                )
        run = run_job(cfg.server, zip_path, images, cfg.busy_slots, work, deep, ml=cfg.ml)
        cfg.runs.append(run)
        lat = run.status_ms
        ml_cpu = f", fake ML {run.ml_cpu_s * 1000 / images:.1f}" if cfg.ml else ""
        say(
            f"  {label:9s} {cfg.key:8s} upload+unpack {run.upload_s:5.2f}s, "
            f"to SUCCESS {run.success_s:6.2f}s = {run.rate_success:5.1f} img/s, "
            f"to downloaded {run.download_s:6.2f}s = {run.rate_download:5.1f} img/s "
            f"(zip {run.zip_bytes / MIB:.0f} MiB)\n"
            f"{'':19s}CPU ms/img: service {run.server_cpu_s * 1000 / images:.1f}{ml_cpu}; "
            f"status p50 {percentile(lat, 50):.1f} ms p99 {percentile(lat, 99):.1f} ms "
            f"(n={len(lat)}); service used {run.server_cpu_s / run.download_s:.2f} cores, "
            f"other processes {run.others_cores:.2f}{'' if run.quiet else ' (disturbed)'}"
        )
        for problem in run.problems:
            say(f"    PROBLEM: {problem}")

    for rep in range(repeats):
        for cfg in configs:
            measure(cfg, f"round {rep + 1}", rep == 0, quiet_wait)
    # Runs during which other processes held a core measure them, not us: retry a few.
    wanted = min(repeats, 2)
    for extra in range(repeats):
        short = [cfg for cfg in configs if len(cfg.quiet_runs) < wanted]
        if not short or quiet_wait <= 0:
            break
        for cfg in short:
            measure(cfg, f"retry {extra + 1}", False, 3 * quiet_wait)
    for cfg in configs:
        assert cfg.server is not None
        cfg.server.stop()
    return {cfg.key: cfg for cfg in configs}


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


def memory_and_freeze(work: Path, target_bytes: int, stack: contextlib.ExitStack) -> MemoryResult:
    from oilspill.sar import synth

    big = work / "big.zip"
    t0 = time.perf_counter()
    count = make_big_zip(big, target_bytes, distinct=6, size=(2500, 1300))
    size = big.stat().st_size
    say(
        f"made {size / MIB:.0f} MiB zip of {count} stored 2500x1300 PNGs "
        f"in {time.perf_counter() - t0:.1f}s"
    )
    mib = math.ceil(size / MIB)
    server = start_service(
        "mem",
        work,
        "--workers",
        "2",
        "--max-upload-mb",
        str(2 * mib + 16),
        "--max-uncompressed-mb",
        str(4 * mib + 16),
    )
    stack.callback(server.stop)
    warm = work / "warmup-mem.zip"
    synth.write_zip(warm, 4, seed=5000, size=(1250, 650))
    run_job(server, warm, 4, 2, work)
    warm.unlink()
    time.sleep(0.5)
    pid = server.pid
    rss_before = proc_kib(pid, "VmRSS") / 1024
    hwm_reset = reset_hwm(pid)
    problems: list[str] = []
    probe = HealthProbe(server.url)
    rss = Sampler(lambda: proc_kib(pid, "VmRSS") / 1024, 0.005)
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


def stages(work: Path, n: int) -> dict[str, tuple[float, float]]:
    """Wall and CPU ms per 1250x650 image of each step of the pipeline, here, on one thread.

    CPU time is the whole process's (OpenCV may spread one call over its own threads),
    so it is also immune to other processes' load, unlike the wall time.
    """
    import cv2

    from oilspill.backends import http as http_backend
    from oilspill.backends import sar as sar_backend
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
        try:
            return images.encode(mask, "png", labels=True)
        except TypeError:  # an images.encode without label coding
            return images.encode(mask, "png")

    out = work / "stages-out"
    out.mkdir()
    for rep in range(2):  # the first pass warms up; the second is timed
        totals.clear()
        for i, path in enumerate(paths):
            raster = timed("decode (PNG)", images.load, path, path.name, "png", 10**9)
            seg = timed("detect (incl. overlay drawing)", sar_backend.segment_raster, raster)
            timed("overlay encode (PNG, BGR)", images.encode, seg.overlay, "png")
            timed("mask encode (PNG)", encode_mask, seg.mask)
            timed("original preview (JPEG)", preview, raster)
            thumb = images.fit_within(seg.overlay[..., :3], results.THUMB_PX)
            timed("thumbnail (JPEG)", images.encode, thumb, "jpeg")
            timed(
                "write_outputs (all 4 files)",
                results.write_outputs,
                raster,
                seg,
                out,
                i + rep * n,
                f"masks/{path.stem}.png",
            )
            # The http backend's work around the remote call, answered with the input itself.
            raster.source = path
            body = timed("http: read the file to send", path.read_bytes)
            remote = timed(
                "http: decode answer + diff mask", http_backend._from_annotated, raster, body, "x"
            )
            timed(
                "http: write_outputs (all 4 files)",
                results.write_outputs,
                raster,
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


def code_version() -> str:
    """The commit benchmarked, and whether oilspill/ had uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "oilspill"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return head + (f" + {len(dirty)} uncommitted change(s) in oilspill/" if dirty else "")


# Main --------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 images, 100 MiB zip")
    parser.add_argument("--repeats", type=int, help="rounds of the throughput jobs")
    parser.add_argument("--skip-memory", action="store_true", help="skip the big upload")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=20.0,
        help="seconds to wait, before each timed job, for other processes to leave the CPUs "
        "idle (0: don't wait; default 20)",
    )
    parser.add_argument("--fake-ml", nargs=2, metavar=("PORT", "DELAY"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.fake_ml:
        run_fake_ml(int(args.fake_ml[0]), float(args.fake_ml[1]))
        return 0

    images = 10 if args.quick else 100
    repeats = args.repeats or (2 if args.quick else 5)
    big_bytes = 100 * MIB if args.quick else GIB
    say(
        f"oilspill service benchmark: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
        f"{'quick' if args.quick else 'full'} run; code {code_version()}"
    )
    rows: list[Row] = []
    with (
        tempfile.TemporaryDirectory(prefix="oilspill-bench-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        work = Path(tmp)
        try:
            rows += section_throughput(work, images, repeats, stack, args.quiet_wait)
            if not args.skip_memory:
                wait_for_quiet(args.quiet_wait)
                rows += section_memory(work, big_bytes, stack)
            wait_for_quiet(args.quiet_wait)
            say("\n== where one image's time goes (this process, one thread, 1250x650) ==")
            say(f"  OpenCV threads per call: {cv2_threads()}")
            for key, (wall, cpu) in stages(work, 5 if args.quick else 20).items():
                say(f"  {key:34s} {wall:7.1f} ms wall {cpu:7.1f} ms CPU")
        except BaseException:
            for log in sorted(work.glob("*.log")):
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
                if tail:
                    say(f"--- {log.name} (tail) ---\n{tail}")
            raise
    say("\n== summary ==")
    print_table(rows)
    return 0


def section_throughput(
    work: Path, images: int, repeats: int, stack: contextlib.ExitStack, quiet_wait: float
) -> list[Row]:
    say(f"\n== end-to-end throughput: {images} images, {repeats} interleaved rounds ==")
    cfgs = throughput(work, images, repeats, stack, quiet_wait)
    w1, w2 = cfgs["w1"], cfgs["w2"]
    h0, h100 = cfgs["http0"], cfgs["http100"]
    if w1.quiet_runs and w2.quiet_runs:
        speedup = median([r.rate_success for r in w2.quiet_runs]) / median(
            [r.rate_success for r in w1.quiet_runs]
        )
        how = "medians of the undisturbed runs"
    else:
        speedup, how = w2.best() / w1.best(), "best runs (none undisturbed)"
    say(
        f"figures from undisturbed runs (other processes < {QUIET_CORES} cores) where there "
        "are 2 or more, else from all runs:"
    )
    for cfg in cfgs.values():
        lat = cfg.status_ms()
        ml_cpu = median([r.ml_cpu_s * 1000 / r.images for r in cfg.runs])
        say(
            f"  {cfg.label:31s} {cfg.rate():5.1f} img/s to SUCCESS (best {cfg.best():5.1f}), "
            f"{cfg.rate('dl'):5.1f} downloaded (best {cfg.best('dl'):5.1f}); "
            f"median of {len(cfg.used)} of {len(cfg.runs)} runs\n"
            f"{'':34s}CPU {cfg.cpu_ms():.0f} ms/img"
            + (f" (fake ML {ml_cpu:.0f} of it)" if cfg.ml else "")
            + f" = at most {cfg.ceiling():.1f} img/s on {os.cpu_count()} idle cores; "
            f"status p50 {percentile(lat, 50):.1f} ms p99 {percentile(lat, 99):.1f} ms "
            f"max {max(lat, default=math.nan):.1f} ms (n={len(lat)})"
        )
    say(f"  2 vs 1 workers: {speedup:.2f}x to SUCCESS ({how})")
    lat2 = w2.status_ms()
    return [
        Row("embedded, 1 worker: img/s to SUCCESS", w1.rate(), "img/s"),
        Row("embedded, 2 workers: img/s to SUCCESS", w2.rate(), "img/s"),
        Row("embedded, 2 workers: img/s downloaded", w2.rate("dl"), "img/s"),
        Row("speed-up 2 vs 1 workers (to SUCCESS)", speedup, "x"),
        Row("embedded: CPU per image", w2.cpu_ms(), "ms"),
        Row("http, instant model: img/s to SUCCESS", h0.rate(), "img/s", OLD_INSTANT),
        Row("http, instant model: img/s downloaded", h0.rate("dl"), "img/s", OLD_INSTANT),
        Row("http, instant: CPU-bound ceiling", h0.ceiling(), "img/s", OLD_INSTANT),
        Row("http, 100 ms model: img/s to SUCCESS", h100.rate(), "img/s", OLD_100MS),
        Row("http, 100 ms model: img/s downloaded", h100.rate("dl"), "img/s", OLD_100MS),
        Row("status p50, 2 workers busy", percentile(lat2, 50), "ms"),
        Row("status p99, 2 workers busy", percentile(lat2, 99), "ms"),
    ]


def section_memory(work: Path, big_bytes: int, stack: contextlib.ExitStack) -> list[Row]:
    say(f"\n== memory and responsiveness: {big_bytes / MIB:.0f} MiB upload ==")
    say(f"code {code_version()} (others commit as we run)")
    mem = memory_and_freeze(work, big_bytes, stack)
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
        rows.append(Row("/healthz max while processing it", mem.busy_health_max_ms, "ms"))
    return rows


if __name__ == "__main__":
    sys.exit(main())
