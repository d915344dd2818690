"""Georeference: read it from GeoTIFFs, write masks with it, and put slicks on the map.

No GDAL and no pyproj: GeoTIFF tags are read and written with tifffile, and
the only projections converted to lon/lat are the ones Sentinel-1 products
come in (geographic EPSG:4326 and UTM zones, EPSG 326xx/327xx), in numpy.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tifffile


@dataclass(frozen=True)
class Georef:
    """Where a raster lies on Earth, as far as its file says.

    `transform` maps pixel (col, row) to CRS (x, y) as GDAL's six numbers
    (x0, dx, rx, y0, ry, dy). `pixel_size_m` is the ground size of one pixel
    in metres (x, y); it is None when it cannot be known, and then no area
    in km² is reported.
    """

    pixel_size_m: tuple[float, float] | None = None
    transform: tuple[float, float, float, float, float, float] | None = None
    epsg: int | None = None
    # Raw GeoTIFF tags (code -> (dtype, count, value)) to copy onto mask GeoTIFFs.
    geotiff_tags: dict[int, Any] = field(default_factory=dict)
    # Ground control points (col, row, lon, lat) when the file carries a tie-point grid.
    gcps: tuple[tuple[float, float, float, float], ...] = ()


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


# ---------------------------------------------------------------- reading


def read_georef(tif: tifffile.TiffFile) -> Georef | None:
    """The georeference of the first page of a GeoTIFF, or None when it has none.

    Reads ModelTransformation, or ModelPixelScale + one ModelTiepoint, and the
    EPSG code from the GeoKey directory. A file with a grid of tie points and
    no scale (Sentinel-1 GRD measurement files) yields GCPs and an affine
    transform fitted to them (approximate).
    """
    page = tif.pages.first
    if not isinstance(page, tifffile.TiffPage):
        return None
    tags = {t.code: t.value for t in page.tags.values() if t.code in GEO_TAGS}
    if not tags:
        return None
    raw = {
        code: (_TAG_DTYPES[code], _tag_count(value), value)
        for code, value in tags.items()
        if code in _TAG_DTYPES
    }
    epsg, linear_unit = _epsg(tags.get(TAG_GEOKEYS))
    transform: tuple[float, float, float, float, float, float] | None = None
    gcps: tuple[tuple[float, float, float, float], ...] = ()
    if TAG_TRANSFORMATION in tags:
        m = [float(v) for v in tags[TAG_TRANSFORMATION]]
        transform = (m[3], m[0], m[1], m[7], m[4], m[5])
    elif TAG_TIEPOINT in tags:
        tie = [float(v) for v in tags[TAG_TIEPOINT]]
        points = [tie[i : i + 6] for i in range(0, len(tie) - len(tie) % 6, 6)]
        if TAG_PIXEL_SCALE in tags and points:
            sx, sy = (float(v) for v in list(tags[TAG_PIXEL_SCALE])[:2])
            i, j, _, x, y, _ = points[0]
            transform = (x - i * sx, sx, 0.0, y + j * sy, 0.0, -sy)
        elif len(points) >= 3:
            gcps = tuple((p[0], p[1], p[3], p[4]) for p in points)
            transform = _fit_affine(gcps)
            if epsg is None:
                epsg = 4326
    if transform is None:
        return Georef(epsg=epsg, geotiff_tags=raw, gcps=gcps) if (epsg or gcps) else None
    shape = (int(page.shape[0]), int(page.shape[1]))
    size = _pixel_size_m(transform, epsg, shape, linear_unit)
    return Georef(pixel_size_m=size, transform=transform, epsg=epsg, geotiff_tags=raw, gcps=gcps)


_TAG_DTYPES = {
    TAG_PIXEL_SCALE: "d",
    TAG_TIEPOINT: "d",
    TAG_TRANSFORMATION: "d",
    TAG_GEOKEYS: "H",
    TAG_DOUBLE_PARAMS: "d",
    TAG_ASCII_PARAMS: "s",
}


def _tag_count(value: Any) -> int:
    if isinstance(value, str | bytes):
        return 0
    return len(value) if hasattr(value, "__len__") else 1


def _epsg(keys: Any) -> tuple[int | None, int | None]:
    """EPSG code and linear unit code from a GeoKey directory."""
    if keys is None:
        return None, None
    k = [int(v) for v in keys]
    found: dict[int, int] = {}
    for n in range(k[3]):
        key, loc, _count, value = k[4 + 4 * n : 8 + 4 * n]
        if loc == 0:
            found[key] = value
    unit = found.get(3076)
    for key in (KEY_PROJECTED, KEY_GEOGRAPHIC):
        code = found.get(key)
        if code is not None and 1024 <= code < 32767:
            return code, unit
    return None, unit


def _fit_affine(
    gcps: tuple[tuple[float, float, float, float], ...],
) -> tuple[float, float, float, float, float, float]:
    g = np.asarray(gcps, np.float64)
    a = np.c_[np.ones(len(g)), g[:, 0], g[:, 1]]
    cx = np.linalg.lstsq(a, g[:, 2], rcond=None)[0]
    cy = np.linalg.lstsq(a, g[:, 3], rcond=None)[0]
    return (float(cx[0]), float(cx[1]), float(cx[2]), float(cy[0]), float(cy[1]), float(cy[2]))


def _pixel_size_m(
    t: tuple[float, float, float, float, float, float],
    epsg: int | None,
    shape: tuple[int, int],
    linear_unit: int | None,
) -> tuple[float, float] | None:
    _, dx, rx, y0, ry, dy = t
    if epsg is not None and _is_geographic(epsg):
        lat = y0 + ry * shape[1] / 2 + dy * shape[0] / 2
        m_lat, m_lon = _metres_per_degree(lat)
        return (math.hypot(dx * m_lon, ry * m_lat), math.hypot(rx * m_lon, dy * m_lat))
    if epsg is None and linear_unit is None:
        return None
    if linear_unit not in (None, 9001):  # only metres are trusted
        return None
    return (math.hypot(dx, ry), math.hypot(rx, dy))


def _metres_per_degree(lat: float) -> tuple[float, float]:
    """Metres per degree of latitude and of longitude on WGS84 at `lat`."""
    e2 = WGS84_F * (2 - WGS84_F)
    s = math.sin(math.radians(lat))
    w = math.sqrt(1 - e2 * s * s)
    m = WGS84_A * (1 - e2) / w**3
    n = WGS84_A / w
    return math.radians(1) * m, math.radians(1) * n * math.cos(math.radians(lat))


# ---------------------------------------------------------------- writing masks


def encode_geotiff_mask(mask: np.ndarray, georef: Georef) -> bytes:
    """The class mask as a GeoTIFF with the input's georeference (its own tags when known)."""
    if not georef.geotiff_tags:
        return encode_geotiff(mask, georef)
    extratags: list[tuple[int, str, int, Any, bool]] = []
    for code, (dtype, _count, value) in sorted((int(c), v) for c, v in georef.geotiff_tags.items()):
        if dtype == "s":
            text = value.decode() if isinstance(value, bytes) else str(value)
            extratags.append((code, "s", 0, text, False))
        else:
            vals = tuple(value) if hasattr(value, "__len__") else (value,)
            extratags.append((code, dtype, len(vals), vals, False))
    buf = io.BytesIO()
    tifffile.imwrite(buf, mask, compression="zlib", extratags=extratags, photometric="minisblack")
    return buf.getvalue()


