"""The onnx backend: a trained model (`--model FILE.onnx`) run in process by onnxruntime.

The model is loaded once; its one session is shared by the CPU pool's threads
(onnxruntime's `run` is thread-safe), each run on one thread of its own so that the
pool's size stays the parallelism. Two kinds of models are understood, told apart
by their outputs unless `--model-kind` names it:

- semantic: N×C×H×W in, N×K×H×W logits or N×H×W labels out. Images are cut into
  overlapping tiles of the input size and the answers stitched (`tensors`).
- yolo: the `-seg` exports of YOLOv8/YOLO11 (`yolo export format=onnx`): boxes, class
  scores and mask coefficients (1×(4+nc+32)×A) and mask prototypes (1×32×H/4×W/4).
  The image is letterboxed to the input size (tiled first when it is over twice the
  input along a side), detections are kept above `--model-conf`, class-wise NMS at
  `--model-iou`, and each mask is pasted back at full resolution inside its box.
  A pixel's oil probability is the highest oil score of the detections whose masks
  cover it: an oil detection's own score (so a slick's confidence is its mean score),
  a look-alike's score for the model's oil class.

What the model found is measured as the detector's findings are (`base.from_labels`).
"""

from __future__ import annotations

import importlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from oilspill.backends.base import Segmentation, from_labels
from oilspill.backends.cpu import CpuPool
from oilspill.backends.tensors import (
    ModelInput,
    Stitcher,
    Window,
    crop,
    semantic,
    sigmoid,
    to_tensor,
    windows,
)
from oilspill.config import Settings
from oilspill.errors import BackendError, ConfigError
from oilspill.io import images
from oilspill.io.images import Raster
from oilspill.sar.records import Cls

log = logging.getLogger(__name__)

LETTERBOX_GREY = 114  # the padding YOLO models are trained with
MAX_DETECTIONS = 300  # per letterboxed image, as ultralytics keeps
_DEFAULT_CLASSES = Settings.model_classes  # the field's default, read off the class
_INPUT_TYPES: dict[str, np.dtype[Any]] = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(float16)": np.dtype(np.float16),
}


class OnnxSegmenter:
    """An ONNX model in process, run in the CPU pool."""

    name = "onnx"
    decodes = True  # the model sees the decoded pixels

    def __init__(self, cpu: CpuPool, settings: Settings) -> None:
        self.cpu = cpu
        self.pixel_size_m = settings.pixel_size_m
        self.model = load_model(settings)

    async def segment(self, raster: Raster) -> Segmentation:
        return await self.cpu.run(segment_raster, self.model, raster, self.pixel_size_m)

    async def start(self) -> None:
        return None  # the model is loaded when the backend is made

    async def aclose(self) -> None:
        return None


@dataclass(frozen=True)
class Model:
    """A loaded model and how to read it."""

    session: Any  # onnxruntime.InferenceSession (onnxruntime ships no type hints)
    path: Path
    kind: str  # "semantic" or "yolo"
    spec: ModelInput
    input_name: str
    input_dtype: np.dtype[Any]
    fetch: tuple[str, ...]  # the outputs read: the class map; or the boxes, the prototypes
    providers: tuple[str, ...]
    conf: float = 0.25
    iou: float = 0.45

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        """The outputs `fetch` names for one 1×C×H×W tensor (blocking)."""
        try:
            outputs: list[np.ndarray] = self.session.run(
                list(self.fetch), {self.input_name: tensor.astype(self.input_dtype, copy=False)}
            )
        except Exception as exc:  # onnxruntime's errors share no base class but Exception
            raise BackendError(f"the model {self.path.name} failed: {_first_line(exc)}") from exc
        return outputs


