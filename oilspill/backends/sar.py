"""The embedded backend: `oilspill.sar.detect` run in the CPU pool."""

from __future__ import annotations

import asyncio

import anyio.to_thread

from oilspill import sar
from oilspill.backends.base import Segmentation
from oilspill.backends.cpu import CpuPool
from oilspill.io.images import Raster
from oilspill.sar import oilnet


class LocalSegmenter:
    """The embedded classical SAR detector, run in the CPU pool."""

    name = "sar"
    decodes = True

    def __init__(self, cpu: CpuPool, pixel_size_m: float | None = None) -> None:
        self.cpu = cpu
        self.pixel_size_m = pixel_size_m

    async def segment(self, raster: Raster) -> Segmentation:
        return await self.cpu.run(segment_raster, raster, self.pixel_size_m)

    async def start(self) -> None:
        """Load the oil network (ONNX Runtime's import and session, ~0.1 s) before the
        first image, so that it is not the first image's wait: here, or in each worker
        process when images run in processes (one call per worker, all at once, starts
        them all; first, so that they fork from a process without other threads)."""
        if self.cpu.processes:
            await asyncio.gather(*(self.cpu.run_isolated(_warm) for _ in range(self.cpu.size)))
        else:
            await anyio.to_thread.run_sync(oilnet.load)

    async def aclose(self) -> None:
        return None


def _warm() -> None:
    """A worker process's first call: the detector's imports and the oil network's session."""
    oilnet.load()


def segment_raster(raster: Raster, pixel_size_m: float | None = None) -> Segmentation:
    """Detect in one decoded raster (blocking)."""
    form = "sigma0" if raster.fmt == "safe" else "auto"
    # The size the file states wins over the setting, which is for files that carry none.
    size = raster.pixel_size_m or pixel_size_m
    found = sar.detect(raster.pixels, pixel_size_m=size, georef=raster.georef, form=form)
    return Segmentation(
        found.mask, found.overlay, found.slicks, found.ships, found.info, quicklook=found.quicklook
    )