# ---------------------------------------------------------------- to lon/lat


def pixel_to_lonlat(georef: Georef | None, xy: np.ndarray) -> np.ndarray | None:
    """Pixel (x, y) positions (pixel-centre convention: integer = centre) to lon/lat degrees.

    None when the georeference cannot be converted (no transform, or a CRS
    other than geographic, UTM or Web Mercator).
    """
    if georef is None or georef.transform is None:
        return None
    epsg = georef.epsg
    if georef.gcps and len(georef.gcps) >= 6:
        return _gcp_poly(georef.gcps, xy)
    x0, dx, rx, y0, ry, dy = georef.transform
    col, row = xy[:, 0] + 0.5, xy[:, 1] + 0.5
    ex, ny = x0 + dx * col + rx * row, y0 + ry * col + dy * row
    if epsg is None:
        return None
    if _is_geographic(epsg):
        return np.stack([ex, ny], axis=1)
    if 32601 <= epsg <= 32660 or 32701 <= epsg <= 32760:
        return utm_to_lonlat(ex, ny, epsg % 100, north=epsg < 32700)
    if epsg in (3857, 900913):
        lon = np.degrees(ex / WGS84_A)
        lat = np.degrees(2 * np.arctan(np.exp(ny / WGS84_A)) - np.pi / 2)
        return np.stack([lon, lat], axis=1)
    return None


