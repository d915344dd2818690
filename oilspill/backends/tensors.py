"""Images into model tensors and model answers back into class maps, for model backends.

Shared by the backends that run a trained model (an ONNX file in process, a model
on an Open Inference Protocol server); nothing here knows how the model is run.

- `ModelInput.from_settings` resolves what the model takes: input size, channels,
  normalisation and the map from its classes to ours (`Cls`).
- `windows` cuts an image into overlapping tiles of the input size; `crop` gives a
  tile's pixels, padded (never stretched) when the image is smaller than the input.
- `to_tensor` turns an 8-bit tile into the model's 1×C×H×W float32 input.
- `semantic` decodes a segmentation answer (logits or labels) into our classes and
  an oil probability; `Stitcher` puts the tiles' answers back together.

The image a model sees is always `images.to_display(raster.pixels)`: 8-bit, grey
or BGR(A), the same for every backend.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from oilspill.config import Settings
from oilspill.errors import BackendError, ConfigError
from oilspill.sar.records import Cls

DEFAULT_SIZE = 512  # input side of a model whose input size is not fixed, without --model-size
OVERLAP = 64  # pixels neighbouring tiles share
CLASS_NAMES = {
    "sea": Cls.SEA,
    "oil": Cls.OIL,
    "lookalike": Cls.LOOKALIKE,
    "look-alike": Cls.LOOKALIKE,
    "ship": Cls.SHIP,
    "land": Cls.LAND,
    "-": Cls.SEA,  # a class of the model we ignore: counted as sea
}


@dataclass(frozen=True)
class ModelInput:
    """What a model takes, and what its classes mean to us."""

    size: tuple[int, int]  # (width, height) of one input tile, in pixels
    channels: int  # 1: grey; 3: RGB
    mean: tuple[float, ...]  # per channel, subtracted from 0..255 pixels
    std: tuple[float, ...]  # per channel, divides after the mean
    classes: tuple[Cls, ...]  # our class for each of the model's classes, in its order

    @classmethod
    def from_settings(
        cls, settings: Settings, model_shape: Sequence[object] | None = None
    ) -> ModelInput:
        """Resolve `--model-size`, `--model-channels`, `--model-mean/-std`, `--model-classes`.

        `model_shape` is the model's input shape as its runtime reports it (N, C, H, W):
        ints for fixed dimensions, anything else (None, a name, -1) for free ones. A fixed
        size wins over the default and must agree with `--model-size`; likewise channels,
        which are otherwise 3 when `--model-mean` or `--model-std` gives 3 values, else 1.
        Raises ConfigError naming the setting at fault.
        """
        fixed = _fixed_dims(model_shape)
        given = max(
            len(str(settings.model_mean).split(",")), len(str(settings.model_std).split(","))
        )
        channels = _channels(settings.model_channels, fixed[1], given)
        mean = _per_channel("--model-mean", settings.model_mean, channels)
        std = _per_channel("--model-std", settings.model_std, channels)
        if any(s == 0 for s in std):
            raise ConfigError(f"--model-std must not be 0, not {settings.model_std!r}")
        return cls(
            size=_size(settings.model_size, fixed[3], fixed[2]),
            channels=channels,
            mean=mean,
            std=std,
            classes=parse_classes(settings.model_classes),
        )

    @property
    def oil_classes(self) -> tuple[int, ...]:
        """Indices of the model's classes that are oil to us."""
        return tuple(i for i, c in enumerate(self.classes) if c == Cls.OIL)

    def check_classes(self, count: int) -> None:
        """Raise BackendError when the model has more classes than `--model-classes` names."""
        if count > len(self.classes):
            raise BackendError(
                f"the model gives {count} classes but --model-classes names "
                f"{len(self.classes)}: name ours for each of its classes, in order"
            )


def parse_classes(text: str) -> tuple[Cls, ...]:
    """`--model-classes` ('sea,oil,-,...') as our class per model class; '-' is sea."""
    names = [n.strip().lower() for n in text.split(",")]
    if not text.strip() or any(n not in CLASS_NAMES for n in names):
        bad = [n for n in names if n not in CLASS_NAMES]
        raise ConfigError(
            f"--model-classes must list, for each model class, one of sea, oil, lookalike, "
            f"ship, land or -; {', '.join(repr(b) for b in bad) or 'nothing'} is not"
        )
    return tuple(CLASS_NAMES[n] for n in names)


