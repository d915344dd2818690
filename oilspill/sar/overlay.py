"""The annotated picture of a result: the scene in grey with what was found drawn over it."""

from __future__ import annotations

from functools import cache
from itertools import chain

import cv2
import numpy as np

from oilspill.sar import quantiles
from oilspill.sar.records import Cls, Ship, Slick

MAX_SIDE = 4096
# The public Sentinel-1 oil spill dataset's label colours (RGB), for class masks shown as
# pictures; no data is grey.
CLASS_RGB = {
    Cls.SEA: (0, 0, 0),
    Cls.OIL: (0, 255, 255),
    Cls.LOOKALIKE: (255, 0, 0),
    Cls.SHIP: (153, 76, 0),
    Cls.LAND: (0, 153, 0),
    Cls.NODATA: (128, 128, 128),
}
OIL_BGR = (255, 255, 0)  # cyan, as in the public dataset's label colours
LOOKALIKE_BGR = (0, 140, 255)  # orange
SHIP_BGR = (0, 0, 255)  # red
LAND_BGR = (0, 153, 0)  # green


def quicklook(
    db: np.ndarray, valid: np.ndarray, max_side: int = MAX_SIDE
) -> tuple[np.ndarray, float]:
    """8-bit grey picture of a dB image (2-98 % stretch) no bigger than `max_side`; its scale."""
    h, w = db.shape
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = cv2.resize(db, size, interpolation=cv2.INTER_AREA)
        vsmall = cv2.resize(valid.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    else:
        small, vsmall = db, valid
    sample = small[::4, ::4][vsmall[::4, ::4]]
    lo, hi = quantiles.percentiles(sample, [2, 98]) if sample.size else (0.0, 1.0)
    grey = cv2.convertScaleAbs(
        small, alpha=255.0 / max(hi - lo, 1e-6), beta=-lo * 255.0 / max(hi - lo, 1e-6)
    )
    grey[~vsmall] = 0
    return grey, scale


def draw_overlay(
    grey: np.ndarray,
    scale: float,
    mask: np.ndarray,
    slicks: list[Slick],
    ships: list[Ship],
) -> np.ndarray:
    """BGR picture on the `quicklook` `grey` (at `scale` of the input): oil filled cyan and
    outlined, look-alikes orange, ships circled, land green."""
    img = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    h, w = grey.shape
    m = mask if mask.shape == (h, w) else cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
    # 60 % grey + 40 % colour where a class is tinted: one lookup table per class, applied
    # only inside the box of that class's pixels (most of a scene is sea, left grey).
    for cls, bgr in ((Cls.LAND, LAND_BGR), (Cls.LOOKALIKE, LOOKALIKE_BGR), (Cls.OIL, OIL_BGR)):
        where = (m == int(cls)).view(np.uint8)  # an int: see Cls
        x, y, bw, bh = cv2.boundingRect(where)
        if bw == 0:
            continue
        box = (slice(y, y + bh), slice(x, x + bw))
        cv2.copyTo(cv2.LUT(img[box], _tint_lut(bgr)), where[box], img[box])
    for s in slicks:
        # fromiter: a third of the time np.asarray took on a list of [x, y] pairs
        flat = np.fromiter(chain.from_iterable(s.polygon), np.float64, 2 * len(s.polygon))
        pts = np.round(flat.reshape(-1, 2) * scale).astype(np.int32)
        if len(pts) >= 2:
            colour = OIL_BGR if s.cls == Cls.OIL else LOOKALIKE_BGR
            cv2.polylines(img, [pts.reshape(-1, 1, 2)], True, colour, 1, cv2.LINE_AA)
    r = max(4, int(6 * max(scale, 0.5)))
    for sh in ships:
        cv2.circle(img, (round(sh.x * scale), round(sh.y * scale)), r, SHIP_BGR, 1, cv2.LINE_AA)
    return img


@cache
def _tint_lut(bgr: tuple[int, int, int]) -> np.ndarray:
    """256x1x3 table: grey level g -> round(0.6 g + 0.4 colour) per channel (as cv2.addWeighted)."""
    g = np.arange(256, dtype=np.float64)[:, None]
    blend = np.rint(0.6 * g + 0.4 * np.asarray(bgr, np.float64)[None, :])
    return np.clip(blend, 0, 255).astype(np.uint8).reshape(256, 1, 3)


def colour_mask(mask: np.ndarray) -> np.ndarray:
    """A class mask as a BGR picture in the dataset's colours (`CLASS_RGB`)."""
    lut = np.zeros((256, 3), np.uint8)
    for cls, (r, g, b) in CLASS_RGB.items():
        lut[int(cls)] = (b, g, r)
    out: np.ndarray = lut[mask]
    return out
