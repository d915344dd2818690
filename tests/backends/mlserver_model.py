"""An MLServer runtime for the v2 backend's tests: a real model whose outputs are known.

MLServer imports it in its own virtualenv (the `mlserver` fixture of test_v2.py starts it),
so it imports only numpy, mlserver and `oil_logits` beside it (the model itself: dark pixels
are oil, bright ones sea), never oilspill. The oil probability is the softmax of those
logits (`oil_probability` in the tests).

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
from oil_logits import logits


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
