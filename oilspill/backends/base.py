"""The segmenter contract: what goes into a backend and what comes out.

Every backend (the embedded SAR detector, a remote model server) takes a
`Raster` and returns a `Segmentation`. Nothing here does any work; it is the
shared vocabulary of the runner, the backends and the result writer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from oilspill.errors import ImageError
from oilspill.io.images import Raster
from oilspill.sar import labels
from oilspill.sar.records import Cls, Ship, Slick
from oilspill.sar.tilemask import Mask, count_value


@dataclass
class Segmentation:
    """What a segmenter found in one raster.

    A backend that only gets an annotated picture back (a model server of the earlier
    API) has no mask: `mask` is None, and so are the counts that would come from it.
    """

    # uint8 HxW class map (values of `Cls`), same size as the raster; or a TileMask; None
    # when the backend gives no mask.
    mask: Mask | None
    # uint8 BGR annotated image; may be a downscaled quicklook of huge inputs. None when
    # `overlay_file` holds it, as a remote service sent it.
    overlay: np.ndarray | None
    slicks: list[Slick] = field(default_factory=list)
    ships: list[Ship] = field(default_factory=list)
    # Detector name, version, thresholds, detected input form, warnings ("not SAR-like").
    info: dict[str, Any] = field(default_factory=dict)
    # The overlay already encoded, as (format, bytes), when a remote service sent it:
    # written as it came when that is the output format, instead of re-encoding it.
    overlay_file: tuple[str, bytes] | None = None
    # The input as the overlay shows it (same stretch), when the segmenter made one.
    quicklook: np.ndarray | None = None
    # The class mask as a PNG of class ids and the quicklook as a JPEG, when a remote
    # service sent them encoded (written as they came).
    mask_png: bytes | None = None
    quicklook_jpeg: bytes | None = None
    # The page's thumbnail and the mask's colour preview, when a remote service sent them.
    thumbnail_jpeg: bytes | None = None
    mask_preview_png: bytes | None = None

    @property
    def oil_pixels(self) -> int | None:
        return None if self.mask is None else count_value(self.mask, Cls.OIL)


class Segmenter(Protocol):
    """Turns one raster into a segmentation. Implementations must not block the event loop.

    `decodes` False: the backend sends the file itself (`raster.source`), so the runner
    hands it a raster read from the header only (`images.header`), decoded if touched.
    """

    name: str
    decodes: bool

    async def start(self) -> None:
        """Check the backend can work (a remote model is there and ready); ConfigError,
        saying what to do, when it cannot. Called once before the service takes jobs."""
        ...

    async def segment(self, raster: Raster) -> Segmentation: ...

    async def aclose(self) -> None: ...


def from_labels(
    raster: Raster,
    classes: np.ndarray,
    oil_prob: np.ndarray | None,
    info: dict[str, Any],
    pixel_size_m: float | None = None,
) -> Segmentation:
    """A model's class map of `raster` (HxW `Cls` values; `oil_prob` its oil probability,
    or None) measured into slicks, ships and an overlay, as the detector's are (blocking)."""
    if not isinstance(raster.pixels, np.ndarray):
        raise ImageError(
            "model backends take images that fit in memory: Sentinel-1 products and rasters "
            "read by windows need --backend sar"
        )
    form = "sigma0" if raster.fmt == "safe" else "auto"
    found = labels.describe(
        raster.pixels,
        classes,
        oil_prob=oil_prob,
        pixel_size_m=raster.pixel_size_m or pixel_size_m,
        georef=raster.georef,
        form=form,
        info=info,
    )
    return Segmentation(
        found.mask, found.overlay, found.slicks, found.ships, found.info, quicklook=found.quicklook
    )
