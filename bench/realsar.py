"""Detector quality on real SAR images with labels: oil IoU, precision, recall, slicks found,
confidence calibration, and speed.

    python bench/realsar.py --data ../shared/realsar/sos-s1-train --split val
    python bench/realsar.py --data HELD_OUT_FOLDER               # every image in the folder
    python bench/realsar.py --data ... --split train --fit-calibration   # fit the confidence map

The folder holds `images/<stem>.<jpg|png|tif>` and `masks/<stem>.png`. A mask whose values
are all in 0..4 is a 5-class label map (0 sea, 1 oil, 2 look-alike, 3 ship, 4 land) and gets
per-class IoU and mIoU too; otherwise it is oil (> 127) against everything else.
`--split val` is the project's validation split of the SOS dataset's Sentinel-1 training split:
file names sorted, permuted with numpy's default_rng(0), the first 15 % (`train` is the rest);
the shipped network was trained on `train` only.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from oilspill import sar
from oilspill.io import images
from oilspill.sar.records import Cls

CLASS_NAMES = ("sea", "oil", "look-alike", "ship", "land")
VAL_FRACTION = 0.15


def split_files(names: list[str], split: str) -> list[str]:
    names = sorted(names)
    if split == "all":
        return names
    order = np.random.default_rng(0).permutation(len(names))
    n_val = int(len(names) * VAL_FRACTION)
    chosen = order[:n_val] if split == "val" else order[n_val:]
    return sorted(names[i] for i in chosen)


def load_label(path: Path) -> tuple[np.ndarray, bool]:
    """(label map, five_class). Binary masks become 1 (oil) / 0."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise SystemExit(f"cannot read mask {path}")
    if raw.ndim == 3:
        raw = raw[..., 0]
    if int(raw.max()) <= 4:
        return raw.astype(np.uint8), True
    return (raw > 127).astype(np.uint8), False


def slick_masks(
    found: sar.Detection, shape: tuple[int, int]
) -> list[tuple[float, float, np.ndarray]]:
    """(confidence, raw oil probability, region) of each found object, from its outline."""
    out = []
    for s in found.slicks:
        region = np.zeros(shape, np.uint8)
        poly = np.round(np.asarray(s.polygon, np.float64)).astype(np.int32).reshape(-1, 1, 2)
        cv2.fillPoly(region, [poly], 1)
        region &= (found.mask == s.cls).astype(np.uint8)
        if region.any():
            out.append((s.confidence, s.features.get("oil_probability", s.confidence), region > 0))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="folder with images/ and masks/")
    ap.add_argument("--split", choices=("val", "train", "all"), default="all")
    ap.add_argument("--limit", type=int, default=0, help="at most this many images (0: all)")
    ap.add_argument("--min-slick-px", type=int, default=50, help="smallest labelled slick counted")
    ap.add_argument(
        "--fit-calibration",
        action="store_true",
        help="fit confidence = sigmoid(a*logit(mean p)+b) on the objects found and print a, b",
    )
    args = ap.parse_args()
    cv2.setNumThreads(1)
    names = [p.name for p in sorted((args.data / "images").iterdir()) if p.is_file()]
    names = split_files(names, args.split)
    if args.limit:
        names = names[: args.limit]
    conf = np.zeros((5, 5), np.int64)  # truth x predicted, 5-class
    inter = union = tp = fp = fn = 0
    per_image_iou: list[float] = []
    gt_slicks = found_slicks = 0
    objects: list[tuple[float, float, bool]] = []  # confidence, raw p, is oil
    pixels = 0
    seconds = 0.0
    five = False
    for name in names:
        stem = Path(name).stem
        raster = images.read(args.data / "images" / name)
        label, five = load_label(args.data / "masks" / f"{stem}.png")
        t0 = time.perf_counter()
        found = sar.detect(raster.pixels)
        seconds += time.perf_counter() - t0
        pixels += label.size
        pred = found.mask
        truth_oil, pred_oil = label == Cls.OIL, pred == Cls.OIL
        i, u = int((truth_oil & pred_oil).sum()), int((truth_oil | pred_oil).sum())
        inter, union = inter + i, union + u
        tp += i
        fp += int((pred_oil & ~truth_oil).sum())
        fn += int((truth_oil & ~pred_oil).sum())
        per_image_iou.append(i / u if u else 1.0)
        if five:
            conf += np.bincount(label.ravel() * 5 + pred.ravel(), minlength=25).reshape(5, 5)
        n, lab, stats, _ = cv2.connectedComponentsWithStats(truth_oil.astype(np.uint8))
        for k in range(1, n):
            if stats[k, cv2.CC_STAT_AREA] >= args.min_slick_px:
                gt_slicks += 1
                found_slicks += int(pred_oil[lab == k].mean() >= 0.25)
        for c, raw_p, region in slick_masks(found, label.shape):
            objects.append((c, raw_p, bool(truth_oil[region].mean() >= 0.5)))

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    print(f"# {' '.join(sys.argv)}  (commit {commit or '?'})")
    print(f"images {len(names)} ({args.split}), {pixels / 1e6:.1f} Mpx")
    iou, precision, recall = inter / max(union, 1), tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    print(
        f"oil IoU {iou:.3f}  precision {precision:.3f}  recall {recall:.3f}"
        f"  mean per-image IoU {np.mean(per_image_iou):.3f}"
    )
    print(
        f"slicks found (>= 25 % covered, >= {args.min_slick_px} px): {found_slicks}/{gt_slicks}"
        f" = {found_slicks / max(gt_slicks, 1):.1%}"
    )
    if five:
        ious = [
            conf[c, c] / max(conf[c, :].sum() + conf[:, c].sum() - conf[c, c], 1) for c in range(5)
        ]
        print(
            "IoU "
            + "  ".join(f"{n} {v:.3f}" for n, v in zip(CLASS_NAMES, ious, strict=True))
            + f"  mIoU {np.mean(ious):.3f}"
        )
    print(
        f"speed {pixels / 1e6 / max(seconds, 1e-9):.2f} Mpx/s on one thread "
        f"({seconds / max(len(names), 1) * 1e3:.1f} ms per image)"
    )
    reliability(objects)
    if args.fit_calibration:
        fit_calibration(objects)
    return 0


