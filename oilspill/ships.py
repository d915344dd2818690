"""Ships: bright point targets found by a CFAR test against the local sea background.

The test runs on a 3x3 mean of the dB image, so one speckle spike cannot
pass it, and its threshold follows the speckle of the scene (fewer looks,
higher threshold) for a roughly constant false-alarm rate.
"""

from __future__ import annotations

import cv2
import numpy as np

from oilspill.segment import Ship

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
    mean3 = cv2.blur(db, (3, 3))
    excess = mean3 - background_db
    hit = ((excess > thr) & sea).astype(np.uint8)
    ships: list[Ship] = []
    mask = np.zeros(db.shape, bool)
    if not hit.any():
        return ships, mask
    n, lab, stats, cent = cv2.connectedComponentsWithStats(hit, connectivity=8)
    for i in range(1, n):
        area = int(stats[i, cv2.CC_STAT_AREA])
        if area > max_area:  # a bright extended area is not a point target
            continue
        x, y, w, h = (int(v) for v in stats[i, :4])
        sub = lab[y : y + h, x : x + w] == i
        peak = float(excess[y : y + h, x : x + w][sub].max())
        ships.append(Ship(float(cent[i, 0]), float(cent[i, 1]), round(peak, 2), area))
        mask[y : y + h, x : x + w] |= sub
    return ships, mask
