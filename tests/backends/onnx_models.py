"""Small ONNX models built in code (onnx.helper) whose answers are known, for the onnx backend.

- `dark_is_oil`: a 1×1 convolution giving sea and oil logits from the grey level, so
  that pixels darker than `threshold` (0..1) are oil, with a known probability.
- `dark_is_oil_labels`: the same, answering labels (ArgMax) instead of logits.
- `constant_yolo`: outputs shaped as a YOLO -seg export's, fixed in advance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
STEEPNESS = 8.0  # oil logit - sea logit = 2 * STEEPNESS * (threshold - grey / 255)


def oil_probability(grey: np.ndarray, threshold: float = 0.3) -> np.ndarray:
    """What `dark_is_oil` answers as oil probability for 8-bit grey pixels."""
    x = grey.astype(np.float64) / 255.0
    p: np.ndarray = 1.0 / (1.0 + np.exp(-2 * STEEPNESS * (threshold - x)))
    return p


def _save(path: Path, graph: onnx.GraphProto) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _image_input(size: int | None, channels: int = 1) -> onnx.ValueInfoProto:
    dims: list[int | str] = [1, channels, size, size] if size else ["N", channels, "H", "W"]
    return helper.make_tensor_value_info("image", TensorProto.FLOAT, dims)


def _logits_nodes(threshold: float) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """image (normalised 0..1) -> logits: sea = k(x - t), oil = k(t - x)."""
    k = STEEPNESS
    weight = np.array([k, -k], np.float32).reshape(2, 1, 1, 1)
    bias = np.array([-k * threshold, k * threshold], np.float32)
    inits = [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")]
    return [helper.make_node("Conv", ["image", "w", "b"], ["logits"])], inits


def dark_is_oil(path: Path, size: int | None = None, threshold: float = 0.3) -> Path:
    """A semantic model: 1×1×H×W grey in (free size unless `size`), 1×2×H×W logits out."""
    nodes, inits = _logits_nodes(threshold)
    dims: list[int | str] = [1, 2, size, size] if size else ["N", 2, "H", "W"]
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, dims)
    return _save(path, helper.make_graph(nodes, "dark_is_oil", [_image_input(size)], [out], inits))


def dark_is_oil_labels(path: Path, threshold: float = 0.3) -> Path:
    """The same model answering 1×H×W int64 labels (0 sea, 1 oil)."""
    nodes, inits = _logits_nodes(threshold)
    nodes.append(helper.make_node("ArgMax", ["logits"], ["labels"], axis=1, keepdims=0))
    out = helper.make_tensor_value_info("labels", TensorProto.INT64, ["N", "H", "W"])
    graph = helper.make_graph(nodes, "labels", [_image_input(None)], [out], inits)
    return _save(path, graph)


def constant_yolo(path: Path, pred: np.ndarray, protos: np.ndarray, size: int) -> Path:
    """A YOLO -seg-shaped model taking 1×3×size×size that always answers `pred`
    (1×(4+nc+32)×A) and `protos` (1×32×size/4×size/4), plus 0 × the input's mean."""
    zero = [
        helper.make_node("ReduceMean", ["image"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "nought"], ["zero"]),
    ]
    nodes = [
        *zero,
        helper.make_node("Add", ["pred", "zero"], ["output0"]),
        helper.make_node("Add", ["protos", "zero"], ["output1"]),
    ]
    inits = [
        numpy_helper.from_array(pred.astype(np.float32), "pred"),
        numpy_helper.from_array(protos.astype(np.float32), "protos"),
        numpy_helper.from_array(np.array(0.0, np.float32), "nought"),
    ]
    outputs = [
        helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(pred.shape)),
        helper.make_tensor_value_info("output1", TensorProto.FLOAT, list(protos.shape)),
    ]
    graph = helper.make_graph(nodes, "yolo_seg", [_image_input(size, 3)], outputs, inits)
    return _save(path, graph)


def odd_outputs(path: Path) -> Path:
    """A model whose output (1×84×8400, a detection-only YOLO) fits neither kind."""
    pred = np.zeros((1, 84, 8400), np.float32)
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["mean"], keepdims=0),
        helper.make_node("Add", ["pred", "mean"], ["output0"]),
    ]
    inits = [numpy_helper.from_array(pred, "pred")]
    out = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 84, 8400])
    graph = helper.make_graph(nodes, "odd", [_image_input(640, 3)], [out], inits)
    return _save(path, graph)
