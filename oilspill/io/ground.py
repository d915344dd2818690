"""Pixels on the ground: lon/lat of pixel positions, and sizes measured on the WGS84 ellipsoid.

Projections are pyproj's (any CRS a GeoTIFF names, EPSG:3857 included) and
GCP georeferences are GDAL's GCP transformer (via rasterio), so no map
projection is hand-written here. Areas, perimeters and lengths are geodesic
(pyproj.Geod), hence true on the ground whatever the raster's projection:
a Web-Mercator pixel is not its nominal size, a UTM pixel off the central
meridian is not exactly 10 m, and a geodesic measure knows both.

Pixel positions passed in are (x, y) with the pixel-centre convention of
the masks and slick records: (0, 0) is the centre of the top-left pixel.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon, mapping, shape
from shapely.geometry.polygon import orient

from oilspill.io.georef import Georef

if TYPE_CHECKING:  # imported when a raster is georeferenced: ~0.25 s of start-up otherwise
    from pyproj import Geod, Transformer
    from rasterio.transform import GCPTransformer


@functools.cache
def wgs84() -> Geod:
    """The WGS84 ellipsoid, for geodesic lengths and areas."""
    from pyproj import Geod

    return Geod(ellps="WGS84")


@dataclass
class Measures:
    """One region's size on the ground, and its outline in lon/lat (a GeoJSON geometry)."""

    area_km2: float
    perimeter_m: float
    length_m: float
    width_m: float
    centroid_lonlat: tuple[float, float]
    geometry: dict[str, Any]  # Polygon or MultiPolygon, lon/lat, exterior rings counter-clockwise


