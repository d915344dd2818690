"""Sentinel-1 GRD products end to end: a product zip in, georeferenced slicks in lon/lat out."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from helpers import make_zip, upload, wait_for
from pyproj import Geod
from s1safe import Truth, build_product
from starlette.testclient import TestClient

from oilspill.cli import main
from oilspill.sar.records import Cls

H, W = 400, 500
NODATA_COLS = 20


def slick_scene(seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    db = -7.0 + 10 * np.log10(rng.gamma(4.0, 0.25, (H, W)))
    yy, xx = np.mgrid[:H, :W]
    slick = ((xx - 300) / 90) ** 2 + ((yy - 200) / 14) ** 2 <= 1
    db[slick] -= 9.0
    return db, slick


@pytest.fixture(scope="module")
def product(tmp_path_factory: pytest.TempPathFactory) -> tuple[Truth, np.ndarray]:
    db, slick = slick_scene()
    return build_product(
        tmp_path_factory.mktemp("s1"), db, zipped=True, nodata_cols=NODATA_COLS
    ), slick


@pytest.fixture(scope="module")
def segmented(product: tuple[Truth, np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> Path:
    truth, _ = product
    out = tmp_path_factory.mktemp("out")
    assert truth.zip_path is not None
    assert main(["segment", str(truth.zip_path), "-o", str(out)]) == 0
    return out


def test_slick_lands_at_its_lon_lat_with_a_geodesic_area(
    product: tuple[Truth, np.ndarray], segmented: Path
) -> None:
    truth, slick = product
    (feature,) = json.loads((segmented / "slicks.geojson").read_text())["features"]
    props = feature["properties"]
    assert props["class"] == "oil" and props["coordinates"].startswith("lon/lat")
    # The centroid is where the truth mapping puts the detected pixels' centroid (< 1 px).
    cx, cy = props["centroid_px"]
    lon, lat = truth.lonlat(np.array([cx]), np.array([cy]))
    _, _, dist = Geod(ellps="WGS84").inv(*props["centroid_lonlat"], lon[0], lat[0])
    assert dist < 10.0
    # Area: the detected pixels times the truth's ground area of a pixel (10 m x 10 m).
    assert props["area_km2"] == pytest.approx(props["area_px"] * 100 / 1e6, rel=0.01)
    assert props["area_px"] == pytest.approx(slick.sum(), rel=0.1)
    assert props["length_m"] == pytest.approx(1800, rel=0.15) and props["perimeter_m"] > 3600
    ring = feature["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] and _signed_area(ring) > 0  # counter-clockwise (RFC 7946)
    assert props["product"]["product_id"] == truth.name
    assert props["product"]["polarisation"] == "VV"


def _signed_area(ring: list[list[float]]) -> float:
    x, y = np.array(ring).T
    return float(np.sum(x[:-1] * y[1:] - x[1:] * y[:-1]) / 2)


def test_mask_is_a_georeferenced_cog_with_no_data_outside_the_swath(
    product: tuple[Truth, np.ndarray], segmented: Path
) -> None:
    _, slick = product
    (path,) = (segmented / "masks").glob("*.tif")
    with rasterio.open(path) as src:
        mask = src.read(1)
        gcps, crs = src.gcps
        assert src.nodata == Cls.NODATA and crs.to_epsg() == 4326 and len(gcps) >= 9
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    assert mask.shape == (H, W)
    assert np.all(mask[:, :NODATA_COLS] == Cls.NODATA)
    oil = mask == Cls.OIL
    assert np.count_nonzero(oil & slick) / np.count_nonzero(oil | slick) > 0.8


def test_report_carries_the_product_metadata(
    product: tuple[Truth, np.ndarray], segmented: Path
) -> None:
    truth, _ = product
    (image,) = json.loads((segmented / "report.json").read_text())["images"]
    meta = image["product"]
    assert meta["mission"] == "S1A" and meta["mode"] == "IW" and meta["absolute_orbit"] == 49296
    assert meta["start_time"].startswith("2023-07-05T05:30:12") and meta["stop_time"]
    assert image["summary"]["oil_area_km2"] == pytest.approx(image["slicks"][0]["area_km2"])
    assert image["name"] == f"{truth.name}.png"


def test_safe_folder_and_cross_polarisation_on_request(
    product: tuple[Truth, np.ndarray], tmp_path: Path
) -> None:
    truth, _ = product
    assert (
        main(["segment", str(truth.product_dir), "-o", str(tmp_path), "--polarisation", "VH"]) == 0
    )
    (image,) = json.loads((tmp_path / "report.json").read_text())["images"]
    assert image["product"]["polarisation"] == "VH"


def test_product_zip_inside_an_upload(
    product: tuple[Truth, np.ndarray], make_client: Callable[..., TestClient]
) -> None:
    truth, _ = product
    assert truth.zip_path is not None
    client = make_client()
    data = make_zip({truth.zip_path.name: truth.zip_path.read_bytes()}, zipfile.ZIP_STORED)
    body = upload(client, data).json()
    status = wait_for(client, body["job_id"])
    assert status["status"] == "SUCCESS"
    assert status["result"]["processed_files"] == [f"{truth.name}.png"]
    archive = zipfile.ZipFile(io.BytesIO(client.get(status["result"]["archive"]).content))
    assert f"masks/{truth.name}.tif" in archive.namelist()


def test_product_zip_uploaded_alone(
    product: tuple[Truth, np.ndarray], make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    truth, _ = product
    assert truth.zip_path is not None
    client = make_client()
    body = upload(client, truth.zip_path.read_bytes(), name=truth.zip_path.name).json()
    assert wait_for(client, body["job_id"])["status"] == "SUCCESS"
    data_dir = tmp_path / "data"
    assert data_dir.is_dir() and not list(data_dir.rglob("*.tiff"))  # inputs gone once done
