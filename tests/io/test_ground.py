"""Pixels on the ground: lon/lat and geodesic sizes from pyproj, shapely and GDAL."""

from __future__ import annotations

import numpy as np
import pytest
from pyproj import Geod, Transformer
from shapely.geometry import Polygon

from oilspill.io.georef import Georef
from oilspill.io.ground import Ground

WGS84 = Geod(ellps="WGS84")


def test_utm_pixel_centres_map_to_lonlat() -> None:
    ground = Ground(Georef(transform=(500000.0, 10.0, 0.0, 5800000.0, 0.0, -10.0), epsg=32631))
    ((lon, lat),) = ground.lonlat(np.array([[0.0, 0.0]]))  # centre of the first pixel
    to_ll = Transformer.from_crs(32631, 4326, always_xy=True)
    assert (lon, lat) == pytest.approx(to_ll.transform(500005.0, 5799995.0), abs=1e-9)


def test_area_is_geodesic_in_web_mercator() -> None:
    # 100 x 100 nominal 10 m pixels at 55° N: ~1 km² of map, ~0.33 km² of sea.
    merc = Georef(transform=(2_226_390.0, 10.0, 0.0, 7_361_866.0, 0.0, -10.0), epsg=3857)
    region = np.ones((100, 100), bool)
    m = Ground(merc).measure(region, 0, 0, axis_angle=0.0, length_px=100.0)
    corners = Ground(merc).lonlat_corner(np.array([0, 100, 100, 0]), np.array([0, 0, 100, 100]))
    truth, _ = WGS84.geometry_area_perimeter(Polygon(np.stack(corners, axis=1)))
    assert m.area_km2 == pytest.approx(abs(truth) / 1e6, rel=1e-3)
    assert m.area_km2 == pytest.approx(0.33, abs=0.01)
    assert m.length_m == pytest.approx(574, abs=5)


def test_exterior_rings_are_counter_clockwise_and_holes_kept() -> None:
    region = np.ones((40, 60), bool)
    region[10:20, 10:30] = False  # a hole
    m = Ground(Georef(transform=(10.0, 1e-4, 0.0, 55.0, 0.0, -1e-4), epsg=4326)).measure(
        region, 5, 7, axis_angle=0.0, length_px=60.0
    )
    assert m.geometry["type"] == "Polygon" and len(m.geometry["coordinates"]) == 2
    outer, hole = (Polygon(r) for r in m.geometry["coordinates"])
    assert outer.exterior.is_ccw and not hole.exterior.is_ccw
    assert m.area_km2 == pytest.approx((2400 - 200) * 1e-8 * 111_000 * 63_900 / 1e6, rel=0.01)


def test_gcp_georeference_is_exact_at_the_grid_points() -> None:
    gcps = tuple(
        (
            float(c),
            float(r),
            20.0 + c * 1.5e-4 + r * 2e-5,
            55.0 - r * 9e-5 + c * 1e-6 + 1e-10 * c * r,
        )
        for c in range(0, 1001, 100)
        for r in range(0, 801, 200)
    )
    ground = Ground(Georef(gcps=gcps))
    for c, r, lon, lat in gcps[::7]:
        got = ground.lonlat_corner(np.array([c]), np.array([r]))
        assert (float(got[0][0]), float(got[1][0])) == pytest.approx((lon, lat), abs=1e-9)


def test_no_ground_without_a_place() -> None:
    assert Ground.of(None) is None
    assert Ground.of(Georef(pixel_size_m=(10.0, 10.0))) is None