def load_model(settings: Settings) -> Model:
    """Load `--model` once; raise ConfigError when it cannot be run as configured."""
    ort = _onnxruntime()
    path = Path(settings.model).expanduser()
    if not path.is_file():
        raise ConfigError(f"--model {path}: no such file")
    providers = ["CPUExecutionProvider"]
    if settings.device == "cuda":
        available = ort.get_available_providers()
        if "CUDAExecutionProvider" not in available:
            raise ConfigError(
                "--device cuda needs onnxruntime-gpu (pip uninstall onnxruntime; pip install "
                f"onnxruntime-gpu); this onnxruntime offers {', '.join(available)}"
            )
        providers.insert(0, "CUDAExecutionProvider")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # the CPU pool's threads are the parallelism
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # InvalidProtobuf, Fail, NoSuchFile...: all mean "not loadable"
        raise ConfigError(
            f"--model {path} is not an ONNX model onnxruntime can load: {_first_line(exc)}"
        ) from exc
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or inputs[0].type not in _INPUT_TYPES:
        found = ", ".join(f"{i.name} {i.type} {list(i.shape)}" for i in inputs)
        raise ConfigError(f"--model {path.name} must take one float image tensor; it takes {found}")
    shape = list(inputs[0].shape)
    spec = ModelInput.from_settings(settings, shape)
    if isinstance(shape[0], int) and shape[0] > 1:
        raise ConfigError(
            f"--model {path.name} takes batches of exactly {shape[0]}: export it with a batch "
            "of 1 or a free one"
        )
    shapes = [list(o.shape) for o in outputs]
    kind = model_kind(settings.model_kind, shape, shapes)
    fetch: tuple[str, ...] = (outputs[0].name,)
    if kind == "yolo":  # the boxes' table, then the prototypes
        fetch = (
            next(o.name for o in outputs if len(o.shape) == 3),
            next(o.name for o in outputs if len(o.shape) == 4),
        )
        if settings.model_classes == _DEFAULT_CLASSES:
            log.warning(
                "onnx model %s: YOLO models have no background class, but --model-classes "
                "maps their class 0 to sea (ignored); name ours for each of its classes",
                path.name,
            )
    _check_classes(kind, shapes, spec, path)
    used = tuple(session.get_providers())
    if settings.device == "cuda" and "CUDAExecutionProvider" not in used:
        log.warning("onnx model %s: CUDA was asked for but runs on %s", path.name, used)
    log.info(
        "onnx model %s: %s, input %dx%d, %d channel(s), providers %s",
        path.name,
        kind,
        *spec.size,
        spec.channels,
        ", ".join(used),
    )
    return Model(
        session,
        path,
        kind,
        spec,
        inputs[0].name,
        _INPUT_TYPES[inputs[0].type],
        fetch,
        used,
        settings.model_conf,
        settings.model_iou,
    )


