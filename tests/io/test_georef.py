"""Georeferencing: GeoTIFF tags in and out, lon/lat maths."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tifffile

from oilspill.io.georef import (
    Georef,
    encode_geotiff,
    encode_geotiff_mask,
    lonlat_to_utm,
    read_georef,
    utm_to_lonlat,
)

UTM = Georef(pixel_size_m=(10.0, 10.0), transform=(500000, 10, 0, 5800000, 0, -10), epsg=32631)


def roundtrip(data: bytes) -> Georef | None:
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        return read_georef(tif)


def test_scale_and_tiepoint_are_read() -> None:
    g = roundtrip(encode_geotiff(np.zeros((20, 30), np.uint16), UTM))
    assert g is not None
    assert g.transform == UTM.transform and g.epsg == 32631 and g.pixel_size_m == (10.0, 10.0)


def test_model_transformation_is_read() -> None:
    rotated = Georef(transform=(1000.0, 8.0, 6.0, 2000.0, 6.0, -8.0), epsg=32632)
    g = roundtrip(encode_geotiff(np.zeros((10, 10), np.uint8), rotated))
    assert g is not None and g.transform == rotated.transform
    assert g.pixel_size_m == pytest.approx((10.0, 10.0))


def test_geographic_pixel_size_is_converted_to_metres() -> None:
    deg = Georef(transform=(10.0, 0.0001, 0.0, 60.0, 0.0, -0.0001), epsg=4326)
    g = roundtrip(encode_geotiff(np.zeros((10, 10), np.uint8), deg))
    assert g is not None and g.pixel_size_m is not None
    assert g.pixel_size_m[1] == pytest.approx(11.1, abs=0.1)  # a degree of latitude ~111 km
    assert g.pixel_size_m[0] == pytest.approx(5.58, abs=0.05)  # times cos(60°)


def test_gcp_grid_gives_an_approximate_georeference() -> None:
    gcps = tuple(
        (c, r, 2.0 + c * 1e-4, 55.0 - r * 1e-4) for c in (0, 500, 1000) for r in (0, 400, 800)
    )
    g = roundtrip(encode_geotiff(np.zeros((800, 1000), np.uint16), Georef(gcps=gcps)))
    assert g is not None and len(g.gcps) == 9 and g.epsg == 4326
    assert g.pixel_size_m is not None
    assert g.pixel_size_m[1] == pytest.approx(11.1, abs=0.2)


def test_plain_tiff_has_no_georeference() -> None:
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.zeros((5, 5), np.uint8))
    assert roundtrip(buf.getvalue()) is None


def test_mask_geotiff_keeps_the_input_georeference() -> None:
    g = roundtrip(encode_geotiff(np.zeros((20, 30), np.uint16), UTM))
    assert g is not None
    mask = np.ones((20, 30), np.uint8)
    data = encode_geotiff_mask(mask, g)
    back = roundtrip(data)
    assert back is not None and back.transform == g.transform and back.epsg == g.epsg
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        assert np.array_equal(tif.asarray(), mask)


def test_utm_inverse_matches_forward() -> None:
    lon, lat = np.array([2.5, 3.0, 4.9]), np.array([51.0, 55.5, 62.0])
    en = lonlat_to_utm(lon, lat, 31)
    back = utm_to_lonlat(en[:, 0], en[:, 1], 31)
    assert np.allclose(back, np.c_[lon, lat], atol=1e-7)


def test_utm_central_meridian_and_equator() -> None:
    ((lon, lat),) = utm_to_lonlat(np.array([500000.0]), np.array([0.0]), 31)
    assert lon == pytest.approx(3.0) and lat == pytest.approx(0.0, abs=1e-9)
    ((lon, lat),) = utm_to_lonlat(np.array([500000.0]), np.array([10_000_000.0]), 33, north=False)
    assert lon == pytest.approx(15.0) and lat == pytest.approx(0.0, abs=1e-9)
