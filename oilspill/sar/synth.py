"""Synthetic Sentinel-1 VV scenes with ground truth, for tests, demos and the benchmark.

The physics is simple but honest: sea backscatter falls off with incidence
angle across range (about -5 dB near to -20 dB far) and varies with a smooth
wind field; oil damps it by 5-10 dB with sharp edges, look-alikes (low wind,
biogenic films) by 2-5 dB with soft edges; ships are +15-25 dB points; land
is bright and textured; a thermal noise floor and multiplicative gamma
speckle with 1-5 looks come last. Everything is drawn from one seed, so a
scene is reproducible.

Image forms: an 8-bit quicklook whose grey level is linear in dB with a
random offset and scale (what a PNG export looks like), or, with
`geotiff=True`, a georeferenced (UTM) measurement with no-data wedges in one
of the `GEOTIFF_FORMS`: 16-bit GRD amplitude digital numbers (intensity ∝
DN², 0 is no-data), float32 calibrated σ0 in linear units, or float32 σ0 in
dB (NaN is no-data in both float forms), as SNAP writes them.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from oilspill.io.georef import Georef, encode_geotiff
from oilspill.io.images import with_pixel_size
from oilspill.sar import _shapes
from oilspill.sar.overlay import colour_mask
from oilspill.sar.records import Cls

# A synthetic GeoTIFF lies in UTM zone 31N (the North Sea) at 10 m pixels, like IW GRD high res.
SYNTH_EPSG = 32631
SYNTH_PIXEL_M = 10.0
# GeoTIFF forms, named as `sarinput` names the forms it detects.
GEOTIFF_FORMS = ("amplitude16", "sigma0", "db")


@dataclass
class SlickTruth:
    """One drawn dark object: where it is and what it is."""

    id: int  # value of this object in `SynthScene.instances`
    cls: int  # Cls.OIL or Cls.LOOKALIKE
    kind: str  # "track" (behind a ship), "blob" (drifting patch) or "lowwind"
    damping_db: float
    area_px: int
    bbox: tuple[int, int, int, int]  # x, y, w, h
    ship: tuple[float, float] | None = None  # (x, y) of the ship at its head, if any


@dataclass
class SynthScene:
    """A generated scene: the image as a file would hold it, plus its truth.

    `image` is uint8 HxW (quicklook, grey linear in dB) or, for a GeoTIFF,
    uint16 HxW amplitude DN with 0 as no-data, or float32 HxW σ0 (linear or
    dB) with NaN as no-data; `form` says which. `truth` is the uint8
    class map (values of `Cls`); `instances` numbers each slick/look-alike
    pixel with its `SlickTruth.id` (oil wins where they overlap).
    """

    image: np.ndarray
    truth: np.ndarray
    instances: np.ndarray
    slicks: list[SlickTruth]
    ships: list[tuple[float, float]]
    looks: int
    georef: Georef | None = None
    nodata: np.ndarray | None = None  # bool HxW, True where the scene has no data
    params: dict[str, float] = field(default_factory=dict)
    form: str = "quicklook8"  # quicklook8 or one of GEOTIFF_FORMS


def make_scene(
    seed: int,
    size: tuple[int, int] = (1250, 650),
    *,
    looks: int | None = None,
    geotiff: bool = False,
    form: str = "amplitude16",
) -> SynthScene:
    """Draw one scene of `size` = (width, height) pixels, deterministically from `seed`.

    `form` (one of `GEOTIFF_FORMS`) picks the GeoTIFF's pixels; it changes only how
    the same backscatter is written, so all forms of one seed show the same scene.
    """
    if form not in GEOTIFF_FORMS:
        raise ValueError(f"unknown GeoTIFF form {form!r}; expected one of {GEOTIFF_FORMS}")
    rng = np.random.default_rng(seed)
    w, h = size
    nlooks = int(looks) if looks is not None else int(rng.integers(1, 6))
    xx = np.broadcast_to(np.arange(w, dtype=np.float32)[None, :], (h, w))

    # Sea: incidence falloff across range (near side random), wind field, wind streaks.
    near_db = rng.uniform(-7.0, -4.0)
    far_db = rng.uniform(-21.0, -17.0)
    t = xx / max(w - 1, 1)
    if rng.random() < 0.5:
        t = 1.0 - t
    sea_db = near_db + (far_db - near_db) * (t**0.8)
    sea_db += _shapes.smooth_field(rng, (h, w), scale=300.0, amp=1.2)
    sea_db += _shapes.smooth_field(rng, (h, w), scale=80.0, amp=0.4)
    sea_db += _shapes.streaks(rng, (h, w), amp=rng.uniform(0.0, 0.6))

    truth = np.zeros((h, w), np.uint8)
    instances = np.zeros((h, w), np.uint16)
    damping = np.zeros((h, w), np.float32)
    slicks: list[SlickTruth] = []
    ships: list[tuple[float, float]] = []

    land = _shapes.land_mask(rng, (h, w)) if rng.random() < 0.3 else np.zeros((h, w), bool)
    sea_ok = ~cv2.dilate(land.astype(np.uint8), np.ones((41, 41), np.uint8)).astype(bool)

    # Look-alikes first (oil is drawn over them).
    for _ in range(int(rng.integers(0, 4))):
        shape, soft = _shapes.lowwind(rng, (h, w))
        d = rng.uniform(2.0, 5.0)
        lab = shape & sea_ok & (instances == 0)
        if lab.sum() < 500:
            continue
        damping = np.maximum(damping, d * soft)
        _add_truth(slicks, truth, instances, lab, Cls.LOOKALIKE, "lowwind", d, None)

    # Oil: ship tracks and drifting blobs.
    n_tracks = int(rng.integers(0, 4))
    n_blobs = int(rng.integers(0, 3))
    if n_tracks + n_blobs == 0:
        n_tracks = 1
    drawn = 0
    for i in range(n_tracks + n_blobs + 20):  # extra tries when a slick falls on land
        if i >= n_tracks + n_blobs and drawn > 0:
            break
        if i < n_tracks or i >= n_tracks + n_blobs:
            shape, head, heading = _shapes.track(rng, (h, w))
            kind = "track"
        else:
            shape, head, heading = _shapes.blob(rng, (h, w)), None, 0.0
            kind = "blob"
        lab = shape & sea_ok
        if lab.sum() < 60 or (head is not None and not sea_ok[int(head[1]), int(head[0])]):
            continue
        drawn += 1
        d = rng.uniform(5.0, 10.0)
        edge = cv2.GaussianBlur(lab.astype(np.float32), (0, 0), 0.7)
        inner = d + _shapes.smooth_field(rng, (h, w), scale=40.0, amp=0.8)
        damping = np.maximum(damping, edge * inner)
        ship = None
        if head is not None and rng.random() < 0.8 and sea_ok[int(head[1]), int(head[0])]:
            ship = head
            ships.append(head)
            _shapes.draw_ship(truth, head, heading, rng)
        _add_truth(slicks, truth, instances, lab, Cls.OIL, kind, d, ship)

    # Free ships.
    for _ in range(int(rng.integers(0, 8))):
        x, y = rng.uniform(8, w - 8), rng.uniform(8, h - 8)
        if sea_ok[int(y), int(x)] and truth[int(y), int(x)] == Cls.SEA:
            ships.append((float(x), float(y)))
            _shapes.draw_ship(truth, (float(x), float(y)), rng.uniform(0, np.pi), rng)

    # Compose backscatter in dB, then linear with the thermal noise floor.
    sigma_db = sea_db - damping
    ship_px = truth == int(Cls.SHIP)
    sigma_db[ship_px] = sea_db[ship_px] + rng.uniform(15.0, 25.0)
    land_db = rng.uniform(-5.0, 0.0) + _shapes.smooth_field(rng, (h, w), scale=25.0, amp=2.5)
    land_db += _shapes.smooth_field(rng, (h, w), scale=6.0, amp=1.5)
    sigma_db = np.where(land, land_db, sigma_db)
    truth[land] = Cls.LAND
    instances[land] = 0
    nesz_db = rng.uniform(-27.0, -24.0) + 1.0 * np.cos(xx / max(w, 1) * 6.0)
    intensity = 10.0 ** (sigma_db / 10.0) + 10.0 ** (nesz_db / 10.0)
    intensity *= rng.gamma(nlooks, 1.0 / nlooks, size=(h, w)).astype(np.float32)
    intensity = np.maximum(intensity, 1e-6).astype(np.float32)

    nodata = _shapes.nodata_wedges(rng, (h, w)) if (geotiff or rng.random() < 0.15) else None
    if nodata is not None:
        truth[nodata] = Cls.SEA
        instances[nodata] = 0
        slicks = _recount(slicks, instances)
    params = {"looks": float(nlooks), "near_db": near_db, "far_db": far_db}
    georef = None
    out_form = "quicklook8"
    if geotiff:
        out_form = form
        dn_scale = rng.uniform(300.0, 600.0)  # drawn for every form: the same georef follows
        if form == "amplitude16":
            dn = np.sqrt(intensity) * dn_scale
            image = np.clip(np.rint(dn), 1, 65535).astype(np.uint16)
            if nodata is not None:
                image[nodata] = 0
        else:
            sigma0 = intensity if form == "sigma0" else 10.0 * np.log10(intensity)
            image = sigma0.astype(np.float32)
            if nodata is not None:
                image[nodata] = np.nan
        georef = synth_georef(rng, (h, w))
    else:
        db = 10.0 * np.log10(intensity)
        scale = rng.uniform(5.0, 7.5)  # grey levels per dB
        mid = float(np.median(db))
        offset = mid - rng.uniform(125.0, 150.0) / scale
        image = np.clip(np.rint((db - offset) * scale), 0, 255).astype(np.uint8)
        if nodata is not None:
            image[nodata] = 0
        params["grey_per_db"] = scale
    return SynthScene(
        image, truth, instances, slicks, ships, nlooks, georef, nodata, params, out_form
    )


def synth_georef(rng: np.random.Generator, shape: tuple[int, int]) -> Georef:
    """A north-up UTM 31N georeference at 10 m pixels somewhere in the North Sea."""
    x0 = float(np.round(rng.uniform(450_000, 550_000), -1))
    y0 = float(np.round(rng.uniform(5_700_000, 5_900_000), -1))
    px = SYNTH_PIXEL_M
    return Georef(
        pixel_size_m=(px, px),
        transform=(x0, px, 0.0, y0, 0.0, -px),
        epsg=SYNTH_EPSG,
    )


def _add_truth(
    slicks: list[SlickTruth],
    truth: np.ndarray,
    instances: np.ndarray,
    lab: np.ndarray,
    cls: int,
    kind: str,
    damping_db: float,
    ship: tuple[float, float] | None,
) -> None:
    oid = len(slicks) + 1
    free = truth != int(Cls.SHIP)
    truth[lab & free] = cls
    instances[lab] = oid
    ys, xs = np.nonzero(lab)
    bbox = (int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1)
    slicks.append(SlickTruth(oid, int(cls), kind, float(damping_db), int(lab.sum()), bbox, ship))


def _recount(slicks: list[SlickTruth], instances: np.ndarray) -> list[SlickTruth]:
    """Drop objects that vanished (e.g. under no-data) and refresh the areas of the rest."""
    counts = np.bincount(instances.ravel(), minlength=len(slicks) + 1)
    kept = []
    for s in slicks:
        if counts[s.id] > 0:
            s.area_px = int(counts[s.id])
            kept.append(s)
    return kept


def colour_labels(truth: np.ndarray) -> np.ndarray:
    """The colour label map of the public dataset (BGR): black sea, cyan oil, red look-alike…"""
    return colour_mask(np.minimum(truth, 4).astype(np.uint8))


def write_zip(
    path: Path,
    n: int,
    *,
    seed: int = 0,
    size: tuple[int, int] = (1250, 650),
    geotiff: bool = False,
    with_truth: bool = False,
    form: str = "amplitude16",
) -> None:
    """Write `n` scenes (seeds `seed`..`seed+n-1`) as PNG or GeoTIFF files into a zip.

    GeoTIFFs hold `form` pixels (one of `GEOTIFF_FORMS`).

    With `with_truth`, the class maps go under `truth/` (for benchmarks; an
    upload must not carry them).
    """
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for i in range(n):
            s = seed + i
            scene = make_scene(s, size, geotiff=geotiff, form=form)
            stem = f"synth_{s:05d}"
            if geotiff:
                assert scene.georef is not None
                zf.writestr(f"{stem}.tif", encode_geotiff(scene.image, scene.georef))
            else:
                zf.writestr(f"{stem}.png", with_pixel_size(_png(scene.image), SYNTH_PIXEL_M))
            if with_truth:
                zf.writestr(f"truth/{stem}_labels.png", _png(scene.truth))
                zf.writestr(f"truth/{stem}_labels_color.png", _png(colour_labels(scene.truth)))


def _png(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise ValueError("PNG encode failed")
    return bytes(buf.tobytes())
