"""An MLServer runtime for the v2 backend's tests: a real model whose outputs are known.

MLServer imports it in its own virtualenv (the `mlserver` fixture of test_v2.py starts it), so it
imports only numpy and mlserver, never oilspill. Per pixel, from the input's first channel
`x` (pixels scaled to 0..1), five class logits: sea `SLOPE * (x - EDGE)`, oil
`SLOPE * (EDGE - x)`, look-alike, ship and land `LOW`. Dark pixels are oil, bright ones sea,
and the oil probability is the softmax of those logits (`oil_probability` in the tests).

The model settings' `parameters.extra` choose a variant:
  "output": "logits" (N x 5 x H x W FP32, the default) or "labels" (N x H x W INT32 classes);
  "size": [H, W] for a model that takes only tiles of that size (anything else is a 400).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse

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


class OilModel(MLModel):
    async def load(self) -> bool:
        extra: dict[str, Any] = dict(self.settings.parameters.extra or {})
        self.output = str(extra.get("output", "logits"))
        size = extra.get("size")
        self.size = tuple(int(v) for v in size) if size else None
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        if len(payload.inputs) != 1:
            raise InferenceError(f"one input expected, got {len(payload.inputs)}")
        x = NumpyCodec.decode_input(payload.inputs[0])
        if x.ndim != 4:
            raise InferenceError(f"an N x C x H x W input expected, got shape {list(x.shape)}")
        if self.size is not None and tuple(x.shape[2:]) != self.size:
            raise InferenceError(f"this model takes {self.size} tiles, got {list(x.shape[2:])}")
        scores = logits(x)
        if self.output == "labels":
            out = NumpyCodec.encode_output("labels", scores.argmax(axis=1).astype(np.int32))
        else:
            out = NumpyCodec.encode_output("logits", scores)
        return InferenceResponse(model_name=self.name, outputs=[out])
