"""Wall time and peak RSS of whole Sentinel-1-sized scenes, through `segment` and through `serve`.

    python bench/fullscene.py                              # 10000x10000, 25000x16900, 40000x25000
    python bench/fullscene.py --sizes 3000x2000,4000x4000  # smoke run
    GDAL_CACHEMAX=256 python bench/fullscene.py --only segment  # a bigger GDAL block cache

For each WIDTHxHEIGHT in --sizes it writes (once; cached in --workdir) a uint16
GeoTIFF that looks like a Sentinel-1 GRD amplitude scene: sqrt(gamma(4, 1/4))
speckle times ~120 DN (a gentle range falloff), a few dark elongated ellipses
(oil-like, -8 dB, soft edges) and bright point ships; tiled 512, deflate, UTM 33N
(EPSG:32633) with 10 m pixels. It is written window by window, so the generator
stays in bounded memory whatever the size.

Then, with OILSPILL_WORKERS=2 (no other OILSPILL_* variable leaks in; GDAL_CACHEMAX
passes through when set):

- segment: `oilspill segment SCENE.tif -o OUT` as a subprocess, wall time from
  start to exit.
- serve: `oilspill serve` on 127.0.0.1 (a free port, a data folder of its own),
  ready when GET /healthz answers; the TIFF zipped (stored) is uploaded to
  POST /api/upload, GET /api/status/{job_id} is polled every 0.5 s until
  SUCCESS/FAILURE, and the result is streamed from GET /api/download/{user_hash}
  to nowhere; wall time from upload start to SUCCESS. The server is stopped by its
  PID (SIGTERM, at most 30 s, then SIGKILL).

Peak RSS is that of the whole process tree: VmRSS of the process and every
descendant, summed, sampled every 0.2 s, the largest sum (for serve, from just
before the upload to the end of the download). As a cross-check, ru_maxrss from
wait4 on the process (the largest single process in its tree, over its whole
life) and getrusage(RUSAGE_CHILDREN).ru_maxrss after it (the same, but over
every child this script has reaped so far). Limits a scene would exceed
(--max-image-mpx, --max-upload-mb, --max-uncompressed-mb) are raised for it,
and said so. Prints figures; asserts nothing.
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from _common import (
    MIB,
    ROOT,
    Periodic,
    code_version,
    command_line,
    download,
    free_port,
    make_parser,
    say,
    tree_rss_mib,
)
from _common import upload as post_upload

DEFAULT_SIZES = "10000x10000,25000x16900,40000x25000"
DEFAULT_WORKDIR = Path("/tmp/oilspill-fullscene")
WORKERS = 2
BUDGET_VAR = "GDAL_CACHEMAX"  # oilspill sets 64 (MiB) unless the environment says otherwise
SAMPLE_S = 0.2  # RSS sampling interval
POLL_S = 0.5  # status poll interval
READY_S = 120.0  # the server must answer /healthz within this
STOP_S = 30.0  # SIGTERM, then SIGKILL after this
SCENE_VERSION = 1  # bump when the generator changes: cached scenes are named by it
SEED = 20240917

# The service's defaults a scene may exceed (`oilspill settings`).
DEFAULT_MAX_IMAGE_MPX = 500
DEFAULT_MAX_UPLOAD_MB = 1024
DEFAULT_MAX_UNCOMPRESSED_MB = 8192

# Scene look: amplitude DN of the sea, oil darkening, ships.
SEA_DN = 120.0
OIL_DB = -8.0
LOOKS = 4.0
BLOCK = 512
CHUNK_COLS = 8 * BLOCK  # a window is 512 rows x 4096 columns: ~16 MiB of float32 at most


# Scene -------------------------------------------------------------------------
@dataclass(frozen=True)
class Ellipse:
    row: float
    col: float
    a: float  # semi-major axis, px
    b: float  # semi-minor axis, px
    angle: float  # radians

    def bbox(self) -> tuple[int, int, int, int]:
        """Rows and columns (start, stop) that may hold it."""
        r = math.ceil(self.a) + 1
        return (int(self.row) - r, int(self.row) + r + 1, int(self.col) - r, int(self.col) + r + 1)


@dataclass(frozen=True)
class Ship:
    row: int
    col: int
    size: int  # px, square
    dn: float


def scene_layout(width: int, height: int, seed: int) -> tuple[list[Ellipse], list[Ship]]:
    """Where the slicks and ships of a scene are: a few slicks, ships by the hundred Mpx."""
    rng = np.random.default_rng([seed, width, height])
    mpx = width * height / 1e6
    longest = min(width, height) / 5
    slicks = []
    for _ in range(min(3 + int(mpx // 100), 12)):
        a = float(rng.uniform(0.3, 1.0)) * min(longest, 600.0)  # up to 6 km half-length
        b = a * float(rng.uniform(0.06, 0.2))
        row = float(rng.uniform(a, height - a)) if height > 2 * a else height / 2
        col = float(rng.uniform(a, width - a)) if width > 2 * a else width / 2
        slicks.append(Ellipse(row, col, a, b, float(rng.uniform(0, math.pi))))
    ships = [
        Ship(
            int(rng.integers(8, height - 8)),
            int(rng.integers(8, width - 8)),
            int(rng.integers(2, 7)),
            float(rng.uniform(2000, 12000)),
        )
        for _ in range(min(10 + int(mpx // 5), 300))
    ]
    return slicks, ships


def scene_window(
    width: int,
    r0: int,
    r1: int,
    c0: int,
    c1: int,
    slicks: Sequence[Ellipse],
    ships: Sequence[Ship],
    seed: int,
) -> np.ndarray:
    """Rows r0:r1, columns c0:c1 of the scene, uint16 (deterministic per window)."""
    rng = np.random.default_rng([seed, r0, c0])
    intensity = rng.standard_gamma(LOOKS, size=(r1 - r0, c1 - c0), dtype=np.float32)
    amp = np.sqrt(intensity / np.float32(LOOKS))
    # Range falloff: near range brighter than far range, like an IW swath.
    cols = np.arange(c0, c1, dtype=np.float32)
    amp *= np.float32(SEA_DN) * (np.float32(1.15) - np.float32(0.3) * cols / np.float32(width))
    dark = np.float32(10 ** (OIL_DB / 20))
    for e in slicks:
        er0, er1, ec0, ec1 = e.bbox()
        sr0, sr1, sc0, sc1 = max(er0, r0), min(er1, r1), max(ec0, c0), min(ec1, c1)
        if sr0 >= sr1 or sc0 >= sc1:
            continue
        yy, xx = np.ogrid[sr0:sr1, sc0:sc1]
        dy, dx = (yy - e.row).astype(np.float32), (xx - e.col).astype(np.float32)
        cos, sin = math.cos(e.angle), math.sin(e.angle)
        u, v = dx * cos + dy * sin, -dx * sin + dy * cos
        radius = np.sqrt((u / e.a) ** 2 + (v / e.b) ** 2)
        # 1 outside, `dark` well inside, a soft edge over the outer 25 % of the radius.
        depth = np.clip((1.0 - radius) / 0.25, 0.0, 1.0)
        amp[sr0 - r0 : sr1 - r0, sc0 - c0 : sc1 - c0] *= 1.0 - (1.0 - dark) * depth
    for s in ships:
        sr0, sr1 = max(s.row, r0), min(s.row + s.size, r1)
        sc0, sc1 = max(s.col, c0), min(s.col + s.size, c1)
        if sr0 < sr1 and sc0 < sc1:
            amp[sr0 - r0 : sr1 - r0, sc0 - c0 : sc1 - c0] = s.dn
    out: np.ndarray = np.clip(amp + 0.5, 1, 65535).astype(np.uint16)
    return out


def scene_path(workdir: Path, width: int, height: int) -> Path:
    return workdir / f"s1like_{width}x{height}_v{SCENE_VERSION}.tif"


def write_scene(path: Path, width: int, height: int, seed: int = SEED) -> None:
    """The scene as a tiled deflate GeoTIFF, window by window, to `path` (atomically)."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    slicks, ships = scene_layout(width, height, seed)
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": 1,
        "dtype": "uint16",
        "crs": "EPSG:32633",
        "transform": from_origin(400000, 6200000, 10, 10),
        "tiled": True,
        "blockxsize": BLOCK,
        "blockysize": BLOCK,
        "compress": "deflate",
        "num_threads": "ALL_CPUS",
        "bigtiff": "IF_SAFER",
    }
    partial = path.with_name(path.name + ".partial")
    try:
        with rasterio.Env(GDAL_CACHEMAX=256), rasterio.open(partial, "w", **profile) as dst:
            for r0 in range(0, height, BLOCK):
                r1 = min(r0 + BLOCK, height)
                for c0 in range(0, width, CHUNK_COLS):
                    c1 = min(c0 + CHUNK_COLS, width)
                    block = scene_window(width, r0, r1, c0, c1, slicks, ships, seed)
                    dst.write(block, 1, window=Window(c0, r0, c1 - c0, r1 - r0))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def ensure_scene(workdir: Path, width: int, height: int) -> Path:
    path = scene_path(workdir, width, height)
    if path.exists():
        say(f"  scene {path} (cached, {path.stat().st_size / MIB:.0f} MiB)")
        return path
    t0 = time.perf_counter()
    write_scene(path, width, height)
    say(
        f"  wrote {path} ({path.stat().st_size / MIB:.0f} MiB) in "
        f"{time.perf_counter() - t0:.1f}s, peak RSS of this script so far "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )
    return path


