"""Slicks as GeoJSON features."""

from __future__ import annotations

from typing import Any

from oilspill.io.geojson import slicks_geojson
from oilspill.io.georef import Georef
from oilspill.sar.records import Slick

UTM = Georef(pixel_size_m=(10.0, 10.0), transform=(500000, 10, 0, 5800000, 0, -10), epsg=32631)


def slick(polygon: list[tuple[float, float]]) -> dict[str, Any]:
    return Slick(1, 1, 0.9, 100, (5.0, 5.0), (0, 0, 10, 10), polygon, area_km2=0.01).to_dict()


def test_geojson_is_lonlat_for_utm_images() -> None:
    fc = slicks_geojson([("a.tif", UTM, [slick([(0, 0), (10, 0), (10, 10)])])])
    (feat,) = fc["features"]
    ring = feat["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] and len(ring) == 4
    lon, lat = ring[0]
    assert 2.9 < lon < 3.1 and 52.3 < lat < 52.4
    assert feat["properties"]["coordinates"].startswith("lon/lat")
    assert feat["properties"]["area_km2"] == 0.01


def test_geojson_says_when_coordinates_are_pixels() -> None:
    fc = slicks_geojson([("a.png", None, [slick([(1, 2), (3, 4), (5, 2)])])])
    props = fc["features"][0]["properties"]
    assert "pixel" in props["coordinates"]
    assert fc["features"][0]["geometry"]["coordinates"][0][0] == [1.0, 2.0]
    assert "note" in fc


def test_pixel_outlines_are_closed_counter_clockwise_as_shapely_orients_them() -> None:
    from shapely.geometry import Polygon

    from oilspill.io.ground import geometry_dict, orient_all

    square_cw = [(0, 0), (0, 10), (10, 10), (10, 0)]  # clockwise in x right, y up
    rings = [
        square_cw,
        square_cw[::-1],
        [*square_cw, (0, 0)],  # already closed
        [(1.234, 2.0), (7.5, 3.25), (4.0, 9.999), (2.5, 6.0)],
        [(0, 0), (6, 0), (6, 6), (3, 2), (0, 6)],  # concave
    ]
    for ring in rings:
        (feature,) = slicks_geojson([("a.png", None, [slick(ring)])])["features"]
        expected = geometry_dict(orient_all(Polygon(ring)), digits=2)
        assert feature["geometry"] == expected, ring
