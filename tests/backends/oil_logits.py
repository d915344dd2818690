"""The known model of the v2 tests, in NumPy only: imported by the MLServer runtime
(`mlserver_model.py`, in MLServer's own virtualenv) and by the tests that check its answers.

Per pixel, from the input's first channel `x` (pixels scaled to 0..1), five class logits:
sea `SLOPE * (x - EDGE)`, oil `SLOPE * (EDGE - x)`, look-alike, ship and land `LOW`. Dark
pixels are oil, bright ones sea.
"""

from __future__ import annotations

import numpy as np

EDGE = 0.3  # the input value where oil and sea are equally likely
SLOPE = 12.0
LOW = -8.0


def logits(x: np.ndarray) -> np.ndarray:
    """N x 5 x H x W class logits of N x C x H x W inputs."""
    first = x[:, 0].astype(np.float32)
    out = np.full((x.shape[0], 5, *first.shape[1:]), LOW, np.float32)
    out[:, 0] = SLOPE * (first - EDGE)
    out[:, 1] = SLOPE * (EDGE - first)
    return out