class Ground:
    """Maps one raster's pixels to lon/lat and measures regions of it on the ellipsoid."""

    def __init__(self, georef: Georef) -> None:
        from pyproj import CRS, Transformer
        from rasterio.control import GroundControlPoint
        from rasterio.transform import GCPTransformer

        self.georef = georef
        self._gcp: GCPTransformer | None = None
        self._proj: Transformer | None = None
        if georef.transform is None:
            points = [
                GroundControlPoint(row=r, col=c, x=lon, y=lat) for c, r, lon, lat in georef.gcps
            ]
            # Thin-plate spline: exact at every grid point, smooth between (GDAL's choice for
            # dense GCP grids); a polynomial would leave metres of error on a curved swath.
            self._gcp = GCPTransformer(points, tps=len(points) >= 10)
        else:
            crs = CRS.from_user_input(georef.crs_text)
            if not crs.is_geographic:
                self._proj = Transformer.from_crs(crs, CRS.from_epsg(4326), always_xy=True)

    @classmethod
    def of(cls, georef: Georef | None) -> Ground | None:
        """The ground mapping of a georeference, or None when it cannot place pixels."""
        if georef is None:
            return None
        if georef.transform is not None and georef.crs_text is not None:
            return cls(georef)
        if georef.transform is None and len(georef.gcps) >= 3:
            return cls(georef)
        return None

    def lonlat_corner(self, cols: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lon/lat of raster positions in GDAL's convention ((0, 0) = top-left corner)."""
        cols = np.asarray(cols, np.float64)
        rows = np.asarray(rows, np.float64)
        if self._gcp is not None:
            xs, ys = self._gcp.xy(rows.ravel(), cols.ravel(), offset="ul")
            return np.asarray(xs, np.float64).reshape(cols.shape), np.asarray(
                ys, np.float64
            ).reshape(cols.shape)
        assert self.georef.transform is not None
        x0, dx, rx, y0, ry, dy = self.georef.transform
        ex, ny = x0 + dx * cols + rx * rows, y0 + ry * cols + dy * rows
        if self._proj is None:
            return ex, ny
        lon, lat = self._proj.transform(ex, ny)
        return np.asarray(lon, np.float64), np.asarray(lat, np.float64)

    def lonlat(self, xy: np.ndarray) -> np.ndarray:
        """Lon/lat (Nx2) of pixel positions (Nx2, x/y, pixel-centre convention)."""
        xy = np.asarray(xy, np.float64).reshape(-1, 2)
        lon, lat = self.lonlat_corner(xy[:, 0] + 0.5, xy[:, 1] + 0.5)
        return np.stack([lon, lat], axis=1)

    def pixel_size_m(self, at: tuple[float, float]) -> tuple[float, float]:
        """Ground size (x, y) in metres of one pixel around pixel position `at`, geodesic."""
        x, y = at
        ll = self.lonlat(np.array([[x - 5, y], [x + 5, y], [x, y - 5], [x, y + 5]]))
        _, _, dist_x = wgs84().inv(ll[0, 0], ll[0, 1], ll[1, 0], ll[1, 1])
        _, _, dist_y = wgs84().inv(ll[2, 0], ll[2, 1], ll[3, 0], ll[3, 1])
        return float(dist_x) / 10, float(dist_y) / 10

    def metres_per_pixel_along(self, at: tuple[float, float], angle: float) -> float:
        """Ground metres of one pixel step from `at` in direction `angle` (radians, image axes)."""
        ux, uy = 5 * math.cos(angle), 5 * math.sin(angle)
        ll = self.lonlat(np.array([[at[0] - ux, at[1] - uy], [at[0] + ux, at[1] + uy]]))
        _, _, dist = wgs84().inv(ll[0, 0], ll[0, 1], ll[1, 0], ll[1, 1])
        return float(dist) / 10

    def outline(
        self, region: np.ndarray, x0: int, y0: int, simplify_px: float = 0.0
    ) -> MultiPolygon:
        """A boolean region's outline in lon/lat (counter-clockwise exteriors, holes kept).

        Traced along pixel edges (exact: its area is the pixel count's), and
        simplified by `simplify_px` pixels first when that is > 0.
        """
        return self._on_ground(pixel_outline(region), x0, y0, simplify_px)

    def _on_ground(
        self, traced: list[Polygon], x0: int, y0: int, simplify_px: float
    ) -> MultiPolygon:
        """Pixel-space polygons (top-left at x0, y0) in lon/lat, simplified first if asked."""
        polys = []
        for poly in traced:
            part = poly.simplify(simplify_px, preserve_topology=True) if simplify_px > 0 else poly
            if part.is_empty or not isinstance(part, Polygon):
                continue
            polys.append(shapely.transform(part, lambda c: self._corner_to_lonlat(c, x0, y0)))
        return orient_all(MultiPolygon(polys))

    def _corner_to_lonlat(self, coords: np.ndarray, x0: int, y0: int) -> np.ndarray:
        lon, lat = self.lonlat_corner(coords[:, 0] + x0, coords[:, 1] + y0)
        return np.stack([lon, lat], axis=1)

    def measure(
        self,
        region: np.ndarray,
        x0: int,
        y0: int,
        *,
        axis_angle: float,
        length_px: float,
        simplify_px: float = 0.7,
    ) -> Measures:
        """Geodesic area, perimeter, length and mean width of a region whose top-left is (x0, y0).

        The area is that of the region's exact pixel outline; the perimeter and
        the output geometry use the outline simplified by `simplify_px` pixels
        (a staircase is not the slick's edge). Length is the region's length in
        pixels times the ground size of a pixel along its major axis; the width is
        area / length, the mean width.
        """
        traced = pixel_outline(region)  # once: the exact outline and its simplification
        area_m2, _ = wgs84().geometry_area_perimeter(self._on_ground(traced, x0, y0, 0.0))
        area_m2 = abs(float(area_m2))
        simple = self._on_ground(traced, x0, y0, simplify_px)
        _, perimeter = wgs84().geometry_area_perimeter(simple)
        ys, xs = np.nonzero(region)
        centre = (x0 + float(xs.mean()), y0 + float(ys.mean()))
        along = self.metres_per_pixel_along(centre, axis_angle)
        length = max(length_px, 1.0) * along
        ((clon, clat),) = self.lonlat(np.array([centre]))
        return Measures(
            area_km2=round(area_m2 / 1e6, 6),
            perimeter_m=round(abs(float(perimeter)), 1),
            length_m=round(length, 1),
            width_m=round(area_m2 / max(length, 1e-9), 1),
            centroid_lonlat=(round(float(clon), 7), round(float(clat), 7)),
            geometry=geometry_dict(simple),
        )


def pixel_outline(region: np.ndarray) -> list[Polygon]:
    """Polygons along the pixel edges of a boolean region (GDAL's polygonize), holes kept."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import rasterio.features

        pieces = rasterio.features.shapes(region.astype(np.uint8), mask=region, connectivity=8)
        return [p for geom, _ in pieces if isinstance(p := shape(geom), Polygon)]


def orient_all(geom: MultiPolygon | Polygon) -> MultiPolygon:
    """Exterior rings counter-clockwise, holes clockwise (RFC 7946's right-hand rule)."""
    polys = list(geom.geoms) if isinstance(geom, MultiPolygon) else [geom]
    return MultiPolygon([orient(p, sign=1.0) for p in polys])


def geometry_dict(geom: MultiPolygon, digits: int = 7) -> dict[str, Any]:
    """A GeoJSON geometry (a Polygon when there is one part), coordinates rounded."""
    parts = list(geom.geoms)
    out = mapping(parts[0] if len(parts) == 1 else geom)
    return {"type": out["type"], "coordinates": _round(out["coordinates"], digits)}


def _round(coords: Any, digits: int) -> Any:
    if isinstance(coords, tuple | list) and coords and isinstance(coords[0], float | int):
        return [round(float(v), digits) for v in coords]
    return [_round(c, digits) for c in coords]