def _fixed_dims(shape: Sequence[object] | None) -> list[int | None]:
    """N, C, H, W of a model input shape, None where free; ConfigError unless 4-D."""
    if shape is None:
        return [None] * 4
    if len(shape) != 4:
        raise ConfigError(
            f"the model's input has shape {list(shape)}: model backends feed N×C×H×W images"
        )
    return [d if isinstance(d, int) and not isinstance(d, bool) and d > 0 else None for d in shape]


def _channels(setting: int, model: int | None, given: int) -> int:
    """The setting, else the model's, else as many as --model-mean/-std give (1 or 3)."""
    if setting not in (0, 1, 3):
        raise ConfigError(f"--model-channels must be 0 (from the model), 1 or 3, not {setting}")
    if model is not None and model not in (1, 3):
        raise ConfigError(f"the model takes {model} channels: only 1 (grey) or 3 (RGB) are fed")
    if setting and model is not None and setting != model:
        raise ConfigError(f"--model-channels {setting} but the model takes {model} channels")
    return setting or model or (3 if given == 3 else 1)


def _per_channel(flag: str, text: str, channels: int) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in str(text).split(","))
    except ValueError:
        raise ConfigError(f"{flag} must be comma-separated numbers, not {text!r}") from None
    if len(values) == 1:
        return values * channels
    if len(values) != channels:
        raise ConfigError(
            f"{flag} has {len(values)} values but the model takes {channels} channel(s): "
            "give one value, or one per channel"
        )
    return values


def _size(text: str, model_w: int | None, model_h: int | None) -> tuple[int, int]:
    """(width, height) from `--model-size` ('' / 'N' / 'WxH') and the model's fixed dims."""
    wanted: tuple[int, int] | None = None
    if text.strip():
        parts = text.lower().replace(" ", "").split("x")
        try:
            numbers = [int(p) for p in parts]
        except ValueError:
            numbers = []
        if len(numbers) not in (1, 2) or min(numbers) < 1:
            raise ConfigError(f"--model-size must be N or WxH (e.g. 512 or 640x480), not {text!r}")
        wanted = (numbers[0], numbers[-1])
    if wanted and (model_w or wanted[0], model_h or wanted[1]) != wanted:
        raise ConfigError(
            f"--model-size {wanted[0]}x{wanted[1]} does not fit the model, whose input is "
            f"{model_w or 'any'}x{model_h or 'any'} (WxH)"
        )
    default = wanted or (DEFAULT_SIZE, DEFAULT_SIZE)
    return model_w or default[0], model_h or default[1]


# Tiles ------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """One tile: the part of the image it covers, and the part its answer is kept for."""

    x: int  # the image region the tile covers (the tile is padded right and below
    y: int  # to the input size when the image is smaller than it)
    width: int
    height: int
    core: tuple[int, int, int, int]  # (x0, y0, x1, y1): where this tile's answer is kept

    @property
    def slices(self) -> tuple[slice, slice]:
        """The covered region as `image[rows, cols]` slices."""
        return slice(self.y, self.y + self.height), slice(self.x, self.x + self.width)


def windows(h: int, w: int, size: tuple[int, int], overlap: int = OVERLAP) -> list[Window]:
    """Tiles of `size` (width, height) covering an h×w image, neighbours sharing at least
    `overlap` pixels (at most half a tile). An image smaller than a tile along a side gets
    one tile along it, covering all of it (padded by `crop`, not stretched). Each tile's
    core runs to the middle of its overlaps, so the cores cut the image into a partition.
    """
    cols = _spans(w, size[0], overlap)
    rows = _spans(h, size[1], overlap)
    return [
        Window(x0, y0, x1 - x0, y1 - y0, (cx0, cy0, cx1, cy1))
        for y0, y1, cy0, cy1 in rows
        for x0, x1, cx0, cx1 in cols
    ]


