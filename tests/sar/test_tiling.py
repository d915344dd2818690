"""Large scenes in tiles: the stitched result matches one pass, and slicks are counted once."""

from __future__ import annotations

import cv2
import numpy as np

from oilspill import sar
from oilspill.sar import detector, forms, tiling
from oilspill.sar.records import Cls

H, W = 400, 640


def scene(seed: int = 0, far_db: float = -15.0) -> tuple[np.ndarray, np.ndarray]:
    """A long sharp slick crossing several tile borders."""
    rng = np.random.default_rng(seed)
    db = np.repeat(np.linspace(-6.0, far_db, W, dtype=np.float32)[None, :], H, axis=0)
    oil = np.zeros((H, W), np.uint8)
    cv2.ellipse(oil, (320, 200), (260, 12), 15, 0, 360, 1, -1)
    db[oil > 0] -= 8.0
    lin = (10 ** (db / 10) + 10 ** (-2.5)) * rng.gamma(3, 1 / 3, db.shape)
    img = np.clip((10 * np.log10(lin) + 30) * 6, 0, 255).astype(np.uint8)
    return img, oil.astype(bool)


def test_tiles_stitch_without_seams() -> None:
    img, _ = scene()
    t = tiling.analyse_tiled(img, tile=200, margin=192)
    probe, sigmas = tiling._probe(img, "auto")
    sar = forms.load(img, speckle=(probe.looks, probe.units_per_db))
    whole = detector.analyse(sar, sigmas)
    assert np.mean(np.asarray(t.mask) != whole.mask) < 0.003


def test_a_slick_across_tile_borders_is_one_object() -> None:
    img, oil = scene(1)
    t = tiling.analyse_tiled(img, tile=200, margin=192)
    oil_objects = [o for o in t.objects if o.cls == Cls.OIL]
    assert len(oil_objects) == 1
    o = oil_objects[0]
    assert o.bbox[2] > 400  # spans three tile columns
    assert abs(o.feats["area_px"] - oil.sum()) < 0.2 * oil.sum()


def test_tiled_mask_finds_the_slick() -> None:
    img, oil = scene(2)
    t = tiling.analyse_tiled(img, tile=256, margin=192, workers=2)
    found = np.asarray(t.mask) == Cls.OIL
    assert np.count_nonzero(found & oil) / np.count_nonzero(found | oil) > 0.8


def test_preview_under_4096_px_is_full_size() -> None:
    img, _ = scene(3)
    t = tiling.analyse_tiled(img, tile=256, margin=192)
    assert t.preview_db.shape == (H, W)  # under 4096 px: full size, no downscaling
    assert t.preview_valid.all()


def test_large_raster_is_tiled_with_a_downscaled_overlay() -> None:

    # 9.2 Mpx, above the tiling size; flat sea so that the copies join without steps.
    img = np.tile(scene(4, far_db=-6.0)[0], (6, 7))[:2200, :4200]
    seg = sar.detect(img)
    assert "tile_px" in seg.info["thresholds"]
    assert seg.mask.shape == img.shape
    assert max(seg.overlay.shape[:2]) == 4096
    assert sum(s.cls == Cls.OIL for s in seg.slicks) == 42  # 6 x 7 copies (cut ones too), once


def test_land_across_tile_borders_gets_no_oil() -> None:
    # A 3000 x 2000 coast whose land corner once passed for sea (its background measured
    # on a few flat land cells), cut by 1024-px tiles.
    from oilspill.sar import synth

    scene = synth.make_scene(22, (3000, 2000))
    land = scene.truth == Cls.LAND
    assert land.mean() > 0.15
    for mask in (
        np.asarray(sar.detect(scene.image).mask),
        np.asarray(tiling.analyse_tiled(scene.image, tile=1024).mask),
    ):
        assert np.count_nonzero((mask == Cls.OIL) & land) == 0
        found = mask == Cls.LAND
        assert np.count_nonzero(found & land) / np.count_nonzero(found | land) > 0.98


def test_tiles_that_are_all_land_stay_land() -> None:
    # 3600 x 2400 in 1024-px tiles: the left two tile columns are all textured land with
    # dark relief (as dark as the sea) in them; a tile alone has no sea to judge land by.
    from oilspill.sar import _shapes

    rng = np.random.default_rng(5)
    h, w = 2400, 3600
    db = np.full((h, w), -9.0, np.float32)
    land = np.zeros((h, w), bool)
    land[:, :2300] = True
    relief = _shapes.smooth_field(rng, (h, w), scale=25.0, amp=3.0)
    relief += _shapes.smooth_field(rng, (h, w), scale=6.0, amp=2.0)
    db[land] = (1.0 + relief)[land]
    for cx, cy in [(400, 500), (1200, 1500), (700, 2000), (1600, 400)]:
        blob = np.zeros((h, w), np.uint8)
        cv2.ellipse(blob, (cx, cy), (160, 60), 30, 0, 360, 1, -1)
        db[blob > 0] -= 9.0
    lin = 10 ** (db / 10) * rng.gamma(4, 1 / 4, db.shape)
    img = np.clip((10 * np.log10(lin) + 30) * 6, 0, 255).astype(np.uint8)
    mask = np.asarray(tiling.analyse_tiled(img, tile=1024).mask)
    assert np.count_nonzero(np.isin(mask, (Cls.OIL, Cls.LOOKALIKE)) & land) == 0
    found = mask == Cls.LAND
    assert np.count_nonzero(found & land) / np.count_nonzero(found | land) > 0.99
