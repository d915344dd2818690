"""The embedded classical SAR oil-slick detector.

Pipeline, all in dB so contrasts are damping whatever the input form was:
speckle estimate (looks) -> half-resolution smoothing -> robust sea
background at 1/8 resolution (dark, bright, land and no-data excluded, so
neither slicks nor borders pull it down) -> dark objects by hysteresis on
the contrast, with thresholds set from the measured noise -> per-object
level, features and oil confidence -> outlines refined at full resolution
at half the object's own damping, on the least smoothing the speckle
allows -> ships by CFAR, land by texture. With the oil network (`oilnet`), the
network decides which pixels are oil and the dark objects it does not call oil
are look-alikes (`_oil_from_net`).

Everything is a pure function of its inputs: no global mutable state, and
the heavy lifting is in OpenCV, which releases the GIL, so several images
can be processed in threads at once.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from oilspill.io.ground import Ground
from oilspill.sar import features, forms, land, oilnet, pixels, quantiles, ships
from oilspill.sar.records import Cls, Ship, Slick
from oilspill.sar.tilemask import Mask

NAME = "oilspill-sar"
VERSION = "0.1.0"

LAND_INTERIOR_PX = 120  # land this far from its edge stays land even where the net sees oil
LAND_HOLE_PX = 20_000  # "sea" enclosed by land and smaller than this is land (dark relief)
TILED_ABOVE_PX = 3000 * 3000  # larger rasters go through `tiling` (bounded memory, 2 cores)
MIN_AREA_PX = 80  # full-resolution pixels; smaller dark spots are speckle or noise
EDGE_LEVEL = 0.5  # outline where the contrast is this fraction of the object's damping
EDGE_SNR = 2.5  # half the damping over the speckle std left after the outline's box filter
SPLIT_MIN_PX = 1500  # objects at least this big are searched for oil sub-objects
SUB_REL_DB = 2.0  # a sub-object is this much darker than the object around it …
SUB_JUMP = 0.3  # … with this fraction of that difference across its outline
SUPPORT_P = 0.1  # least mean net probability for a classical oil object to stay oil
ALONE_P = 0.7  # least mean net probability of net oil that no dark object overlaps
SEED_SIGMA = 4.5  # seeds: contrast above this many noise sigmas …
SEED_MIN_DB = 1.5  # … and at least this damping
GROW_SIGMA = 2.0
SOURCE_WIDTHS = 4.0  # a source ship lies at most this many slick widths beyond its end
GROW_MIN_DB = 0.8
# Edge drop of an ideal sharp step through a k x k box (features.edge_profile), by k.
_STEP_DROP = {5: 0.406, 7: 0.293}
_K9 = np.ones((9, 9), np.uint8)
_DISC15 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15))


@dataclass
class DarkObject:
    """A dark object found at full resolution, before it becomes a `Slick`."""

    cls: int
    confidence: float
    bbox: tuple[int, int, int, int]  # x, y, w, h (full resolution)
    region: np.ndarray  # bool mask over bbox
    feats: dict[str, float] = field(default_factory=dict)


@dataclass
class Analysis:
    """Everything the pipeline found in one (tile of an) image."""

    mask: Mask
    objects: list[DarkObject]
    ships: list[Ship]
    thresholds: dict[str, float]
    timings_ms: dict[str, float] = field(default_factory=dict)  # wall time of each stage


def analyse(
    sar: forms.SarImage,
    sigmas: tuple[float, float] | None = None,
    scene_db: float | None = None,
    *,
    net: bool = True,
    land8: np.ndarray | None = None,
) -> Analysis:
    """Run the pipeline on a `SarImage` and return the class mask and objects.

    `sigmas` fixes the contrast noise (3x3, 5x5 at half resolution) and `scene_db`
    the dB level that sets the network's input, instead of measuring them, so that the
    tiles of one scene agree. With `net`, the oil network decides which pixels are
    oil; the classical dark objects it does not call oil are look-alikes. Without it,
    the classical features decide (`features.oil_confidence`).
    """
    clock = _Clock()
    db, valid = sar.db, sar.valid
    h, w = db.shape
    noise_db = forms.speckle_std_db(sar.looks)
    h2, w2 = max(1, h // 2), max(1, w // 2)
    half, valid2, coarse, valid8 = _pyramid(db, valid)
    h8, w8 = coarse.shape
    clock.lap("pyramid")

    prob = oilnet.probability(oilnet.grey8(sar, scene_db)) if net else None
    clock.lap("oil network")
    # The sea level is measured on the sea: not on what the network sees as oil, so a
    # patch mostly covered by oil is judged against the sea around it, not against itself.
    sea8 = valid8
    if prob is not None:
        oil8 = cv2.resize(prob, (w8, h8), interpolation=cv2.INTER_AREA) >= oilnet.info().threshold
        if (valid8 & ~oil8).sum() >= 0.05 * valid8.sum():
            sea8 = valid8 & ~oil8
    rough8 = land.textured(coarse, valid8, noise_db / 8.0)
    bg8 = sea_background(coarse, sea8 & ~rough8, noise_db / 8.0)
    if land8 is None:
        land8 = land.find_land(coarse, rough8, bg8, valid8)
    else:  # the scene's land (tiled scenes): decided once, continuous across tiles
        land8 = _fit(land8, coarse.shape) & valid8
    if land8.any():
        bg8 = sea_background(coarse, sea8 & ~land8, noise_db / 8.0)
    bg2 = cv2.resize(bg8, (w2, h2), interpolation=cv2.INTER_LINEAR)
    bg = cv2.resize(bg8, (w, h), interpolation=cv2.INTER_LINEAR)
    land2 = land.refine_land(land8, cv2.blur(half, (5, 5)), bg2, valid2)
    if prob is not None and land2.any():
        # Oil is dark and land bright: where the network sees oil near the edge of "land",
        # that land is open sea judged against a background the oil itself pulled down (a
        # patch mostly oil). Deep inside land, dark relief is land whatever the network says.
        net_oil2 = (
            cv2.resize(prob, (w2, h2), interpolation=cv2.INTER_AREA) >= oilnet.info().threshold
        )
        interior = land.interior(land2, LAND_INTERIOR_PX // 2)
        land2 &= ~(net_oil2 & ~interior)
    land2 = land.fill_enclosed(land2, valid2, LAND_HOLE_PX // 4)
    is_land = cv2.resize(land2.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
    clock.lap("background and land")

    sea2 = valid2 & ~land2
    c3 = bg2 - cv2.blur(half, (3, 3))
    c5 = bg2 - cv2.blur(half, (5, 5))
    c3[~sea2] = 0.0
    c5[~sea2] = 0.0
    sig3, sig5 = sigmas or (_robust_sigma(c3, sea2), _robust_sigma(c5, sea2))
    seed_thr = max(SEED_MIN_DB, SEED_SIGMA * sig5)
    grow_thr = max(GROW_MIN_DB, GROW_SIGMA * sig5)
    # Half of the strongest contrast nearby: splits a sharp slick from a look-alike it lies in.
    local_max = cv2.dilate(cv2.blur(c5, (5, 5)), _DISC15)
    grow = (c5 > grow_thr) & (c5 > 0.5 * local_max) & sea2
    n, lab, stats = pixels.components(grow)
    seeded = np.zeros(n, bool)
    seeded[np.unique(lab[c5 > seed_thr])] = True
    seeded[0] = False

    full_sm_k = 7 if sar.looks < 1.8 else 5
    sea = valid & ~is_land
    # Open sea: off the coast by ~18 px, where the coast's outline is uncertain.
    near_land = cv2.dilate(land2.astype(np.uint8), np.ones((9, 9), np.uint8))
    open_sea = sea & ~(cv2.resize(near_land, (w, h), interpolation=cv2.INTER_NEAREST) > 0)
    objects: list[DarkObject] = []
    for i in np.flatnonzero(seeded):
        if stats[i, cv2.CC_STAT_AREA] * 4 < MIN_AREA_PX:
            continue
        objects += _refine(db, bg, sea, lab, int(i), stats[i], c3, (sig3, noise_db), full_sm_k)
    clock.lap("dark objects")
    if prob is not None:
        objects = _oil_from_net(db, prob, objects, bg, open_sea)
        clock.lap("oil decision")

    mask = np.zeros((h, w), np.uint8)
    mask[is_land] = Cls.LAND
    mask[~valid] = Cls.NODATA
    for cls in (Cls.LOOKALIKE, Cls.OIL):
        for o in objects:
            if o.cls == cls:
                x, y, bw, bh = o.bbox
                mask[y : y + bh, x : x + bw][o.region] = cls
    found, ship_mask = ships.find_ships(db, bg, open_sea, noise_db)
    mask[ship_mask] = Cls.SHIP
    clock.lap("ships and mask")
    thresholds = {
        "noise_db": round(noise_db, 3),
        "contrast_sigma_db": round(sig5, 3),
        "contrast_sigma3_db": round(sig3, 3),
        "seed_db": round(seed_thr, 3),
        "grow_db": round(grow_thr, 3),
        "ship_cfar_db": round(ships.cfar_threshold_db(noise_db), 3),
        "min_area_px": MIN_AREA_PX,
    }
    return Analysis(mask, objects, found, thresholds, clock.laps)


def _oil_from_net(
    db: np.ndarray,
    prob: np.ndarray,
    objects: list[DarkObject],
    bg: np.ndarray,
    sea: np.ndarray,
) -> list[DarkObject]:
    """Oil where the network says so; what is left of the dark objects is look-alike.

    Oil objects are the connected parts of the network's oil pixels on the sea, so a
    slick is found even where it fills the scene and no sea around it sets a level.
    """
    oil = prob >= oilnet.info().threshold
    dark = np.zeros(oil.shape, bool)
    for o in objects:  # a dark object the classical features call oil, if the net agrees a little
        x, y, bw, bh = o.bbox
        dark[y : y + bh, x : x + bw] |= o.region
        if o.cls == Cls.OIL and float(prob[y : y + bh, x : x + bw][o.region].mean()) >= SUPPORT_P:
            oil[y : y + bh, x : x + bw] |= o.region
    oil &= sea
    out: list[DarkObject] = []
    n, lab, stats = pixels.components(oil)
    for i in range(1, n):
        if stats[i, cv2.CC_STAT_AREA] < MIN_AREA_PX:
            continue
        x, y, bw, bh = (int(v) for v in stats[i, :4])
        region = lab[y : y + bh, x : x + bw] == i
        obj = _net_object(db, bg, prob, region, (x, y, bw, bh), Cls.OIL)
        # Away from every dark object, only a confident network makes oil on its own.
        on_dark = float(dark[y : y + bh, x : x + bw][region].mean())
        if on_dark >= 0.2 or obj.feats["oil_probability"] >= ALONE_P:
            out.append(obj)
        else:
            oil[y : y + bh, x : x + bw] &= ~region
    for o in objects:
        x, y, bw, bh = o.bbox
        rest = o.region & ~oil[y : y + bh, x : x + bw]
        if int(rest.sum()) < MIN_AREA_PX:
            continue
        ys, xs = pixels.where(rest)
        bx, by = int(xs.min()), int(ys.min())
        sub = rest[by : int(ys.max()) + 1, bx : int(xs.max()) + 1]
        bbox = (x + bx, y + by, sub.shape[1], sub.shape[0])
        look = _net_object(db, bg, prob, sub, bbox, Cls.LOOKALIKE)
        look.feats = {**o.feats, **look.feats}
        out.append(look)
    return out


def _net_object(
    db: np.ndarray,
    bg: np.ndarray,
    prob: np.ndarray,
    region: np.ndarray,
    bbox: tuple[int, int, int, int],
    cls: int,
) -> DarkObject:
    x, y, bw, bh = bbox
    window = (slice(y, y + bh), slice(x, x + bw))
    mean_p = float(prob[window][region].mean())
    feats = features.shape_features(region)
    feats.update(
        damping_db=quantiles.median(bg[window][region] - db[window][region]),
        oil_probability=mean_p,
    )
    return DarkObject(
        int(cls), oilnet.confidence(mean_p), bbox, np.ascontiguousarray(region), feats
    )


def _robust_sigma(c: np.ndarray, ok: np.ndarray) -> float:
    step = 3 if c.size < 1_000_000 else 6
    sample = c[::step, ::step][ok[::step, ::step]]
    if sample.size < 100:
        return 1.0
    med = quantiles.median(sample)
    mad = quantiles.median(np.abs(sample - med))
    return max(1.4826 * mad, 0.05)


def _refine(
    db: np.ndarray,
    bg: np.ndarray,
    sea: np.ndarray,
    lab: np.ndarray,
    i: int,
    stat: np.ndarray,
    c3: np.ndarray,
    noise: tuple[float, float],
    k: int,
) -> list[DarkObject]:
    """Measure one half-resolution object and redraw its outline at full resolution.

    `noise` is (contrast sigma at half resolution, per-pixel speckle std in dB).
    """
    sig3, speckle_db = noise
    h2, w2 = lab.shape
    m = 6
    x0, y0 = max(int(stat[0]) - m, 0), max(int(stat[1]) - m, 0)
    x1, y1 = min(int(stat[0] + stat[2]) + m, w2), min(int(stat[1] + stat[3]) + m, h2)
    obj2 = lab[y0:y1, x0:x1] == i
    cc = c3[y0:y1, x0:x1]
    level = quantiles.percentile(cc[obj2], 70)
    if level <= 0:
        return []
    # Full resolution crop, with a margin for the smoothing window.
    h, w = db.shape
    fx0, fy0 = x0 * 2, y0 * 2
    fx1, fy1 = (
        min(x1 * 2 + (1 if x1 == w2 else 0) * (w - 2 * w2), w),
        min(y1 * 2 + (1 if y1 == h2 else 0) * (h - 2 * h2), h),
    )
    p = k // 2
    ax0, ay0, ax1, ay1 = max(fx0 - p, 0), max(fy0 - p, 0), min(fx1 + p, w), min(fy1 + p, h)
    sm = cv2.blur(db[ay0:ay1, ax0:ax1], (k, k))[fy0 - ay0 : fy1 - ay0, fx0 - ax0 : fx1 - ax0]
    cf = bg[fy0:fy1, fx0:fx1] - sm
    near = cv2.dilate(obj2.astype(np.uint8), np.ones((5, 5), np.uint8))
    near_f = cv2.resize(near, (fx1 - fx0, fy1 - fy0), interpolation=cv2.INTER_NEAREST) > 0
    # The outline is drawn on the least smoothed contrast whose speckle still keeps a pixel
    # on the right side of the half-damping level: box size ke with
    # (level / 2) / (speckle_std / ke) >= 2.5, i.e. ke >= 5 * speckle_std / level. Strong
    # slicks in multi-look scenes get a 3x3 box and keep their thin heads and corners.
    ce = cf
    ke = min(max(math.ceil(EDGE_SNR * 2.0 * speckle_db / max(level, 0.1)) | 1, 3), k)
    if ke < k:
        sme = cv2.blur(db[ay0:ay1, ax0:ax1], (ke, ke))
        ce = bg[fy0:fy1, fx0:fx1] - sme[fy0 - ay0 : fy1 - ay0, fx0 - ax0 : fx1 - ax0]
    region = (ce > EDGE_LEVEL * level) & near_f & sea[fy0:fy1, fx0:fx1]
    r8 = cv2.medianBlur(region.astype(np.uint8) * 255, 3)
    region = r8 > 0
    obj = _measure(cf, region, level, (sig3, k), (fx0, fy0))
    if obj is None or obj.feats["area_px"] < SPLIT_MIN_PX:
        return [obj] if obj is not None else []
    return _split_two_level(cf, region, obj, (sig3, k), (fx0, fy0))


def _split_two_level(
    cf: np.ndarray,
    region: np.ndarray,
    parent: DarkObject,
    noise: tuple[float, int],
    origin: tuple[int, int],
) -> list[DarkObject]:
    """Two-level segmentation: oil lying inside (or merged with) a look-alike.

    The object found at the look-alike level is searched for sub-objects at an oil
    level: darker than the object's own interior by a few dB (Otsu split of its
    contrast) with a sharp outline, i.e. a real step from the look-alike's level to
    the oil's across the sub-object's edge, where a look-alike only fades. Each part
    is then classified on its own (the rest on its outline towards the sea). A split
    that leaves oil on both sides is undone: that is one slick whose damping varies.
    """
    vals = cf[region]
    vals = vals[:: max(1, vals.size // 8192)]  # a sample is plenty for levels
    lo, hi = quantiles.percentiles(vals, [50, 97])
    if hi - lo < SUB_REL_DB:
        return [parent]
    thr = _otsu(vals)
    core = cv2.medianBlur((region & (cf > thr)).astype(np.uint8) * 255, 5)
    n, lab, stats = pixels.components(core)
    out: list[DarkObject] = []
    taken = np.zeros_like(region)
    ch, cw = region.shape
    fx0, fy0 = origin
    for i in range(1, n):
        if stats[i, cv2.CC_STAT_AREA] < 2 * MIN_AREA_PX:
            continue
        # Work on the component's box plus a margin for the dilations.
        x, y, bw, bh = (int(v) for v in stats[i, :4])
        x0, y0, x1, y1 = max(x - 12, 0), max(y - 12, 0), min(x + bw + 12, cw), min(y + bh + 12, ch)
        comp = lab[y0:y1, x0:x1] == i
        reg, c = region[y0:y1, x0:x1], cf[y0:y1, x0:x1]
        level = quantiles.percentile(c[comp], 70)
        near = cv2.dilate(comp.astype(np.uint8), _K9).astype(bool) & reg
        ring = near & ~comp
        base = quantiles.median(c[ring]) if ring.any() else thr
        sub = near & (c > 0.5 * (base + level))
        sub = cv2.medianBlur(sub.astype(np.uint8) * 255, 3) > 0
        c_in, c_near, c_halo = features.edge_profile(c, sub, reg)
        rel = level - c_halo
        jump = (c_in - c_near) / max(rel, 0.1)
        if rel < SUB_REL_DB or jump < SUB_JUMP:
            continue
        obj = _measure(c, sub, level, noise, (fx0 + x0, fy0 + y0))
        if obj is not None and obj.cls == Cls.OIL:
            obj.feats.update(rel_db=rel, rel_jump=jump)
            out.append(obj)
            taken[y0:y1, x0:x1] |= sub
    if not out:
        return [parent]
    rest = region & ~taken
    if not rest.any():
        return [parent]
    rest_vals = cf[rest]
    rest_level = quantiles.percentile(rest_vals[:: max(1, rest_vals.size // 8192)], 70)
    away = ~cv2.dilate(taken.astype(np.uint8), _K9).astype(bool)
    left = _measure(cf, rest, rest_level, noise, origin, away)
    if left is None:
        return [parent] if parent.cls == Cls.OIL else out
    if left.cls == Cls.OIL and parent.cls == Cls.OIL:
        return [parent]
    left.cls = int(Cls.LOOKALIKE)
    left.confidence = min(left.confidence, parent.confidence, 0.49)
    out.append(left)
    return out


def _otsu(vals: np.ndarray) -> float:
    """Otsu's threshold of a 1-D sample (between-class variance maximised over 64 bins)."""
    hist, edges = np.histogram(vals, bins=64)
    p = hist.astype(np.float64) / max(hist.sum(), 1)
    mids = 0.5 * (edges[:-1] + edges[1:])
    w0 = np.cumsum(p)
    m0 = np.cumsum(p * mids)
    mt = m0[-1]
    w1 = 1.0 - w0
    between = (mt * w0 - m0) ** 2 / np.maximum(w0 * w1, 1e-12)
    return float(edges[int(np.argmax(between[:-1])) + 1])


