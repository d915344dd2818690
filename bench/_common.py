"""Shared by the bench scripts: servers, scene zips, jobs, timing, the table and the reproduce line.

Every server is a subprocess on 127.0.0.1 (a free port, data and logs in the
script's temporary folder), stopped by its PID with bounded waits. Every loop
that waits on the network has a deadline.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import math
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
MIB = 1 << 20
GIB = 1 << 30
SCENE_SIZE = (1250, 650)  # width, height of the throughput scenes

POLL_S = 0.02  # status poll interval near a job's end
EARLY_POLL_S = 0.25  # before it: polls 50 times a second took ~1.3 ms of service CPU an image
QUIET_CORES = 0.3  # a run during which other processes used more than this is "disturbed"
REQUEST_TIMEOUT = httpx.Timeout(120.0, connect=10.0)


def say(*args: object) -> None:
    print(*args, flush=True)


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
    """A server subprocess on 127.0.0.1 with its log in the bench folder.

    Waits (at most `timeout` s) until GET `ready` answers 200; `stop()` sends SIGTERM to
    its PID, waits at most 30 s, then SIGKILL and at most 10 s more.
    """

    def __init__(
        self, name: str, cmd: list[str], port: int, workdir: Path, ready: str, timeout: float = 60.0
    ) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = workdir / f"{name}.log"
        self._log_fh = self.log.open("wb")
        # cwd = the bench folder, so no stray .env of the caller is read.
        self.proc = subprocess.Popen(
            cmd, cwd=workdir, env=_clean_env(), stdout=self._log_fh, stderr=subprocess.STDOUT
        )
        try:
            self._wait_ready(ready, timeout)
        except BaseException:  # not ready, or interrupted (SIGTERM, Ctrl-C) while waiting
            self.stop()
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _wait_ready(self, path: str, timeout: float) -> None:
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
        raise RuntimeError(f"{self.name} did not answer in {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        """SIGTERM to our PID, bounded waits, SIGKILL if it does not go; safe to call twice."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log_fh.close()


def start_service(name: str, workdir: Path, *args: str) -> Proc:
    """`python -m oilspill serve` on 127.0.0.1, a free port, data under `workdir`."""
    port = free_port()
    data = workdir / f"{name}-data"
    cmd = [sys.executable, "-m", "oilspill", "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--data-dir", str(data), "--log-level", "warning", "--shutdown-grace", "5", *args]
    return Proc(name, cmd, port, workdir, "/healthz")


# Scene zips --------------------------------------------------------------------
def scene_zip(path: Path, n: int, seed: int, size: tuple[int, int] = SCENE_SIZE) -> Path:
    """A zip of `n` synthetic SAR scenes (PNG), seeds `seed`..`seed+n-1`."""
    from oilspill.sar import synth

    synth.write_zip(path, n, seed=seed, size=size)
    return path


def big_zip(path: Path, target_bytes: int, distinct: int, size: tuple[int, int]) -> int:
    """~target_bytes of SAR-like PNGs, stored: copies of `distinct` scenes under distinct names.

    Returns the number of images in it.
    """
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


