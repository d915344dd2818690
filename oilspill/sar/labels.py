"""`describe`: a class mask a model made, turned into the same records the detector gives.

Trained models (an ONNX file in process, a model on an Open Inference Protocol
server) answer with a class per pixel, and sometimes an oil probability. This
module measures what they found exactly as the embedded detector's results are
measured: each connected oil or look-alike region becomes a `Slick` (outline,
area, length, width, damping against the sea around it, geodesic sizes on a
georeferenced raster), each ship region a `Ship`, and the overlay is drawn on
the same quicklook. A slick's confidence is the model's mean oil probability
over it; a model that gives labels only gives no confidence (None), and the
info says so rather than inventing one.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from oilspill.io.georef import Georef
from oilspill.io.ground import Ground
from oilspill.sar import features, forms
from oilspill.sar.detector import MIN_AREA_PX, DarkObject, make_slicks
from oilspill.sar.overlay import draw_overlay, quicklook
from oilspill.sar.pipeline import pixel_size
from oilspill.sar.records import Cls, Detection, Ship

_RING = np.ones((9, 9), np.uint8)  # the sea a region is compared with: 4 px around it


def describe(
    values: np.ndarray,
    labels: np.ndarray,
    *,
    oil_prob: np.ndarray | None = None,
    pixel_size_m: float | None = None,
    georef: Georef | None = None,
    form: str = "auto",
    info: dict[str, Any] | None = None,
    min_area_px: int = MIN_AREA_PX,
) -> Detection:
    """Slicks, ships and the overlay of a class map `labels` (HxW uint8, `Cls` values) of
    the raster `values` (blocking).

    `oil_prob` (HxW float, 0..1) is the model's oil probability; each slick's confidence
    is its mean over the slick, else None. Regions of oil or look-alike smaller than
    `min_area_px` are speckle to the detector and sea here too: they are cleared from the
    mask so that the mask and the slick list agree. No-data pixels of the raster (zero
    or NaN) become `Cls.NODATA` whatever the model said.
    """
    if labels.shape != values.shape[:2]:
        raise ValueError(f"labels {labels.shape} do not match the raster {values.shape[:2]}")
    sar = forms.load(values, form)
    mask = np.ascontiguousarray(labels, dtype=np.uint8).copy()
    mask[~sar.valid] = Cls.NODATA
    objects: list[DarkObject] = []
    for cls in (Cls.OIL, Cls.LOOKALIKE):
        objects += _objects(mask, sar, int(cls), oil_prob, min_area_px)
    found = _ships(mask, sar.db)
    px = pixel_size(georef, pixel_size_m)
    slicks = make_slicks(objects, found, px, Ground.of(georef))
    if oil_prob is None:
        for s in slicks:
            s.confidence = None
    grey, scale = quicklook(sar.db, sar.valid)
    overlay = draw_overlay(grey, scale, mask, slicks, found)
    out: dict[str, Any] = {
        **(info or {}),
        "input_form": sar.form,
        "sar_like": sar.sar_like,
        "pixel_size_m": list(px) if px else None,
        "overlay_scale": round(scale, 6),
        "confidence": "mean oil probability of the model over each slick"
        if oil_prob is not None
        else None,
        "warnings": list(sar.warnings),
    }
    if oil_prob is None:
        out["warnings"].append("the model gives labels only: slicks have no confidence")
    if px is None:
        out["warnings"].append("pixel size unknown: areas in km² and lengths in m are null")
    return Detection(mask, overlay, slicks, found, out, quicklook=grey)


def _objects(
    mask: np.ndarray,
    sar: forms.SarImage,
    cls: int,
    oil_prob: np.ndarray | None,
    min_area_px: int,
) -> list[DarkObject]:
    """Each 8-connected region of class `cls`, measured; small ones are cleared to sea."""
    n, comp, stats, _ = cv2.connectedComponentsWithStats(
        (mask == int(cls)).astype(np.uint8), connectivity=8
    )
    out: list[DarkObject] = []
    h, w = mask.shape
    for i in range(1, n):
        x, y, bw, bh, area = (int(v) for v in stats[i])
        if area < min_area_px:
            box = comp[y : y + bh, x : x + bw] == i
            mask[y : y + bh, x : x + bw][box] = Cls.SEA
            continue
        # The region and, 4 px around it, the sea it darkens.
        x0, y0, x1, y1 = max(x - 4, 0), max(y - 4, 0), min(x + bw + 4, w), min(y + bh + 4, h)
        crop = comp[y0:y1, x0:x1] == i
        ring = cv2.dilate(crop.view(np.uint8), _RING).view(bool) & ~crop
        ring &= sar.valid[y0:y1, x0:x1] & (mask[y0:y1, x0:x1] == int(Cls.SEA))
        db = sar.db[y0:y1, x0:x1]
        inside = float(np.median(db[crop]))
        around = float(np.median(db[ring])) if ring.any() else inside
        region = np.ascontiguousarray(crop[y - y0 : y - y0 + bh, x - x0 : x - x0 + bw])
        feats = features.shape_features(region)
        feats["damping_db"] = around - inside
        conf = 0.0  # replaced by None in `describe` when there is no probability
        if oil_prob is not None:
            conf = float(np.mean(oil_prob[y : y + bh, x : x + bw][region]))
        out.append(DarkObject(cls, conf, (x, y, bw, bh), region, feats))
    return out


def _ships(mask: np.ndarray, db: np.ndarray) -> list[Ship]:
    """Each region of class ship, at its centroid; its contrast is its brightest pixel over
    the median of the scene's sea, in dB."""
    n, comp, stats, centroids = cv2.connectedComponentsWithStats(
        (mask == int(Cls.SHIP)).astype(np.uint8), connectivity=8
    )
    if n <= 1:
        return []
    sea = mask == int(Cls.SEA)
    background = float(np.median(db[::4, ::4][sea[::4, ::4]])) if sea.any() else 0.0
    out = []
    for i in range(1, n):
        x, y, bw, bh, area = (int(v) for v in stats[i])
        peak = float(db[y : y + bh, x : x + bw][comp[y : y + bh, x : x + bw] == i].max())
        cx, cy = centroids[i]
        out.append(
            Ship(round(float(cx), 2), round(float(cy), 2), round(peak - background, 2), area)
        )
    return out
