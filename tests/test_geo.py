"""Georeferencing: GeoTIFF tags in and out, lon/lat maths, GeoJSON, Sentinel-1 names."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tifffile

from oilspill import geo
from oilspill.segment import Georef, Slick

UTM = Georef(pixel_size_m=(10.0, 10.0), transform=(500000, 10, 0, 5800000, 0, -10), epsg=32631)


def roundtrip(data: bytes) -> Georef | None:
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        return geo.read_georef(tif)


def slick(polygon: list[tuple[float, float]]) -> Slick:
    return Slick(1, 1, 0.9, 100, (5.0, 5.0), (0, 0, 10, 10), polygon, area_km2=0.01)


def test_scale_and_tiepoint_are_read() -> None:
    g = roundtrip(geo.encode_geotiff(np.zeros((20, 30), np.uint16), UTM))
    assert g is not None
    assert g.transform == UTM.transform and g.epsg == 32631 and g.pixel_size_m == (10.0, 10.0)


def test_model_transformation_is_read() -> None:
    rotated = Georef(transform=(1000.0, 8.0, 6.0, 2000.0, 6.0, -8.0), epsg=32632)
    g = roundtrip(geo.encode_geotiff(np.zeros((10, 10), np.uint8), rotated))
    assert g is not None and g.transform == rotated.transform
    assert g.pixel_size_m == pytest.approx((10.0, 10.0))


def test_geographic_pixel_size_is_converted_to_metres() -> None:
    deg = Georef(transform=(10.0, 0.0001, 0.0, 60.0, 0.0, -0.0001), epsg=4326)
    g = roundtrip(geo.encode_geotiff(np.zeros((10, 10), np.uint8), deg))
    assert g is not None and g.pixel_size_m is not None
    assert g.pixel_size_m[1] == pytest.approx(11.1, abs=0.1)  # a degree of latitude ~111 km
    assert g.pixel_size_m[0] == pytest.approx(5.58, abs=0.05)  # times cos(60°)


def test_gcp_grid_gives_an_approximate_georeference() -> None:
    gcps = tuple(
        (c, r, 2.0 + c * 1e-4, 55.0 - r * 1e-4) for c in (0, 500, 1000) for r in (0, 400, 800)
    )
    g = roundtrip(geo.encode_geotiff(np.zeros((800, 1000), np.uint16), Georef(gcps=gcps)))
    assert g is not None and len(g.gcps) == 9 and g.epsg == 4326
    assert g.pixel_size_m is not None
    assert g.pixel_size_m[1] == pytest.approx(11.1, abs=0.2)


def test_plain_tiff_has_no_georeference() -> None:
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.zeros((5, 5), np.uint8))
    assert roundtrip(buf.getvalue()) is None


def test_mask_geotiff_keeps_the_input_georeference() -> None:
    g = roundtrip(geo.encode_geotiff(np.zeros((20, 30), np.uint16), UTM))
    assert g is not None
    mask = np.ones((20, 30), np.uint8)
    data = geo.encode_geotiff_mask(mask, g)
    back = roundtrip(data)
    assert back is not None and back.transform == g.transform and back.epsg == g.epsg
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        assert np.array_equal(tif.asarray(), mask)


def test_utm_inverse_matches_forward() -> None:
    lon, lat = np.array([2.5, 3.0, 4.9]), np.array([51.0, 55.5, 62.0])
    en = geo.lonlat_to_utm(lon, lat, 31)
    back = geo.utm_to_lonlat(en[:, 0], en[:, 1], 31)
    assert np.allclose(back, np.c_[lon, lat], atol=1e-7)


def test_utm_central_meridian_and_equator() -> None:
    ((lon, lat),) = geo.utm_to_lonlat(np.array([500000.0]), np.array([0.0]), 31)
    assert lon == pytest.approx(3.0) and lat == pytest.approx(0.0, abs=1e-9)
    ((lon, lat),) = geo.utm_to_lonlat(
        np.array([500000.0]), np.array([10_000_000.0]), 33, north=False
    )
    assert lon == pytest.approx(15.0) and lat == pytest.approx(0.0, abs=1e-9)


def test_geojson_is_lonlat_for_utm_images() -> None:
    fc = geo.slicks_geojson([("a.tif", UTM, [slick([(0, 0), (10, 0), (10, 10)])])])
    (feat,) = fc["features"]
    ring = feat["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] and len(ring) == 4
    lon, lat = ring[0]
    assert 2.9 < lon < 3.1 and 52.3 < lat < 52.4
    assert feat["properties"]["coordinates"].startswith("lon/lat")
    assert feat["properties"]["area_km2"] == 0.01


def test_geojson_says_when_coordinates_are_pixels() -> None:
    fc = geo.slicks_geojson([("a.png", None, [slick([(1, 2), (3, 4), (5, 2)])])])
    props = fc["features"][0]["properties"]
    assert "pixel" in props["coordinates"]
    assert fc["features"][0]["geometry"]["coordinates"][0][0] == [1.0, 2.0]
    assert "note" in fc


def test_s1_product_name_is_parsed() -> None:
    p = geo.parse_s1_product_id(
        "S1A_IW_GRDH_1SDV_20230105T053412_20230105T053437_046640_059711_2C5F.SAFE.zip"
    )
    assert p is not None
    assert (p["mission"], p["mode"], p["product_type"], p["resolution"]) == (
        "S1A",
        "IW",
        "GRD",
        "high",
    )
    assert p["polarisations"] == ["VV", "VH"]
    assert p["start"] == "2023-01-05T05:34:12Z" and p["absolute_orbit"] == 46640
    assert p["relative_orbit"] == 18


def test_s1_measurement_file_name_is_parsed() -> None:
    p = geo.parse_s1_product_id(
        "s1b-iw-grd-vh-20200101t000000-20200101t000025-019612-025080-002.tiff"
    )
    assert p is not None and p["platform"] == "Sentinel-1B" and p["polarisations"] == ["VH"]


def test_other_names_are_not_s1() -> None:
    assert geo.parse_s1_product_id("harbour_2023.png") is None
