#!/usr/bin/env python3
"""Train a small fully convolutional oil-slick segmenter for SAR quicklooks and export it to ONNX.

One self-contained file. Data: the SOS dataset's Sentinel-1 training split (real 256x256 patches with oil
masks) plus synthetic scenes from `oilspill.sar.synth.make_scene` (install: pip install '.[train]').

Network contract
- input:  float32 N x 1 x H x W = grey8 / 255 (grey8: uint8 quicklook, grey linear in dB; no per-image
          normalisation). H and W must be multiples of 32 (pad with edge replication).
- output: float32 N x 1 x H/2 x W/2 oil logits (half resolution).

The runtime-friendly parts (the service ran it on OpenCV's cv2.dnn first, on ONNX Runtime now; both
are checked at export): the full-resolution input is split into its four 2x2 phases by strided
slices + concat (a lossless space-to-depth; cv2's own SpaceToDepth and any conv on a 1-channel
full-resolution tensor are slow there), and the half-resolution output is made by one DepthToSpace
(`F.pixel_shuffle`) from 4 channels at quarter resolution. (Networks exported before ended in a
hand-written reshape/transpose, which ONNX Runtime runs 1-2 ms slower; `train/depth_to_space.py`
rewrites such a file, bit for bit the same outputs: the shipped one was rewritten so.)

Example (the command that made the shipped weights is in the README):
  python train/train_oilnet.py --data ../shared/realsar/sos-s1-train --synth-scenes 400 \
      --epochs 16 --synth-per-epoch 2800 --seed 0 --arch s --out oilnet.onnx --workdir cache
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

T0 = time.time()


def log(msg: str) -> None:
    print(f"[{time.time() - T0:7.1f}s] {msg}", flush=True)


# --------------------------------------------------------------------------------------------- model


def conv_bn(
    cin: int, cout: int, k: int = 3, s: int = 1, d: int = 1, relu: bool = True
) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, k, s, d * (k // 2), dilation=d, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class DSBlock(nn.Module):
    """Residual depthwise-separable block: dw3x3 (dilated) -> BN -> ReLU -> pw1x1 -> BN, + x, ReLU."""

    def __init__(self, c: int, d: int = 1) -> None:
        super().__init__()
        self.dw = nn.Conv2d(c, c, 3, 1, d, dilation=d, groups=c, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.pw = nn.Conv2d(c, c, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.dw(x)))
        return F.relu(x + self.bn2(self.pw(y)))


class Down(nn.Module):
    """Stride-2 depthwise 3x3 -> BN -> ReLU -> pointwise to cout -> BN -> ReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(cin, cin, 3, 2, 1, groups=cin, bias=False)
        self.bn1 = nn.BatchNorm2d(cin)
        self.pw = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn2(self.pw(F.relu(self.bn1(self.dw(x))))))


ARCHS: dict[str, dict[str, tuple[int, ...]]] = {
    # widths at 1/4, 1/8, 1/16, 1/32; encoder blocks per level; decoder blocks at 1/4, 1/8, 1/16
    "s": {"widths": (16, 48, 96, 160), "blocks": (1, 2, 4, 2), "dec": (1, 1, 1)},
    "m": {"widths": (24, 48, 96, 160), "blocks": (1, 3, 4, 3), "dec": (1, 1, 1)},
    "l": {"widths": (24, 64, 128, 192), "blocks": (1, 3, 4, 3), "dec": (1, 1, 1)},
    "xl": {"widths": (32, 64, 128, 192), "blocks": (2, 3, 5, 3), "dec": (1, 2, 1)},
}


