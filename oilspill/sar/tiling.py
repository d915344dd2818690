"""Large scenes in overlapping tiles, in bounded memory, on several cores.

A full IW GRD scene (25 000 x 16 700 uint16) does not fit in memory as float
dB, so each tile is converted and analysed on its own, with a margin wide
enough for the background estimate; only the tile's core is written to the
mask. The speckle estimate and the contrast noise are measured once for the
whole scene, so every tile uses the same thresholds and no seam appears.
Objects cut by core borders are joined again (union-find over the pixels
facing each other across the border), so a slick is counted once, with one
class and one confidence.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from oilspill.io.images import Pixels
from oilspill.sar import features, forms, land, oilnet
from oilspill.sar.detector import Analysis, DarkObject, analyse, coarse_cells, sea_background
from oilspill.sar.overlay import MAX_SIDE
from oilspill.sar.records import Cls, Ship
from oilspill.sar.tilemask import TileMask

TILE = 2048  # core size
MARGIN = 192  # context on each side: more than the background window and most slick widths


@dataclass
class Tiled:
    """What the tiled run found, in whole-scene coordinates."""

    mask: TileMask
    objects: list[DarkObject]
    ships: list[Ship]
    thresholds: dict[str, float]
    preview_db: np.ndarray  # quicklook-sized dB image for the overlay
    preview_valid: np.ndarray
    preview_mask: np.ndarray  # the mask at the quicklook's size
    preview_scale: float
    form: str
    looks: float
    units_per_db: float
    sar_like: bool
    warnings: list[str]


def analyse_tiled(
    pixels: Pixels,
    form: str = "auto",
    *,
    tile: int = TILE,
    margin: int = MARGIN,
    workers: int = 2,
    net: bool = True,
) -> Tiled:
    """Analyse a large raster tile by tile with `workers` threads."""
    h, w = int(pixels.shape[0]), int(pixels.shape[1])
    probe, sigmas = _probe(pixels, form)
    scene_db = oilnet.scene_level(probe.db, probe.valid)
    speckle = (probe.looks, probe.units_per_db)
    land8 = scene_land(pixels, probe.form, speckle, tile=tile, margin=margin, workers=workers)
    scale = min(1.0, MAX_SIDE / max(h, w))
    ph, pw = max(1, round(h * scale)), max(1, round(w * scale))
    preview = np.zeros((ph, pw), np.float32)
    pvalid = np.zeros((ph, pw), bool)
    mask = TileMask((h, w), tile)
    cores = [
        (y, x, min(y + tile, h), min(x + tile, w))
        for y in range(0, h, tile)
        for x in range(0, w, tile)
    ]

    def run(core: tuple[int, int, int, int]) -> tuple[tuple[int, int, int, int], Analysis]:
        y0, x0, y1, x1 = core
        ay0, ax0 = max(y0 - margin, 0), max(x0 - margin, 0)
        ay1, ax1 = min(y1 + margin, h), min(x1 + margin, w)
        sar = forms.load(pixels[ay0:ay1, ax0:ax1], probe.form, speckle=speckle)
        crop = land8[ay0 // 8 : ay0 // 8 + (ay1 - ay0) // 8, ax0 // 8 : ax0 // 8 + (ax1 - ax0) // 8]
        an = analyse(sar, sigmas, scene_db, net=net, land8=crop)
        cy0, cx0, cy1, cx1 = y0 - ay0, x0 - ax0, y1 - ay0, x1 - ax0
        mask.put(y0, x0, an.mask[cy0:cy1, cx0:cx1])
        sy0, sx0 = math.floor(y0 * scale), math.floor(x0 * scale)
        sy1 = ph if y1 == h else math.floor(y1 * scale)
        sx1 = pw if x1 == w else math.floor(x1 * scale)
        if sy1 > sy0 and sx1 > sx0:
            size = (sx1 - sx0, sy1 - sy0)
            core_db = sar.db[cy0:cy1, cx0:cx1]
            preview[sy0:sy1, sx0:sx1] = cv2.resize(core_db, size, interpolation=cv2.INTER_AREA)
            v = sar.valid[cy0:cy1, cx0:cx1].astype(np.uint8)
            pvalid[sy0:sy1, sx0:sx1] = cv2.resize(v, size, interpolation=cv2.INTER_NEAREST) > 0
        return core, _shift(an, ax0, ay0)

    with ThreadPoolExecutor(max(1, workers)) as pool:
        results = list(pool.map(run, cores))
    pieces: list[tuple[tuple[int, int, int, int], DarkObject]] = []
    ships: list[Ship] = []
    for core, an in results:
        y0, x0, y1, x1 = core
        for o in an.objects:
            piece = _clip(o, core)
            if piece is not None:
                pieces.append((core, piece))
        ships += [s for s in an.ships if y0 <= s.y < y1 and x0 <= s.x < x1]
    objects = _join(pieces, mask, (h, w))
    thresholds = dict(results[0][1].thresholds) if results else {}
    thresholds.update(tile_px=tile, tile_margin_px=margin)
    pmask = mask.decimated((ph, pw))
    return Tiled(mask, objects, ships, thresholds, preview, pvalid, pmask, scale, probe.form,
                 probe.looks, probe.units_per_db, probe.sar_like, probe.warnings)  # fmt: skip


def scene_land(
    pixels: Pixels,
    form: str,
    speckle: tuple[float, float],
    *,
    tile: int = TILE,
    margin: int = MARGIN,
    workers: int = 2,
) -> np.ndarray:
    """Land of the whole scene at 1/8 resolution (the detector's coarse cells), found once.

    Land is a property of the scene, not of a tile: a tile that is all land has no sea
    to judge brightness against, and a coast cut by a tile border must not end there.
    The scene is read block by block into the coarse grid the detector uses (cell (i, j)
    covers pixels 8i..8i+7, 8j..8j+7), and the detector's land rule runs on all of it.
    """
    h, w = int(pixels.shape[0]), int(pixels.shape[1])
    h8, w8 = h // 8, w // 8
    coarse = np.zeros((h8, w8), np.float32)
    valid8 = np.zeros((h8, w8), bool)
    step = 2048

    def block(yx: tuple[int, int]) -> None:
        y0, x0 = yx
        y1, x1 = min(y0 + step, h8 * 8), min(x0 + step, w8 * 8)
        sar = forms.load(pixels[y0:y1, x0:x1], form, speckle=speckle)
        c, v = coarse_cells(sar.db, sar.valid)
        coarse[y0 // 8 : y1 // 8, x0 // 8 : x1 // 8] = c
        valid8[y0 // 8 : y1 // 8, x0 // 8 : x1 // 8] = v

    starts = [(y, x) for y in range(0, h8 * 8, step) for x in range(0, w8 * 8, step)]
    with ThreadPoolExecutor(max(1, workers)) as pool:
        list(pool.map(block, starts))
    noise8 = forms.speckle_std_db(speckle[0]) / 8.0
    rough8 = land.textured(coarse, valid8, noise8)
    bg8 = sea_background(coarse, valid8 & ~rough8, noise8)
    # The size rule of one whole tile: what a tile would keep, the scene keeps.
    min_cells = max(150, int(0.01 * ((tile + 2 * margin) // 8) ** 2))
    return land.find_land(coarse, rough8, bg8, valid8, min_cells=min_cells)


def _probe(pixels: Pixels, form: str) -> tuple[forms.SarImage, tuple[float, float]]:
    """Speckle and contrast noise from a few crops spread over the scene."""
    h, w = int(pixels.shape[0]), int(pixels.shape[1])
    size = min(1024, h, w)
    spots = [(0.5, 0.5), (0.25, 0.25), (0.75, 0.75), (0.25, 0.75), (0.75, 0.25)]
    if h * w < 60_000_000:
        spots = spots[:3]
    probes: list[tuple[forms.SarImage, tuple[float, float]]] = []
    for fy, fx in spots:
        y0 = int(min(max(fy * h - size / 2, 0), h - size))
        x0 = int(min(max(fx * w - size / 2, 0), w - size))
        sar = forms.load(pixels[y0 : y0 + size, x0 : x0 + size], form)
        if sar.valid.mean() < 0.5:
            continue
        an = analyse(sar, net=False)  # only the noise is wanted here
        t = an.thresholds
        probes.append((sar, (t["contrast_sigma3_db"], t["contrast_sigma_db"])))
    if not probes:
        sar = forms.load(pixels[:size, :size], form)
        return sar, (1.0, 0.6)
    probes.sort(key=lambda p: p[0].looks)
    sar, _ = probes[len(probes) // 2]
    s3 = float(np.median([p[1][0] for p in probes]))
    s5 = float(np.median([p[1][1] for p in probes]))
    return sar, (s3, s5)


def _shift(an: Analysis, dx: int, dy: int) -> Analysis:
    objs = []
    for o in an.objects:
        x, y, w, h = o.bbox
        objs.append(DarkObject(o.cls, o.confidence, (x + dx, y + dy, w, h), o.region, o.feats))
    ships = [Ship(s.x + dx, s.y + dy, s.contrast_db, s.area_px) for s in an.ships]
    # The tile's own mask is already copied into the scene mask: do not keep it alive.
    return Analysis(np.empty((0, 0), np.uint8), objs, ships, an.thresholds)


def _clip(o: DarkObject, core: tuple[int, int, int, int]) -> DarkObject | None:
    """The part of an object inside a tile core, or None."""
    y0, x0, y1, x1 = core
    x, y, w, h = o.bbox
    cx0, cy0 = max(x, x0), max(y, y0)
    cx1, cy1 = min(x + w, x1), min(y + h, y1)
    if cx1 <= cx0 or cy1 <= cy0:
        return None
    region = o.region[cy0 - y : cy1 - y, cx0 - x : cx1 - x]
    if not region.any():
        return None
    ys, xs = np.nonzero(region)
    bx, by = int(xs.min()), int(ys.min())
    sub = region[by : int(ys.max()) + 1, bx : int(xs.max()) + 1]
    feats = dict(o.feats)
    feats["area_px"] = float(sub.sum())
    box = (cx0 + bx, cy0 + by, sub.shape[1], sub.shape[0])
    return DarkObject(o.cls, o.confidence, box, np.ascontiguousarray(sub), feats)


def _join(
    pieces: list[tuple[tuple[int, int, int, int], DarkObject]],
    mask: TileMask,
    shape: tuple[int, int],
) -> list[DarkObject]:
    """Join pieces that touch across core borders; one class and confidence per object."""
    n = len(pieces)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    h, w = shape
    # Pixels on both sides of every core border, labelled with piece numbers (1-based).
    cols: dict[int, np.ndarray] = {}
    rows: dict[int, np.ndarray] = {}
    for k, (core, o) in enumerate(pieces):
        x, y, bw, bh = o.bbox
        cy0, cx0, cy1, cx1 = core
        for edge_x in {x, x + bw - 1} & {cx0, cx1 - 1} - {0, w - 1}:
            line = cols.setdefault(edge_x, np.zeros(h, np.int32))
            column = o.region[:, edge_x - x]
            line[y : y + bh][column] = k + 1
        for edge_y in {y, y + bh - 1} & {cy0, cy1 - 1} - {0, h - 1}:
            line = rows.setdefault(edge_y, np.zeros(w, np.int32))
            row = o.region[edge_y - y, :]
            line[x : x + bw][row] = k + 1
    for lines in (cols, rows):
        for pos, a in lines.items():
            b = lines.get(pos + 1)
            if b is None:
                continue
            for shift in (-1, 0, 1):
                bb = np.roll(b, shift)
                hit = (a > 0) & (bb > 0) & (a != bb)
                for i, j in set(zip(a[hit].tolist(), bb[hit].tolist(), strict=True)):
                    ri, rj = find(i - 1), find(j - 1)
                    if ri != rj:
                        parent[ri] = rj
    groups: dict[int, list[int]] = {}
    for k in range(n):
        groups.setdefault(find(k), []).append(k)
    out: list[DarkObject] = []
    for members in groups.values():
        objs = [pieces[k][1] for k in members]
        out.append(objs[0] if len(objs) == 1 else _merge(objs, mask))
    return out


def _merge(objs: list[DarkObject], mask: TileMask) -> DarkObject:
    x0 = min(o.bbox[0] for o in objs)
    y0 = min(o.bbox[1] for o in objs)
    x1 = max(o.bbox[0] + o.bbox[2] for o in objs)
    y1 = max(o.bbox[1] + o.bbox[3] for o in objs)
    region = np.zeros((y1 - y0, x1 - x0), bool)
    for o in objs:
        x, y, w, h = o.bbox
        region[y - y0 : y - y0 + h, x - x0 : x - x0 + w] |= o.region
    areas = np.array([o.feats["area_px"] for o in objs])
    wts = areas / areas.sum()
    conf = float(sum(wt * o.confidence for wt, o in zip(wts, objs, strict=True)))
    feats = {
        k: float(sum(wt * o.feats.get(k, 0.0) for wt, o in zip(wts, objs, strict=True)))
        for k in objs[0].feats
    }
    feats.update(features.shape_features(region))
    cls = int(Cls.OIL if conf >= 0.5 else Cls.LOOKALIKE)
    mask.paint(x0, y0, region, cls, (Cls.OIL, Cls.LOOKALIKE))
    return DarkObject(cls, conf, (x0, y0, x1 - x0, y1 - y0), region, feats)
