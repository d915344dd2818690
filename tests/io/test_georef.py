"""Georeferencing: GeoTIFF georeference in, COG masks out."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import rasterio
import tifffile

from oilspill.io.georef import NODATA, Georef, encode_geotiff, read_georef, write_cog_mask

UTM = Georef(transform=(500000, 10, 0, 5800000, 0, -10), epsg=32631)


def roundtrip(tmp_path: Path, data: bytes) -> Georef | None:
    path = tmp_path / "in.tif"
    path.write_bytes(data)
    return read_georef(path)


def test_transform_and_epsg_are_read(tmp_path: Path) -> None:
    g = roundtrip(tmp_path, encode_geotiff(np.zeros((20, 30), np.uint16), UTM))
    assert g is not None and g.epsg == 32631 and g.transform == UTM.transform
    assert g.pixel_size_m is not None
    # 10 m of UTM grid at 3° E (zone 31's central meridian) is 10 m / 0.9996 on the ground.
    assert g.pixel_size_m == pytest.approx((10.004, 10.004), abs=0.002)


def test_web_mercator_pixels_are_measured_on_the_ground(tmp_path: Path) -> None:
    merc = Georef(transform=(2_226_390.0, 10.0, 0.0, 7_361_866.0, 0.0, -10.0), epsg=3857)
    g = roundtrip(tmp_path, encode_geotiff(np.zeros((10, 10), np.uint8), merc))
    assert g is not None and g.pixel_size_m is not None
    # At 55° N a nominal 10 m Web-Mercator pixel is 10 · cos(55°) ≈ 5.7 m on the ground.
    assert g.pixel_size_m[0] == pytest.approx(5.74, abs=0.05)


def test_geographic_pixel_size_is_converted_to_metres(tmp_path: Path) -> None:
    deg = Georef(transform=(10.0, 0.0001, 0.0, 60.0, 0.0, -0.0001), epsg=4326)
    g = roundtrip(tmp_path, encode_geotiff(np.zeros((10, 10), np.uint8), deg))
    assert g is not None and g.pixel_size_m is not None
    assert g.pixel_size_m[1] == pytest.approx(11.16, abs=0.02)  # a degree of latitude at 60° N
    assert g.pixel_size_m[0] == pytest.approx(5.58, abs=0.02)  # times ~cos(60°)


def test_gcp_grid_is_read_as_gcps(tmp_path: Path) -> None:
    gcps = tuple(
        (c, r, 2.0 + c * 1e-4, 55.0 - r * 1e-4) for c in (0, 500, 1000) for r in (0, 400, 800)
    )
    g = roundtrip(tmp_path, encode_geotiff(np.zeros((800, 1000), np.uint16), Georef(gcps=gcps)))
    assert g is not None and len(g.gcps) == 9 and g.transform is None
    assert g.pixel_size_m is not None
    assert g.pixel_size_m[1] == pytest.approx(11.13, abs=0.05)


def test_plain_tiff_has_no_georeference(tmp_path: Path) -> None:
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.zeros((5, 5), np.uint8))
    assert roundtrip(tmp_path, buf.getvalue()) is None


def test_record_roundtrip_keeps_everything() -> None:
    g = Georef((10.0, 10.0), UTM.transform, 32631, ((0.0, 0.0, 3.0, 52.0),), None)
    assert Georef.from_record(g.to_record()) == g


def test_mask_is_a_cloud_optimized_geotiff(tmp_path: Path) -> None:
    mask = np.zeros((1500, 1300), np.uint8)
    mask[100:400, 200:900] = 1
    mask[:, :50] = NODATA
    path = tmp_path / "m.tif"
    write_cog_mask(path, mask, UTM)
    with rasterio.open(path) as src:
        assert src.crs.to_epsg() == 32631 and src.transform.c == 500000
        assert src.nodata == NODATA and src.profile["tiled"] and src.overviews(1)
        assert src.compression.name.lower() == "deflate"
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert np.array_equal(src.read(1), mask)
    with tifffile.TiffFile(path) as tif:  # tifffile alone, without imagecodecs
        assert np.array_equal(tif.asarray(), mask)
    assert not list(tmp_path.glob("*.part.tif"))


def test_a_mask_can_carry_a_colour_table(tmp_path: Path) -> None:
    path = tmp_path / "m.tif"
    write_cog_mask(path, np.zeros((64, 64), np.uint8), UTM, {0: (0, 0, 0), 1: (0, 255, 255)})
    with rasterio.open(path) as src:
        assert src.colormap(1)[1] == (0, 255, 255, 255)
