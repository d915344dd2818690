"""The embedded pipeline's speed, from one command: its parts, both cores, and what polling costs.

    python bench/speed.py                              # 30 scenes, 3 rounds
    python bench/speed.py -n 6 --rounds 1 --quiet-wait 0   # smoke run

1. Parts, in this process on one thread (`stages.stages`): decode, the detector by
   stage, each output, the record, in ms per 1250x650 image (half PNG, half JPEG).
2. `oilspill serve --workers 1` (threads), `--workers 2` (worker processes, the default for 2 or
   more) and `--workers 2 --worker-processes no` (threads) side by side on the same zip of `-n`
   scenes (half PNG, half JPEG), interleaved rounds: images/s upload to SUCCESS, the 2-vs-1
   ratios, and the end-to-end ratio to the parts: the 2-worker rate over 2 / (decode + detect +
   outputs, single-thread CPU s per image). Each round starts with the parts alone
   (`results.process_file`, no service) on the same scenes, on 1 thread (their CPU per image,
   the bound's) and on 2 (what two workers could reach on this machine, where two busy cores
   each run slower than one alone); the ratios pair each round's service jobs with that round's
   parts, so that a host that speeds up or slows down between sections does not move them. The
   zip's cost is the time from SUCCESS to the download's last byte, per image.
3. Status latency: 50 concurrent pollers (asyncio tasks, each polling once a second like the page,
   alternately `GET /api/status/{id}` and `GET /api/v1/jobs/{id}`) while both workers
   are busy: p50 and p99 of each, with worker processes (the default) and with threads.
4. `oilspill segment` on one scene: process start to its result on disk (median of 3).
5. `oilspill segment` on the `-n` scenes (a folder), `--workers 1` and `2` in turn, `--rounds`
   times: process start to exit, and the 2-vs-1 ratio (the median of the rounds' ratios).

Targets of issue 14 beside each figure. Prints figures; asserts nothing.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path

import httpx
from _common import (
    REQUEST_TIMEOUT,
    SCENE_SIZE,
    Config,
    Row,
    add_rounds_args,
    finish,
    make_parser,
    median,
    percentile,
    quiet_before,
    run_rounds,
    say,
    session,
    upload,
    warm_zip,
)
from stages import stages

POLLERS = 50
POLL_EVERY_S = 1.0  # as the web page polls a running job
ANSWER_S = 120.0  # a poll with no answer by then ends the run


def mixed_zip(path: Path, n: int, seed: int) -> Path:
    """`n` synthetic scenes, even ones PNG (16-bit amplitude), odd ones grey JPEG."""
    import cv2

    from oilspill.sar import synth

    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for k in range(n):
            image = synth.make_scene(seed=seed + k, size=SCENE_SIZE).image
            if k % 2:
                image = cv2.convertScaleAbs(image, alpha=255.0 / max(int(image.max()), 1))
                ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
                name = f"scene_{seed + k:05d}.jpg"
            else:
                ok, data = cv2.imencode(".png", image)
                name = f"scene_{seed + k:05d}.png"
            assert ok
            zf.writestr(name, data.tobytes())
    return path


class _Connection:
    """One keep-alive HTTP/1.1 connection that GETs and reads the whole answer: a poller's
    client, lighter than httpx's (whose own ~1 ms a request, in the one loop of 50
    pollers, was measured with the server's time)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), ANSWER_S)
        lines = head.decode("latin-1").split("\r\n")
        length = next(
            int(line.split(":", 1)[1])
            for line in lines
            if line.lower().startswith("content-length:")
        )
        body = await asyncio.wait_for(self.reader.readexactly(length), ANSWER_S)
        return int(lines[0].split()[1]), body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def poll_latencies(url: str, zip_path: Path, images: int) -> dict[str, list[float]]:
    """Latencies (ms) of both status calls from POLLERS clients while every worker is busy.

    The pollers are tasks of one asyncio loop, not threads: 50 threads of one Python
    client would wait for each other's GIL and measure that instead of the server. Each
    has a connection of its own (`_Connection`).
    """
    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT) as client:
        job = upload(client, zip_path)
    job_id = job["job_id"]
    out: dict[str, list[float]] = {"legacy": [], "v1": []}
    host, port = httpx.URL(url).host, httpx.URL(url).port or 80

    async def poll_all() -> None:
        done = asyncio.Event()

        async def poller(n: int) -> None:
            paths = (f"/api/status/{job_id}", f"/api/v1/jobs/{job_id}")
            # Independent clients are not in step: each starts at its own point.
            await asyncio.sleep(POLL_EVERY_S * n / POLLERS)
            deadline = time.monotonic() + 600
            k = n
            c = _Connection(host, port)
            while not done.is_set() and time.monotonic() < deadline:
                path = paths[k % 2]
                k += 1
                t0 = time.perf_counter()
                _, raw = await c.get(path)
                ms = 1000 * (time.perf_counter() - t0)
                body = json.loads(raw)
                if body["status"] in ("SUCCESS", "FAILURE"):
                    done.set()
                    break
                if "total" in body:
                    left = body["total"] - body["processed"]
                else:
                    left = body["progress"]["total"] - body["progress"]["done"]
                if body["status"] == "STARTED" and left > 2:  # both workers busy
                    out["legacy" if path.startswith("/api/status") else "v1"].append(ms)
                await asyncio.sleep(POLL_EVERY_S)
            c.close()

        await asyncio.gather(*(poller(n) for n in range(POLLERS)))

    asyncio.run(poll_all())
    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT) as client:
        client.delete(f"/api/v1/jobs/{job_id}")
    return out


