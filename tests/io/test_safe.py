"""Sentinel-1 GRD products: calibration, noise, no-data, polarisation and the geolocation grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from s1safe import Truth, build_product

from oilspill.errors import ImageError
from oilspill.io import safe
from oilspill.io.ground import Ground


def sea(h: int = 240, w: int = 320, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (-8.0 + 10 * np.log10(rng.gamma(4.0, 0.25, (h, w)))).astype(np.float64)


@pytest.fixture(scope="module")
def product(tmp_path_factory: pytest.TempPathFactory) -> Truth:
    return build_product(tmp_path_factory.mktemp("s1"), sea(), nodata_cols=12)


def db(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 10 * np.log10(x)
    return out


def test_sigma0_is_calibrated_with_the_bilinear_lut(product: Truth) -> None:
    p = safe.Product(product.product_dir)
    got = p[:, :]
    ok = np.isfinite(product.sigma0)
    # Without noise removal σ0 holds the noise too: (DN²) / A² = σ0 + N / A².
    want = product.sigma0[ok] + (product.noise / product.a_sigma**2)[ok]
    assert np.median(np.abs(db(got[ok]) - db(want))) < 0.02
    assert p.info.polarisation == "VV" and p.info.polarisations == ("VV", "VH")


def test_noise_removal_gives_back_the_signal(product: Truth) -> None:
    got = safe.Product(product.product_dir, noise=True)[:, :]
    ok = np.isfinite(product.sigma0)
    assert np.median(np.abs(db(got[ok]) - db(product.sigma0[ok]))) < 0.05


def test_windows_agree_with_the_whole(product: Truth) -> None:
    p = safe.Product(product.product_dir)
    whole = p[:, :]
    assert np.array_equal(p[50:130, 200:290], whole[50:130, 200:290], equal_nan=True)


def test_zero_dn_is_no_data(product: Truth) -> None:
    got = safe.Product(product.product_dir)[:, :]
    assert np.all(np.isnan(got[:, :12])) and np.all(np.isfinite(got[:, 12:]))


def test_geolocation_grid_places_pixels_within_a_metre(product: Truth) -> None:
    p = safe.Product(product.product_dir)
    ground = Ground(p.georef)
    rng = np.random.default_rng(1)
    xy = rng.uniform((0, 0), (319, 239), (50, 2))
    got = ground.lonlat(xy)
    lon, lat = product.lonlat(xy[:, 0], xy[:, 1])
    from pyproj import Geod

    _, _, dist = Geod(ellps="WGS84").inv(got[:, 0], got[:, 1], lon, lat)
    assert float(np.max(dist)) < 1.0  # metres; a pixel is 10 m
    assert p.georef.pixel_size_m == pytest.approx((10.0, 10.0), rel=1e-3)


def test_product_metadata_is_read(product: Truth) -> None:
    info = safe.Product(product.product_dir).info
    assert (info.mission, info.mode, info.product_type) == ("S1A", "IW", "GRD")
    assert info.start_time.startswith("2023-07-05T05:30:12") and info.absolute_orbit == 49296
    assert info.product_id == product.name and info.pixel_spacing_m == (10.0, 10.0)


def test_cross_polarisation_only_when_asked(tmp_path: Path) -> None:
    t = build_product(tmp_path, sea(60, 80), pols=("VV", "VH"))
    assert safe.Product(t.product_dir, "vh").info.polarisation == "VH"
    with pytest.raises(ImageError, match="no HH"):
        safe.Product(t.product_dir, "HH")
    assert safe.choose_polarisation(["HH", "HV"], None) == "HH"
    with pytest.raises(ImageError, match="cross-polarisation"):
        safe.choose_polarisation(["VH"], None)


def test_zip_members_of_one_polarisation(tmp_path: Path) -> None:
    t = build_product(tmp_path, sea(60, 80), zipped=True)
    assert t.zip_path is not None
    import zipfile

    names = zipfile.ZipFile(t.zip_path).namelist()
    (prefix,) = safe.product_members(names)
    keep = safe.needed_members(prefix, names, None)
    assert any(n.endswith("manifest.safe") for n in keep)
    assert all("-vh-" not in n for n in keep) and sum("-vv-" in n for n in keep) == 4
    out = safe.extract(t.zip_path, tmp_path / "x")
    assert safe.Product(out).info.product_id == t.name
