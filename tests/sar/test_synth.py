"""The synthetic scene generator: deterministic, physically plausible, with usable truth."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from oilspill.io.georef import read_georef
from oilspill.sar.records import Cls
from oilspill.sar.synth import make_scene, write_zip

SMALL = (480, 320)


def test_same_seed_same_scene() -> None:
    a, b = make_scene(7, SMALL), make_scene(7, SMALL)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.truth, b.truth)
    assert not np.array_equal(a.image, make_scene(8, SMALL).image)


def test_quicklook_is_uint8_of_the_requested_size() -> None:
    s = make_scene(1, (400, 300))
    assert s.image.dtype == np.uint8 and s.image.shape == (300, 400)
    assert s.truth.shape == (300, 400) and set(np.unique(s.truth)) <= set(range(5))


def test_every_scene_has_oil_in_its_truth() -> None:
    for seed in range(5):
        s = make_scene(seed, SMALL)
        assert any(t.cls == Cls.OIL for t in s.slicks)
        assert np.count_nonzero(s.truth == Cls.OIL) > 0


def test_looks_can_be_set() -> None:
    assert make_scene(3, SMALL, looks=5).looks == 5
    assert 1 <= make_scene(3, SMALL).looks <= 5


def test_sea_darkens_across_range() -> None:
    s = make_scene(2, (1250, 650), looks=5)
    sea = s.truth == Cls.SEA
    cols = [np.median(s.image[:, i : i + 100][sea[:, i : i + 100]]) for i in (0, 1150)]
    grey_per_db = s.params["grey_per_db"]
    assert abs(cols[0] - cols[1]) / grey_per_db > 8.0  # near vs far range, in dB


def test_oil_is_darker_than_the_sea_around_it() -> None:
    for seed in range(20):
        s = make_scene(seed, SMALL, looks=5)
        oil = s.truth == Cls.OIL
        ring = cv2.dilate(oil.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool) & ~oil
        ring &= s.truth == Cls.SEA
        if ring.sum() > 1000:
            break
    dark_db = (s.image[ring].mean() - s.image[oil].mean()) / s.params["grey_per_db"]
    assert 3.0 < dark_db < 12.0


def test_instances_match_the_truth_records() -> None:
    s = make_scene(5, SMALL)
    for t in s.slicks:
        assert np.count_nonzero(s.instances == t.id) == t.area_px


def test_geotiff_form_is_uint16_amplitude_with_nodata_and_georef() -> None:
    s = make_scene(6, SMALL, geotiff=True)
    assert s.image.dtype == np.uint16
    assert s.nodata is not None and np.all(s.image[s.nodata] == 0)
    assert s.georef is not None and s.georef.pixel_size_m == (10.0, 10.0)
    assert np.all(s.truth[s.nodata] == Cls.SEA)


def test_write_zip_png_with_truth(tmp_path: Path) -> None:
    path = tmp_path / "s.zip"
    write_zip(path, 2, seed=3, size=SMALL, with_truth=True)
    names = zipfile.ZipFile(path).namelist()
    assert "synth_00003.png" in names and "synth_00004.png" in names
    assert "truth/synth_00003_labels.png" in names


def test_write_zip_without_truth_has_only_images(tmp_path: Path) -> None:
    path = tmp_path / "s.zip"
    write_zip(path, 1, size=SMALL)
    assert zipfile.ZipFile(path).namelist() == ["synth_00000.png"]


def test_write_zip_geotiff_is_georeferenced(tmp_path: Path) -> None:
    path = tmp_path / "s.zip"
    write_zip(path, 1, size=SMALL, geotiff=True)
    data = zipfile.ZipFile(path).read("synth_00000.tif")
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        assert tif.pages[0].dtype == np.uint16
    (tmp_path / "a.tif").write_bytes(data)
    georef = read_georef(tmp_path / "a.tif")
    assert georef is not None and georef.epsg == 32631


@pytest.mark.parametrize("form", ["sigma0", "db"])
def test_float_geotiff_forms_are_sigma0_with_nan_nodata(form: str) -> None:
    s = make_scene(6, SMALL, geotiff=True, form=form)
    amp = make_scene(6, SMALL, geotiff=True)
    assert s.form == form and amp.form == "amplitude16"
    assert s.image.dtype == np.float32 and s.nodata is not None
    assert np.all(np.isnan(s.image[s.nodata])) and np.all(np.isfinite(s.image[~s.nodata]))
    assert np.array_equal(s.truth, amp.truth) and s.georef == amp.georef
    # The same backscatter in every form: σ0 = DN² / k², so dB differ by a constant.
    ok = ~s.nodata & (amp.image > 50)
    sigma_db = s.image[ok] if form == "db" else 10 * np.log10(s.image[ok])
    offset = sigma_db - 20 * np.log10(amp.image[ok].astype(np.float64))
    assert float(np.std(offset)) < 0.2
    sea = (s.truth == Cls.SEA) & ~s.nodata
    median_db = float(np.median(s.image[sea] if form == "db" else 10 * np.log10(s.image[sea])))
    assert -22.0 < median_db < -3.0  # calibrated σ0 of the sea, not digital numbers


def test_unknown_geotiff_form_is_rejected() -> None:
    with pytest.raises(ValueError, match="form"):
        make_scene(1, SMALL, geotiff=True, form="complex64")


def test_write_zip_float_geotiff(tmp_path: Path) -> None:
    path = tmp_path / "s.zip"
    write_zip(path, 1, size=SMALL, geotiff=True, form="db")
    data = zipfile.ZipFile(path).read("synth_00000.tif")
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        assert tif.pages[0].dtype == np.float32
    (tmp_path / "a.tif").write_bytes(data)
    assert read_georef(tmp_path / "a.tif") is not None