def _onnxruntime() -> Any:
    try:  # imported by name: onnxruntime ships no type hints
        return importlib.import_module("onnxruntime")
    except ImportError:  # a dependency, but onnxruntime-gpu replaces it and can be missing
        raise ConfigError(
            "--backend onnx needs onnxruntime, which does not import here: "
            "pip install onnxruntime (or onnxruntime-gpu for --device cuda)"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def model_kind(setting: str, input_shape: list[Any], shapes: list[list[Any]]) -> str:
    """'semantic' or 'yolo': `setting` unless 'auto', else what the output shapes fit."""
    ranks = [len(s) for s in shapes]
    yolo = 3 in ranks and 4 in ranks
    if setting == "yolo" and not yolo:
        raise ConfigError(
            f"--model-kind yolo needs the outputs of a -seg export (1×(4+nc+32)×A and "
            f"1×32×H/4×W/4); this model's are {shapes}"
        )
    if setting in ("semantic", "yolo"):
        return setting
    if yolo:
        return "yolo"
    if shapes and ranks[0] in (3, 4) and _fits_input(shapes[0][-2:], input_shape[-2:]):
        return "semantic"
    raise ConfigError(
        f"the outputs of this model, of shapes {shapes} (input {input_shape}), fit neither a "
        "semantic model (N×K×H×W logits or N×H×W labels) nor a YOLO -seg export "
        "(1×(4+nc+32)×A and 1×32×H/4×W/4); if it is one of them, say which with "
        "--model-kind semantic or --model-kind yolo"
    )


def _fits_input(out_hw: list[Any], in_hw: list[Any]) -> bool:
    """An output's H, W fit the input's: free, or the input's divided by a whole number."""
    for out, inp in zip(out_hw, in_hw, strict=True):
        if isinstance(out, int) and isinstance(inp, int) and (out < 1 or inp % out):
            return False
    return True


def _check_classes(kind: str, shapes: list[list[Any]], spec: ModelInput, path: Path) -> None:
    """A model with more classes than `--model-classes` names is refused at start."""
    count: Any = None
    if kind == "semantic" and len(shapes[0]) == 4 and isinstance(shapes[0][1], int):
        count = shapes[0][1] if shapes[0][1] > 1 else None
    if kind == "yolo":
        pred = next(s for s in shapes if len(s) == 3)
        protos = next(s for s in shapes if len(s) == 4)
        if all(isinstance(d, int) for d in (*pred[1:], protos[1])):
            channels = pred[2] if pred[1] < 5 + protos[1] <= pred[2] else pred[1]
            count = channels - 4 - protos[1]
    if isinstance(count, int) and count > len(spec.classes):
        raise ConfigError(
            f"--model {path.name} has {count} classes but --model-classes names "
            f"{len(spec.classes)}: name ours for each of its classes, in order"
        )


# One image -------------------------------------------------------------------


def segment_raster(model: Model, raster: Raster, pixel_size_m: float | None = None) -> Segmentation:
    """Run the model over one decoded raster and measure what it found (blocking)."""
    if not isinstance(raster.pixels, np.ndarray):
        # from_labels refuses window readers with the words every model backend uses.
        return from_labels(raster, np.zeros((0, 0), np.uint8), None, {}, pixel_size_m)
    started = time.perf_counter()
    display = images.to_display(raster.pixels)
    clock = _Clock()
    oil_prob: np.ndarray | None
    if model.kind == "yolo":
        classes, oil_prob, extra = _run_yolo(model, display, clock)
    else:
        classes, oil_prob, extra = _run_semantic(model, display, clock)
    decoded = time.perf_counter()
    timings = {
        "model": round(clock.seconds * 1000, 1),
        "decode": round((decoded - started - clock.seconds) * 1000, 1),
    }
    info: dict[str, Any] = {
        "backend": "onnx",
        "model": model.path.name,
        "model_kind": model.kind,
        "input_size": list(model.spec.size),
        "channels": model.spec.channels,
        "providers": list(model.providers),
        **extra,
        "timings_ms": timings,
    }
    seg = from_labels(raster, classes, oil_prob, info, pixel_size_m)
    timings["measure"] = round((time.perf_counter() - decoded) * 1000, 1)
    return seg


class _Clock:
    """Time spent in the model."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def run(self, model: Model, tensor: np.ndarray) -> list[np.ndarray]:
        start = time.perf_counter()
        try:
            return model.run(tensor)
        finally:
            self.seconds += time.perf_counter() - start


def _run_semantic(
    model: Model, display: np.ndarray, clock: _Clock
) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    h, w = display.shape[:2]
    spec = model.spec
    stitcher = Stitcher(h, w)
    tiles = windows(h, w, spec.size)
    for window in tiles:
        outputs = clock.run(model, to_tensor(crop(display, window, spec.size), spec))
        stitcher.add(window, *semantic(outputs[0], spec))
    classes, oil_prob = stitcher.result()
    return classes, oil_prob, {"tiles": len(tiles)}


# YOLO segmentation -----------------------------------------------------------


@dataclass(frozen=True)
class Letterbox:
    """An image scaled to fit the input size, aspect kept, padded around with grey."""

    image: np.ndarray  # the input-sized image
    scale: tuple[float, float]  # (x, y) input pixels per image pixel
    pad: tuple[int, int]  # (left, top) padding, in input pixels


def letterbox(image: np.ndarray, size: tuple[int, int]) -> Letterbox:
    """`image` scaled by the largest factor that fits `size` (width, height), centred."""
    h, w = image.shape[:2]
    r = min(size[0] / w, size[1] / h)
    nw, nh = max(1, round(w * r)), max(1, round(h * r))
    scaled = (
        image if (nw, nh) == (w, h) else cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    )
    left, top = (size[0] - nw) // 2, (size[1] - nh) // 2
    channels = 1 if image.ndim == 2 else image.shape[2]
    padded: np.ndarray = cv2.copyMakeBorder(
        np.ascontiguousarray(scaled),
        top,
        size[1] - nh - top,
        left,
        size[0] - nw - left,
        cv2.BORDER_CONSTANT,
        value=(LETTERBOX_GREY,) * channels,
    )
    return Letterbox(padded, (nw / w, nh / h), (left, top))


@dataclass(frozen=True)
class Detection:
    """One YOLO detection in image pixels, with its mask inside its box."""

    box: tuple[float, float, float, float]  # x, y, width, height
    score: float
    model_class: int
    oil_score: float  # its score for the model's oil classes (the max of them), 0 if none
    origin: tuple[int, int]  # (x, y) of the mask's top-left pixel
    mask: np.ndarray  # bool, the box's pixels (clipped to the image)


def yolo_detections(
    pred: np.ndarray,
    protos: np.ndarray,
    lb: Letterbox,
    image_hw: tuple[int, int],
    spec: ModelInput,
    conf: float,
    iou: float,
    offset: tuple[int, int] = (0, 0),
) -> list[Detection]:
    """The detections of one letterboxed image of size `image_hw`, after the score
    threshold and class-wise NMS, with masks; in image pixels shifted by `offset`."""
    if protos.ndim != 4 or pred.ndim != 3:
        raise BackendError(
            f"a YOLO -seg model gives 1×(4+nc+32)×A and 1×32×H/4×W/4, not {list(pred.shape)} "
            f"and {list(protos.shape)}"
        )
    nm, mh, mw = protos.shape[1:]
    table = pred[0].astype(np.float32, copy=False)
    if table.shape[0] < 5 + nm <= table.shape[1]:
        table = table.T  # an A×(4+nc+32) export
    nc = table.shape[0] - 4 - nm
    if nc < 1:
        raise BackendError(f"the YOLO output {list(pred.shape)} holds no class scores")
    spec.check_classes(nc)
    scores = table[4 : 4 + nc]
    best = np.argmax(scores, axis=0)
    score = scores[best, np.arange(scores.shape[1])]
    keep = np.flatnonzero(score >= conf)
    if keep.size == 0:
        return []
    cx, cy, bw, bh = table[:4, keep]
    (sx, sy), (left, top) = lb.scale, lb.pad
    x0, y0 = (cx - bw / 2 - left) / sx, (cy - bh / 2 - top) / sy
    rects = np.stack([x0, y0, bw / sx, bh / sy], axis=1).astype(np.float64)
    found = cv2.dnn.NMSBoxesBatched(
        rects.tolist(), score[keep].tolist(), best[keep].tolist(), conf, iou
    )
    chosen = keep[np.asarray(found, np.intp).reshape(-1)][:MAX_DETECTIONS]
    rects = rects[np.asarray(found, np.intp).reshape(-1)][:MAX_DETECTIONS]
    if chosen.size == 0:
        return []
    coeffs = table[4 + nc :, chosen].T  # n×nm
    logits = coeffs @ protos[0].astype(np.float32, copy=False).reshape(nm, -1)
    maps = sigmoid(logits).reshape(-1, mh, mw)
    oil = list(spec.oil_classes)
    height, width = image_hw
    # From an image pixel (its centre) to the prototype grid: image -> input -> prototypes.
    kx, ky = mw / lb.image.shape[1], mh / lb.image.shape[0]
    out = []
    for i, a in enumerate(chosen):
        bx, by, bwid, bhgt = (float(v) for v in rects[i])
        ix0, iy0 = max(0, round(bx)), max(0, round(by))
        ix1, iy1 = min(width, round(bx + bwid)), min(height, round(by + bhgt))
        if ix1 <= ix0 or iy1 <= iy0:
            continue
        affine = np.array(
            [
                [sx * kx, 0.0, ((ix0 + 0.5) * sx + left) * kx - 0.5],
                [0.0, sy * ky, ((iy0 + 0.5) * sy + top) * ky - 0.5],
            ]
        )
        warped = cv2.warpAffine(
            maps[i],
            affine,
            (ix1 - ix0, iy1 - iy0),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
        out.append(
            Detection(
                (bx + offset[0], by + offset[1], bwid, bhgt),
                float(score[a]),
                int(best[a]),
                float(scores[oil, a].max()) if oil else 0.0,
                (ix0 + offset[0], iy0 + offset[1]),
                np.asarray(warped > 0.5),
            )
        )
    return out


def merge(detections: list[Detection], iou: float) -> list[Detection]:
    """Class-wise NMS across tiles: a slick seen by two overlapping tiles is kept once."""
    if len(detections) < 2:
        return detections
    rects = [list(d.box) for d in detections]
    scores = [d.score for d in detections]
    classes = [d.model_class for d in detections]
    kept = cv2.dnn.NMSBoxesBatched(rects, scores, classes, 0.0, iou)
    return [detections[i] for i in np.asarray(kept, np.intp).reshape(-1)]


def paste(
    detections: list[Detection], h: int, w: int, spec: ModelInput
) -> tuple[np.ndarray, np.ndarray]:
    """The detections' masks as our classes (h×w; the strongest wins where they overlap)
    and an oil probability: where a mask is, the detection's oil score (max over them)."""
    classes = np.full((h, w), Cls.SEA, np.uint8)
    oil_prob = np.zeros((h, w), np.float32)
    for d in sorted(detections, key=lambda d: d.score):
        ours = spec.classes[d.model_class]
        if ours == Cls.SEA:  # a class we ignore, or the model's background
            continue
        x, y = d.origin
        region = (slice(y, y + d.mask.shape[0]), slice(x, x + d.mask.shape[1]))
        classes[region][d.mask] = ours
        probs = oil_prob[region]
        probs[d.mask] = np.maximum(probs[d.mask], d.oil_score)
    return classes, oil_prob


def _run_yolo(
    model: Model, display: np.ndarray, clock: _Clock
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    h, w = display.shape[:2]
    spec = model.spec
    size = spec.size
    if w > 2 * size[0] or h > 2 * size[1]:
        tiles = windows(h, w, size)
    else:
        tiles = [Window(0, 0, w, h, (0, 0, w, h))]
    found: list[Detection] = []
    for window in tiles:
        part = display[window.slices]
        lb = letterbox(part, size)
        outputs = clock.run(model, to_tensor(lb.image, spec))
        pred, protos = outputs
        found += yolo_detections(
            pred, protos, lb, part.shape[:2], spec, model.conf, model.iou, (window.x, window.y)
        )
    if len(tiles) > 1:
        found = merge(found, model.iou)
    classes, oil_prob = paste(found, h, w, spec)
    extra = {"tiles": len(tiles), "detections": len(found), "conf": model.conf, "iou": model.iou}
    return classes, oil_prob, extra
