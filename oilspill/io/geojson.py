"""Slicks as GeoJSON: one Feature per slick, in lon/lat when the image is georeferenced."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from shapely.geometry import Polygon

from oilspill.io.georef import Georef
from oilspill.io.ground import Ground, geometry_dict, orient_all

_CLASS_NAMES = {1: "oil", 2: "look-alike"}


def slicks_geojson(
    items: list[tuple[str, Georef | None, list[Mapping[str, Any]]]],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One FeatureCollection for a job: a Feature per slick, per image.

    Each slick is a record as `Slick.to_dict` makes it. Coordinates are lon/lat
    (EPSG:4326, RFC 7946: exterior rings counter-clockwise) for georeferenced
    images; otherwise they are pixel coordinates (x right, y down) and the
    properties say so. `extra` properties (the product's metadata) go on every
    feature.
    """
    features: list[dict[str, Any]] = []
    any_pixel = False
    for name, georef, slicks in items:
        ground = Ground.of(georef)
        for s in slicks:
            ring = np.asarray(s["polygon"], np.float64).reshape(-1, 2)
            if len(ring) < 3:
                continue
            props: dict[str, Any] = {
                "image": name,
                "slick_id": s["id"],
                "class": _CLASS_NAMES.get(s["cls"], str(s["cls"])),
                "class_value": s["cls"],
                "confidence": s["confidence"],
                "area_px": s["area_px"],
                "area_km2": s["area_km2"],
                "length_m": s["length_m"],
                "width_m": s["width_m"],
                "perimeter_px": s["perimeter_px"],
                "perimeter_m": s.get("perimeter_m"),
                "elongation": s["elongation"],
                "damping_db": s["damping_db"],
                "possible_source": s["possible_source"],
                "centroid_px": list(s["centroid"]),
                "bbox_px": list(s["bbox"]),
            }
            if s.get("geometry") is not None:  # measured on the ground by the detector
                geometry = s["geometry"]
                props["centroid_lonlat"] = s.get("centroid_lonlat")
            elif ground is not None:  # a pixel outline from a backend that did not measure it
                lonlat = ground.lonlat(np.vstack([ring, [s["centroid"]]]))
                geometry = geometry_dict(orient_all(Polygon(lonlat[:-1])))
                props["centroid_lonlat"] = [round(float(v), 7) for v in lonlat[-1]]
            else:
                geometry = _pixel_polygon(ring)
            if ground is not None:
                props["coordinates"] = "lon/lat (EPSG:4326)"
            else:
                any_pixel = True
                props["coordinates"] = (
                    "pixel (x right, y down from the top-left corner): the image is not "
                    "georeferenced"
                )
            props.update(extra or {})
            features.append({"type": "Feature", "geometry": geometry, "properties": props})
    out: dict[str, Any] = {"type": "FeatureCollection", "features": features}
    if any_pixel:
        out["note"] = "some features are in pixel coordinates (see each feature's properties)"
    return out


def _pixel_polygon(ring: np.ndarray) -> dict[str, Any]:
    """A pixel outline as a GeoJSON Polygon, counter-clockwise (RFC 7946's rule, in x right,
    y up terms, as shapely's `orient` makes it) and closed: for a simple ring, what
    `geometry_dict(orient_all(Polygon(ring)), digits=2)` gives, in NumPy, 8x faster
    than through shapely and per-vertex rounding. (A self-crossing ring has no one
    orientation: GEOS and the shoelace sum may then disagree.)"""
    ring = np.round(ring, 2)
    if not np.array_equal(ring[0], ring[-1]):
        ring = np.vstack([ring, ring[:1]])
    x, y = ring[:, 0], ring[:, 1]
    if float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1])) < 0:  # clockwise: reverse it
        ring = ring[::-1]
    return {"type": "Polygon", "coordinates": [ring.tolist()]}