def _measure(
    cf: np.ndarray,
    region: np.ndarray,
    level: float,
    noise: tuple[float, int],
    origin: tuple[int, int],
    within: np.ndarray | None = None,
) -> DarkObject | None:
    """Features, confidence and class of one full-resolution region of a crop at `origin`.

    With `within`, the edge is measured only where the outside lies in `within`.

    `noise` is (contrast sigma at half resolution, box size k of the full-resolution
    smoothing); edge sharpness is the edge drop relative to a perfect step seen
    through that k x k box, so objects of 1-look scenes (k = 7) are judged fairly.
    """
    sig3, k = noise
    fx0, fy0 = origin
    area = int(region.sum())
    if area < MIN_AREA_PX:
        return None
    c_in, c_near, c_halo = features.edge_profile(cf, region, within)
    feats = features.shape_features(region)
    feats.update(
        damping_db=level,
        cnr=level / max(sig3, 1e-3),
        edge_drop=(c_in - c_near) / level,
        edge_sharpness=(c_in - c_near) / level / _STEP_DROP.get(k, 0.4),
        halo=c_halo / level,
        step=(c_in - c_near) / max(c_in - c_halo, 0.3),
        surround_db=c_halo,
    )
    conf = features.oil_confidence(feats)
    cls = Cls.OIL if conf >= 0.5 else Cls.LOOKALIKE
    ys, xs = pixels.where(region)
    bx0, by0 = int(xs.min()), int(ys.min())
    bbox = (fx0 + bx0, fy0 + by0, int(xs.max()) - bx0 + 1, int(ys.max()) - by0 + 1)
    sub = region[by0 : by0 + bbox[3], bx0 : bx0 + bbox[2]]
    return DarkObject(int(cls), conf, bbox, np.ascontiguousarray(sub), feats)