class Parts:
    """The parts alone (`results.process_file`: decode, detect, outputs), no service, on the
    service's own scenes: the one-thread CPU per image that sets the parts' bound, and what
    two threads reach on this machine, where two busy cores each run slower than one.
    Measured at the start of every round of the service's jobs, so that each round's
    ratios compare figures taken under the same host speed."""

    def __init__(self, work: Path, scenes: Path) -> None:
        import cv2

        from oilspill.backends import cpu
        from oilspill.io import images
        from oilspill.sar import oilnet

        cv2.setNumThreads(1)
        cpu.keep_freed_memory()  # the parts as the service's workers run them
        oilnet.load()
        self.folder, self.out = work / "parts", work / "parts-out"
        self.out.mkdir()
        with zipfile.ZipFile(scenes) as zf:
            zf.extractall(self.folder)
        self.paths = sorted(p for p in self.folder.rglob("*") if p.is_file())
        self.options = images.ReadOptions(10**9)
        self.rounds: list[tuple[float, float, float]] = []  # (CPU ms/img, 1-thread, 2-thread img/s)

    def _one(self, i: int) -> None:
        from oilspill.server import results

        path = self.paths[i]
        fmt = "jpeg" if path.suffix == ".jpg" else "png"
        results.process_file(
            path, path.name, fmt, self.options, None, self.out, i, f"m/{path.stem}.png"
        )

    def round(self) -> tuple[float, float, float]:
        from concurrent.futures import ThreadPoolExecutor

        figures = []
        for threads in (1, 2):
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(self._one, range(min(2, len(self.paths)))))  # warm each thread
                t0, c0 = time.perf_counter(), time.process_time()
                list(pool.map(self._one, range(len(self.paths))))
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            figures.append((1000 * cpu / len(self.paths), len(self.paths) / wall))
        (cpu_ms, rate1), (_, rate2) = figures
        self.rounds.append((cpu_ms, rate1, rate2))
        say(
            f"  parts alone: {cpu_ms:.1f} ms CPU/img on 1 thread ({rate1:.1f} img/s), "
            f"2 threads {rate2:.1f} img/s ({rate2 / rate1:.2f}x)"
        )
        return cpu_ms, rate1, rate2

    def ratios(self, cfg: Config) -> tuple[float, float]:
        """Median over rounds of `cfg`'s rate against 2 / (the round's one-thread CPU per
        image), and against the round's two-thread rate."""
        pairs = list(zip(cfg.runs, self.rounds, strict=False))  # the main rounds come first
        bound = median([r.rate_success / (2000 / cpu_ms) for r, (cpu_ms, _, _) in pairs])
        alone = median([r.rate_success / rate2 for r, (_, _, rate2) in pairs])
        return bound, alone


def timed_segment(inputs: Path, out: Path, *options: str) -> float:
    """Seconds from `oilspill segment INPUTS -o OUT OPTIONS` starting to its exit, every
    result written (its start-up included); OUT is deleted after."""
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "oilspill", "segment", str(inputs), "-o", str(out), *options],
        check=True,
        capture_output=True,
        timeout=600,
    )
    seconds = time.perf_counter() - t0
    shutil.rmtree(out)
    return seconds