# Timing ------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU time so far of a process and its live descendants (a service's worker processes,
    which live as long as it does)."""
    total = 0.0
    for each in tree_pids(pid):
        with contextlib.suppress(OSError):
            total += cpu_seconds(each)
    return total


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


def quiet_before(max_wait: float) -> None:
    """`wait_for_quiet`, saying so when the machine stayed busy; nothing when `max_wait` <= 0."""
    if max_wait <= 0:
        return
    t_wait = time.perf_counter()
    cores = wait_for_quiet(max_wait)
    if cores >= QUIET_CORES:
        say(
            f"  (machine still busy after {time.perf_counter() - t_wait:.0f}s: "
            f"{cores:.2f} cores; measuring anyway)"
        )


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
    ml_cpu_s: float = math.nan  # CPU time of the model servers it calls, if any
    others_cores: float = math.nan  # mean cores busy with other processes (machine noise)

    @property
    def quiet(self) -> bool:
        return self.others_cores < QUIET_CORES

    @property
    def cpu_ms(self) -> float:
        """CPU ms per image of the service plus the model servers it calls."""
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
    early_interval: float | None = None,
) -> dict[str, Any]:
    """Poll the legacy status until the job finishes (at most `timeout` s), over one plain
    keep-alive HTTP/1.1 connection to `client`'s server: httpx's ~1 ms of client CPU a
    request, 50 times a second, took a few per cent of the two cores from the service it
    timed.

    Every `interval` s; with `early_interval`, every `early_interval` s while more than
    2 x `busy_slots` images are left (a few images' time: SUCCESS is still seen within
    `interval` of it, and the polls' own load on the server stays small).
    Latencies (ms) of polls made while the job runs and the queue still holds
    more than `busy_slots` images (so every worker is busy) go into `latencies`.
    """
    url = client.base_url
    conn = http.client.HTTPConnection(url.host, url.port, timeout=120.0)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            conn.request("GET", f"/api/status/{job_id}")
            response = conn.getresponse()
            raw = response.read()
            elapsed = time.perf_counter() - t0
            body: dict[str, Any] = json.loads(raw)
            if response.status != 200:
                raise RuntimeError(f"status answered {response.status}: {body}")
            if body["status"] in ("SUCCESS", "FAILURE"):
                return body
            left = body["total"] - body["processed"]
            if latencies is not None and body["status"] == "STARTED" and left > busy_slots:
                latencies.append(elapsed * 1000)
            pause = interval
            if early_interval is not None and left > 2 * busy_slots:
                pause = early_interval
            time.sleep(pause)
    finally:
        conn.close()
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


def check_result(zip_path: Path, images: int, deep: bool, masks: bool = True) -> list[str]:
    """What is wrong with a downloaded result zip, if anything (`masks` False: a backend that
    gives none, so the zip must hold none)."""
    problems = []
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
        root_images = [n for n in names if "/" not in n and not n.endswith((".csv", ".json"))]
        root_images = [n for n in root_images if not n.endswith(".geojson")]
        found = [n for n in names if n.startswith("masks/") and not n.endswith(".preview.png")]
        if len(root_images) != images or len(found) != (images if masks else 0):
            problems.append(
                f"{len(root_images)} images and {len(found)} masks, not {images} and "
                f"{images if masks else 0}"
            )
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
    ml: Sequence[Proc] = (),
    masks: bool = True,
    early_poll: float | None = EARLY_POLL_S,
) -> JobRun:
    """One job, timed from upload start to SUCCESS and to the end of the download; its status
    polled every `early_poll` s until its last few images, then every POLL_S s (`wait_job`)."""
    with httpx.Client(base_url=server.url, timeout=REQUEST_TIMEOUT) as client:
        latencies: list[float] = []
        cpu0 = tree_cpu_seconds(server.pid), _cpu_of(ml)
        own0, busy0 = own_cpu_seconds(), machine_busy_seconds()
        t0 = time.perf_counter()
        job = upload(client, zip_path)
        t_up = time.perf_counter()
        status = wait_job(
            client,
            job["job_id"],
            timeout,
            busy_slots=workers,
            latencies=latencies,
            early_interval=early_poll,
        )
        t_ok = time.perf_counter()
        if status["status"] != "SUCCESS":
            raise RuntimeError(f"job failed on {server.name}: {status['result']}")
        result_zip = scratch / f"result-{server.name}.zip"
        try:
            size = download(client, job["user_hash"], result_zip)
            t_dl = time.perf_counter()
            problems = check_result(result_zip, images, deep_check, masks)
        except RuntimeError as exc:  # a broken download is reported, not fatal
            size, t_dl, problems = 0, math.nan, [str(exc)]
        result_zip.unlink(missing_ok=True)
        cpu = tree_cpu_seconds(server.pid) - cpu0[0], _cpu_of(ml) - cpu0[1]
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


def _cpu_of(procs: Sequence[Proc]) -> float:
    """CPU seconds of all `procs` together; NaN for none."""
    return sum(cpu_seconds(p.pid) for p in procs) if procs else math.nan


# Interleaved rounds --------------------------------------------------------------
@dataclass
class Config:
    """One server configuration measured over several runs of the same zip."""

    key: str
    label: str
    args: list[str]
    busy_slots: int = 1  # images in flight when every worker is busy (from /healthz)
    server: Proc | None = None
    ml: list[Proc] = field(default_factory=list)  # the model servers it calls, if any
    masks: bool = True  # False: its backend gives no masks (an echo model server)
    early_poll: float | None = EARLY_POLL_S  # None: the jobs' polls every POLL_S s throughout
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

    def start(self, work: Path, stack: contextlib.ExitStack, warm_zip: Path) -> None:
        """Start the service (stopped when `stack` closes) and run one 4-image warm-up job."""
        self.server = start_service(self.key, work, *self.args)
        stack.callback(self.server.stop)
        health = httpx.get(self.server.url + "/healthz", timeout=10).json()
        self.busy_slots = int(health["workers"])
        say(f"  {self.key}: {self.label}: backend={health['backend']} workers={health['workers']}")
        run_job(self.server, warm_zip, 4, self.busy_slots, work, True, ml=self.ml, masks=self.masks)

    def summary(self) -> str:
        """The configuration's figures over its runs, in two lines."""
        lat = self.status_ms()
        ml_cpu = median([r.ml_cpu_s * 1000 / r.images for r in self.runs])
        return (
            f"  {self.label:31s} {self.rate():5.1f} img/s to SUCCESS (best {self.best():5.1f}), "
            f"{self.rate('dl'):5.1f} downloaded (best {self.best('dl'):5.1f}); "
            f"median of {len(self.used)} of {len(self.runs)} runs\n"
            f"{'':34s}CPU {self.cpu_ms():.0f} ms/img"
            + (f" (model servers {ml_cpu:.0f} of it)" if self.ml else "")
            + f" = at most {self.ceiling():.1f} img/s on {os.cpu_count()} idle cores; "
            f"status p50 {percentile(lat, 50):.1f} ms p99 {percentile(lat, 99):.1f} ms "
            f"max {max(lat, default=math.nan):.1f} ms (n={len(lat)})"
        )


def warm_zip(work: Path) -> Path:
    """The 4-scene zip every server's warm-up job uploads."""
    return scene_zip(work / "warmup.zip", 4, seed=5000)


def timed_zip(work: Path, images: int) -> Path:
    """The zip of `images` scenes (seeds 1000..) the timed jobs upload, saying what it is."""
    t0 = time.perf_counter()
    path = scene_zip(work / "scenes.zip", images, seed=1000)
    say(
        f"made {images} synthetic {SCENE_SIZE[0]}x{SCENE_SIZE[1]} scenes "
        f"({path.stat().st_size / MIB:.1f} MiB zip) in {time.perf_counter() - t0:.1f}s"
    )
    return path


def run_rounds(
    configs: Sequence[Config],
    zip_path: Path,
    images: int,
    rounds: int,
    work: Path,
    quiet_wait: float,
    before_round: Callable[[int], object] | None = None,
) -> None:
    """Upload `zip_path` to each started config in turn, `rounds` times (round-robin);
    `before_round(n)` runs at the start of round n (not before retries).

    Servers run side by side and jobs are interleaved, so their ratios compare runs
    made under the same machine noise. The first round checks the result zips' CRCs.
    Configs left with fewer than 2 undisturbed runs are retried (at most `rounds`
    times, after a longer quiet wait) when `quiet_wait` > 0.
    """

    def measure(cfg: Config, label: str, deep: bool, wait: float) -> None:
        assert cfg.server is not None
        quiet_before(wait)
        run = run_job(
            cfg.server,
            zip_path,
            images,
            cfg.busy_slots,
            work,
            deep,
            ml=cfg.ml,
            masks=cfg.masks,
            early_poll=cfg.early_poll,
        )
        cfg.runs.append(run)
        lat = run.status_ms
        ml_cpu = f", model servers {run.ml_cpu_s * 1000 / images:.1f}" if cfg.ml else ""
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

    for rep in range(rounds):
        if before_round is not None:
            quiet_before(quiet_wait)
            before_round(rep)
        for cfg in configs:
            measure(cfg, f"round {rep + 1}", rep == 0, quiet_wait)
    # Runs during which other processes held a core measure them, not us: retry a few.
    wanted = min(rounds, 2)
    for extra in range(rounds):
        short = [cfg for cfg in configs if len(cfg.quiet_runs) < wanted]
        if not short or quiet_wait <= 0:
            break
        for cfg in short:
            measure(cfg, f"retry {extra + 1}", False, 3 * quiet_wait)
    say(
        f"figures from undisturbed runs (other processes < {QUIET_CORES} cores) where there "
        "are 2 or more, else from all runs:"
    )


def make_parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser whose --help shows the script's whole docstring, as written."""
    return argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def add_rounds_args(parser: argparse.ArgumentParser, images: int, rounds: int) -> None:
    """-n/--images, --rounds and --quiet-wait, for the scripts that time jobs."""
    parser.add_argument(
        "-n", "--images", type=int, default=images, help=f"images per job (default {images})"
    )
    parser.add_argument(
        "--rounds", type=int, default=rounds, help=f"interleaved rounds of jobs (default {rounds})"
    )
    add_quiet_arg(parser)


def add_quiet_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=20.0,
        help="seconds to wait, before each timed job, for other processes to leave the CPUs "
        "idle (0: don't wait; default 20)",
    )