def reliability(objects: list[tuple[float, float, bool]]) -> None:
    """Of the objects scored in each 0.1 bin, how many are oil; ECE and Brier."""
    if not objects:
        print("no objects found: no calibration table")
        return
    c = np.array([o[0] for o in objects])
    y = np.array([o[2] for o in objects], float)
    print(f"confidence of {len(objects)} found objects (oil when >= 50 % of it is labelled oil):")
    print("  bin        n   mean conf   oil fraction")
    ece = 0.0
    for b in range(10):
        sel = (c >= b / 10) & ((c < (b + 1) / 10) if b < 9 else (c <= 1.0))
        if sel.any():
            ece += sel.sum() / len(c) * abs(c[sel].mean() - y[sel].mean())
            print(
                f"  {b / 10:.1f}-{(b + 1) / 10:.1f} {sel.sum():6d}   {c[sel].mean():9.3f}   "
                f"{y[sel].mean():12.3f}"
            )
    print(f"ECE {ece:.3f}  Brier {np.mean((c - y) ** 2):.3f}")


def fit_calibration(objects: list[tuple[float, float, bool]]) -> None:
    """Platt scaling on logit(mean p) by Newton's method; prints a and b."""
    p = np.clip(np.array([o[1] for o in objects]), 1e-6, 1 - 1e-6)
    x = np.log(p / (1 - p))
    y = np.array([o[2] for o in objects], float)
    w = np.array([1.0, 0.0])
    for _ in range(50):
        z = np.clip(w[0] * x + w[1], -30, 30)
        q = 1 / (1 + np.exp(-z))
        g = np.array([np.sum((q - y) * x), np.sum(q - y)]) + 1e-3 * w
        hq = q * (1 - q)
        h = np.array([[np.sum(hq * x * x), np.sum(hq * x)], [np.sum(hq * x), np.sum(hq)]])
        w -= np.linalg.solve(h + 1e-3 * np.eye(2), g)
    print(f"calibration: a {w[0]:.4f}  b {w[1]:.4f}  (on {len(objects)} objects)")


if __name__ == "__main__":
    raise SystemExit(main())