def segment_one(work: Path) -> float:
    """`timed_segment` of one synthetic scene."""
    import cv2

    from oilspill.sar import synth

    scene = work / "one.png"
    ok, data = cv2.imencode(".png", synth.make_scene(seed=4242, size=SCENE_SIZE).image)
    assert ok
    scene.write_bytes(data.tobytes())
    return timed_segment(scene, work / "one-out")


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__)
    add_rounds_args(parser, images=30, rounds=3)
    args = parser.parse_args(argv)
    with session("the embedded pipeline's speed") as run:
        quiet_before(args.quiet_wait)
        say(f"\n== 1. parts: ms per {SCENE_SIZE[0]}x{SCENE_SIZE[1]} image, one thread ==")
        parts = stages(run.work, min(args.images, 20))
        for key, (wall, cpu) in parts.items():
            say(f"  {key:40s} {wall:7.1f} ms wall {cpu:7.1f} ms CPU")
        part_ms = sum(parts[k][1] for k in ("decode", "detect (all stages)"))
        part_ms += parts["write_outputs (all files + record)"][1]

        scenes = mixed_zip(run.work / "scenes.zip", args.images, seed=1000)
        alone = Parts(run.work, scenes)
        say(f"\n== 2. the service, --workers 1 vs 2: {args.images} scenes, {args.rounds} rounds ==")
        say("  (each round starts with the parts alone on the same scenes, no service)")
        warm = warm_zip(run.work)
        w1 = Config("w1", "embedded, --workers 1", ["--workers", "1"])
        w2 = Config("w2", "embedded, --workers 2 (processes)", ["--workers", "2"])
        w2t = Config("w2t", "embedded, 2 workers in threads", ["--workers", "2"])
        w2t.args += ["--worker-processes", "no"]
        configs = (w1, w2, w2t)
        for cfg in configs:
            cfg.start(run.work, run.stack, warm)
        run_rounds(
            configs,
            scenes,
            args.images,
            args.rounds,
            run.work,
            args.quiet_wait,
            before_round=lambda _: alone.round(),
        )
        for cfg in configs:
            say(cfg.summary())
        zip_ms = median([1000 * (r.download_s - r.success_s) / r.images for r in w2.used])

        say(f"\n== 3. status latency: {POLLERS} pollers while both workers are busy ==")
        lat: dict[str, list[float]] = {}
        latt: dict[str, list[float]] = {}
        for cfg, into in ((w2, lat), (w2t, latt)):
            assert cfg.server is not None
            quiet_before(args.quiet_wait)
            into.update(poll_latencies(cfg.server.url, scenes, args.images))
            for name, values in into.items():
                say(
                    f"  {cfg.key:4s} {name:6s} p50 {percentile(values, 50):6.1f} ms  p99 "
                    f"{percentile(values, 99):6.1f} ms  (n={len(values)})"
                )
        for cfg in configs:
            assert cfg.server is not None
            cfg.server.stop()

        say("\n== 4. oilspill segment, one scene (3 runs) ==")
        runs = [segment_one(run.work) for _ in range(3)]
        first = median(runs)
        each = ", ".join(f"{r:.2f}" for r in runs)
        say(f"  process start to result: median {first:.2f} s ({each})")
        say(f"\n== 5. oilspill segment, the {args.images} scenes, --workers 1 vs 2, interleaved ==")
        seg: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(args.rounds):
            for workers in (1, 2):
                quiet_before(args.quiet_wait)
                out = run.work / f"segment-{workers}"
                seg[workers].append(timed_segment(alone.folder, out, "--workers", str(workers)))
                say(f"  --workers {workers}: {seg[workers][-1]:.2f} s")
        seg_ratio = median([one / two for one, two in zip(seg[1], seg[2], strict=True)])

        detect_mpx = 1e-3 * SCENE_SIZE[0] * SCENE_SIZE[1] / parts["detect (all stages)"][1]
        (bound2, alone2), (bound2t, alone2t) = alone.ratios(w2), alone.ratios(w2t)
        alone_bound = median([r2 / (2000 / cpu) for cpu, _, r2 in alone.rounds])
        outputs_ms = parts["write_outputs (all files + record)"][1]
        worse = {"higher_is_better": False}
        rows = [
            Row("parts: decode + detect + outputs, CPU", part_ms, "ms"),
            Row("  detect alone: Mpx/s on one core", detect_mpx, "Mpx/s", 8.0),
            Row("  outputs (write_outputs), CPU", outputs_ms, "ms", 15.0, **worse),
            Row("embedded, 1 worker", w1.rate(), "img/s"),
            Row("embedded, 2 workers (processes)", w2.rate(), "img/s"),
            Row("embedded, 2 workers in threads", w2t.rate(), "img/s"),
            Row("2 vs 1 workers", w2.rate() / w1.rate(), "x", 1.8),
            Row("  in threads", w2t.rate() / w1.rate(), "x", 1.8),
            Row("2 workers vs the parts' bound", bound2, "x", 0.85),
            Row("  in threads", bound2t, "x", 0.85),
            Row("the parts alone, 2 threads vs the bound", alone_bound, "x"),
            Row("2 workers vs the parts alone on 2 threads", alone2, "x"),
            Row("  in threads", alone2t, "x"),
            Row("zip stream, per image", zip_ms, "ms"),
            Row("status p99, legacy, 50 pollers", percentile(lat["legacy"], 99), "ms", 20, **worse),
            Row("status p99, v1 job, 50 pollers", percentile(lat["v1"], 99), "ms", 20.0, **worse),
            Row("  in threads: legacy", percentile(latt["legacy"], 99), "ms", 20, **worse),
            Row("  in threads: v1 job", percentile(latt["v1"], 99), "ms", 20, **worse),
            Row("oilspill segment: start to result", first, "s", 1.0, **worse),
            Row(f"oilspill segment, {args.images} scenes: 2 vs 1 workers", seg_ratio, "x", 1.8),
        ]  # fmt: skip
        say("  (the 'old system' column holds issue 14's targets here)")
        finish(run, rows, __file__, parser, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
