"""Random shapes and fields for the synthetic scene generator (see `synth`)."""

from __future__ import annotations

import cv2
import numpy as np

Shape = tuple[int, int]  # (height, width)


def smooth_field(rng: np.random.Generator, shape: Shape, *, scale: float, amp: float) -> np.ndarray:
    """Zero-mean random field with features about `scale` pixels big and std about `amp`."""
    h, w = shape
    gh, gw = int(h / scale) + 3, int(w / scale) + 3
    coarse = rng.standard_normal((gh, gw)).astype(np.float32)
    big = cv2.resize(coarse, (int(gw * scale), int(gh * scale)), interpolation=cv2.INTER_CUBIC)
    oy = int(rng.integers(0, max(1, big.shape[0] - h)))
    ox = int(rng.integers(0, max(1, big.shape[1] - w)))
    f = big[oy : oy + h, ox : ox + w]
    sd = float(f.std()) or 1.0
    return np.ascontiguousarray((f - f.mean()) * (amp / sd), dtype=np.float32)


def streaks(rng: np.random.Generator, shape: Shape, *, amp: float) -> np.ndarray:
    """Wind streaks: a field stretched along a random wind direction."""
    h, w = shape
    n = int(np.hypot(h, w)) + 2
    coarse = rng.standard_normal((n // 25 + 2, n // 300 + 2)).astype(np.float32)
    big = cv2.resize(coarse, (n, n), interpolation=cv2.INTER_CUBIC)
    m = cv2.getRotationMatrix2D((n / 2, n / 2), float(rng.uniform(-40, 40)), 1.0)
    rot = cv2.warpAffine(big, m, (n, n), borderMode=cv2.BORDER_REFLECT)
    f = rot[(n - h) // 2 : (n - h) // 2 + h, (n - w) // 2 : (n - w) // 2 + w]
    sd = float(f.std()) or 1.0
    return np.ascontiguousarray(f * (amp / sd), dtype=np.float32)


def _profile(rng: np.random.Generator, n: int, amp: float) -> np.ndarray:
    """A 1-D rough curve (sum of random harmonics with a 1/f spectrum) of `n` samples."""
    t = np.linspace(0.0, 1.0, n, dtype=np.float32)
    out = np.zeros(n, np.float32)
    for k in range(1, 60):
        out += (rng.standard_normal() / k**1.1) * np.sin(2 * np.pi * (k * t + rng.random()))
    sd = float(out.std()) or 1.0
    return out * (amp / sd)


def land_mask(rng: np.random.Generator, shape: Shape) -> np.ndarray:
    """Land along one side of the scene, with a rough coastline."""
    h, w = shape
    side = int(rng.integers(0, 4))  # 0 left, 1 right, 2 top, 3 bottom
    along, across = (h, w) if side < 2 else (w, h)
    depth = rng.uniform(0.08, 0.25) * across + _profile(rng, along, rng.uniform(10, 40))
    idx = np.arange(across, dtype=np.float32)[None, :]
    m = idx < depth[:, None]
    if side % 2 == 1:
        m = m[:, ::-1]
    if side >= 2:
        m = m.T
    return np.ascontiguousarray(m)


def _radial_polygon(
    rng: np.random.Generator,
    centre: tuple[float, float],
    radius: float,
    stretch: float,
    angle: float,
    rough: float,
    nharm: int,
) -> np.ndarray:
    phi = np.linspace(0, 2 * np.pi, 360, endpoint=False)
    r = np.ones_like(phi)
    for k in range(2, nharm):
        r += rough * rng.standard_normal() / k**1.2 * np.cos(k * phi + rng.uniform(0, 2 * np.pi))
    r = np.clip(r, 0.3, None) * radius
    x, y = r * np.cos(phi) * stretch, r * np.sin(phi)
    c, s = np.cos(angle), np.sin(angle)
    px = centre[0] + c * x - s * y
    py = centre[1] + s * x + c * y
    return np.stack([px, py], axis=1)


def _fill(shape: Shape, poly: np.ndarray) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [np.round(poly * 4).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=2)
    return m.astype(bool)


def lowwind(rng: np.random.Generator, shape: Shape) -> tuple[np.ndarray, np.ndarray]:
    """A look-alike (low-wind area or film): its outline, and its soft 0..1 damping profile."""
    h, w = shape
    centre = (rng.uniform(0, w), rng.uniform(0, h))
    radius = rng.uniform(40, 160)
    poly = _radial_polygon(
        rng, centre, radius, rng.uniform(1.0, 2.5), rng.uniform(0, np.pi), 0.35, 6
    )
    m = _fill(shape, poly)
    sigma = rng.uniform(0.12, 0.3) * radius
    soft = cv2.GaussianBlur(m.astype(np.float32), (0, 0), sigma)
    soft = np.clip(soft * 1.6 - 0.3, 0.0, 1.0)
    return m, soft


def _path(
    rng: np.random.Generator, start: tuple[float, float], heading: float, length: float
) -> tuple[np.ndarray, np.ndarray]:
    """Points every pixel backwards from `start` (opposite `heading`), with smooth turns."""
    n = int(length)
    turn = _profile(rng, n, rng.uniform(0.0, 0.012)) + rng.uniform(-0.004, 0.004)
    phi = heading + np.pi + np.cumsum(turn)
    x = start[0] + np.cumsum(np.cos(phi))
    y = start[1] + np.cumsum(np.sin(phi))
    return np.stack([x, y], axis=1), phi


def _ribbon(shape: Shape, pts: np.ndarray, phi: np.ndarray, width: np.ndarray) -> np.ndarray:
    nx, ny = -np.sin(phi), np.cos(phi)
    left = pts + np.stack([nx, ny], 1) * width[:, None] / 2
    right = pts - np.stack([nx, ny], 1) * width[:, None] / 2
    return _fill(shape, np.concatenate([left, right[::-1]]))


def track(
    rng: np.random.Generator, shape: Shape, *, start: tuple[float, float] | None = None
) -> tuple[np.ndarray, tuple[float, float], float]:
    """A slick behind a moving ship, widening with distance; returns mask, head point, heading."""
    h, w = shape
    mx, my = min(40.0, w / 4), min(40.0, h / 4)
    head = start or (rng.uniform(mx, w - mx), rng.uniform(my, h - my))
    heading = rng.uniform(0, 2 * np.pi)
    length = rng.uniform(150, 700)
    pts, phi = _path(rng, head, heading, length)
    s = np.linspace(0, 1, len(pts), dtype=np.float32)
    w0, w1 = rng.uniform(2.0, 4.0), rng.uniform(8.0, 30.0)
    width = w0 + (w1 - w0) * s**0.6
    width *= 1.0 + _profile(rng, len(pts), 0.15)
    width *= np.clip((1.0 - s) / 0.12, 0.2, 1.0)  # frayed tail
    gap = int(rng.integers(3, 7))
    keep = np.ones(len(pts), bool)
    keep[:gap] = False
    if rng.random() < 0.35:  # broken track
        for _ in range(int(rng.integers(1, 3))):
            a = int(rng.integers(gap, len(pts)))
            keep[a : a + int(rng.integers(5, 25))] = False
    m = np.zeros(shape, bool)
    idx = np.flatnonzero(keep)
    if len(idx):
        runs = np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1)
        for r in runs:
            if len(r) > 3:
                m |= _ribbon(shape, pts[r], phi[r], np.maximum(width[r], 1.0))
    return _roughen(rng, m), head, float(heading)


def blob(rng: np.random.Generator, shape: Shape) -> np.ndarray:
    """A drifting patch of oil with a ragged outline, sometimes with a thin tail."""
    h, w = shape
    mx, my = min(60.0, w / 4), min(60.0, h / 4)
    centre = (rng.uniform(mx, w - mx), rng.uniform(my, h - my))
    radius = rng.uniform(15, 55)
    stretch = rng.uniform(1.0, 3.0)
    angle = rng.uniform(0, np.pi)
    m = _fill(shape, _radial_polygon(rng, centre, radius, stretch, angle, 0.45, 30))
    if rng.random() < 0.5:
        tip = (
            centre[0] + np.cos(angle) * radius * stretch,
            centre[1] + np.sin(angle) * radius * stretch,
        )
        pts, phi = _path(rng, tip, angle + np.pi, rng.uniform(40, 160))
        width = np.linspace(radius * 0.4, 2.0, len(pts)).astype(np.float32)
        m |= _ribbon(shape, pts, phi, width)
    return _roughen(rng, m)


def _roughen(rng: np.random.Generator, m: np.ndarray) -> np.ndarray:
    """Ragged, slightly fractal edges: threshold a blurred mask plus fine noise."""
    if not m.any():
        return m
    f = cv2.GaussianBlur(m.astype(np.float32), (0, 0), 1.2)
    noise = smooth_field(rng, (m.shape[0], m.shape[1]), scale=4.0, amp=0.18)
    out: np.ndarray = ((f + noise) > 0.5) & (f > 0.05)
    return out


def draw_ship(
    truth: np.ndarray, pos: tuple[float, float], heading: float, rng: np.random.Generator
) -> None:
    """A small bright ellipse, long axis along the heading, drawn as class 3 (ship)."""
    length = int(rng.integers(2, 5))
    cv2.ellipse(
        truth,
        (round(pos[0]), round(pos[1])),
        (length, 1),
        float(np.degrees(heading)),
        0,
        360,
        3,
        -1,
    )


def nodata_wedges(rng: np.random.Generator, shape: Shape) -> np.ndarray:
    """Zero wedges at the left/right edges, as the edges of a GRD swath have."""
    h, w = shape
    m = np.zeros((h, w), np.uint8)
    for side in (0, 1):
        if rng.random() < 0.7:
            a, b = rng.uniform(0, 0.12) * w, rng.uniform(0, 0.12) * w
            if side == 0:
                poly = np.array([[0, 0], [a, 0], [b, h], [0, h]])
            else:
                poly = np.array([[w, 0], [w - a, 0], [w - b, h], [w, h]])
            cv2.fillPoly(m, [np.round(poly).astype(np.int32)], 1)
    if not m.any():
        cv2.fillPoly(m, [np.array([[0, 0], [int(0.08 * w), 0], [0, h]], np.int32)], 1)
    return m.astype(bool)
