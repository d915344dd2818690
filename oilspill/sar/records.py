"""The science's records: class values, and what the detector finds in one raster.

Plain data only. `Detection` is what `oilspill.sar.detect` returns; its slicks
and ships turn into JSON with `to_dict`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from oilspill.sar.tilemask import Mask, count_value


class Cls(enum.IntEnum):
    """Class values in masks: the scheme of the public Sentinel-1 oil spill dataset.

    Compare an array with `int(Cls.X)`, not the member: NumPy takes an IntEnum for an
    int64 array and widens the whole mask first (0.75 ms where 0.05 ms do at 1250x650).
    """

    SEA = 0  # open water, nothing found
    OIL = 1  # dark, sharp, strongly damped slick
    LOOKALIKE = 2  # dark area judged natural (low wind, biogenic film)
    SHIP = 3  # bright point target
    LAND = 4  # bright textured land, never oil
    NODATA = 255  # no measurement here (outside the swath, zero or NaN pixels)


@dataclass
class Slick:
    """One dark object: oil (class 1) or a look-alike (class 2), with its features."""

    id: int
    cls: int  # Cls.OIL or Cls.LOOKALIKE
    # 0..1, probability-like score that this object is oil; None from a model that gives
    # labels only (no score exists to report)
    confidence: float | None
    area_px: int
    centroid: tuple[float, float]  # (x, y) in pixels
    bbox: tuple[int, int, int, int]  # (x, y, width, height) in pixels
    polygon: list[tuple[float, float]]  # outline, (x, y) pixel coordinates (whole pixels: ints)
    perimeter_px: float = 0.0
    elongation: float = 0.0
    damping_db: float = 0.0
    area_km2: float | None = None
    length_m: float | None = None
    width_m: float | None = None
    possible_source: bool = False
    features: dict[str, float] = field(default_factory=dict)
    # Measured on the ground when the raster is georeferenced (oilspill.io.ground):
    perimeter_m: float | None = None
    centroid_lonlat: tuple[float, float] | None = None
    geometry: dict[str, Any] | None = None  # GeoJSON Polygon/MultiPolygon in lon/lat

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data, shallow: values are shared, not copied (a deep
        `asdict` of a slick's outline cost more than writing it)."""
        return {name: getattr(self, name) for name in _SLICK_FIELDS}


@dataclass
class Ship:
    """A bright point target found by CFAR."""

    x: float
    y: float
    contrast_db: float
    area_px: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _SHIP_FIELDS}


_SLICK_FIELDS = tuple(f.name for f in fields(Slick))
_SHIP_FIELDS = tuple(f.name for f in fields(Ship))


@dataclass
class Detection:
    """What the detector found in one raster."""

    # uint8 HxW class map (values of `Cls`), same size as the input; a TileMask (deflated
    # tiles, `np.asarray` for the array) when the scene was analysed in tiles.
    mask: Mask
    overlay: np.ndarray  # uint8 BGR annotated quicklook (downscaled for huge inputs)
    slicks: list[Slick] = field(default_factory=list)  # oil and look-alikes
    ships: list[Ship] = field(default_factory=list)
    # Detector name, version, thresholds, detected input form, warnings ("not SAR-like").
    info: dict[str, Any] = field(default_factory=dict)
    # The grey picture the overlay is drawn on (same size and stretch): the input as shown.
    quicklook: np.ndarray | None = None

    @property
    def oil_pixels(self) -> int:
        return count_value(self.mask, Cls.OIL)

    @property
    def land(self) -> np.ndarray:
        """Bool HxW, True on land."""
        land: np.ndarray = np.asarray(self.mask) == Cls.LAND
        return land