# Table and reproduce line ------------------------------------------------------
@dataclass
class Row:
    figure: str
    ours: float
    unit: str
    old: float | None = None  # the old system's figure, if it has one
    higher_is_better: bool = True

    def cells(self) -> tuple[str, str, str, str]:
        digits = 2 if self.unit == "x" else 1  # ratios: 0.87 and 0.83 are not both "0.8"
        ours = f"{self.ours:,.{digits}f} {self.unit}"
        if self.old is None:
            return self.figure, ours, "-", "-"
        old = f"{self.old:,.{digits}f} {self.unit}"
        if self.higher_is_better:
            ratio = self.ours / self.old
        else:
            ratio = self.old / self.ours if self.ours > 0 else float("inf")
        return self.figure, ours, old, f"{ratio:.2f}x"


def print_table(rows: Sequence[Row]) -> None:
    header = ("figure", "ours", "old system", "ratio (better when > 1)")
    cells = [header, *(r.cells() for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(4)]
    line = "-+-".join("-" * w for w in widths)
    for n, row in enumerate(cells):
        padded = [row[0].ljust(widths[0])]
        padded += [row[i].rjust(widths[i]) for i in range(1, len(row))]
        print(" | ".join(padded))
        if n == 0:
            print(line)
    sys.stdout.flush()


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=10, check=True
    ).stdout.strip()