class OilNet(nn.Module):
    """U-Net-lite: 2x2 space-to-depth -> stride-2 conv (1/4) -> depthwise-separable encoder to 1/32 ->
    additive skip decoder back to 1/4 -> 4 logits per 1/4 pixel -> depth-to-space -> 1/2 resolution.
    Input H, W: multiples of 32."""

    def __init__(
        self, widths: tuple[int, ...], blocks: tuple[int, ...], dec: tuple[int, ...]
    ) -> None:
        super().__init__()
        w = widths
        self.entry = conv_bn(4, w[0], 3, 2)
        self.downs = nn.ModuleList([Down(w[i - 1], w[i]) for i in range(1, len(w))])
        self.enc = nn.ModuleList()
        for i in range(len(w)):
            dil = 2 if i >= 2 else 1
            self.enc.append(
                nn.Sequential(*[DSBlock(w[i], d=(dil if j % 2 else 1)) for j in range(blocks[i])])
            )
        self.lat = nn.ModuleList(
            [conv_bn(w[i + 1], w[i], 1, relu=False) for i in range(len(w) - 1)]
        )
        self.dec = nn.ModuleList(
            [nn.Sequential(*[DSBlock(w[i]) for _ in range(dec[i])]) for i in range(len(w) - 1)]
        )
        self.head = nn.Conv2d(w[0], 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # lossless 2x2 space-to-depth by strided slices (cheap in cv2.dnn)
        x = torch.cat(
            [x[:, :, 0::2, 0::2], x[:, :, 0::2, 1::2], x[:, :, 1::2, 0::2], x[:, :, 1::2, 1::2]], 1
        )
        x = self.entry(x)
        feats: list[torch.Tensor] = []
        for i, e in enumerate(self.enc):
            if i > 0:
                x = self.downs[i - 1](x)
            x = e(x)
            feats.append(x)
        y = feats[-1]
        for i in range(len(feats) - 2, -1, -1):
            y = F.interpolate(
                self.lat[i](y), scale_factor=2.0, mode="bilinear", align_corners=False
            )
            y = self.dec[i](F.relu(y + feats[i]))
        z = self.head(y)  # N x 4 x H/4 x W/4, channel = 2*dy + dx
        return F.pixel_shuffle(z, 2)  # exported as one DepthToSpace


def build_model(arch: str) -> OilNet:
    a = ARCHS[arch]
    return OilNet(a["widths"], a["blocks"], a["dec"])


# ---------------------------------------------------------------------------------------------- data


def amplitude16_to_grey8(dn: np.ndarray) -> np.ndarray:
    """What the detector gives the network for a 16-bit amplitude input (`oilnet.grey8`).

    The shipped weights (README) saw these scenes through an earlier 2-98 % stretch.
    """
    from oilspill.sar import forms, oilnet

    return oilnet.grey8(forms.load(dn, "amplitude16"))


def _synth_one(args: tuple[int, str]) -> tuple[np.ndarray, np.ndarray]:
    seed, form = args
    from oilspill.sar.synth import make_scene

    if form == "quicklook8":
        sc = make_scene(seed, (1250, 650))
        img = sc.image
    else:
        sc = make_scene(seed, (1250, 650), geotiff=True, form="amplitude16")
        img = amplitude16_to_grey8(sc.image)
    return img.astype(np.uint8), sc.truth.astype(np.uint8)


def synth_cache(
    workdir: Path, seeds: list[int], form: str, tag: str
) -> tuple[np.ndarray, np.ndarray]:
    p_img, p_tru = workdir / f"synth_{tag}_img.npy", workdir / f"synth_{tag}_truth.npy"
    meta = workdir / f"synth_{tag}.json"
    want = {"seeds": [seeds[0], seeds[-1], len(seeds)], "form": form}
    if p_img.exists() and p_tru.exists() and meta.exists() and json.loads(meta.read_text()) == want:
        return np.load(p_img, mmap_mode="r"), np.load(p_tru, mmap_mode="r")
    t = time.time()
    from multiprocessing import get_context

    with get_context("fork").Pool(2) as pool:
        res = pool.map(_synth_one, [(s, form) for s in seeds], chunksize=4)
    imgs = np.stack([r[0] for r in res])
    tru = np.stack([r[1] for r in res])
    np.save(p_img, imgs)
    np.save(p_tru, tru)
    meta.write_text(json.dumps(want))
    log(f"synthetic {tag}: {len(seeds)} scenes ({form}) in {time.time() - t:.0f}s")
    return imgs, tru


def split_real(data: Path) -> tuple[list[str], list[str]]:
    names = sorted(p.name for p in (data / "images").glob("*.jpg"))
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(names))
    nval = math.floor(0.15 * len(names))
    val = [names[i] for i in perm[:nval]]
    train = [names[i] for i in perm[nval:]]
    return train, val


def real_cache(
    workdir: Path, data: Path, names: list[str], tag: str
) -> tuple[np.ndarray, np.ndarray]:
    p_img, p_msk = workdir / f"real_{tag}_img.npy", workdir / f"real_{tag}_mask.npy"
    meta = workdir / f"real_{tag}.json"
    want = {"n": len(names), "first": names[0], "last": names[-1]}
    if p_img.exists() and p_msk.exists() and meta.exists() and json.loads(meta.read_text()) == want:
        return np.load(p_img), np.load(p_msk)
    imgs = np.zeros((len(names), 256, 256), np.uint8)
    msks = np.zeros((len(names), 256, 256), np.uint8)
    for i, n in enumerate(names):
        im = cv2.imread(str(data / "images" / n), cv2.IMREAD_UNCHANGED)
        if im.ndim == 3:
            im = im[..., 0]
        m = cv2.imread(str(data / "masks" / (n[:-4] + ".png")), cv2.IMREAD_GRAYSCALE)
        imgs[i] = im
        msks[i] = (m > 127).astype(np.uint8)
    np.save(p_img, imgs)
    np.save(p_msk, msks)
    meta.write_text(json.dumps(want))
    return imgs, msks


