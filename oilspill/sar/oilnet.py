"""The oil network: each pixel's probability of oil, from a small CNN run by OpenCV.

The network (`models/oilnet.onnx`, trained by `train/train_oilnet.py` on the SOS
dataset's Sentinel-1 training split and on synthetic scenes) sees an 8-bit
quicklook as the public oil-spill datasets store them: grey linear in dB. An
8-bit input is given to it as it is; other forms (amplitude, σ0) are written as
such a quicklook would be: GREY_PER_DB grey levels per dB, the scene's 90th
percentile at grey P90_GREY (one level for a whole scene, so that its tiles
agree). The 90th percentile, not the median: in a patch mostly covered by oil
the median is oil, and the network, like a person, judges oil by how dark it is
against the sea; the brightest tenth is sea unless oil covers 90 % of the scene.
`models/oilnet.json` holds what the weights need:
the input multiple, the output scale, the oil threshold and the calibration
that turns an object's mean probability into a confidence.

It runs on ONNX Runtime, one session for the process (its `run` is safe to call
from several threads), each call on one thread: a service worker uses one core,
and two workers both. ONNX Runtime's convolutions run this network in 22 ms for
a 1250x650 scene where OpenCV's `cv2.dnn` took 40 ms, with the same outputs to
1e-5. Its output step is one DepthToSpace (`train/depth_to_space.py`), ~1.5 ms less
than the reshape/transpose it replaced, for the same logits bit for bit. The
session is made on first use, or ahead of it by `load()`.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from oilspill.sar import quantiles
from oilspill.sar.forms import SarImage

MODEL_DIR = Path(__file__).parent / "models"
GREY_PER_DB = 6.25  # the middle of what quicklooks use (synthetic: 5-7.5)
# Quicklooks put the sea's median near grey 137; with 3-4 looks of speckle the 90th
# percentile lies ~3.6 dB (22 grey levels) above it.
P90_GREY = 159.0
_lock = threading.Lock()
_session: Any = None


@dataclass(frozen=True)
class NetInfo:
    """What `models/oilnet.json` says about the shipped weights."""

    multiple: int  # input height and width must be multiples of this
    output_scale: int  # 1: logits at full resolution; 2: at half
    threshold: float  # pixel probability above which a pixel is oil
    calib_a: float  # confidence = sigmoid(a * logit(mean p) + b), fitted on real validation data
    calib_b: float
    raw: dict[str, Any]


@cache
def info() -> NetInfo:
    raw = json.loads((MODEL_DIR / "oilnet.json").read_text(encoding="utf-8"))
    cal = raw.get("calibration", {})
    return NetInfo(
        multiple=int(raw["input_multiple"]),
        output_scale=int(raw["output_scale"]),
        threshold=float(raw["threshold"]),
        calib_a=float(cal.get("a", 1.0)),
        calib_b=float(cal.get("b", 0.0)),
        raw=raw,
    )


def load() -> Any:
    """The process's ONNX Runtime session of the shipped network, made on first use
    (~0.2 s with the import); call it ahead of the first image to take that off it."""
    global _session
    with _lock:
        if _session is None:
            import onnxruntime as ort  # 0.14 s: only where a scene is segmented

            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            options.log_severity_level = 3  # errors only
            _session = ort.InferenceSession(
                str(MODEL_DIR / "oilnet.onnx"), options, providers=["CPUExecutionProvider"]
            )
        return _session


def scene_level(db: np.ndarray, valid: np.ndarray) -> float:
    """The 90th percentile of the valid pixels' dB (sampled), which goes to grey P90_GREY."""
    step = max(1, int(math.sqrt(db.size / 250_000)))
    sample = db[::step, ::step][valid[::step, ::step]]
    return quantiles.percentile(sample, 90.0) if sample.size else 0.0


def grey8(sar: SarImage, scene_db: float | None = None) -> np.ndarray:
    """The network's view of an input: uint8 HxW, as an 8-bit quicklook would hold it."""
    # In place on one float buffer, in the order written (the same roundings, fewer passes).
    if sar.form == "quicklook8":
        scaled = sar.db * np.float32(sar.units_per_db)
    else:
        level = scene_level(sar.db, sar.valid) if scene_db is None else scene_db
        scaled = sar.db - np.float32(level)
        scaled *= np.float32(GREY_PER_DB)
        scaled += np.float32(P90_GREY)
    scaled += np.float32(0.5)
    np.clip(scaled, 0, 255, out=scaled)
    out: np.ndarray = scaled.astype(np.uint8)
    return out


def probability(grey: np.ndarray) -> np.ndarray:
    """Per-pixel oil probability (float32 HxW, 0..1) of a uint8 HxW quicklook (blocking)."""
    meta = info()
    h, w = grey.shape
    m = meta.multiple
    ph, pw = -h % m, -w % m
    padded = cv2.copyMakeBorder(grey, 0, ph, 0, pw, cv2.BORDER_REPLICATE) if ph or pw else grey
    session = load()
    x = padded.astype(np.float32)
    x *= np.float32(1.0 / 255.0)
    s = meta.output_scale
    (out,) = session.run(None, {session.get_inputs()[0].name: x[None, None]})
    logits = out[0, 0, : (h + s - 1) // s, : (w + s - 1) // s]
    # The sigmoid at the network's resolution, then one resize: 4x fewer exp() calls.
    np.clip(logits, -30, 30, out=logits)  # the runtime's own output array: no copy
    np.negative(logits, out=logits)
    prob: np.ndarray = cv2.exp(logits)
    prob += 1.0
    np.reciprocal(prob, out=prob)
    if s != 1:
        prob = cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)
    return prob


def confidence(mean_p: float) -> float:
    """Calibrated probability that an object is oil, from its mean pixel probability."""
    meta = info()
    p = min(max(mean_p, 1e-6), 1 - 1e-6)
    z = meta.calib_a * math.log(p / (1 - p)) + meta.calib_b
    return 1.0 / (1.0 + math.exp(-max(min(z, 30.0), -30.0)))
