"""Ships: bright point targets found by a CFAR test against the local sea background.

The test runs on a 3x3 mean of the dB image, so one speckle spike cannot
pass it, and its threshold follows the speckle of the scene (fewer looks,
higher threshold) for a roughly constant false-alarm rate.
"""

from __future__ import annotations

import cv2
import numpy as np

from oilspill.sar import pixels
from oilspill.sar.records import Ship

MIN_CONTRAST_DB = 6.0


def cfar_threshold_db(noise_db: float) -> float:
    """Contrast a 3x3 mean must exceed: 5 sigma of its speckle noise, at least 6 dB."""
    return max(MIN_CONTRAST_DB, 5.0 * noise_db / 3.0)


def find_ships(
    db: np.ndarray,
    background_db: np.ndarray,
    sea: np.ndarray,
    noise_db: float,
    *,
    max_area: int = 400,
) -> tuple[list[Ship], np.ndarray]:
    """Ships and their pixel mask. `noise_db` is the per-pixel speckle std in dB."""
    thr = cfar_threshold_db(noise_db)
    excess = cv2.blur(db, (3, 3))
    excess -= background_db
    hit = ((excess > thr) & sea).astype(np.uint8)
    ships: list[Ship] = []
    mask = np.zeros(db.shape, bool)
    if not hit.any():
        return ships, mask
    # Hits are sparse: label them, then gather statistics from the hit pixels only
    # (much cheaper than connectedComponentsWithStats over the whole image).
    n, lab = cv2.connectedComponents(hit, connectivity=8)
    ys, xs = pixels.where(hit)
    ids = lab[ys, xs]
    area = np.bincount(ids, minlength=n)
    cx = np.bincount(ids, xs, minlength=n) / np.maximum(area, 1)
    cy = np.bincount(ids, ys, minlength=n) / np.maximum(area, 1)
    peak = np.full(n, -np.inf)
    np.maximum.at(peak, ids, excess[ys, xs])
    keep = (area > 0) & (area <= max_area)  # a bright extended area is not a point target
    keep[0] = False
    for i in np.flatnonzero(keep):
        ships.append(Ship(float(cx[i]), float(cy[i]), round(float(peak[i]), 2), int(area[i])))
    good = keep[ids]
    mask[ys[good], xs[good]] = True
    return ships, mask
