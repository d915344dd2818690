"""Segmenter backends, one module each: the embedded SAR detector (`sar`), model servers
speaking the earlier system's `/segment` API (`http`), an ONNX model in process (`onnx`)
and a model on an Open Inference Protocol server (`v2`: KServe, Triton, MLServer).

Each satisfies `base.Segmenter`; CPU work goes through `cpu.CpuPool`. The onnx and v2
modules are imported only when chosen (onnxruntime is an optional extra).
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
        return HttpSegmenter(cpu, settings)
    if settings.backend == "onnx":
        from oilspill.backends.onnx import OnnxSegmenter

        return OnnxSegmenter(cpu, settings)
    if settings.backend == "v2":
        from oilspill.backends.v2 import V2Segmenter

        return V2Segmenter(cpu, settings)
    return LocalSegmenter(cpu, settings.pixel_size_m)
