"""The embedded SAR detector on scenes drawn in code, one behaviour per test."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from oilspill import sar
from oilspill.io.georef import Georef
from oilspill.sar import detector
from oilspill.sar.records import Cls, Detection
from oilspill.sar.synth import SynthScene, make_scene

H, W = 400, 640


def sea_db(seed: int = 0, looks: int = 3) -> tuple[np.ndarray, np.random.Generator]:
    """Sea backscatter in dB with incidence falloff, before speckle."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(-6.0, -16.0, W, dtype=np.float32)[None, :]
    return np.repeat(ramp, H, axis=0), rng


def speckle_to_u8(sigma_db: np.ndarray, rng: np.random.Generator, looks: int = 3) -> np.ndarray:
    lin = 10 ** (sigma_db / 10) + 10 ** (-25 / 10)
    lin = lin * rng.gamma(looks, 1 / looks, sigma_db.shape)
    db = 10 * np.log10(lin)
    return np.clip((db + 30) * 6, 0, 255).astype(np.uint8)


def ellipse(centre: tuple[int, int], axes: tuple[int, int], angle: float = 20.0) -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    cv2.ellipse(m, centre, axes, angle, 0, 360, 1, -1)
    return m.astype(bool)


def oil_scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One sharp slick, 8 dB damped, elongated."""
    db, rng = sea_db(seed)
    oil = ellipse((320, 200), (150, 14))
    db[oil] -= 8.0
    return speckle_to_u8(db, rng), oil


def run(img: np.ndarray, **kw: object) -> Detection:
    return sar.detect(img, **kw)


def test_slick_is_found_where_it_was_drawn() -> None:
    img, oil = oil_scene()
    seg = run(img)
    found = seg.mask == Cls.OIL
    iou = np.count_nonzero(found & oil) / np.count_nonzero(found | oil)
    assert iou > 0.8


def test_slick_record_describes_the_slick() -> None:
    img, oil = oil_scene()
    (slick,) = [s for s in run(img).slicks if s.cls == Cls.OIL]
    assert oil[int(slick.centroid[1]), int(slick.centroid[0])]
    assert slick.confidence > 0.8
    assert 6.0 < slick.damping_db < 10.0
    assert slick.elongation > 4
    assert abs(slick.area_px - oil.sum()) < 0.2 * oil.sum()


def test_polygon_lies_on_the_slick() -> None:
    img, oil = oil_scene()
    slick = run(img).slicks[0]
    filled = np.zeros((H, W), np.uint8)
    cv2.fillPoly(filled, [np.round(np.array(slick.polygon)).astype(np.int32)], 1)
    iou = np.count_nonzero(filled.astype(bool) & oil) / np.count_nonzero(filled.astype(bool) | oil)
    assert iou > 0.8


def test_soft_weak_lookalike_is_class_2_not_oil() -> None:
    db, rng = sea_db(1)
    blob = ellipse((300, 200), (130, 80), 0).astype(np.float32)
    soft = cv2.GaussianBlur(blob, (0, 0), 18)
    db -= 3.5 * soft
    seg = run(speckle_to_u8(db, rng))
    inside = soft > 0.5
    assert np.count_nonzero(seg.mask[inside] == Cls.OIL) == 0
    assert np.mean(seg.mask[inside] == Cls.LOOKALIKE) > 0.5
    assert all(s.cls == Cls.LOOKALIKE for s in seg.slicks)


def lookalike_with_oil(
    seed: int, oil_db: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A large 4.5 dB look-alike with a soft rim and, optionally, a sharp slick inside it
    (the darker of the two dampings wins, as where oil drifts into a low-wind area)."""
    db, rng = sea_db(seed)
    la = ellipse((300, 200), (170, 110), 0)
    soft = np.clip(cv2.GaussianBlur(la.astype(np.float32), (0, 0), 12) * 1.6 - 0.3, 0, 1)
    damping = 4.5 * soft
    oil = ellipse((300, 200), (90, 16), 25)
    if oil_db is not None:
        damping = np.maximum(damping, oil_db * oil)
    return speckle_to_u8(db - damping, rng), la, oil


