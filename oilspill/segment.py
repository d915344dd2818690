"""The segmentation contract: what goes into a segmenter and what comes out.

Every backend (the embedded SAR detector, a remote model server) takes a
`Raster` and returns a `Segmentation`. Nothing here does any work; it is the
shared vocabulary of the runner, the backends and the result writer.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np


class Cls(enum.IntEnum):
    """Class values in masks: the scheme of the public Sentinel-1 oil spill dataset."""

    SEA = 0  # open water, nothing found
    OIL = 1  # dark, sharp, strongly damped slick
    LOOKALIKE = 2  # dark area judged natural (low wind, biogenic film)
    SHIP = 3  # bright point target
    LAND = 4  # bright textured land, never oil


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


@dataclass
class Raster:
    """One decoded input image: pixels as the file holds them, plus where it lies."""

    pixels: np.ndarray  # HxW or HxWxC; uint8, uint16 or float32, channels BGR(A)
    name: str  # the name the user gave it (decoded, may include folders)
    fmt: str  # real container format found by content: png, jpeg, webp, bmp, tiff
    georef: Georef | None = None
    source: Path | None = None  # the file it was decoded from, for backends that send files

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.pixels.shape[0]), int(self.pixels.shape[1])


@dataclass
class Slick:
    """One dark object: oil (class 1) or a look-alike (class 2), with its features."""

    id: int
    cls: int  # Cls.OIL or Cls.LOOKALIKE
    confidence: float  # 0..1, probability-like score that this object is oil
    area_px: int
    centroid: tuple[float, float]  # (x, y) in pixels
    bbox: tuple[int, int, int, int]  # (x, y, width, height) in pixels
    polygon: list[tuple[float, float]]  # outline, (x, y) pixel coordinates
    perimeter_px: float = 0.0
    elongation: float = 0.0
    damping_db: float = 0.0
    area_km2: float | None = None
    length_m: float | None = None
    width_m: float | None = None
    possible_source: bool = False
    features: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Ship:
    """A bright point target found by CFAR."""

    x: float
    y: float
    contrast_db: float
    area_px: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Segmentation:
    """What a segmenter found in one raster."""

    mask: np.ndarray  # uint8 HxW class map (values of `Cls`), same size as the raster
    overlay: np.ndarray  # uint8 BGR annotated image; may be a downscaled quicklook of huge inputs
    slicks: list[Slick] = field(default_factory=list)
    ships: list[Ship] = field(default_factory=list)
    # Detector name, version, thresholds, detected input form, warnings ("not SAR-like").
    info: dict[str, Any] = field(default_factory=dict)
    # The overlay already encoded, as (format, bytes), when a remote service sent it:
    # written as it came when that is the output format, instead of re-encoding it.
    overlay_file: tuple[str, bytes] | None = None

    @property
    def oil_pixels(self) -> int:
        return int(np.count_nonzero(self.mask == Cls.OIL))


class Segmenter(Protocol):
    """Turns one raster into a segmentation. Implementations must not block the event loop."""

    name: str

    async def segment(self, raster: Raster) -> Segmentation: ...

    async def aclose(self) -> None: ...
