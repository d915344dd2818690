"""Benchmark of the embedded detector on synthetic scenes: quality, speed and memory.

    python bench/detector.py                 # 50 scenes, seeds 0..49 (not tuned on)
    python bench/detector.py --seed 1000 -n 100 --per-object objects.csv   # tuning set

Prints figures; asserts nothing about time. Quality is measured against the
generator's truth: pixel IoU/precision/recall of oil, slicks found (>= 25 %
of the slick's pixels labelled oil), false oil objects on look-alikes and
elsewhere, ships found (a detection within 6 px) and false ships, land IoU.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from oilspill import sar
from oilspill.io.images import Raster
from oilspill.sar.records import Cls, Detection
from oilspill.sar.synth import SynthScene, make_scene


@dataclass
class Tally:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    land_i: int = 0
    land_u: int = 0
    slicks: int = 0
    slicks_found: int = 0
    sourced: int = 0  # oil slicks drawn with a ship at their head
    sourced_flagged: int = 0  # … found, and flagged "possible source"
    flagged: int = 0  # oil-class slicks flagged "possible source"
    flagged_false: int = 0  # … that lie on no drawn slick with a ship at its head
    false_on_lookalike: int = 0
    false_elsewhere: int = 0
    ships: int = 0
    ships_found: int = 0
    false_ships: int = 0
    scenes: int = 0
    rows: list[dict[str, float]] = field(default_factory=list)


def score(scene: SynthScene, seg: Detection, t: Tally, seed: int) -> None:
    truth, pred = scene.truth, seg.mask
    t_oil, p_oil = truth == Cls.OIL, pred == Cls.OIL
    t.tp += int(np.count_nonzero(t_oil & p_oil))
    t.fp += int(np.count_nonzero(~t_oil & p_oil))
    t.fn += int(np.count_nonzero(t_oil & ~p_oil))
    t_land, p_land = truth == Cls.LAND, pred == Cls.LAND
    t.land_i += int(np.count_nonzero(t_land & p_land))
    t.land_u += int(np.count_nonzero(t_land | p_land))
    for s in scene.slicks:
        if s.cls != Cls.OIL:
            continue
        inst = scene.instances == s.id
        n = int(np.count_nonzero(inst))
        if n == 0:
            continue
        t.slicks += 1
        t.slicks_found += int(np.count_nonzero(inst & p_oil) >= 0.25 * n)
    _score_sources(scene, seg, t)
    for sl in seg.slicks:
        x, y, w, h = sl.bbox
        sub = scene.instances[y : y + h, x : x + w]
        tsub = truth[y : y + h, x : x + w]
        region = _region(seg, sl.bbox, sl.cls)
        n = max(int(np.count_nonzero(region)), 1)
        on_oil = np.count_nonzero(region & (tsub == Cls.OIL)) / n
        on_la = np.count_nonzero(region & (tsub == Cls.LOOKALIKE)) / n
        is_oil = on_oil >= 0.3
        if sl.cls == Cls.OIL and not is_oil:
            if on_la >= 0.3:
                t.false_on_lookalike += 1
            else:
                t.false_elsewhere += 1
        row = {"seed": seed, "looks": scene.looks, "oil": float(is_oil), "on_la": on_la}
        row["cls"] = sl.cls
        row.update({"confidence": sl.confidence, **sl.features})
        del sub
        t.rows.append(row)
    found = np.array([(s.x, s.y) for s in seg.ships]).reshape(-1, 2)
    truth_ships = np.array(scene.ships).reshape(-1, 2)
    for tx, ty in truth_ships:
        t.ships += 1
        if len(found) and np.min(np.hypot(found[:, 0] - tx, found[:, 1] - ty)) <= 6:
            t.ships_found += 1
    for fx, fy in found:
        if (
            not len(truth_ships)
            or np.min(np.hypot(truth_ships[:, 0] - fx, truth_ships[:, 1] - fy)) > 6
        ):
            t.false_ships += 1
    t.scenes += 1


def _score_sources(scene: SynthScene, seg: Detection, t: Tally) -> None:
    """ "Possible source": a drawn slick with a ship at its head counts as flagged when an
    oil slick flagged possible_source covers >= 25 % of it (or it covers >= 30 % of that
    slick); a flag on a slick that overlaps no drawn slick with a ship is a false flag."""
    with_ship = {s.id for s in scene.slicks if s.cls == Cls.OIL and s.ship is not None}
    hits: dict[int, bool] = {}
    for sl in seg.slicks:
        if sl.cls != Cls.OIL:
            continue
        region = _region(seg, sl.bbox, sl.cls)
        x, y, w, h = sl.bbox
        inst = scene.instances[y : y + h, x : x + w][region]
        ids, counts = np.unique(inst[inst > 0], return_counts=True)
        on_sourced = False
        for i, c in zip(ids.tolist(), counts.tolist(), strict=True):
            if i not in with_ship:
                continue
            area = next(s.area_px for s in scene.slicks if s.id == i)
            if c >= 0.25 * area or c >= 0.3 * max(inst.size, 1):
                on_sourced = True
                hits[i] = hits.get(i, False) or sl.possible_source
        if sl.possible_source:
            t.flagged += 1
            t.flagged_false += int(not on_sourced)
    t.sourced += len(with_ship)
    t.sourced_flagged += sum(hits.values())


def _region(seg: Detection, bbox: tuple[int, int, int, int], cls: int) -> np.ndarray:
    x, y, w, h = bbox
    return np.asarray(seg.mask[y : y + h, x : x + w] == cls)


NET = True  # --classical: oil by the classical features alone, for comparison


def _detect(values: np.ndarray, **kw: Any) -> Detection:
    return sar.detect(values, net=NET, **kw)


def quality(seed: int, n: int, per_object: str | None) -> None:
    t = Tally()
    elapsed = 0.0
    mpx = 0.0
    for s in range(seed, seed + n):
        scene = make_scene(s)
        raster = Raster(scene.image, f"synth_{s}.png", "png")
        t0 = time.perf_counter()
        seg = _detect(raster.pixels, georef=raster.georef)
        elapsed += time.perf_counter() - t0
        mpx += scene.image.size / 1e6
        score(scene, seg, t, s)
    iou = t.tp / max(t.tp + t.fp + t.fn, 1)
    print(f"scenes {t.scenes} (seeds {seed}..{seed + n - 1}), 1250x650 quicklooks")
    print(f"oil IoU {iou:.3f}  precision {t.tp / max(t.tp + t.fp, 1):.3f}  "
          f"recall {t.tp / max(t.tp + t.fn, 1):.3f}")  # fmt: skip
    print(f"slicks found {t.slicks_found}/{t.slicks} = {t.slicks_found / max(t.slicks, 1):.1%}")
    print(f"false oil objects per scene: on look-alikes {t.false_on_lookalike / t.scenes:.2f}, "
          f"elsewhere {t.false_elsewhere / t.scenes:.2f}")  # fmt: skip
    print(f"ships found {t.ships_found}/{t.ships} = {t.ships_found / max(t.ships, 1):.1%}, "
          f"false ships per scene {t.false_ships / t.scenes:.2f}")  # fmt: skip
    print(f"possible source (slick with a ship at its head) flagged: "
          f"{t.sourced_flagged}/{t.sourced} = {t.sourced_flagged / max(t.sourced, 1):.1%}; "
          f"flags on slicks without a drawn ship {t.flagged_false}/{t.flagged}")  # fmt: skip
    print(f"land IoU {t.land_i / max(t.land_u, 1):.3f}")
    print(f"speed (this loop, one thread): {mpx / elapsed:.1f} Mpx/s, "
          f"{1000 * elapsed / t.scenes:.1f} ms per image")  # fmt: skip
    _calibration(t.rows)
    if per_object:
        keys = sorted({k for r in t.rows for k in r})
        with open(per_object, "w", newline="") as fh:
            wr = csv.DictWriter(fh, keys)
            wr.writeheader()
            wr.writerows(t.rows)


def _calibration(rows: list[dict[str, float]]) -> None:
    """Reliability table: objects binned by confidence; an object is oil when >= 30 % of its
    pixels are oil in the truth. Calibrated means the oil fraction matches the mean
    confidence in every bin (ECE: their count-weighted mean absolute difference)."""
    if not rows:
        return
    conf = np.array([r["confidence"] for r in rows])
    oil = np.array([r["oil"] for r in rows])
    print("confidence reliability (dark objects, both classes):")
    print("  bin         n   mean conf  oil fraction")
    ece = 0.0
    for lo in np.arange(0.0, 1.0, 0.1):
        sel = (conf >= lo) & ((conf < lo + 0.1) if lo < 0.85 else (conf <= 1.0))
        if not sel.any():
            print(f"  [{lo:.1f},{lo + 0.1:.1f})  {0:4d}")
            continue
        mc, fr = float(conf[sel].mean()), float(oil[sel].mean())
        ece += sel.sum() / len(conf) * abs(mc - fr)
        print(f"  [{lo:.1f},{lo + 0.1:.1f})  {sel.sum():4d}   {mc:.2f}       {fr:.2f}")
    brier = float(np.mean((conf - oil) ** 2))
    print(f"  ECE {ece:.3f}, Brier {brier:.3f} over {len(conf)} objects")


def speed_small(reps: int) -> None:
    """Median CPU and wall time per 1250x650 scene, one thread (the machine is noisy)."""
    cv2.setNumThreads(1)
    scenes = [make_scene(s).image for s in range(900, 905)]
    _detect(scenes[0])
    cpu, wall = [], []
    for i in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        _detect(scenes[i % len(scenes)])
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    c, w = float(np.median(cpu)), float(np.median(wall))
    print(f"1250x650: {1250 * 650 / c / 1e6:.1f} Mpx/s per core by CPU time "
          f"(median {c * 1000:.1f} ms CPU, {w * 1000:.1f} ms wall, {reps} runs)")  # fmt: skip


def big_image(shape: tuple[int, int], dtype: str) -> np.ndarray:
    """A large scene made of generated 1250x650 scenes, side by side (a full-size scene
    would need several GB to generate)."""
    geotiff = dtype == "uint16"
    # One product has one number of looks: the tiles share it (the scale still varies a little).
    tiles = [make_scene(800 + i, looks=3, geotiff=geotiff).image for i in range(4)]
    h, w = shape
    out = np.empty((h, w), np.uint16 if geotiff else np.uint8)
    th, tw = tiles[0].shape
    k = 0
    for y in range(0, h, th):
        for x in range(0, w, tw):
            tile = tiles[k % len(tiles)]
            k += 1
            out[y : y + th, x : x + tw] = tile[: min(th, h - y), : min(tw, w - x)]
    return out


def speed_big(h: int, w: int, dtype: str) -> None:
    """Run in a fresh process so peak RSS is this scene's alone."""
    img = big_image((h, w), dtype)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    seg = _detect(img)
    dt = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    mpx = h * w / 1e6
    print(
          f"{w}x{h} {dtype}: {dt:.1f} s wall, {mpx / dt:.1f} Mpx/s wall, "
          f"{mpx / cpu:.1f} Mpx/s per core (CPU time), peak RSS {peak:.0f} MiB "
          f"(input alone {img.nbytes / 2**20:.0f} MiB, before detect {base:.0f} MiB), "
          f"{len(seg.slicks)} objects, overlay {seg.overlay.shape[1]}x{seg.overlay.shape[0]}"
    )  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-n", type=int, default=50)
    ap.add_argument("--per-object", help="write per-object features to this CSV")
    ap.add_argument("--no-big", action="store_true", help="skip the large-scene runs")
    ap.add_argument("--big", nargs=3, metavar=("H", "W", "DTYPE"), help=argparse.SUPPRESS)
    ap.add_argument("--classical", action="store_true", help="without the oil network")
    a = ap.parse_args()
    global NET
    NET = not a.classical
    if a.big:
        speed_big(int(a.big[0]), int(a.big[1]), a.big[2])
        return
    quality(a.seed, a.n, a.per_object)
    speed_small(40)
    if not a.no_big:
        for h, w, dt in ((10000, 10000, "uint8"), (16700, 25000, "uint16")):
            cmd = [sys.executable, __file__, "--big", str(h), str(w), dt]
            cmd += ["--classical"] if a.classical else []
            subprocess.run(cmd, check=False, env=os.environ.copy())


if __name__ == "__main__":
    main()
