"""Big one-band rasters read window by window through GDAL (tiled or strip GeoTIFFs).

`TiffWindows(path)[r0:r1, c0:c1]` reads that window only, so a 25,000 x
17,000 scene is never in memory whole; tiles of the detector and the bands
of a decimated preview are cut from it. One GDAL handle, reads serialised.
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window

from oilspill.errors import ImageError

_DTYPES = {"uint8": np.uint8, "uint16": np.uint16, "float32": np.float32}


class TiffWindows:
    """A one-band TIFF as a window reader (see `oilspill.io.images.Windowed`)."""

    ndim = 2

    def __init__(self, path: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            try:
                self._src = rasterio.open(path)
            except RasterioError as exc:
                raise ImageError(f"GDAL cannot open the TIFF: {exc}") from exc
        if self._src.count != 1 or self._src.dtypes[0] not in (*_DTYPES, "int16", "float64"):
            self._src.close()
            raise ImageError("not a one-band TIFF of a type read by windows")
        self._out = np.dtype(_DTYPES.get(self._src.dtypes[0], np.float32))
        self._nodata = self._src.nodata
        self._lock = threading.Lock()

    @property
    def shape(self) -> tuple[int, int]:
        return int(self._src.height), int(self._src.width)

    @property
    def dtype(self) -> np.dtype[Any]:
        return self._out

    def close(self) -> None:
        self._src.close()

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        rs, cs = key
        h, w = self.shape
        r0, r1, _ = rs.indices(h)
        c0, c1, _ = cs.indices(w)
        with self._lock:
            block = self._src.read(1, window=Window(c0, r0, c1 - c0, r1 - r0))
        if block.dtype != self._out:
            block = block.astype(self._out)
        if self._nodata is not None and self._out.kind == "f" and np.isfinite(self._nodata):
            block[block == self._nodata] = np.nan
        out: np.ndarray = block
        return out
