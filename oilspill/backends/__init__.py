"""Segmenter backends: the embedded SAR detector (`sar`) or a remote model server (`http`).

Each satisfies `base.Segmenter`; CPU work goes through `cpu.CpuPool`.
"""

from __future__ import annotations

from oilspill.backends.base import Segmentation, Segmenter
from oilspill.backends.cpu import CpuPool
from oilspill.backends.http import HttpSegmenter
from oilspill.backends.sar import LocalSegmenter
from oilspill.config import Settings

__all__ = ["CpuPool", "Segmentation", "Segmenter", "make_segmenter"]


def make_segmenter(settings: Settings, cpu: CpuPool) -> Segmenter:
    """The backend the settings name."""
    if settings.backend == "http":
        return HttpSegmenter(cpu, settings.ml_url, settings.ml_timeout, settings.ml_concurrency)
    return LocalSegmenter(cpu, settings.pixel_size_m)
