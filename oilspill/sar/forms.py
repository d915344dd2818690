"""Turn whatever pixels a file held into dB, a validity mask and a noise estimate.

SAR arrives as 8-bit quicklooks (grey linear in dB, unknown offset and
scale), 16-bit GRD amplitude (intensity ∝ DN²), float32 linear σ0 or float32
dB. Everything downstream works in dB, so contrasts are damping in dB
whatever the input was. For quicklooks the grey-levels-per-dB scale is not
known; it is recovered from the speckle itself: the log of gamma speckle has
a skewed distribution whose shape depends only on the number of looks L and
whose width (in dB) is then known, so shape gives L and width gives scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from oilspill.sar import quantiles

FORMS = ("auto", "quicklook8", "amplitude16", "sigma0", "db")

# For L-look intensity speckle in dB: looks, the tail ratio (q50-q10)/(q90-q50) of its residual
# against a 1x7 running mean (measured on simulated speckle), and its q90-q10 width in dB.
_LOOKS = np.array([1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10, 15, 20, 40], np.float64)
_TAIL_RATIO = np.array(
    [1.3912, 1.3122, 1.2673, 1.235, 1.2101, 1.1791, 1.1602, 1.1429, 1.1235, 1.1103, 1.0891,
     1.0764, 1.0522]
)  # fmt: skip
_WIDTH_DB = np.array(
    [13.3954, 10.2929, 8.6416, 7.5859, 6.8389, 5.8309, 5.1667, 4.6873, 4.0279, 3.5859, 2.9098,
     2.5122, 1.7682]
)  # fmt: skip
_STD_DB = np.array(
    [5.5748, 4.1907, 3.4858, 3.03, 2.7225, 2.3072, 2.0379, 1.8448, 1.5813, 1.4054, 1.1379,
     0.9812, 0.69]
)  # fmt: skip
_DB_PER_LN = 10.0 / np.log(10.0)


def speckle_std_db(looks: float) -> float:
    """Standard deviation in dB of L-look intensity speckle."""
    return float(np.interp(looks, _LOOKS, _STD_DB))


@dataclass
class SarImage:
    """An input in dB with what we learned about it on the way."""

    db: np.ndarray  # float32 HxW, no-data pixels filled with a neutral value
    valid: np.ndarray  # bool HxW, False on no-data (zero / NaN borders)
    form: str  # quicklook8 | amplitude16 | sigma0 | db
    looks: float  # estimated equivalent number of looks
    units_per_db: float  # input units per dB (1 unless a quicklook)
    sar_like: bool = True
    warnings: list[str] = field(default_factory=list)


def to_grey(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """Collapse channels: (grey, alpha-valid or None, sar_like). Colour images use luminance."""
    if pixels.ndim == 2:
        return pixels, None, True
    alpha = None
    if pixels.shape[2] == 4:
        alpha = pixels[:, :, 3] > 0
        pixels = pixels[:, :, :3]
    if pixels.shape[2] == 1:
        return pixels[:, :, 0], alpha, True
    b, g, r = pixels[:, :, 0], pixels[:, :, 1], pixels[:, :, 2]
    step = max(1, int(np.sqrt(b.size / 250_000)))
    sb, sg, sr = (c[::step, ::step].astype(np.float32) for c in (b, g, r))
    spread = np.maximum(np.abs(sb - sg), np.abs(sg - sr))
    rng_ = float(np.ptp(sg)) or 1.0
    grey_like = float(np.mean(spread > 0.02 * rng_)) < 0.02
    if grey_like:
        return np.ascontiguousarray(g), alpha, True
    if pixels.dtype == np.uint8:
        return cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_BGR2GRAY), alpha, False
    lum = 0.114 * b.astype(np.float32) + 0.587 * g + 0.299 * r
    return lum.astype(pixels.dtype), alpha, False


def detect_form(grey: np.ndarray) -> str:
    """Guess the input form from dtype and value range."""
    if grey.dtype == np.uint8:
        return "quicklook8"
    if grey.dtype.kind in "ui":
        return "amplitude16"
    step = max(1, int(np.sqrt(grey.size / 250_000)))
    sample = grey[::step, ::step]
    finite = sample[np.isfinite(sample)]
    if finite.size == 0:
        return "db"
    if float(finite.min()) < 0.0 or quantiles.median(finite) > 200.0:
        return "db"
    return "sigma0"


def load(
    pixels: np.ndarray, form: str = "auto", *, speckle: tuple[float, float] | None = None
) -> SarImage:
    """Convert raster pixels to a `SarImage` in dB.

    `speckle` = (looks, units per dB) skips the estimate: tiles of one large scene
    share the estimate made on the whole scene, so they agree at their borders.
    """
    if form not in FORMS:
        raise ValueError(f"unknown input form {form!r}; expected one of {', '.join(FORMS)}")
    grey, alpha, sar_like = to_grey(pixels)
    warnings: list[str] = []
    if not sar_like:
        warnings.append("not SAR-like: a colour image, processed on its luminance")
    if form == "auto":
        form = detect_form(grey)
    x = grey.astype(np.float32, copy=False)
    if form == "quicklook8":
        nod = _zero_runs(grey)
        db = x.copy()
    elif form == "amplitude16":
        nod = grey == 0
        db = np.maximum(x, np.float32(1.0), out=x if x is not grey else None)
        cv2.log(db, db)
        db *= np.float32(2 * _DB_PER_LN)
    elif form == "sigma0":
        nod = ~np.isfinite(x) | (x <= 0)
        db = cv2.log(np.maximum(np.nan_to_num(x, nan=1e-6), 1e-6)) * np.float32(_DB_PER_LN)
    else:
        nod = ~np.isfinite(x)
        db = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
    if alpha is not None:
        nod |= ~alpha
    valid = ~nod
    if not valid.any():
        warnings.append("no valid pixels")
        return SarImage(np.zeros_like(db), valid, form, 1.0, 1.0, sar_like, warnings)
    units = 1.0
    if speckle is not None:
        looks, units = speckle
    else:
        looks, width_units = estimate_speckle(db, valid)
        if form == "quicklook8":
            units = width_units / float(np.interp(looks, _LOOKS, _WIDTH_DB))
            units = float(np.clip(units, 1.5, 30))
    if form == "quicklook8":
        db *= np.float32(1.0 / units)
    fill = quantiles.median(db[::7, ::7][valid[::7, ::7]]) if valid.any() else 0.0
    db[nod] = fill
    return SarImage(
        np.ascontiguousarray(db, np.float32), valid, form, looks, units, sar_like, warnings
    )


def _zero_runs(grey: np.ndarray) -> np.ndarray:
    """No-data of an 8-bit quicklook: solid zero areas, not the odd dark speckle pixel."""
    z = (grey == 0).astype(np.uint8)
    if not z.any():
        return np.zeros(grey.shape, bool)
    k = np.ones((7, 7), np.uint8)
    return cv2.dilate(cv2.erode(z, k), k).astype(bool)


def estimate_speckle(db: np.ndarray, valid: np.ndarray) -> tuple[float, float]:
    """Equivalent number of looks and the width q90-q10 of the speckle in input units.

    The residual against a 7x7 local mean is the speckle (plus a little
    texture); its tail ratio (q50-q10)/(q90-q50) depends on the looks only.
    """
    step = 3 if db.size > 300_000 else 1
    sub = db[::step] if step > 1 else db
    vsub = valid[::step] if step > 1 else valid
    if sub.shape[0] < 16:
        sub, vsub = db, valid
    resid = sub - cv2.blur(sub, (7, 1))
    ok = cv2.erode(vsub.astype(np.uint8), np.ones((1, 9), np.uint8)).astype(bool)
    r = resid[ok]
    if r.size < 1000:
        return 1.0, float(_WIDTH_DB[0])
    if r.size > 120_000:
        r = r[:: r.size // 120_000 + 1]
    q10, q50, q90 = quantiles.percentiles(r, [10, 50, 90])
    width = float(q90 - q10)
    ratio = float((q50 - q10) / max(q90 - q50, 1e-6))
    width = width / np.sqrt(6.0 / 7.0)  # a 1x7 mean leaves 6/7 of the variance in the residual
    looks = float(np.interp(-ratio, -_TAIL_RATIO, _LOOKS))
    return looks, width