def code_version() -> str:
    """`git rev-parse --short HEAD`, plus " dirty" when `git status --porcelain` lists anything."""
    try:
        head, status = _git("rev-parse", "--short", "HEAD"), _git("status", "--porcelain")
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return head + (" dirty" if status else "")


def command_line(script: str, parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """The command that reruns `script` with every option at the value this run used."""
    path = Path(script).resolve()
    with contextlib.suppress(ValueError):
        path = path.relative_to(ROOT)
    words = ["python", str(path)]
    for action in parser._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS:
            continue
        if isinstance(action, argparse._HelpAction):
            continue
        value = getattr(args, action.dest)
        if isinstance(action, argparse._StoreTrueAction):
            words += [action.option_strings[0]] if value else []
        elif value is not None:
            text = f"{value:g}" if isinstance(value, float) else str(value)
            words += [action.option_strings[0], text]
    return shlex.join(words)


@dataclass
class Session:
    """A script's run: its temporary folder, what to stop at the end, the commit at start."""

    work: Path
    stack: contextlib.ExitStack
    commit: str


@contextlib.contextmanager
def session(title: str) -> Iterator[Session]:
    """Temporary folder + exit stack; prints a header, and the servers' log tails on failure.

    SIGTERM is turned into SystemExit so the servers started are stopped on it too.
    """
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    commit = code_version()
    say(
        f"oilspill bench: {title}; {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
        f"commit {commit}"
    )
    say(host_pace())
    compile_checkout()
    with (
        tempfile.TemporaryDirectory(prefix="oilspill-bench-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        work = Path(tmp)
        try:
            yield Session(work, stack, commit)
        except BaseException:
            for log in sorted(work.glob("*.log")):
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
                if tail:
                    say(f"--- {log.name} (tail) ---\n{tail}")
            raise


def compile_checkout() -> None:
    """Cache the checkout's bytecode, as `pip install` does for an installed package.

    The benches run this checkout's code (`PYTHONPATH`, or the working folder for
    `python -m oilspill`); where nothing has cached its bytecode (a fresh clone, or
    PYTHONDONTWRITEBYTECODE set), every process would compile ~60 modules first, ~0.12 s
    of each `oilspill segment` start that an installed package never pays.
    """
    import compileall

    compileall.compile_dir(ROOT / "oilspill", quiet=1)


def host_pace() -> str:
    """This host's pace on two fixed workloads, one thread (median of 5), so that absolute
    figures from different hosts can be set side by side: a pure-Python loop (what holds the
    GIL) and OpenCV box filters over a float32 image (what the detector's stages do)."""
    import cv2
    import numpy as np

    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    image = np.random.default_rng(0).random((1024, 1024), dtype=np.float32)
    py, cv = [], []
    try:
        for _ in range(5):
            start = time.process_time()
            total = 0
            for i in range(1_000_000):
                total += i & 7
            py.append(time.process_time() - start)
            start = time.process_time()
            for _ in range(20):
                cv2.blur(image, (5, 5))
            cv.append(time.process_time() - start)
    finally:
        cv2.setNumThreads(threads)
    return (
        f"host pace (CPU, one thread, median of 5): Python loop of 1e6 {1000 * median(py):.0f} ms,"
        f" 20 OpenCV 5x5 blurs of 1024x1024 float32 {1000 * median(cv):.0f} ms"
    )


def finish(
    run: Session,
    rows: Sequence[Row],
    script: str,
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
) -> None:
    """Print the summary table (if any rows), the command that reproduces it and the commit."""
    if rows:
        say("\n== summary ==")
        print_table(rows)
    now = code_version()
    commit = run.commit if now == run.commit else f"{run.commit} at start, {now} at the end"
    say(f"\nreproduce (from the repository root): {command_line(script, parser, args)}")
    say(f"commit: {commit}")


# Process trees -----------------------------------------------------------------
def _children_map() -> dict[int, list[int]]:
    """PPID -> PIDs, from /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as fh:
                ppid = int(fh.read().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def tree_pids(root: int) -> list[int]:
    children = _children_map()
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, []))
    return pids


def rss_kib(pid: int) -> int:
    """VmRSS of a process in KiB; 0 for one that is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def tree_rss_mib(root: int) -> tuple[float, int]:
    """Summed VmRSS of `root` and its descendants in MiB, and how many processes."""
    pids = tree_pids(root)
    return sum(rss_kib(p) for p in pids) / 1024, len(pids)


class Periodic:
    """A daemon thread calling `sample()` every `interval` s between `with` and its end."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)

    def __enter__(self) -> Any:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def sample(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                self.sample()
            self._stop.wait(self.interval)