# Process trees -----------------------------------------------------------------
class TreeSampler(Periodic):
    """A thread sampling the process tree's summed VmRSS every SAMPLE_S s."""

    def __init__(self, root: int) -> None:
        super().__init__(SAMPLE_S)
        self.root = root
        self.samples: list[tuple[float, float, int]] = []  # (time, MiB, processes)

    def sample(self) -> None:
        mib, n = tree_rss_mib(self.root)
        self.samples.append((time.perf_counter(), mib, n))

    def peak(self, t0: float = -math.inf, t1: float = math.inf) -> tuple[float, int]:
        """The largest sum between t0 and t1, and the most processes seen then."""
        window = [(m, n) for t, m, n in self.samples if t0 <= t <= t1]
        return max((m for m, _ in window), default=math.nan), max((n for _, n in window), default=0)


def reap(proc: subprocess.Popen[bytes], timeout: float) -> resource.struct_rusage | None:
    """wait4 on `proc` for at most `timeout` s; its rusage (and returncode set), or None."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return usage
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes], group: bool = False) -> resource.struct_rusage | None:
    """SIGTERM to our PID (or its process group), at most STOP_S s, then SIGKILL."""
    if proc.returncode is not None:
        return None

    def send(sig: signal.Signals) -> None:
        (os.killpg if group else os.kill)(proc.pid, sig)

    with contextlib.suppress(ProcessLookupError):
        send(signal.SIGTERM)
    usage = reap(proc, STOP_S)
    if usage is None:
        with contextlib.suppress(ProcessLookupError):
            send(signal.SIGKILL)
        usage = reap(proc, 10.0)
    return usage


def children_maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


# Runs --------------------------------------------------------------------------
@dataclass
class Result:
    size: str
    mpx: float
    command: str
    wall_s: float = math.nan
    peak_mib: float = math.nan
    maxrss_mib: float = math.nan  # wait4 ru_maxrss: the largest single process of the tree
    status: str = "not run"
    notes: list[str] = field(default_factory=list)


def oilspill_cmd() -> list[str]:
    """The `oilspill` console script next to this Python, else `python -m oilspill`."""
    script = Path(sys.executable).parent / "oilspill"
    return [str(script)] if script.exists() else [sys.executable, "-m", "oilspill"]


def child_env() -> dict[str, str]:
    """No OILSPILL_* variable leaks in; 2 workers; this checkout first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OILSPILL_")}
    if BUDGET_VAR in os.environ:
        env[BUDGET_VAR] = os.environ[BUDGET_VAR]
    env["OILSPILL_WORKERS"] = str(WORKERS)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def log_tail(path: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def mpx_limit(mpx: float) -> list[str]:
    if mpx <= DEFAULT_MAX_IMAGE_MPX:
        return []
    return ["--max-image-mpx", str(math.ceil(mpx) + 1)]


def run_segment(tif: Path, size: str, mpx: float, run_dir: Path, timeout: float) -> Result:
    result = Result(size, mpx, "segment")
    out = run_dir / f"segment-{size}"
    log = run_dir / f"segment-{size}.log"
    cmd = [*oilspill_cmd(), "segment", str(tif), "-o", str(out), *mpx_limit(mpx)]
    if mpx_limit(mpx):
        result.notes.append(f"--max-image-mpx raised to {mpx_limit(mpx)[1]}")
    say(f"  $ OILSPILL_WORKERS={WORKERS} {shlex.join(cmd)}")
    with log.open("wb") as fh:
        t0 = time.perf_counter()
        # A session of its own: on a timeout the whole tree it started is stopped by its PGID.
        proc = subprocess.Popen(
            cmd,
            cwd=run_dir,
            env=child_env(),
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            with TreeSampler(proc.pid) as sampler:
                usage = reap(proc, timeout)
                wall = time.perf_counter() - t0
        finally:
            if proc.returncode is None:
                usage = stop(proc, group=True)
                wall = math.nan
    result.wall_s = wall
    result.peak_mib, procs = sampler.peak()
    if usage is not None:
        result.maxrss_mib = usage.ru_maxrss / 1024
    output = log.read_text(errors="replace")
    failed = [
        line.split("failed:", 1)[1].strip() for line in output.splitlines() if "failed:" in line
    ]
    if math.isnan(wall):
        result.status = f"timeout after {timeout:.0f}s"
    elif proc.returncode != 0:
        result.status = f"exit {proc.returncode}: " + (failed[0] if failed else log_tail(log, 3))
    elif failed:
        result.status = f"image failed: {failed[0]}"
    elif not (out / "summary.csv").exists():
        result.status = "exit 0 but no summary.csv"
    else:
        result.status = "ok"
    result.notes.append(f"{procs} processes at most in the tree")
    result.notes.append(f"getrusage(RUSAGE_CHILDREN) ru_maxrss {children_maxrss_mib():.0f} MiB")
    if result.status != "ok":
        say(f"  --- {log.name} (tail) ---\n{log_tail(log)}")
    return result


def wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited at start:\n{log_tail(log)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/healthz", timeout=2.0).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"server did not answer /healthz in {READY_S:.0f}s:\n{log_tail(log)}")


def poll_job(client: httpx.Client, job_id: str, deadline: float) -> dict[str, object]:
    """GET /api/status/{job_id} every POLL_S s until SUCCESS/FAILURE or the deadline."""
    while time.monotonic() < deadline:
        response = client.get(f"/api/status/{job_id}")
        if response.status_code != 200:
            raise RuntimeError(f"status answered {response.status_code}: {response.text[:300]}")
        body: dict[str, object] = response.json()
        if body.get("status") in ("SUCCESS", "FAILURE"):
            return body
        time.sleep(POLL_S)
    raise TimeoutError("the job did not finish in time")


def describe(body: dict[str, object]) -> str:
    """SUCCESS, SUCCESS with per-image errors, or FAILURE and why."""
    status, result = str(body.get("status")), body.get("result")
    if status == "SUCCESS" and isinstance(result, dict):
        errors = result.get("errors") or []
        if errors:
            first = errors[0]
            why = first.get("error", first) if isinstance(first, dict) else first
            return f"SUCCESS, {len(errors)} image error(s): {why}"
        return "SUCCESS"
    return f"{status}: {result}"


def run_serve(tif: Path, size: str, mpx: float, run_dir: Path, timeout: float) -> Result:
    result = Result(size, mpx, "serve")
    zip_path = run_dir / f"{tif.stem}.zip"
    t0 = time.perf_counter()
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_STORED) as zf:
        zf.write(tif, tif.name)
    zip_mib = zip_path.stat().st_size / MIB
    say(f"  zipped (stored) {zip_mib:.0f} MiB in {time.perf_counter() - t0:.1f}s")
    limits = mpx_limit(mpx)
    if zip_mib + 16 > DEFAULT_MAX_UPLOAD_MB:
        limits += ["--max-upload-mb", str(math.ceil(zip_mib * 1.1) + 64)]
    if zip_mib + 16 > DEFAULT_MAX_UNCOMPRESSED_MB:
        limits += ["--max-uncompressed-mb", str(math.ceil(zip_mib * 1.1) + 64)]
    if limits:
        result.notes.append("limits raised: " + " ".join(limits))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = run_dir / f"serve-{size}.log"
    cmd = [*oilspill_cmd(), "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--data-dir", str(run_dir / f"serve-{size}-data"), "--log-level", "warning"]
    cmd += ["--shutdown-grace", "5", *limits]
    say(f"  $ OILSPILL_WORKERS={WORKERS} {shlex.join(cmd)}")
    usage = None
    sampler: TreeSampler | None = None
    with contextlib.ExitStack() as stack:
        fh = stack.enter_context(log.open("wb"))
        proc = subprocess.Popen(cmd, cwd=run_dir, env=child_env(), stdout=fh, stderr=fh)
        try:
            wait_ready(proc, url, log)
            base_mib, _ = tree_rss_mib(proc.pid)
            sampler = stack.enter_context(TreeSampler(proc.pid))
            time.sleep(2 * SAMPLE_S)
            client = stack.enter_context(
                httpx.Client(base_url=url, timeout=httpx.Timeout(timeout, connect=10.0))
            )
            t_start = time.perf_counter()
            deadline = time.monotonic() + timeout
            job = post_upload(client, zip_path)
            t_up = time.perf_counter()
            body = poll_job(client, str(job["job_id"]), deadline)
            t_ok = time.perf_counter()
            result.status = describe(body)
            result.wall_s = t_ok - t_start  # to SUCCESS (or to FAILURE)
            if body.get("status") == "SUCCESS":
                nbytes = download(client, str(job["user_hash"]), None)
                t_dl = time.perf_counter()
                result.notes.append(
                    f"upload+unpack {t_up - t_start:.1f}s, download {nbytes / MIB:.0f} MiB "
                    f"in {t_dl - t_ok:.1f}s"
                )
            time.sleep(2 * SAMPLE_S)
            result.peak_mib, procs = sampler.peak(t_start - SAMPLE_S, math.inf)
            result.notes.append(f"server tree {base_mib:.0f} MiB before the upload")
            result.notes.append(f"{procs} processes at most in the tree")
            client.delete(f"/api/v1/jobs/{job['job_id']}")
        except (RuntimeError, TimeoutError, httpx.HTTPError, KeyError) as exc:
            result.status = f"error: {type(exc).__name__}: {exc}"[:300]
            if sampler is not None:
                result.peak_mib, _ = sampler.peak()
        finally:
            usage = stop(proc)
    zip_path.unlink(missing_ok=True)
    if usage is not None:
        result.maxrss_mib = usage.ru_maxrss / 1024
        result.notes.append("ru_maxrss over the server's whole life")
    result.notes.append(f"getrusage(RUSAGE_CHILDREN) ru_maxrss {children_maxrss_mib():.0f} MiB")
    if result.status != "SUCCESS":
        say(f"  --- {log.name} (tail) ---\n{log_tail(log)}")
    return result


# Table -------------------------------------------------------------------------
def num(value: float, spec: str = ",.0f") -> str:
    """A figure, or "-" when it was not measured."""
    return "-" if math.isnan(value) else format(value, spec)


def print_table(results: Sequence[Result]) -> None:
    header = ("size", "Mpx", "command", "wall s", "peak RSS MiB (tree)", "ru_maxrss MiB", "status")
    rows = [header]
    for r in results:
        rows.append(
            (
                r.size,
                f"{r.mpx:.1f}",
                r.command,
                num(r.wall_s, ".1f"),
                num(r.peak_mib),
                num(r.maxrss_mib),
                r.status,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    right = {1, 3, 4, 5}
    for n, row in enumerate(rows):
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        say(" | ".join(cells).rstrip())
        if n == 0:
            say("-+-".join("-" * w for w in widths))


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for word in text.split(","):
        w, sep, h = word.strip().lower().partition("x")
        if not sep or not w.isdigit() or not h.isdigit() or int(w) < 64 or int(h) < 64:
            raise SystemExit(f"--sizes: {word!r} is not WIDTHxHEIGHT (each >= 64)")
        sizes.append((int(w), int(h)))
    return sizes


@contextlib.contextmanager
def run_folder(workdir: Path, keep: bool) -> Iterator[Path]:
    path = workdir / time.strftime("run-%Y%m%d-%H%M%S")
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        if keep:
            say(f"\noutputs kept in {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument(
        "--sizes", default=DEFAULT_SIZES, help=f"WIDTHxHEIGHT,... (default {DEFAULT_SIZES})"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR,
        help=f"where the scenes are cached and the runs write (default {DEFAULT_WORKDIR})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=900.0,
        help="seconds one segment run, or one job from upload to SUCCESS, may take (default 900)",
    )
    parser.add_argument(
        "--only", choices=("segment", "serve", "both"), default="both", help="default both"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the outputs, server data and logs of the run"
    )
    args = parser.parse_args(argv)
    sizes = parse_sizes(args.sizes)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    commit = code_version()
    budget = os.environ.get(BUDGET_VAR)
    from oilspill.io.images import WINDOWED_ABOVE_BYTES
    from oilspill.sar.tiling import MARGIN, TILE

    budget_text = (
        f"rasters over {WINDOWED_ABOVE_BYTES >> 20} MiB read by window, {TILE}-px tiles with "
        f"{MARGIN} px of context ({WORKERS} at once), GDAL_CACHEMAX={budget or 64} MiB"
    )
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0))
    say(
        f"oilspill bench: full scenes; {cores} CPUs ({usable} usable), Python "
        f"{sys.version.split()[0]}, commit {commit}, OILSPILL_WORKERS={WORKERS}"
    )
    args.workdir.mkdir(parents=True, exist_ok=True)
    results: list[Result] = []
    steps: list[tuple[str, Callable[[Path, str, float, Path, float], Result]]] = []
    if args.only in ("segment", "both"):
        steps.append(("segment", run_segment))
    if args.only in ("serve", "both"):
        steps.append(("serve", run_serve))
    with run_folder(args.workdir, args.keep) as run_dir:
        for width, height in sizes:
            size, mpx = f"{width}x{height}", width * height / 1e6
            say(f"\n== {size} ({mpx:.1f} Mpx) ==")
            tif = ensure_scene(args.workdir, width, height)
            for name, step in steps:
                res = step(tif, size, mpx, run_dir, args.timeout)
                results.append(res)
                say(
                    f"  {name}: {res.status}; wall {num(res.wall_s, '.1f')} s, peak RSS (tree) "
                    f"{num(res.peak_mib)} MiB, ru_maxrss {num(res.maxrss_mib)} MiB; "
                    + "; ".join(res.notes)
                )
    say("\n== summary ==")
    print_table(results)
    say(f"memory budget: {budget_text}")
    say(f"cores: {cores} ({usable} usable by this process); workers {WORKERS}")
    prefix = f"{BUDGET_VAR}={shlex.quote(budget)} " if budget else ""
    say(f"reproduce (from the repository root): {prefix}{command_line(__file__, parser, args)}")
    now = code_version()
    say(f"commit: {commit if now == commit else f'{commit} at start, {now} at the end'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
