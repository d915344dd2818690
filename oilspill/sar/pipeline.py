"""`detect`: one raster's values in, a `Detection` out, tiled when the raster is large."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from oilspill.io.georef import Georef
from oilspill.io.ground import Ground
from oilspill.io.images import Pixels
from oilspill.sar import forms, tiling
from oilspill.sar.detector import NAME, TILED_ABOVE_PX, VERSION, Analysis, analyse, make_slicks
from oilspill.sar.overlay import draw_overlay, quicklook
from oilspill.sar.records import Detection


def detect(
    values: Pixels,
    *,
    pixel_size_m: float | None = None,
    georef: Georef | None = None,
    form: str = "auto",
    net: bool = True,
) -> Detection:
    """Find oil, look-alikes, ships and land in one raster (HxW or HxWxC array, blocking).

    `values` is what an image file holds: an 8-bit quicklook, 16-bit amplitude,
    or float σ0 (linear or dB); `form` names it, or "auto" guesses from dtype and
    range. With a `georef` that places pixels on Earth, slick sizes are geodesic
    (WGS84) and each slick has its lon/lat outline; else sizes come from
    `pixel_size_m`; without either, areas in km² and lengths in m are None.
    `values` may also be a window reader (`oilspill.io.images.Windowed`, e.g. a
    Sentinel-1 product): big ones are then read tile by tile, never whole.
    `net=False` calls oil by the classical features alone (for comparison).
    """
    px = pixel_size(georef, pixel_size_m)
    ground = Ground.of(georef)
    h, w = values.shape[:2]
    if not isinstance(values, np.ndarray) and h * w <= TILED_ABOVE_PX:
        values = values[0:h, 0:w]  # a small raster behind a window reader: read it whole
    if h * w > TILED_ABOVE_PX:
        t = tiling.analyse_tiled(values, form, net=net)
        an = Analysis(t.mask, t.objects, t.ships, t.thresholds)
        slicks = make_slicks(an.objects, an.ships, px, ground)
        grey, _ = quicklook(t.preview_db, t.preview_valid, max(t.preview_db.shape))
        scale = t.preview_scale
        overlay = draw_overlay(grey, scale, t.preview_mask, slicks, an.ships)
        meta = (t.form, t.sar_like, t.looks, t.units_per_db, t.warnings)
        timings = {}  # tiles run in parallel: their stages do not add up to the scene's
    else:
        assert isinstance(values, np.ndarray)
        t0 = time.perf_counter()
        sar = forms.load(values, form)
        t1 = time.perf_counter()
        an = analyse(sar, net=net)
        t2 = time.perf_counter()
        slicks = make_slicks(an.objects, an.ships, px, ground)
        t3 = time.perf_counter()
        assert isinstance(an.mask, np.ndarray)
        grey, scale = quicklook(sar.db, sar.valid)
        overlay = draw_overlay(grey, scale, an.mask, slicks, an.ships)
        t4 = time.perf_counter()
        meta = (sar.form, sar.sar_like, sar.looks, sar.units_per_db, sar.warnings)
        timings = {"to dB and speckle": 1000 * (t1 - t0), **an.timings_ms}
        timings.update({"slick records": 1000 * (t3 - t2), "overlay": 1000 * (t4 - t3)})
    info: dict[str, Any] = {
        "detector": NAME if net else NAME + " (classical only)",
        "version": VERSION,
        "input_form": meta[0],
        "sar_like": meta[1],
        "looks": round(meta[2], 2),
        "units_per_db": round(meta[3], 3),
        "thresholds": an.thresholds,
        "pixel_size_m": list(px) if px else None,
        "overlay_scale": round(scale, 6),  # overlay pixels per input pixel (<1: reduced)
        "warnings": list(meta[4]),
        "timings_ms": {k: round(v, 2) for k, v in timings.items()},  # wall, untiled scenes
    }
    if px is None:
        info["warnings"].append("pixel size unknown: areas in km² and lengths in m are null")
    return Detection(an.mask, overlay, slicks, an.ships, info, quicklook=grey)


def pixel_size(georef: Georef | None, arg: float | None) -> tuple[float, float] | None:
    if georef is not None and georef.pixel_size_m is not None:
        return georef.pixel_size_m
    if arg is not None and arg > 0:
        return (float(arg), float(arg))
    return None