def _spans(length: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(start, end, core start, core end) of the tiles along one axis, evenly spread."""
    if length <= tile:
        return [(0, length, 0, length)]
    overlap = max(0, min(overlap, tile // 2))
    n = math.ceil((length - overlap) / (tile - overlap))
    n = max(n, 2)
    starts = [round(i * (length - tile) / (n - 1)) for i in range(n)]
    cuts = [0] + [(starts[i] + tile + starts[i + 1]) // 2 for i in range(n - 1)] + [length]
    return [(s, s + tile, cuts[i], cuts[i + 1]) for i, s in enumerate(starts)]


def crop(image: np.ndarray, window: Window, size: tuple[int, int]) -> np.ndarray:
    """The window's pixels, padded with 0 right and below to `size` (width, height)."""
    part = image[window.slices]
    pad_h, pad_w = size[1] - part.shape[0], size[0] - part.shape[1]
    if pad_h <= 0 and pad_w <= 0:
        return part
    padded: np.ndarray = cv2.copyMakeBorder(
        np.ascontiguousarray(part), 0, max(pad_h, 0), 0, max(pad_w, 0), cv2.BORDER_CONSTANT, value=0
    )
    return padded


def to_tensor(tile: np.ndarray, spec: ModelInput) -> np.ndarray:
    """An 8-bit tile (grey, BGR or BGRA, as `to_display` gives) as the model's input:
    1×C×H×W float32, grey for 1 channel, RGB order for 3, each channel (x - mean) / std."""
    if spec.channels == 1:
        if tile.ndim == 3:
            code = cv2.COLOR_BGRA2GRAY if tile.shape[2] == 4 else cv2.COLOR_BGR2GRAY
            tile = cv2.cvtColor(tile, code) if tile.shape[2] in (3, 4) else tile[..., 0]
        planes = tile[None].astype(np.float32)
    else:
        if tile.ndim == 2:
            rgb = cv2.cvtColor(tile, cv2.COLOR_GRAY2RGB)
        elif tile.shape[2] == 4:
            rgb = cv2.cvtColor(tile, cv2.COLOR_BGRA2RGB)
        elif tile.shape[2] == 3:
            rgb = cv2.cvtColor(tile, cv2.COLOR_BGR2RGB)
        else:
            rgb = cv2.cvtColor(np.ascontiguousarray(tile[..., 0]), cv2.COLOR_GRAY2RGB)
        planes = rgb.transpose(2, 0, 1).astype(np.float32)
    mean = np.asarray(spec.mean, np.float32)[:, None, None]
    std = np.asarray(spec.std, np.float32)[:, None, None]
    planes -= mean
    planes /= std
    tensor: np.ndarray = np.ascontiguousarray(planes[None])
    return tensor


# Answers ----------------------------------------------------------------------


def semantic(output: np.ndarray, spec: ModelInput) -> tuple[np.ndarray, np.ndarray | None]:
    """One tile's segmentation answer as (our classes, uint8 H×W; oil probability, float32
    H×W or None), at the input size `spec.size` (resized when the model answers smaller).

    - N×K×H×W floats, K ≥ 2: logits, softmaxed over K (taken as they are when they
      already sum to 1, a softmax inside the graph). Each of our classes gets the summed
      probability of the model's classes mapped to it; a pixel's class is the likeliest
      of ours, its oil probability that of oil.
    - N×1×H×W floats: one logit of the model's class 1 against its class 0.
    - N×H×W, N×1×H×W integers (or N×H×W floats, rounded): labels; no probability.
    Only the first item of a batch is read. Raises BackendError for other shapes.
    """
    out = np.asarray(output)
    if out.ndim == 4 and out.shape[1] == 1 and np.issubdtype(out.dtype, np.floating):
        p1 = sigmoid(out[0, 0])
        probs = np.stack([1.0 - p1, p1])
        return _from_probs(probs, spec)
    if out.ndim == 4 and out.shape[1] >= 2:
        if not np.issubdtype(out.dtype, np.floating):
            raise BackendError(f"the model's {out.dtype} output {list(out.shape)} is no logits")
        spec.check_classes(out.shape[1])
        return _from_probs(_softmax(out[0].astype(np.float32, copy=False)), spec)
    if out.ndim in (2, 3, 4):
        return _from_labels(out[(0,) * (out.ndim - 2)], spec), None
    raise BackendError(
        f"the model answered a {list(out.shape)} tensor: a semantic model gives N×K×H×W "
        "logits or N×H×W labels"
    )


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """The logistic function, float32, without overflow warnings for large logits."""
    x = np.clip(logits.astype(np.float32, copy=False), -60.0, 60.0)
    p: np.ndarray = 1.0 / (1.0 + np.exp(-x))
    return p


def _softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over axis 0 (K×H×W), unless the values already are probabilities."""
    total = logits.sum(axis=0)
    if logits.min() >= 0 and float(np.abs(total - 1).max()) < 1e-3:
        return logits
    e: np.ndarray = np.exp(logits - logits.max(axis=0, keepdims=True))
    e /= e.sum(axis=0, keepdims=True)
    return e


def _from_probs(probs: np.ndarray, spec: ModelInput) -> tuple[np.ndarray, np.ndarray]:
    """K×h×w model-class probabilities as (our classes, oil probability) at the input size."""
    ours: dict[Cls, np.ndarray] = {}
    for k in range(probs.shape[0]):
        c = spec.classes[k]
        ours[c] = probs[k] if c not in ours else ours[c] + probs[k]
    width, height = spec.size
    classes = np.zeros((height, width), np.uint8)
    best = np.full((height, width), -1.0, np.float32)
    for c in sorted(ours):  # ascending: a tie goes to the lower class, sea first
        p: np.ndarray = ours[c].astype(np.float32, copy=False)
        if p.shape != (height, width):
            p = cv2.resize(p, (width, height), interpolation=cv2.INTER_LINEAR)
        ours[c] = p
        classes[p > best] = c
        np.maximum(best, p, out=best)
    oil = ours.get(Cls.OIL)
    return classes, np.zeros_like(best) if oil is None else np.ascontiguousarray(oil)


def _from_labels(labels: np.ndarray, spec: ModelInput) -> np.ndarray:
    """Model-class labels (h×w) as our classes at the input size."""
    if np.issubdtype(labels.dtype, np.floating):
        labels = np.rint(np.nan_to_num(labels, nan=0.0))
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= len(spec.classes):
        raise BackendError(
            f"the model answered class {lo if lo < 0 else hi}, but --model-classes names "
            f"{len(spec.classes)} classes (0..{len(spec.classes) - 1})"
        )
    lut = np.asarray([int(c) for c in spec.classes], np.uint8)
    classes: np.ndarray = lut[labels.astype(np.intp)]
    width, height = spec.size
    if classes.shape != (height, width):
        classes = cv2.resize(classes, (width, height), interpolation=cv2.INTER_NEAREST)
    return classes


class Stitcher:
    """The answers of a grid of tiles (`windows`) put together at full resolution.

    Each pixel takes the answer of the tile whose core holds it: the middle of the
    overlaps, where each tile had context on every side. This costs 5 bytes a pixel
    (class and oil probability) where blending K probabilities would cost 4K+4.
    """

    def __init__(self, h: int, w: int) -> None:
        self.classes = np.zeros((h, w), np.uint8)
        self.oil_prob: np.ndarray | None = None
        self._shape = (h, w)
        self._labels_only = False

    def add(self, window: Window, classes: np.ndarray, oil_prob: np.ndarray | None) -> None:
        """One tile's answer (at the tile's size, padding included, as `semantic` gives it)."""
        x0, y0, x1, y1 = window.core
        rows = slice(y0 - window.y, y1 - window.y)
        cols = slice(x0 - window.x, x1 - window.x)
        self.classes[y0:y1, x0:x1] = classes[rows, cols]
        if oil_prob is None:
            self._labels_only = True
            return
        if self.oil_prob is None:
            self.oil_prob = np.zeros(self._shape, np.float32)
        self.oil_prob[y0:y1, x0:x1] = oil_prob[rows, cols]

    def result(self) -> tuple[np.ndarray, np.ndarray | None]:
        """(classes uint8 H×W in `Cls`, oil probability float32 H×W or None for labels)."""
        return self.classes, None if self._labels_only else self.oil_prob
