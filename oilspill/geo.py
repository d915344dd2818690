"""Georeference: read it from GeoTIFFs, write masks with it, and put slicks on the map.

No GDAL and no pyproj: GeoTIFF tags are read and written with tifffile, and
the only projections converted to lon/lat are the ones Sentinel-1 products
come in (geographic EPSG:4326 and UTM zones, EPSG 326xx/327xx), in numpy.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import tifffile

from oilspill.segment import Georef

# GeoTIFF tag codes.
TAG_PIXEL_SCALE = 33550
TAG_TIEPOINT = 33922
TAG_TRANSFORMATION = 34264
TAG_GEOKEYS = 34735
TAG_DOUBLE_PARAMS = 34736
TAG_ASCII_PARAMS = 34737
GEO_TAGS = (TAG_PIXEL_SCALE, TAG_TIEPOINT, TAG_TRANSFORMATION, TAG_GEOKEYS, TAG_DOUBLE_PARAMS,
            TAG_ASCII_PARAMS)  # fmt: skip
# GeoKeys.
KEY_MODEL_TYPE = 1024  # 1 projected, 2 geographic
KEY_RASTER_TYPE = 1025  # 1 pixel is area
KEY_GEOGRAPHIC = 2048
KEY_PROJECTED = 3072

WGS84_A = 6378137.0
WGS84_F = 1 / 298.257223563


def _geokeys(epsg: int | None) -> tuple[int, ...]:
    keys: list[tuple[int, int, int, int]] = [(KEY_RASTER_TYPE, 0, 1, 1)]
    if epsg is not None and _is_geographic(epsg):
        keys = [(KEY_MODEL_TYPE, 0, 1, 2), *keys, (KEY_GEOGRAPHIC, 0, 1, epsg)]
    elif epsg is not None:
        keys = [(KEY_MODEL_TYPE, 0, 1, 1), *keys, (KEY_PROJECTED, 0, 1, epsg)]
    head = (1, 1, 0, len(keys))
    return tuple(v for k in [head, *keys] for v in k)


def _is_geographic(epsg: int) -> bool:
    return epsg in (4326, 4258, 4269, 4267) or 4000 <= epsg < 5000


def encode_geotiff(image: np.ndarray, georef: Georef) -> bytes:
    """A GeoTIFF of `image` (deflate-compressed) carrying `georef`."""
    extratags: list[tuple[int, str, int, Any, bool]] = []
    if georef.transform is not None:
        x0, dx, rx, y0, ry, dy = georef.transform
        if rx == 0.0 and ry == 0.0:
            extratags.append((TAG_PIXEL_SCALE, "d", 3, (dx, -dy, 0.0), False))
            extratags.append((TAG_TIEPOINT, "d", 6, (0.0, 0.0, 0.0, x0, y0, 0.0), False))
        else:
            matrix = (dx, rx, 0.0, x0, ry, dy, 0.0, y0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)
            extratags.append((TAG_TRANSFORMATION, "d", 16, matrix, False))
        keys = _geokeys(georef.epsg)
        extratags.append((TAG_GEOKEYS, "H", len(keys), keys, False))
    elif georef.gcps:
        ties = tuple(v for c, r, lon, lat in georef.gcps for v in (c, r, 0.0, lon, lat, 0.0))
        extratags.append((TAG_TIEPOINT, "d", len(ties), ties, False))
        keys = _geokeys(4326)
        extratags.append((TAG_GEOKEYS, "H", len(keys), keys, False))
    buf = io.BytesIO()
    tifffile.imwrite(buf, image, compression="zlib", extratags=extratags, photometric="minisblack")
    return buf.getvalue()