def make_slicks(
    objects: list[DarkObject],
    found: list[Ship],
    px: tuple[float, float] | None,
    ground: Ground | None = None,
) -> list[Slick]:
    """Turn dark objects into numbered `Slick` records with outlines and sizes.

    With `ground` (a georeferenced raster), sizes are geodesic and each slick
    carries its lon/lat outline; else they come from the pixel size `px`.
    """
    out: list[Slick] = []
    order = sorted(objects, key=lambda o: (o.bbox[1], o.bbox[0]))
    for o in order:
        x, y = o.bbox[0], o.bbox[1]
        r8 = np.pad(o.region.astype(np.uint8), 1)
        contours, _ = cv2.findContours(r8, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        big = max(contours, key=cv2.contourArea)
        # Whole pixel vertices, kept as ints: the record's JSON is written 2x faster.
        offset = np.array([x - 1, y - 1])
        poly = (cv2.approxPolyDP(big, 0.7, True).reshape(-1, 2) + offset).tolist()
        mom = cv2.moments(o.region.astype(np.uint8), binaryImage=True)
        cx = x + mom["m10"] / max(mom["m00"], 1.0)
        cy = y + mom["m01"] / max(mom["m00"], 1.0)
        f = o.feats
        area = int(f["area_px"])
        slick = Slick(
            id=len(out) + 1,
            cls=o.cls,
            confidence=round(o.confidence, 3),
            area_px=area,
            centroid=(round(cx, 2), round(cy, 2)),
            bbox=o.bbox,
            polygon=poly,
            perimeter_px=round(f["perimeter_px"], 1),
            elongation=round(f["elongation"], 2),
            damping_db=round(f["damping_db"], 2),
            features={k: round(float(v), 4) for k, v in f.items()},
        )
        if ground is not None:
            m = ground.measure(
                o.region, x, y, axis_angle=_major_axis(o.region), length_px=f["length_px"]
            )
            slick.area_km2, slick.perimeter_m = m.area_km2, m.perimeter_m
            slick.length_m, slick.width_m = m.length_m, m.width_m
            slick.centroid_lonlat, slick.geometry = m.centroid_lonlat, m.geometry
        elif px is not None:
            pm = math.sqrt(px[0] * px[1])
            slick.area_km2 = round(area * px[0] * px[1] / 1e6, 6)
            slick.length_m = round(f["length_px"] * pm, 1)
            slick.width_m = round(f["thickness_px"] * pm, 1)
            slick.perimeter_m = round(f["perimeter_px"] * pm, 1)
        slick.possible_source = _ship_at_end(o, big, (x - 1, y - 1), found)
        out.append(slick)
    return out


class _Clock:
    """Wall milliseconds of consecutive stages (`lap` ends one), for the records and bench."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.laps[stage] = round(self.laps.get(stage, 0.0) + 1000 * (now - self._last), 2)
        self._last = now


def _ship_at_end(
    o: DarkObject, contour: np.ndarray, offset: tuple[int, int], found: list[Ship]
) -> bool:
    """True when a ship lies at an end of the slick: within 30 px of its outline and, along
    the slick's major axis, in its last fifth or beyond the end by at most a few widths."""
    x, y, bw, bh = o.bbox
    reach = 30.0
    near = [
        s
        for s in found
        if x - reach <= s.x <= x + bw + reach and y - reach <= s.y <= y + bh + reach
    ]
    if not near:  # most slicks: no axis to measure
        return False
    ys, xs = pixels.where(o.region)
    if xs.size == 0:
        return False
    cx, cy = x + float(xs.mean()), y + float(ys.mean())
    angle = _major_axis(o.region)
    ux, uy = math.cos(angle), math.sin(angle)
    along = (xs + x - cx) * ux + (ys + y - cy) * uy
    lo, hi = float(along.min()), float(along.max())
    width = max(o.feats.get("thickness_px", 1.0), 1.0)
    beyond = max(SOURCE_WIDTHS * width, 15.0)
    for s in near:
        d = -cv2.pointPolygonTest(contour, (s.x - offset[0], s.y - offset[1]), True)
        t = (s.x - cx) * ux + (s.y - cy) * uy
        at_end = hi - 0.2 * (hi - lo) <= t <= hi + beyond or lo - beyond <= t <= lo + 0.2 * (
            hi - lo
        )
        if d <= reach and at_end:
            return True
    return False


def _major_axis(region: np.ndarray) -> float:
    """Angle (radians, image x towards y) of the major axis of a binary region."""
    m = cv2.moments(region.astype(np.uint8), binaryImage=True)
    return 0.5 * math.atan2(2.0 * m["mu11"], m["mu20"] - m["mu02"])


def _pyramid(
    db: np.ndarray, valid: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Half resolution and 1/8 resolution (coarse cells) of a dB image and its validity."""
    h, w = db.shape
    h2, w2 = max(1, h // 2), max(1, w // 2)
    half = cv2.resize(db, (w2, h2), interpolation=cv2.INTER_AREA)
    w8, h8 = max(1, w2 // 4), max(1, h2 // 4)
    coarse = cv2.resize(half, (w8, h8), interpolation=cv2.INTER_AREA)
    if valid.all():  # most scenes: averages of ones are ones (1.5 ms of resizing saved)
        return half, np.ones((h2, w2), bool), coarse, np.ones((h8, w8), bool)
    valid2 = cv2.resize(valid.astype(np.float32), (w2, h2), interpolation=cv2.INTER_AREA) > 0.999
    valid8 = cv2.resize(valid2.astype(np.float32), (w8, h8), interpolation=cv2.INTER_AREA) > 0.5
    return half, valid2, coarse, valid8


def coarse_cells(db: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 1/8-resolution cells of a dB image, as the detector makes them, and their validity."""
    _, _, coarse, valid8 = _pyramid(db, valid)
    return coarse, valid8


def _fit(cells: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """`cells` cut or padded (False) to `shape`."""
    out = np.zeros(shape[:2], bool)
    h, w = min(shape[0], cells.shape[0]), min(shape[1], cells.shape[1])
    out[:h, :w] = cells[:h, :w]
    return out


def sea_background(coarse: np.ndarray, ok: np.ndarray, noise8: float) -> np.ndarray:
    """Robust local sea level (dB) at 1/8 resolution by normalised convolution.

    Cells darker or brighter than the current estimate are dropped and the
    estimate is redone, so slicks, ships and land do not bias it.
    """
    weights = ok.astype(np.float32)
    if not ok.any():
        return np.full(coarse.shape, float(coarse.mean()), np.float32)
    glob = quantiles.median(coarse[ok])
    bg = np.full(coarse.shape, glob, np.float32)
    dark_thr = max(1.0, 2.5 * noise8)
    for _ in range(3):
        bg = _normalised_box(coarse, weights, 25, glob)
        dev = coarse - bg
        weights = (ok & (dev > -dark_thr) & (dev < 3.0)).astype(np.float32)
    return bg


def _normalised_box(x: np.ndarray, wts: np.ndarray, k: int, fallback: float) -> np.ndarray:
    num = cv2.blur(x * wts, (k, k), borderType=cv2.BORDER_REFLECT)
    den = cv2.blur(wts, (k, k), borderType=cv2.BORDER_REFLECT)
    k2 = 3 * k
    num2 = cv2.blur(x * wts, (k2, k2), borderType=cv2.BORDER_REFLECT)
    den2 = cv2.blur(wts, (k2, k2), borderType=cv2.BORDER_REFLECT)
    # A wide estimate rests on at least 1 % of its box (56 cells): a handful of smooth cells
    # inside textured land (flat, saturated relief) is no sea level; the scene's is used.
    wide = np.where(den2 > 0.01, num2 / np.maximum(den2, 1e-6), fallback)
    out = np.where(den > 0.05, num / np.maximum(den, 1e-6), wide)
    return out.astype(np.float32)
