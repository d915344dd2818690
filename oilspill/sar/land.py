"""Land: bright and textured (or very bright), large. Found at 1/8 resolution, outlined at 1/2.

Sea is smooth at the scale of a few hundred metres once speckle is averaged
out; land has relief and land cover, so its texture exceeds what speckle
explains, and it is brighter than the sea next to it. A textured area that
is darker than its surroundings (a crossing of slick edges) is not land.
"""

from __future__ import annotations

import cv2
import numpy as np

from oilspill.sar import pixels, quantiles

TEXTURE_DB = 0.8  # texture beyond speckle (std of 1/8-res cells, dB)
BRIGHTER_DB = 1.5  # median brightness of land above the sea background
# Land this much brighter than the sea needs no texture: real 8-bit quicklooks often show
# coasts near white, flat where they saturate. The sea's own swings at 1/8 resolution
# (wind fields, streaks) stay within a few dB of its local level.
BRIGHT_DB = 6.0


def textured(coarse: np.ndarray, valid: np.ndarray, noise8: float) -> np.ndarray:
    """Cells whose 5x5-cell texture exceeds speckle; `noise8` is the speckle std of one cell."""
    mean = cv2.blur(coarse, (5, 5))
    var = cv2.blur(coarse * coarse, (5, 5)) - mean * mean
    tex = np.sqrt(np.maximum(var - noise8 * noise8, 0.0))
    out: np.ndarray = (tex > TEXTURE_DB) & valid
    return out


def find_land(
    coarse: np.ndarray,
    textured_cells: np.ndarray,
    sea_bg: np.ndarray,
    valid: np.ndarray,
    *,
    min_cells: int | None = None,
) -> np.ndarray:
    """Land cells of a 1/8-resolution dB image: large textured areas brighter than the sea.

    `sea_bg` is the sea level estimated without the textured cells, so a slick edge
    (textured but dark) stays sea.
    """
    bright = coarse - sea_bg
    cand = ((textured_cells & (bright > 0.0)) | (bright > BRIGHT_DB)).astype(np.uint8)
    if not cand.any():
        return np.zeros(coarse.shape, bool)
    cand = cv2.morphologyEx(cand, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    cand = cv2.morphologyEx(cand, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    n, lab, stats = pixels.components(cand)
    if min_cells is None:
        min_cells = max(150, int(0.01 * coarse.size))
    land = np.zeros(coarse.shape, bool)
    for i in range(1, n):
        if stats[i, cv2.CC_STAT_AREA] < min_cells:
            continue
        comp = lab == i
        if quantiles.median(bright[comp]) >= BRIGHTER_DB:
            land |= comp
    out: np.ndarray = land & valid
    return out


def refine_land(
    land8: np.ndarray, half_smooth: np.ndarray, sea_bg: np.ndarray, valid: np.ndarray
) -> np.ndarray:
    """Outline land at 1/2 resolution: in a band around the coarse edge, brighter than the
    midpoint between the land level and the local sea background is land."""
    h2, w2 = half_smooth.shape
    up = cv2.resize(land8.astype(np.float32), (w2, h2), interpolation=cv2.INTER_LINEAR) > 0.5
    if not up.any():
        return up
    u8 = up.astype(np.uint8)
    core = cv2.erode(u8, np.ones((33, 33), np.uint8)).astype(bool)
    reach = cv2.dilate(u8, np.ones((9, 9), np.uint8)).astype(bool)
    level = quantiles.median(half_smooth[core]) if core.any() else float(half_smooth[up].mean())
    thr = 0.5 * (level + sea_bg)
    out = core | (reach & (half_smooth > thr))
    out = cv2.medianBlur(out.astype(np.uint8), 5).astype(bool) | core
    land: np.ndarray = out & valid
    return land


def interior(land: np.ndarray, depth: int) -> np.ndarray:
    """Land at least `depth` cells from its edge."""
    k = 2 * depth + 1
    out: np.ndarray = cv2.erode(land.astype(np.uint8), np.ones((k, k), np.uint8)).astype(bool)
    return out


def fill_enclosed(land: np.ndarray, valid: np.ndarray, max_cells: int) -> np.ndarray:
    """Land with its small holes filled: valid non-land areas smaller than `max_cells`,
    bounded by land (and maybe the image's edge), are dark relief, not water.

    The image's edge does not make a hole water: a tile's edge cuts land anywhere.
    """
    if not land.any():
        return land
    _, lab, stats, _ = cv2.connectedComponentsWithStats(
        (~land & valid).astype(np.uint8), connectivity=4
    )
    small = stats[:, cv2.CC_STAT_AREA] <= max_cells
    small[0] = False
    out: np.ndarray = land | small[lab]
    return out
