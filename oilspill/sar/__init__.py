"""The SAR science, usable without the service: arrays in, plain records out.

    >>> from oilspill import sar
    >>> scene = sar.synth.make_scene(seed=3)
    >>> found = sar.detect(scene.image, pixel_size_m=10.0)
    >>> found.mask.shape == scene.image.shape
    True

`detect` takes one raster's values (or a window of a larger raster) and
returns a `Detection`: the class mask (`Cls`), the slicks with their features
and confidence, the ships, and what was learned about the input. Nothing here
touches HTTP or job folders; file reading and writing live in `oilspill.io`.
"""

from __future__ import annotations

from oilspill.io.georef import Georef
from oilspill.sar import synth
from oilspill.sar.pipeline import detect
from oilspill.sar.records import Cls, Detection, Ship, Slick

__all__ = ["Cls", "Detection", "Georef", "Ship", "Slick", "detect", "synth"]