def _gcp_poly(gcps: tuple[tuple[float, float, float, float], ...], xy: np.ndarray) -> np.ndarray:
    """Quadratic fit of lon/lat over the tie-point grid (GCP pixel positions are corners)."""
    g = np.asarray(gcps, np.float64)

    def terms(c: np.ndarray, r: np.ndarray) -> np.ndarray:
        return np.stack([np.ones_like(c), c, r, c * c, c * r, r * r], axis=1)

    a = terms(g[:, 0], g[:, 1])
    lon = np.linalg.lstsq(a, g[:, 2], rcond=None)[0]
    lat = np.linalg.lstsq(a, g[:, 3], rcond=None)[0]
    t = terms(xy[:, 0] + 0.5, xy[:, 1] + 0.5)
    out: np.ndarray = np.stack([t @ lon, t @ lat], axis=1)
    return out


def _kruger() -> tuple[float, float, float]:
    """Third flattening n, rectifying radius A and the UTM scale factor k0 of WGS84."""
    n = WGS84_F / (2 - WGS84_F)
    return n, WGS84_A / (1 + n) * (1 + n**2 / 4 + n**4 / 64), 0.9996


def utm_to_lonlat(
    easting: np.ndarray, northing: np.ndarray, zone: int, *, north: bool = True
) -> np.ndarray:
    """Inverse transverse Mercator on WGS84 (Krüger series; well under 1 m within a zone)."""
    n, big_a, k0 = _kruger()
    beta = (
        n / 2 - 2 * n**2 / 3 + 37 * n**3 / 96,
        n**2 / 48 + n**3 / 15,
        17 * n**3 / 480,
    )
    delta = (
        2 * n - 2 * n**2 / 3 - 2 * n**3,
        7 * n**2 / 3 - 8 * n**3 / 5,
        56 * n**3 / 15,
    )
    xi = (np.asarray(northing, np.float64) - (0.0 if north else 10_000_000.0)) / (k0 * big_a)
    eta = (np.asarray(easting, np.float64) - 500_000.0) / (k0 * big_a)
    xi_p, eta_p = xi.copy(), eta.copy()
    for j, b in enumerate(beta, start=1):
        xi_p -= b * np.sin(2 * j * xi) * np.cosh(2 * j * eta)
        eta_p -= b * np.cos(2 * j * xi) * np.sinh(2 * j * eta)
    chi = np.arcsin(np.sin(xi_p) / np.cosh(eta_p))
    lat = chi.copy()
    for j, d in enumerate(delta, start=1):
        lat += d * np.sin(2 * j * chi)
    lon0 = math.radians(zone * 6 - 183)
    lon = lon0 + np.arctan2(np.sinh(eta_p), np.cos(xi_p))
    out: np.ndarray = np.stack([np.degrees(lon), np.degrees(lat)], axis=1)
    return out


def lonlat_to_utm(lon: np.ndarray, lat: np.ndarray, zone: int) -> np.ndarray:
    """Forward transverse Mercator (Krüger series), for tests and synthetic georeferences."""
    n, big_a, k0 = _kruger()
    alpha = (
        n / 2 - 2 * n**2 / 3 + 5 * n**3 / 16,
        13 * n**2 / 48 - 3 * n**3 / 5,
        61 * n**3 / 240,
    )
    phi = np.radians(np.asarray(lat, np.float64))
    lam = np.radians(np.asarray(lon, np.float64)) - math.radians(zone * 6 - 183)
    e = math.sqrt(WGS84_F * (2 - WGS84_F))
    t = np.sinh(np.arctanh(np.sin(phi)) - e * np.arctanh(e * np.sin(phi)))
    xi_p = np.arctan2(t, np.cos(lam))
    eta_p = np.arctanh(np.sin(lam) / np.sqrt(1 + t * t))
    xi, eta = xi_p.copy(), eta_p.copy()
    for j, a in enumerate(alpha, start=1):
        xi += a * np.sin(2 * j * xi_p) * np.cosh(2 * j * eta_p)
        eta += a * np.cos(2 * j * xi_p) * np.sinh(2 * j * eta_p)
    east = 500_000.0 + k0 * big_a * eta
    north = k0 * big_a * xi
    north = np.where(north < 0, north + 10_000_000.0, north)
    out: np.ndarray = np.stack([east, north], axis=1)
    return out