# ------------------------------------------------------------------------------------------- augment

IGNORE = 255  # label value for padded pixels (no loss)
# Training label codes: 0 not oil, 1 oil, 2 look-alike (not oil, weighted), 3 ship/land (not oil), 255 ignore


def _resize(img: np.ndarray, lab: np.ndarray, s: float) -> tuple[np.ndarray, np.ndarray]:
    h, w = img.shape
    nh, nw = max(8, round(h * s)), max(8, round(w * s))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    return cv2.resize(img, (nw, nh), interpolation=interp), cv2.resize(
        lab, (nw, nh), interpolation=cv2.INTER_NEAREST
    )


def photometric(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 -> uint8: median blur, gamma/contrast/brightness jitter, noise, JPEG."""
    if rng.random() < 0.35:
        img = cv2.medianBlur(img, int(rng.choice([3, 5])))
    x = img.astype(np.float32) / 255.0
    if rng.random() < 0.8:
        x = np.power(np.clip(x, 0, 1), rng.uniform(0.7, 1.45))
        c = rng.uniform(0.7, 1.35)
        b = rng.uniform(-0.15, 0.15)
        x = (x - 0.5) * c + 0.5 + b
    if rng.random() < 0.3:
        x = x + rng.normal(0.0, rng.uniform(0.005, 0.04), x.shape).astype(np.float32)
    out = np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        q = int(rng.integers(60, 96))
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, q])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    return out


def geometric(
    img: np.ndarray, lab: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    k = int(rng.integers(4))
    if k:
        img, lab = np.rot90(img, k), np.rot90(lab, k)
    if rng.random() < 0.5:
        img, lab = img[:, ::-1], lab[:, ::-1]
    return np.ascontiguousarray(img), np.ascontiguousarray(lab)


def real_sample(
    img: np.ndarray, msk: np.ndarray, crop: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    s = float(np.exp(rng.uniform(np.log(0.5), np.log(1.5))))
    im, lb = _resize(img, msk, s)
    h, w = im.shape
    if (
        h < crop or w < crop
    ):  # pad by edge replication, as the project does; padded pixels carry no loss
        ph, pw = max(0, crop - h), max(0, crop - w)
        t, lft = int(rng.integers(ph + 1)), int(rng.integers(pw + 1))
        im = cv2.copyMakeBorder(im, t, ph - t, lft, pw - lft, cv2.BORDER_REPLICATE)
        lb = cv2.copyMakeBorder(lb, t, ph - t, lft, pw - lft, cv2.BORDER_CONSTANT, value=IGNORE)
        h, w = im.shape
    y, x = int(rng.integers(h - crop + 1)), int(rng.integers(w - crop + 1))
    return im[y : y + crop, x : x + crop], lb[y : y + crop, x : x + crop]


SYN_LUT = np.array([0, 1, 2, 3, 3] + [0] * 251, np.uint8)  # sea, oil, look-alike, ship, land


def synth_sample(
    img: np.ndarray, tru: np.ndarray, crop: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    s = float(np.exp(rng.uniform(np.log(0.5), np.log(1.5))))
    src = round(crop / s)
    h, w = img.shape
    src = min(src, h)
    # bias crops towards oil / look-alikes half the time
    if rng.random() < 0.5:
        ys, xs = np.nonzero(tru[::8, ::8] == (1 if rng.random() < 0.7 else 2))
        if len(ys):
            j = int(rng.integers(len(ys)))
            cy, cx = ys[j] * 8, xs[j] * 8
            y = int(np.clip(cy - src // 2 + rng.integers(-src // 3, src // 3 + 1), 0, h - src))
            x = int(np.clip(cx - src // 2 + rng.integers(-src // 3, src // 3 + 1), 0, w - src))
        else:
            y, x = int(rng.integers(h - src + 1)), int(rng.integers(w - src + 1))
    else:
        y, x = int(rng.integers(h - src + 1)), int(rng.integers(w - src + 1))
    im = np.asarray(img[y : y + src, x : x + src])
    lb = SYN_LUT[np.asarray(tru[y : y + src, x : x + src])]
    interp = cv2.INTER_AREA if src > crop else cv2.INTER_LINEAR
    im = cv2.resize(im, (crop, crop), interpolation=interp)
    lb = cv2.resize(lb, (crop, crop), interpolation=cv2.INTER_NEAREST)
    return im, lb


@dataclass
class Batch:
    x: torch.Tensor  # N x 1 x H x W float
    y: torch.Tensor  # N x H/2 x W/2 float soft target
    w: torch.Tensor  # N x H/2 x W/2 float loss weight


def make_batch(imgs: list[np.ndarray], labs: list[np.ndarray], lookalike_w: float) -> Batch:
    x = torch.from_numpy(np.stack(imgs)[:, None].astype(np.float32) / 255.0)
    lab = torch.from_numpy(np.stack(labs).astype(np.int64))
    valid = (lab != IGNORE).float()
    oil = (lab == 1).float()
    wgt = torch.where(lab == 2, lookalike_w, 1.0) * valid
    # half-resolution targets: 2x2 average (soft at edges)
    y = F.avg_pool2d(oil[:, None], 2)[:, 0]
    vw = F.avg_pool2d(valid[:, None], 2)[:, 0]
    ww = F.avg_pool2d(wgt[:, None], 2)[:, 0]
    y = torch.where(
        vw > 0,
        (F.avg_pool2d((oil * valid)[:, None], 2)[:, 0]) / vw.clamp_min(1e-6),
        torch.zeros_like(y),
    )
    return Batch(x, y, ww)


def loss_fn(logits: torch.Tensor, b: Batch, dice_w: float) -> torch.Tensor:
    lg = logits[:, 0]
    bce = F.binary_cross_entropy_with_logits(
        lg, b.y, weight=b.w, reduction="sum"
    ) / b.w.sum().clamp_min(1.0)
    if dice_w <= 0:
        return bce
    p = torch.sigmoid(lg)
    m = (b.w > 0).float()
    inter = (p * b.y * m).sum()
    dice = 1.0 - (2.0 * inter + 1.0) / ((p * m).sum() + (b.y * m).sum() + 1.0)
    return bce + dice_w * dice


# ---------------------------------------------------------------------------------------- evaluation


def pad32(img: np.ndarray) -> tuple[np.ndarray, int, int]:
    h, w = img.shape
    ph, pw = (-h) % 32, (-w) % 32
    return cv2.copyMakeBorder(img, 0, ph, 0, pw, cv2.BORDER_REPLICATE), h, w


@torch.no_grad()
def predict_prob(model: nn.Module, grey8: np.ndarray) -> np.ndarray:
    """Full-resolution oil probability for one uint8 image (logits upsampled bilinearly x2)."""
    p, h, w = pad32(grey8)
    x = torch.from_numpy(p[None, None].astype(np.float32) / 255.0)
    lg = model(x)
    lg = F.interpolate(lg, scale_factor=2.0, mode="bilinear", align_corners=False)
    return torch.sigmoid(lg)[0, 0, :h, :w].numpy()


@torch.no_grad()
def predict_batch(model: nn.Module, imgs: np.ndarray, bs: int = 32) -> np.ndarray:
    out = np.zeros(imgs.shape, np.float32)
    for i in range(0, len(imgs), bs):
        x = torch.from_numpy(imgs[i : i + bs, None].astype(np.float32) / 255.0)
        lg = F.interpolate(model(x), scale_factor=2.0, mode="bilinear", align_corners=False)
        out[i : i + bs] = torch.sigmoid(lg)[:, 0].numpy()
    return out


def seg_stats(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int, int]:
    tp = int(np.count_nonzero(pred & gt))
    fp = int(np.count_nonzero(pred & ~gt))
    fn = int(np.count_nonzero(~pred & gt))
    return tp, fp, fn


def fmt_iou(tp: int, fp: int, fn: int) -> str:
    iou = tp / max(tp + fp + fn, 1)
    prec = tp / max(tp + fp, 1)
    rec = tp / max(tp + fn, 1)
    return f"IoU {iou:.4f}  precision {prec:.4f}  recall {rec:.4f}"


def reliability(
    prob: np.ndarray, gt: np.ndarray, nbins: int = 10
) -> tuple[list[tuple[float, float, int, float, float]], float]:
    p = prob.ravel()
    g = gt.ravel().astype(np.float64)
    idx = np.minimum((p * nbins).astype(np.int64), nbins - 1)
    cnt = np.bincount(idx, minlength=nbins)
    sp = np.bincount(idx, weights=p, minlength=nbins)
    sg = np.bincount(idx, weights=g, minlength=nbins)
    rows = []
    ece = 0.0
    n = p.size
    for b in range(nbins):
        if cnt[b] == 0:
            rows.append((b / nbins, (b + 1) / nbins, 0, float("nan"), float("nan")))
            continue
        conf, freq = sp[b] / cnt[b], sg[b] / cnt[b]
        ece += cnt[b] / n * abs(conf - freq)
        rows.append((b / nbins, (b + 1) / nbins, int(cnt[b]), float(conf), float(freq)))
    return rows, float(ece)


def eval_real(
    model: nn.Module, imgs: np.ndarray, msks: np.ndarray, thr: float, title: str
) -> dict[str, float]:
    prob = predict_batch(model, imgs)
    gt = msks.astype(bool)
    pred = prob >= thr
    tp, fp, fn = seg_stats(pred, gt)
    ious = []
    for i in range(len(imgs)):
        a, b, c = seg_stats(pred[i], gt[i])
        ious.append(1.0 if a + b + c == 0 else a / (a + b + c))
    # background IoU for the paper-comparable mIoU (oil and background)
    tn = int(np.count_nonzero(~pred & ~gt))
    bg_iou = tn / max(tn + fp + fn, 1)
    oil_iou = tp / max(tp + fp + fn, 1)
    print(f"== {title} (threshold {thr:.2f}, {len(imgs)} patches, pooled over all pixels)")
    print(f"   oil {fmt_iou(tp, fp, fn)}")
    print(
        f"   mean per-patch oil IoU {np.mean(ious):.4f} (a patch with no oil in truth and prediction counts 1)"
    )
    print(f"   background IoU {bg_iou:.4f}; mIoU(oil, background) {(oil_iou + bg_iou) / 2:.4f}")
    return {
        "iou": oil_iou,
        "mpiou": float(np.mean(ious)),
        "miou2": (oil_iou + bg_iou) / 2,
        "prob_mean": float(prob.mean()),
    }


def print_reliability(prob: np.ndarray, gt: np.ndarray, title: str) -> float:
    rows, ece = reliability(prob, gt)
    print(f"== reliability, {title}: bins of predicted oil probability")
    print("   bin          pixels      mean p   oil freq")
    for lo, hi, c, conf, freq in rows:
        print(f"   [{lo:.1f},{hi:.1f})  {c:10d}   {conf:8.4f}   {freq:8.4f}")
    print(f"   ECE {ece:.4f}")
    return ece


def eval_synth(
    model: nn.Module, imgs: np.ndarray, tru: np.ndarray, thr: float, title: str
) -> dict[str, float]:
    tp = fp = fn = 0
    fp_look = n_look = fp_land = n_land = fp_ship = n_ship = fp_sea = n_sea = 0
    for i in range(len(imgs)):
        prob = predict_prob(model, np.asarray(imgs[i]))
        t = np.asarray(tru[i])
        pred = prob >= thr
        a, b, c = seg_stats(pred, t == 1)
        tp, fp, fn = tp + a, fp + b, fn + c
        fp_look += int(np.count_nonzero(pred & (t == 2)))
        n_look += int(np.count_nonzero(t == 2))
        fp_land += int(np.count_nonzero(pred & (t == 4)))
        n_land += int(np.count_nonzero(t == 4))
        fp_ship += int(np.count_nonzero(pred & (t == 3)))
        n_ship += int(np.count_nonzero(t == 3))
        fp_sea += int(np.count_nonzero(pred & (t == 0)))
        n_sea += int(np.count_nonzero(t == 0))
    iou = tp / max(tp + fp + fn, 1)
    print(f"== {title} (threshold {thr:.2f}, {len(imgs)} scenes 1250x650, padded to 1280x672)")
    print(f"   oil {fmt_iou(tp, fp, fn)}")
    print(
        f"   false-positive oil pixels: on look-alikes {fp_look}/{n_look} = {fp_look / max(n_look, 1):.4f} of look-alike pixels;"
        f" on sea {fp_sea / max(n_sea, 1):.5f} of sea; on land {fp_land / max(n_land, 1):.4f}; on ships {fp_ship / max(n_ship, 1):.4f}"
    )
    return {"iou": iou, "fp_look": fp_look / max(n_look, 1)}


# -------------------------------------------------------------------------------------------- export

ORT_TIMING_CODE = r"""
import sys, time, numpy as np, onnxruntime as ort
so = ort.SessionOptions(); so.intra_op_num_threads = 1; so.inter_op_num_threads = 1
s = ort.InferenceSession(sys.argv[1], so, providers=["CPUExecutionProvider"])
x = np.random.default_rng(0).random((1, 1, 672, 1280), dtype=np.float32)
for _ in range(3):
    s.run(None, {"input": x})
ts = []
for _ in range(20):
    t = time.perf_counter(); s.run(None, {"input": x}); ts.append(time.perf_counter() - t)
print(f"{np.median(ts) * 1000:.2f} {np.min(ts) * 1000:.2f}")
"""


def export_onnx(model: nn.Module, path: Path, opset: int) -> None:
    model.eval()
    x = torch.zeros(1, 1, 256, 256)
    torch.onnx.export(
        model,
        (x,),
        str(path),
        dynamo=False,
        opset_version=opset,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "n", 2: "h", 3: "w"}, "logits": {0: "n", 2: "h2", 3: "w2"}},
    )


def check_onnx(model: nn.Module, path: Path) -> None:
    import onnx

    onnx.checker.check_model(onnx.load(str(path)))
    import onnxruntime as ort

    cv2.setNumThreads(1)
    net = cv2.dnn.readNetFromONNX(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(123)
    worst = 0.0
    for shp in [
        (1, 1, 672, 1280),
        (1, 1, 320, 480),
        (1, 1, 256, 256),
        (2, 1, 96, 160),
        (1, 1, 640, 352),
    ]:
        x = rng.random(shp, dtype=np.float32)
        net.setInput(x)  # same net object, different shapes
        with torch.no_grad():
            r = model(torch.from_numpy(x)).numpy()
        for runtime, o in (
            ("cv2.dnn", net.forward()),
            ("onnxruntime", session.run(None, {"input": x})[0]),
        ):
            d = float(np.abs(o - r).max()) if o.shape == r.shape else float("inf")
            worst = max(worst, d)
            print(
                f"   {runtime} vs PyTorch, input {shp}: output {tuple(o.shape)}, max abs logit diff {d:.2e}"
            )
    print(
        f"   max abs diff over all shapes {worst:.2e} ({'OK' if worst <= 1e-3 else 'FAIL'} at 1e-3)"
    )
    r = subprocess.run(
        [sys.executable, "-c", ORT_TIMING_CODE, str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    med, mn = (float(v) for v in r.stdout.split())
    print(
        f"   onnxruntime 1 thread, 1x1x672x1280: median {med:.1f} ms, min {mn:.1f} ms over 20 runs (onnxruntime {ort.__version__})"
    )
    print(f"   ONNX file {path} {path.stat().st_size / 1e6:.3f} MB")


# ---------------------------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--data", type=Path, required=True, help="sos-s1-train folder (images/, masks/)"
    )
    ap.add_argument(
        "--synth-scenes", type=int, default=400, help="quicklook scenes, seeds 1000..1000+N-1"
    )
    ap.add_argument(
        "--amp16-scenes",
        type=int,
        default=-1,
        help="amplitude16 GeoTIFF scenes (default N/4), seeds after those",
    )
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True, help="ONNX output path")
    ap.add_argument("--workdir", type=Path, required=True, help="caches and checkpoints")
    ap.add_argument("--arch", choices=sorted(ARCHS), default="s")
    ap.add_argument("--crop", type=int, default=192)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--synth-per-epoch", type=int, default=1600, help="synthetic crops per epoch")
    ap.add_argument(
        "--dice", type=float, default=0.5, help="weight of the soft Dice term (0: BCE only)"
    )
    ap.add_argument("--lookalike-weight", type=float, default=2.0)
    ap.add_argument(
        "--steps-per-epoch", type=int, default=0, help="cap steps per epoch (smoke tests); 0: all"
    )
    ap.add_argument("--opset", type=int, default=13)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--preview", type=Path, default=None, help="write a few val overlays (PNG) here"
    )
    ap.add_argument(
        "--eval-only", action="store_true", help="load <workdir>/<out stem>.pt, skip training"
    )
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    cv2.setNumThreads(1)
    args.workdir.mkdir(parents=True, exist_ok=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    log(f"args: {vars(args)}")
    log(f"command: {' '.join(sys.argv)}")

    # data
    tr_names, va_names = split_real(args.data)
    (args.out.parent / "val_files.txt").write_text("".join(n + "\n" for n in va_names))
    log(
        f"real split: {len(tr_names)} train, {len(va_names)} val (list in {args.out.parent / 'val_files.txt'})"
    )
    rtr_img, rtr_msk = real_cache(args.workdir, args.data, tr_names, "train")
    rva_img, rva_msk = real_cache(args.workdir, args.data, va_names, "val")
    n_amp = args.synth_scenes // 4 if args.amp16_scenes < 0 else args.amp16_scenes
    s_seeds = list(range(1000, 1000 + args.synth_scenes))
    a_seeds = list(range(1000 + args.synth_scenes, 1000 + args.synth_scenes + n_amp))
    str_img, str_tru = synth_cache(args.workdir, s_seeds, "quicklook8", f"q{args.synth_scenes}")
    if n_amp:
        sa_img, sa_tru = synth_cache(
            args.workdir, a_seeds, "amplitude16", f"a{args.synth_scenes}_{n_amp}"
        )
        syn_img = np.concatenate([np.asarray(str_img), np.asarray(sa_img)])
        syn_tru = np.concatenate([np.asarray(str_tru), np.asarray(sa_tru)])
    else:
        syn_img, syn_tru = np.asarray(str_img), np.asarray(str_tru)
    sva_img, sva_tru = synth_cache(args.workdir, list(range(0, 50)), "quicklook8", "val0_49")
    sva_a_img, sva_a_tru = synth_cache(
        args.workdir, list(range(0, 50)), "amplitude16", "val0_49_amp16"
    )
    log(
        f"synthetic train scenes: {len(syn_img)} ({args.synth_scenes} quicklook8 + {n_amp} amplitude16)"
    )

    model = build_model(args.arch)
    npar = sum(p.numel() for p in model.parameters())
    log(f"model {args.arch}: {npar} parameters ({npar * 4 / 1e6:.2f} MB fp32)")
    ckpt = args.workdir / (args.out.stem + ".pt")

    if not args.eval_only:
        rng = np.random.default_rng(args.seed)
        n_real = len(rtr_img)
        per_epoch = n_real + args.synth_per_epoch
        steps_per_epoch = per_epoch // args.batch
        if args.steps_per_epoch > 0:
            steps_per_epoch = min(steps_per_epoch, args.steps_per_epoch)
        total = steps_per_epoch * args.epochs
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt,
            max_lr=args.lr,
            total_steps=total,
            pct_start=0.15,
            div_factor=20.0,
            final_div_factor=200.0,
        )
        t_train = time.time()
        for ep in range(args.epochs):
            model.train()
            order = rng.permutation(per_epoch)  # < n_real: real index; else synthetic crop
            tot, nb = 0.0, 0
            te = time.time()
            for st in range(steps_per_epoch):
                imgs, labs = [], []
                for k in order[st * args.batch : (st + 1) * args.batch]:
                    if k < n_real:
                        im, lb = real_sample(rtr_img[k], rtr_msk[k], args.crop, rng)
                    else:
                        j = int(rng.integers(len(syn_img)))
                        im, lb = synth_sample(syn_img[j], syn_tru[j], args.crop, rng)
                    im, lb = geometric(im, lb, rng)
                    imgs.append(photometric(im, rng))
                    labs.append(lb)
                b = make_batch(imgs, labs, args.lookalike_weight)
                loss = loss_fn(model(b.x), b, args.dice)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                tot += float(loss)
                nb += 1
                if ep == 0 and st == 19:
                    log(
                        f"   first 20 steps: {(time.time() - te) / 20:.3f} s/step, ~{(time.time() - te) / 20 * steps_per_epoch / 60:.1f} min/epoch"
                    )
            model.eval()
            quick = eval_quick(model, rva_img, rva_msk)
            log(
                f"epoch {ep + 1}/{args.epochs}: loss {tot / max(nb, 1):.4f}  lr {sched.get_last_lr()[0]:.2e}  "
                f"real-val oil IoU@0.5 {quick:.4f}  ({time.time() - te:.0f}s)"
            )
            torch.save(model.state_dict(), ckpt)
        log(f"total training time {(time.time() - t_train) / 60:.1f} min ({args.epochs} epochs)")
    else:
        model.load_state_dict(torch.load(ckpt))
    model.eval()

    # threshold chosen on TRAIN data (a fixed subset of the real train patches + synthetic train scenes)
    sub = np.random.default_rng(1).choice(len(rtr_img), size=min(600, len(rtr_img)), replace=False)
    ptr = predict_batch(model, rtr_img[sub])
    gtr = rtr_msk[sub].astype(bool)
    best_thr, best_iou = 0.5, -1.0
    line = []
    for thr in np.arange(0.3, 0.71, 0.05):
        tp, fp, fn = seg_stats(ptr >= thr, gtr)
        iou = tp / max(tp + fp + fn, 1)
        line.append(f"{thr:.2f}:{iou:.4f}")
        if iou > best_iou:
            best_thr, best_iou = float(thr), iou
    print(
        f"== threshold scan on 600 real TRAIN patches (oil IoU): {' '.join(line)} -> best {best_thr:.2f}"
    )

    print("\n######## validation ########")
    eval_real(model, rva_img, rva_msk, 0.5, "real val split")
    if abs(best_thr - 0.5) > 1e-6:
        eval_real(model, rva_img, rva_msk, best_thr, "real val split at the train-chosen threshold")
    pva = predict_batch(model, rva_img)
    print_reliability(pva, rva_msk.astype(bool), "real val split, all pixels")
    eval_synth(model, sva_img, sva_tru, 0.5, "synthetic val seeds 0..49, quicklook8")
    eval_synth(
        model,
        sva_a_img,
        sva_a_tru,
        0.5,
        "synthetic val seeds 0..49, amplitude16 -> display mapping",
    )

    print("\n######## export ########")
    export_onnx(model, args.out, args.opset)
    check_onnx(model, args.out)
    meta = {  # what oilspill.sar.oilnet needs beside the weights; calibration: bench/realsar.py
        "input_multiple": 32,
        "output_scale": 2,
        "threshold": 0.5,
        "calibration": {"a": 1.0, "b": 0.0},
        "trained": {
            "command": " ".join(sys.argv),
            "seed": args.seed,
            "epochs": args.epochs,
            "train_threshold_scan_best": best_thr,
        },
    }
    args.out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    pt_size = ckpt.stat().st_size / 1e6 if ckpt.exists() else float("nan")
    print(f"   weights {npar} params = {npar * 4 / 1e6:.3f} MB fp32 (checkpoint {pt_size:.3f} MB)")
    print("   output: logits at half resolution (H/2 x W/2); input H, W multiples of 32")

    if args.preview is not None:
        write_previews(model, rva_img, rva_msk, va_names, sva_img, sva_tru, args.preview)
    log(f"done; wall time {(time.time() - T0) / 60:.1f} min")


def eval_quick(model: nn.Module, imgs: np.ndarray, msks: np.ndarray) -> float:
    prob = predict_batch(model, imgs[::2])
    tp, fp, fn = seg_stats(prob >= 0.5, msks[::2].astype(bool))
    return tp / max(tp + fp + fn, 1)


def write_previews(
    model: nn.Module,
    rimg: np.ndarray,
    rmsk: np.ndarray,
    names: list[str],
    simg: np.ndarray,
    stru: np.ndarray,
    out: Path,
) -> None:
    """Overlays: left the image, right the image with truth contour (green) and prediction >= 0.5 (red fill)."""
    out.mkdir(parents=True, exist_ok=True)
    prob = predict_batch(model, rimg)
    ious = []
    for i in range(len(rimg)):
        a, b, c = seg_stats(prob[i] >= 0.5, rmsk[i].astype(bool))
        ious.append(1.0 if a + b + c == 0 else a / (a + b + c))
    order = np.argsort(ious)
    pick = (
        list(order[:8]) + list(order[len(order) // 2 - 4 : len(order) // 2 + 4]) + list(order[-4:])
    )

    def ov(g: np.ndarray, pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
        c = cv2.cvtColor(g, cv2.COLOR_GRAY2BGR)
        o = c.copy()
        o[pred] = (0.5 * o[pred] + 0.5 * np.array([0, 0, 255])).astype(np.uint8)
        cs, _ = cv2.findContours(gt.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(o, cs, -1, (0, 255, 0), 1)
        return np.hstack([c, o])

    tiles = []
    for i in pick:
        t = ov(rimg[i], prob[i] >= 0.5, rmsk[i].astype(bool))
        cv2.putText(
            t,
            f"{names[i][:-4]} IoU {ious[i]:.2f}",
            (4, 14),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            (0, 255, 255),
            1,
        )
        tiles.append(t)
    for r in range(0, len(tiles), 4):
        row = tiles[r : r + 4]
        while len(row) < 4:
            row.append(np.zeros_like(tiles[0]))
        cv2.imwrite(str(out / f"real_val_{r // 4}.png"), np.hstack(row))
    for i in range(4):
        g = np.asarray(simg[i])
        t = np.asarray(stru[i])
        p = predict_prob(model, g) >= 0.5
        o = ov(g, p, t == 1)
        cs, _ = cv2.findContours((t == 2).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(o[:, g.shape[1] :], cs, -1, (255, 128, 0), 1)  # look-alikes in blue
        cv2.imwrite(str(out / f"synth_val_{i}.png"), o)
    log(f"previews in {out}")


if __name__ == "__main__":
    main()
