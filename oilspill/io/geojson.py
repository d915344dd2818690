"""Slicks as GeoJSON: one Feature per slick, in lon/lat when the image is georeferenced."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from oilspill.io.georef import Georef, pixel_to_lonlat

_CLASS_NAMES = {1: "oil", 2: "look-alike"}


def slicks_geojson(
    items: list[tuple[str, Georef | None, list[Mapping[str, Any]]]],
) -> dict[str, Any]:
    """One FeatureCollection for a job: a Feature per slick, per image.

    Each slick is a record as `Slick.to_dict` makes it. Coordinates are lon/lat
    (EPSG:4326) for georeferenced images; otherwise they are pixel coordinates
    (x right, y down) and the properties say so.
    """
    features: list[dict[str, Any]] = []
    any_pixel = False
    for name, georef, slicks in items:
        for s in slicks:
            ring = np.asarray(s["polygon"], np.float64).reshape(-1, 2)
            if len(ring) == 0:
                continue
            ring = np.vstack([ring, ring[:1]])
            centre = np.asarray([s["centroid"]], np.float64)
            lonlat = pixel_to_lonlat(georef, np.vstack([ring, centre]))
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
                "elongation": s["elongation"],
                "damping_db": s["damping_db"],
                "possible_source": s["possible_source"],
                "centroid_px": list(s["centroid"]),
                "bbox_px": list(s["bbox"]),
            }
            if lonlat is not None:
                coords = lonlat[:-1]
                props["coordinates"] = "lon/lat (EPSG:4326)"
                props["centroid_lonlat"] = [round(float(v), 7) for v in lonlat[-1]]
            else:
                coords = ring
                any_pixel = True
                props["coordinates"] = (
                    "pixel (x right, y down from the top-left corner): the image is not "
                    "georeferenced"
                )
            geometry = {
                "type": "Polygon",
                "coordinates": [[[round(float(x), 7), round(float(y), 7)] for x, y in coords]],
            }
            features.append({"type": "Feature", "geometry": geometry, "properties": props})
    out: dict[str, Any] = {"type": "FeatureCollection", "features": features}
    if any_pixel:
        out["note"] = "some features are in pixel coordinates (see each feature's properties)"
    return out
