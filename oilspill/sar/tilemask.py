"""The class mask of a big scene, held as deflated tiles instead of one array.

A 40,000 x 25,000 scene's mask is 1 GB as an array, but mostly sea: deflated
tile by tile it is a few MB. Tiles are put once by the tiled detector,
painted again where objects joined across borders changed class, and read
window by window by the mask writer (`oilspill.io.georef.write_cog_mask`).
`np.asarray(mask)` gives the whole array, for scenes that fit.
"""

from __future__ import annotations

import math
import threading
import zlib
from typing import Any

import cv2
import numpy as np


class TileMask:
    """A uint8 HxW mask as a grid of deflated `tile` x `tile` blocks (missing = 0)."""

    ndim = 2
    dtype = np.dtype(np.uint8)

    def __init__(self, shape: tuple[int, int], tile: int) -> None:
        self.shape = (int(shape[0]), int(shape[1]))
        self.tile = tile
        self._blocks: dict[tuple[int, int], bytes] = {}
        self._lock = threading.Lock()

    def _grid(self) -> tuple[int, int]:
        return math.ceil(self.shape[0] / self.tile), math.ceil(self.shape[1] / self.tile)

    def _block_shape(self, ty: int, tx: int) -> tuple[int, int]:
        h, w = self.shape
        return min(self.tile, h - ty * self.tile), min(self.tile, w - tx * self.tile)

    def block(self, ty: int, tx: int) -> np.ndarray:
        """One tile as an array (zeros where nothing was put)."""
        shape = self._block_shape(ty, tx)
        data = self._blocks.get((ty, tx))
        if data is None:
            return np.zeros(shape, np.uint8)
        return np.frombuffer(zlib.decompress(data), np.uint8).reshape(shape).copy()

    def put(self, y0: int, x0: int, values: np.ndarray) -> None:
        """Store values whose top-left is (y0, x0); tile-aligned blocks (the detector's cores)."""
        if y0 % self.tile or x0 % self.tile:
            raise ValueError("put takes tile-aligned blocks")
        ty, tx = y0 // self.tile, x0 // self.tile
        if values.shape != self._block_shape(ty, tx):
            raise ValueError(f"block {ty},{tx} must be {self._block_shape(ty, tx)}")
        data = zlib.compress(np.ascontiguousarray(values, np.uint8).data, 1)
        with self._lock:
            self._blocks[(ty, tx)] = data

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        rs, cs = key
        r0, r1, _ = rs.indices(self.shape[0])
        c0, c1, _ = cs.indices(self.shape[1])
        out = np.zeros((max(r1 - r0, 0), max(c1 - c0, 0)), np.uint8)
        t = self.tile
        for ty in range(r0 // t, (r1 - 1) // t + 1 if r1 > r0 else 0):
            for tx in range(c0 // t, (c1 - 1) // t + 1 if c1 > c0 else 0):
                if (ty, tx) not in self._blocks:
                    continue
                b = self.block(ty, tx)
                by0, bx0 = ty * t, tx * t
                y0, y1 = max(r0, by0), min(r1, by0 + b.shape[0])
                x0, x1 = max(c0, bx0), min(c1, bx0 + b.shape[1])
                out[y0 - r0 : y1 - r0, x0 - c0 : x1 - c0] = b[
                    y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0
                ]
        return out

    def paint(
        self, x0: int, y0: int, region: np.ndarray, value: int, where: tuple[int, ...]
    ) -> None:
        """Set `value` where `region` (top-left at x0, y0) is True and the mask is in `where`."""
        h, w = region.shape
        t = self.tile
        for ty in range(y0 // t, (y0 + h - 1) // t + 1):
            for tx in range(x0 // t, (x0 + w - 1) // t + 1):
                b = self.block(ty, tx)
                by0, bx0 = ty * t, tx * t
                ya, yb = max(y0, by0), min(y0 + h, by0 + b.shape[0])
                xa, xb = max(x0, bx0), min(x0 + w, bx0 + b.shape[1])
                if yb <= ya or xb <= xa:
                    continue
                view = b[ya - by0 : yb - by0, xa - bx0 : xb - bx0]
                sel = region[ya - y0 : yb - y0, xa - x0 : xb - x0] & np.isin(view, where)
                if sel.any():
                    view[sel] = value
                    self.put(by0, bx0, b)

    def count(self, value: int) -> int:
        """Pixels holding `value`, tile by tile."""
        value = int(value)  # see `count_value`
        gh, gw = self._grid()
        n = 0
        for ty in range(gh):
            for tx in range(gw):
                if (ty, tx) in self._blocks:
                    n += int(np.count_nonzero(self.block(ty, tx) == value))
                elif value == 0:
                    n += int(np.prod(self._block_shape(ty, tx)))
        return n

    def decimated(self, out_shape: tuple[int, int]) -> np.ndarray:
        """The mask at a smaller size (nearest neighbour), tile by tile."""
        oh, ow = out_shape
        h, w = self.shape
        out = np.zeros((oh, ow), np.uint8)
        gh, gw = self._grid()
        t = self.tile
        for ty in range(gh):
            oy0, oy1 = math.floor(ty * t * oh / h), math.floor(min(h, (ty + 1) * t) * oh / h)
            for tx in range(gw):
                ox0, ox1 = math.floor(tx * t * ow / w), math.floor(min(w, (tx + 1) * t) * ow / w)
                if (ty, tx) not in self._blocks or oy1 <= oy0 or ox1 <= ox0:
                    continue
                small = cv2.resize(
                    self.block(ty, tx), (ox1 - ox0, oy1 - oy0), interpolation=cv2.INTER_NEAREST
                )
                out[oy0:oy1, ox0:ox1] = small
        return out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = self[0 : self.shape[0], 0 : self.shape[1]]
        return whole if dtype is None else whole.astype(dtype)

    @property
    def stored_bytes(self) -> int:
        return sum(len(b) for b in self._blocks.values())


Mask = np.ndarray | TileMask  # what a detection's class mask may be


def count_value(mask: Mask, value: int) -> int:
    """Pixels of `mask` holding `value`, without a whole-scene temporary for a TileMask."""
    value = int(value)  # not an IntEnum member: NumPy would widen the mask (see `Cls`)
    if isinstance(mask, TileMask):
        return mask.count(value)
    return int(np.count_nonzero(mask == value))
