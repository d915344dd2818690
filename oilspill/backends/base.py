"""The segmenter contract: what goes into a backend and what comes out.

Every backend (the embedded SAR detector, a remote model server) takes a
`Raster` and returns a `Segmentation`. Nothing here does any work; it is the
shared vocabulary of the runner, the backends and the result writer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from oilspill.io.images import Raster
from oilspill.sar.records import Cls, Ship, Slick
from oilspill.sar.tilemask import Mask, count_value


@dataclass
class Segmentation:
    """What a segmenter found in one raster."""

    mask: Mask  # uint8 HxW class map (values of `Cls`), same size as the raster; or a TileMask
    overlay: np.ndarray  # uint8 BGR annotated image; may be a downscaled quicklook of huge inputs
    slicks: list[Slick] = field(default_factory=list)
    ships: list[Ship] = field(default_factory=list)
    # Detector name, version, thresholds, detected input form, warnings ("not SAR-like").
    info: dict[str, Any] = field(default_factory=dict)
    # The overlay already encoded, as (format, bytes), when a remote service sent it:
    # written as it came when that is the output format, instead of re-encoding it.
    overlay_file: tuple[str, bytes] | None = None
    # The input as the overlay shows it (same stretch), when the segmenter made one.
    quicklook: np.ndarray | None = None

    @property
    def oil_pixels(self) -> int:
        return count_value(self.mask, Cls.OIL)


class Segmenter(Protocol):
    """Turns one raster into a segmentation. Implementations must not block the event loop."""

    name: str

    async def segment(self, raster: Raster) -> Segmentation: ...

    async def aclose(self) -> None: ...
