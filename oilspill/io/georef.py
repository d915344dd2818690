"""Georeference: read it from GeoTIFFs, and write masks that carry it (GDAL via rasterio).

A `Georef` is plain data (it travels in job records): an affine transform in
a CRS, or ground control points in lon/lat. Turning pixels into places and
sizes on the ground is `oilspill.io.ground`'s job.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

Transform = tuple[float, float, float, float, float, float]
Gcp = tuple[float, float, float, float]  # (col, row, lon, lat); col/row 0,0 = top-left corner


@dataclass(frozen=True)
class Georef:
    """Where a raster lies on Earth, as far as its file says.

    `transform` maps raster (col, row) — (0, 0) the top-left corner of the
    top-left pixel, as in GDAL — to CRS (x, y), as GDAL's six numbers
    (x0, dx, rx, y0, ry, dy); `crs` is that CRS (WKT or "EPSG:n"). Without a
    transform, `gcps` ties raster positions to WGS84 lon/lat. `pixel_size_m`
    is the ground size of one pixel at the scene centre (x, y), measured on
    the ellipsoid; None when it cannot be known, and then no area in km² is
    reported.
    """

    pixel_size_m: tuple[float, float] | None = None
    transform: Transform | None = None
    epsg: int | None = None
    gcps: tuple[Gcp, ...] = ()
    crs: str | None = None

    @property
    def crs_text(self) -> str | None:
        """The CRS as pyproj reads it: the WKT when known, else EPSG:<code>."""
        if self.crs:
            return self.crs
        if self.epsg is not None:
            return f"EPSG:{self.epsg}"
        return "EPSG:4326" if self.gcps else None

    def to_record(self) -> dict[str, Any]:
        return {
            "pixel_size_m": list(self.pixel_size_m) if self.pixel_size_m else None,
            "transform": list(self.transform) if self.transform else None,
            "epsg": self.epsg,
            "crs": self.crs,
            "gcps": [list(g) for g in self.gcps],
        }

    @classmethod
    def from_record(cls, raw: dict[str, Any]) -> Georef:
        size = raw.get("pixel_size_m")
        transform = raw.get("transform")
        return cls(
            pixel_size_m=(float(size[0]), float(size[1])) if size else None,
            transform=tuple(float(v) for v in transform) if transform else None,  # type: ignore[arg-type]
            epsg=raw.get("epsg"),
            gcps=tuple((float(g[0]), float(g[1]), float(g[2]), float(g[3])) for g in raw["gcps"])
            if raw.get("gcps")
            else (),
            crs=raw.get("crs"),
        )


def with_pixel_size(georef: Georef, shape: tuple[int, int]) -> Georef:
    """The same georeference with `pixel_size_m` measured at the centre of a `shape` raster."""
    from oilspill.io.ground import Ground  # ground builds on this module

    ground = Ground.of(georef)
    if ground is None:
        return georef
    size = ground.pixel_size_m((shape[1] / 2, shape[0] / 2))
    return Georef(size, georef.transform, georef.epsg, georef.gcps, georef.crs)


# ---------------------------------------------------------------- reading


def read_georef(path: Path) -> Georef | None:
    """The georeference of a GeoTIFF's first band, or None when it has none.

    An affine transform with its CRS, or (Sentinel-1 GRD measurement files)
    a grid of tie points, read as GCPs in lon/lat.
    """
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        try:
            with rasterio.open(path) as src:
                shape = (src.height, src.width)
                crs, transform = src.crs, src.transform
                gcps, gcp_crs = src.gcps
        except rasterio.errors.RasterioError:
            return None
    if gcps and (gcp_crs is None or gcp_crs.is_geographic):
        ties = tuple((g.col, g.row, g.x, g.y) for g in gcps)
        return with_pixel_size(Georef(gcps=ties, epsg=4326), shape)
    if crs is None or transform.is_identity:
        return None
    epsg = crs.to_epsg()
    t: Transform = (transform.c, transform.a, transform.b, transform.f, transform.d, transform.e)
    return with_pixel_size(
        Georef(transform=t, epsg=epsg, crs=None if epsg else crs.to_wkt()), shape
    )


# ---------------------------------------------------------------- writing


def _profile(georef: Georef | None) -> dict[str, Any]:
    from rasterio.crs import CRS
    from rasterio.transform import Affine

    if georef is None:
        return {}
    if georef.transform is not None:
        x0, dx, rx, y0, ry, dy = georef.transform
        return {
            "crs": CRS.from_user_input(georef.crs_text),
            "transform": Affine(dx, rx, x0, ry, dy, y0),
        }
    return {}


def _set_gcps(dst: Any, georef: Georef | None) -> None:
    from rasterio.control import GroundControlPoint
    from rasterio.crs import CRS

    if georef is not None and georef.transform is None and georef.gcps:
        points = [GroundControlPoint(row=r, col=c, x=lon, y=lat) for c, r, lon, lat in georef.gcps]
        dst.gcps = (points, CRS.from_epsg(4326))


def encode_geotiff(image: np.ndarray, georef: Georef | None) -> bytes:
    """A GeoTIFF (deflate) of a 2-D `image` carrying `georef` (for synthetic scenes and tests)."""
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.io import MemoryFile

    profile = {"driver": "GTiff", "height": image.shape[0], "width": image.shape[1], "count": 1,
               "dtype": image.dtype.name, "compress": "deflate", **_profile(georef)}  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with MemoryFile() as mem:
            with mem.open(**profile) as dst:
                dst.write(image, 1)
                _set_gcps(dst, georef)
            return bytes(mem.read())


NODATA = 255  # mask value of pixels the input has no data for


class _Blocks(Protocol):
    @property
    def shape(self) -> tuple[int, ...]: ...
    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray: ...


def write_cog_mask(
    path: Path,
    mask: _Blocks,
    georef: Georef | None,
    colours: dict[int, tuple[int, int, int]] | None = None,
    block: int = 2048,
) -> None:
    """The class mask as a Cloud-Optimized GeoTIFF: 512-px tiles, deflate, overviews, nodata.

    GDAL, rasterio, QGIS and tifffile alone (no imagecodecs) all read it:
    deflate is the one codec every TIFF reader has. `mask` is an array or
    anything cut into windows the same way (a TileMask): it is written
    `block` x `block` pixels at a time, so a scene's mask is never whole here.
    """
    import rasterio
    import rasterio.shutil
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.windows import Window

    profile = {"driver": "GTiff", "height": mask.shape[0], "width": mask.shape[1], "count": 1,
               "dtype": "uint8", "nodata": NODATA, "tiled": True, "blockxsize": 512,
               "blockysize": 512, "compress": "deflate", **_profile(georef)}  # fmt: skip
    scratch = path.with_name(path.name + ".part.tif")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(scratch, "w", **profile) as tmp:
                h, w = mask.shape[:2]
                for r0 in range(0, h, block):
                    for c0 in range(0, w, block):
                        r1, c1 = min(h, r0 + block), min(w, c0 + block)
                        window = Window(c0, r0, c1 - c0, r1 - r0)
                        tmp.write(np.asarray(mask[r0:r1, c0:c1], np.uint8), 1, window=window)
                _set_gcps(tmp, georef)
                if colours:  # a colour table: GIS software shows classes in colour
                    tmp.write_colormap(1, {k: (*rgb, 255) for k, rgb in colours.items()})
            rasterio.shutil.copy(
                scratch, path, driver="COG", COMPRESS="DEFLATE", BLOCKSIZE=512,
                OVERVIEW_RESAMPLING="NEAREST", NUM_THREADS="1",
            )  # fmt: skip
    finally:
        scratch.unlink(missing_ok=True)