def test_oil_inside_a_lookalike_is_oil_inside_lookalike() -> None:
    img, la, oil = lookalike_with_oil(3, 9.0)
    seg = run(img)
    core = cv2.erode(oil.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert np.mean(seg.mask[core] == Cls.OIL) > 0.8
    around = la & ~cv2.dilate(oil.astype(np.uint8), np.ones((25, 25), np.uint8)).astype(bool)
    assert np.mean(seg.mask[around] == Cls.LOOKALIKE) > 0.5
    assert np.count_nonzero(seg.mask[around] == Cls.OIL) < 0.02 * around.sum()


def test_plateau_of_a_lookalike_is_not_carved_into_oil() -> None:
    img, la, _ = lookalike_with_oil(4, None)
    seg = run(img)
    assert np.count_nonzero(seg.mask == Cls.OIL) == 0
    assert np.mean(seg.mask[la] == Cls.LOOKALIKE) > 0.5


def test_nodata_border_is_never_oil() -> None:
    img, oil = oil_scene(2)
    wedge = np.zeros((H, W), np.uint8)
    cv2.fillPoly(wedge, [np.array([[0, 0], [90, 0], [30, H], [0, H]], np.int32)], 1)
    img[wedge > 0] = 0
    seg = run(img)
    assert np.all(seg.mask[wedge > 0] == Cls.NODATA)
    assert all(s.bbox[0] > 25 for s in seg.slicks)
    assert np.count_nonzero((seg.mask == Cls.OIL) & oil) > 0.8 * oil.sum()


def test_land_is_labelled_land_and_never_oil() -> None:
    db, rng = sea_db(3)
    land = np.zeros((H, W), bool)
    land[:, 480:] = True
    texture = cv2.resize(rng.normal(0, 3, (H // 16, W // 16)).astype(np.float32), (W, H))
    db[land] = -4.0 + texture[land]
    seg = run(speckle_to_u8(db, rng))
    assert np.count_nonzero(seg.mask[land] == Cls.OIL) == 0
    assert np.mean(seg.mask[land] == Cls.LAND) > 0.9
    assert np.mean(seg.mask[:, :440] == Cls.LAND) < 0.01


def test_ship_is_found_at_the_head_of_its_track() -> None:
    db, rng = sea_db(7)
    track = np.zeros((H, W), np.uint8)
    for i in range(40):  # widening behind a ship heading east at (505, 200)
        x0, x1 = 500 - 10 * i, 490 - 10 * i
        cv2.line(track, (x0, 200 + i), (x1, 201 + i), 1, 2 + i // 3)
    db[track > 0] -= 8.0
    ship = ellipse((506, 200), (4, 1), 0)
    db[ship] += 20.0
    seg = run(speckle_to_u8(db, rng))
    assert any(np.hypot(s.x - 506, s.y - 200) < 4 for s in seg.ships)
    oil = [s for s in seg.slicks if s.cls == Cls.OIL]
    assert len(oil) == 1 and oil[0].possible_source


def test_ship_beside_the_middle_of_a_slick_is_no_possible_source() -> None:
    img_db, rng = sea_db(8)
    oil = ellipse((320, 200), (150, 10), 0)
    img_db[oil] -= 8.0
    ship = ellipse((400, 222), (4, 1), 0)  # 13 px off its side, a quarter from its end
    img_db[ship] += 20.0
    seg = run(speckle_to_u8(img_db, rng))
    assert any(np.hypot(s.x - 400, s.y - 222) < 4 for s in seg.ships)
    (slick,) = [s for s in seg.slicks if s.cls == Cls.OIL]
    assert not slick.possible_source


def test_area_in_km2_is_measured_on_the_ground_of_the_georeference() -> None:
    img, _ = oil_scene()
    # UTM 31N on its central meridian: a 10 m grid step is 10 m / 0.9996 on the ground.
    georef = Georef(transform=(500000, 10, 0, 5800000, 0, -10), epsg=32631)
    seg = sar.detect(img, georef=georef, pixel_size_m=40.0)
    s = seg.slicks[0]
    assert s.area_km2 == pytest.approx(s.area_px * (10 / 0.9996) ** 2 / 1e6, rel=1e-3)
    assert s.length_m is not None and 2000 < s.length_m < 4000
    assert s.geometry is not None and s.geometry["type"] == "Polygon"
    assert s.centroid_lonlat is not None and 2.9 < s.centroid_lonlat[0] < 3.1


def test_pixel_size_argument_is_used_without_georeference() -> None:
    img, _ = oil_scene()
    s = run(img, pixel_size_m=20.0).slicks[0]
    assert s.area_km2 == pytest.approx(s.area_px * 400 / 1e6, rel=1e-3)


def test_unknown_pixel_size_gives_no_km2() -> None:
    img, _ = oil_scene()
    seg = run(img)
    assert seg.slicks[0].area_km2 is None and seg.slicks[0].length_m is None
    assert seg.info["pixel_size_m"] is None


@pytest.mark.parametrize("form", ["amplitude16", "sigma0", "db"])
def test_calibrated_forms_find_the_same_slick(form: str) -> None:
    db, rng = sea_db(4)
    oil = ellipse((320, 200), (150, 14))
    db[oil] -= 8.0
    lin = (10 ** (db / 10) + 10 ** (-2.5)) * rng.gamma(3, 1 / 3, db.shape)
    pixels = {
        "amplitude16": np.clip(np.sqrt(lin) * 500, 1, 65535).astype(np.uint16),
        "sigma0": lin.astype(np.float32),
        "db": (10 * np.log10(lin)).astype(np.float32),
    }[form]
    seg = run(pixels)
    assert seg.info["input_form"] == form
    found = seg.mask == Cls.OIL
    assert np.count_nonzero(found & oil) / np.count_nonzero(found | oil) > 0.8


def test_nan_border_of_float_input_is_no_data() -> None:
    db, rng = sea_db(5)
    lin = (10 ** (db / 10)) * rng.gamma(3, 1 / 3, db.shape)
    lin = lin.astype(np.float32)
    lin[:, :60] = np.nan
    seg = run(lin)
    assert np.all(seg.mask[:, :60] == Cls.NODATA)
    assert seg.info["input_form"] == "sigma0"


def test_grey_in_three_channels_is_sar_like() -> None:
    img, _ = oil_scene()
    seg = run(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))
    assert seg.info["sar_like"] is True
    assert any(s.cls == Cls.OIL for s in seg.slicks)


def test_colour_image_is_flagged_not_sar_like() -> None:
    img, _ = oil_scene()
    bgr = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    bgr[:, :, 0] = 255 - bgr[:, :, 0]
    seg = run(bgr)
    assert seg.info["sar_like"] is False
    assert any("not SAR-like" in w for w in seg.info["warnings"])


def test_info_records_detector_and_thresholds() -> None:
    seg = run(oil_scene()[0])
    assert seg.info["detector"] == detector.NAME and seg.info["version"] == detector.VERSION
    assert seg.info["input_form"] == "quicklook8"
    assert {"seed_db", "grow_db", "ship_cfar_db"} <= set(seg.info["thresholds"])


def test_overlay_is_bgr_and_at_most_4096_px() -> None:
    wide = np.tile(oil_scene()[0], (1, 7))  # 4480 px wide
    seg = run(wide)
    assert seg.mask.shape == wide.shape
    assert seg.overlay.dtype == np.uint8 and seg.overlay.shape[2] == 3
    assert max(seg.overlay.shape[:2]) <= 4096


def test_empty_sea_has_no_oil() -> None:
    db, rng = sea_db(6)
    seg = run(speckle_to_u8(db, rng, looks=1))
    assert seg.oil_pixels == 0


def test_threads_give_the_same_result_as_serial() -> None:
    imgs = [oil_scene(s)[0] for s in range(4)]
    serial = [run(i).mask for i in imgs]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda i: run(i).mask, imgs))
    assert all(np.array_equal(a, b) for a, b in zip(serial, parallel, strict=True))


def test_unknown_form_is_rejected() -> None:
    with pytest.raises(ValueError, match="form"):
        run(oil_scene()[0], form="jpeg2000")


@pytest.mark.parametrize("form", ["amplitude16", "sigma0", "db"])
def test_generated_geotiff_forms_are_recognised_and_give_the_quicklooks_slicks(form: str) -> None:
    size, seed = (640, 400), 20
    quick = make_scene(seed, size, looks=3)
    scene = make_scene(seed, size, looks=3, geotiff=True, form=form)
    seg_q = run(quick.image)
    seg = sar.detect(scene.image, georef=scene.georef)
    assert seg.info["input_form"] == form and seg_q.info["input_form"] == "quicklook8"

    def found(sc: SynthScene, s: Detection) -> set[int]:
        oil = s.mask == Cls.OIL
        return {
            t.id
            for t in sc.slicks
            if t.cls == Cls.OIL
            and np.count_nonzero(oil & (sc.instances == t.id)) >= 0.25 * t.area_px
        }

    assert found(scene, seg) == found(quick, seg_q) and found(quick, seg_q)
    assert scene.nodata is not None
    a = (seg.mask == Cls.OIL) & ~scene.nodata
    b = (seg_q.mask == Cls.OIL) & ~scene.nodata
    # The network sees the GeoTIFF through a fixed dB-to-grey mapping, the quicklook through
    # the generator's random one, so outlines differ more than the classical ones do.
    assert np.count_nonzero(a & b) / np.count_nonzero(a | b) > 0.5
    classical = sar.detect(scene.image, georef=scene.georef, net=False).mask == Cls.OIL
    classical_q = run(quick.image, net=False).mask == Cls.OIL
    c, d = classical & ~scene.nodata, classical_q & ~scene.nodata
    assert np.count_nonzero(c & d) / np.count_nonzero(c | d) > 0.9  # the forms convert alike
    assert np.all(seg.mask[scene.nodata] == Cls.NODATA)
