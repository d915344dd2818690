"""Sentinel-1 GRD products (SAFE): one polarisation as calibrated σ0, window by window.

A product is a `<id>.SAFE` folder (or the zip ESA distributes it in) with
`manifest.safe`, `measurement/<base>.tiff` (uint16 amplitude DN, one per
polarisation), `annotation/<base>.xml` (image size, pixel spacing, times and
the geolocation grid), `annotation/calibration/calibration-<base>.xml` (the
σ0 look-up table) and `noise-<base>.xml` (thermal noise power).

    σ0 = (DN² − N) / A_σ²   (N only when noise removal is asked for)

A_σ is interpolated bilinearly over the calibration grid (vectors at some
lines, values at some pixels); N is the range noise LUT interpolated the same
way, times the azimuth noise LUT of its block (IPF ≥ 2.9 products). DN = 0
is no data (outside the swath) and becomes NaN. The geolocation grid becomes
GCPs in lon/lat, so slicks are placed and measured on the ground.
"""

from __future__ import annotations

import re
import threading
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from oilspill.errors import ImageError
from oilspill.io.georef import Georef, with_pixel_size

POLARISATIONS = ("VV", "HH", "VH", "HV")
_BASE = re.compile(r"^(s1[a-d])-(\w+?)-(grd|slc)-(hh|hv|vv|vh)-.*\.(tiff|xml)$", re.IGNORECASE)
NOISE_FLOOR = 1e-5  # σ0 (−50 dB) left where noise removal would go below zero


@dataclass(frozen=True)
class ProductInfo:
    """What a product says about itself, for report.json and every GeoJSON feature."""

    product_id: str
    mission: str  # S1A, S1B, S1C
    mode: str  # IW, EW, SM
    product_type: str  # GRD
    polarisation: str  # the one read: VV, HH, VH or HV
    polarisations: tuple[str, ...]  # all in the product
    start_time: str
    stop_time: str
    absolute_orbit: int
    pixel_spacing_m: tuple[float, float]  # (range, azimuth)
    lines: int
    samples: int
    noise_removed: bool

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["polarisations"] = list(self.polarisations)
        record["pixel_spacing_m"] = list(self.pixel_spacing_m)
        return record


def is_product_dir(path: Path) -> bool:
    return path.is_dir() and (path / "manifest.safe").is_file()


def product_members(names: list[str]) -> dict[str, str]:
    """The SAFE products in a zip's entry names: {"<id>.SAFE" folder prefix: product id}."""
    found: dict[str, str] = {}
    for name in names:
        parts = PurePosixPath(name).parts
        if parts and parts[-1] == "manifest.safe" and len(parts) >= 2:
            prefix = "/".join(parts[:-1])
            found[prefix] = parts[-2].removesuffix(".SAFE")
    return found


def needed_members(prefix: str, names: list[str], polarisation: str | None) -> list[str]:
    """Entries of one product to unpack: manifest, annotations, and one measurement TIFF."""
    pol = choose_polarisation(_polarisations(names, prefix), polarisation)
    keep = []
    for name in names:
        if not name.startswith(prefix + "/"):
            continue
        rel = name[len(prefix) + 1 :]
        if rel == "manifest.safe":
            keep.append(name)
            continue
        m = _BASE.match(PurePosixPath(rel).name.removeprefix("calibration-").removeprefix("noise-"))
        if m is None or m.group(4).upper() != pol:
            continue
        if rel.startswith(("annotation/", "measurement/")) and not rel.startswith("annotation/rfi"):
            keep.append(name)
    return keep


def _polarisations(names: list[str], prefix: str) -> list[str]:
    pols = []
    for name in names:
        if name.startswith(prefix + "/measurement/"):
            m = _BASE.match(PurePosixPath(name).name)
            if m is not None:
                pols.append(m.group(4).upper())
    return pols


def choose_polarisation(available: list[str], asked: str | None) -> str:
    """VV, else HH; a cross-polarisation (VH, HV) only when asked for by name."""
    if not available:
        raise ImageError("the product has no measurement TIFF (measurement/*.tiff)")
    if asked:
        if asked.upper() not in available:
            raise ImageError(
                f"the product has no {asked.upper()} measurement; it has {', '.join(available)}"
            )
        return asked.upper()
    for pol in ("VV", "HH"):
        if pol in available:
            return pol
    raise ImageError(
        f"the product has only {', '.join(available)}; oil shows in co-polarisation (VV or HH) — "
        "set --polarisation to use a cross-polarisation anyway"
    )


def extract(zip_path: Path, dest: Path, polarisation: str | None = None) -> Path:
    """Unpack one product zip's needed files into `dest` (for `oilspill segment x.zip`)."""
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
        products = product_members(names)
        if len(products) != 1:
            raise ImageError(f"{zip_path.name} holds {len(products)} SAFE products, not one")
        prefix = next(iter(products))
        for name in needed_members(prefix, names, polarisation):
            target = dest / name[len(prefix) + 1 :]
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(name) as src, target.open("wb") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
    (dest / ".product-id").write_text(products[prefix])
    return dest


# ---------------------------------------------------------------- reading


def _floats(el: ET.Element | None) -> np.ndarray:
    if el is None or not (el.text or "").strip():
        return np.zeros(0, np.float64)
    return np.array(el.text.split(), np.float64)  # type: ignore[union-attr]


def _text(root: ET.Element, path: str, default: str = "") -> str:
    el = root.find(path)
    return (el.text or default).strip() if el is not None else default


@dataclass
class _Lut:
    """Values given at (line, pixel) grid points; each vector may have its own pixels."""

    lines: np.ndarray  # (K,)
    pixels: list[np.ndarray]  # K arrays
    values: list[np.ndarray]  # K arrays

    def window(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Bilinear over the grid (linear in pixel along each vector, then in line)."""
        pairs = zip(self.pixels, self.values, strict=True)
        along = np.stack([np.interp(cols, p, v) for p, v in pairs]).astype(np.float32)
        k = np.clip(np.searchsorted(self.lines, rows, side="right") - 1, 0, len(self.lines) - 2)
        l0, l1 = self.lines[k], self.lines[k + 1]
        t = np.clip((rows - l0) / np.maximum(l1 - l0, 1e-9), 0.0, 1.0).astype(np.float32)[:, None]
        # a0 + t (a1 - a0), in float32 and in place: the window is large, the LUT smooth.
        out: np.ndarray = along[k + 1] - along[k]
        out *= t
        out += along[k]
        return out


def _lut(root: ET.Element, vector: str, value: str) -> _Lut:
    vectors = root.findall(f".//{vector}")
    if not vectors:
        raise ImageError(f"the annotation has no {vector} list")
    lines = np.array([float(_text(v, "line")) for v in vectors])
    pixels = [_floats(v.find("pixel")) for v in vectors]
    values = [_floats(v.find(value)) for v in vectors]
    order = np.argsort(lines, kind="stable")
    if len(lines) == 1:  # one vector: the same values on every line
        order = np.array([0, 0])
        lines = np.array([lines[0], lines[0] + 1.0])
        return _Lut(lines, [pixels[0]] * 2, [values[0]] * 2)
    return _Lut(lines[order], [pixels[i] for i in order], [values[i] for i in order])


@dataclass
class _AzimuthBlock:
    first_line: int
    last_line: int
    first_sample: int
    last_sample: int
    lines: np.ndarray
    lut: np.ndarray


class Product:
    """One polarisation of a GRD product, read as float32 σ0 window by window.

    Indexing with two slices (`product[r0:r1, c0:c1]`) reads that window
    only; `shape`, `dtype` and `ndim` make it usable wherever the detector
    takes an array (tiles are cut from it). Reads are serialised (one GDAL
    handle), calibration runs in the calling thread.
    """

    dtype = np.dtype(np.float32)
    ndim = 2

    def __init__(self, folder: Path, polarisation: str | None = None, *, noise: bool = False):
        if not (folder / "manifest.safe").is_file():
            raise ImageError(f"{folder.name} is not a SAFE product (no manifest.safe)")
        tiffs = sorted((folder / "measurement").glob("*.tif*"))
        by_pol = {m.group(4).upper(): p for p in tiffs if (m := _BASE.match(p.name))}
        pol = choose_polarisation(sorted(by_pol, key=POLARISATIONS.index), polarisation)
        self.measurement = by_pol[pol]
        base = self.measurement.stem
        annotation = _parse(folder / "annotation" / f"{base}.xml")
        calibration = _parse(folder / "annotation" / "calibration" / f"calibration-{base}.xml")
        self.sigma_lut = _lut(calibration, "calibrationVector", "sigmaNought")
        self.noise_lut: _Lut | None = None
        self.azimuth_blocks: list[_AzimuthBlock] = []
        if noise:
            noise_root = _parse(folder / "annotation" / "calibration" / f"noise-{base}.xml")
            if noise_root.find(".//noiseRangeVector") is not None:
                self.noise_lut = _lut(noise_root, "noiseRangeVector", "noiseRangeLut")
                self.azimuth_blocks = _azimuth_blocks(noise_root)
            else:  # IPF < 2.9: one range-and-azimuth table
                self.noise_lut = _lut(noise_root, "noiseVector", "noiseLut")
        self.lines = int(_text(annotation, ".//imageInformation/numberOfLines", "0"))
        self.samples = int(_text(annotation, ".//imageInformation/numberOfSamples", "0"))
        self._lock = threading.Lock()
        import rasterio  # here: intake reads manifests with this module, not rasters

        self._src = rasterio.open(self.measurement)
        if (self._src.height, self._src.width) != (self.lines, self.samples) or self.lines == 0:
            self.lines, self.samples = self._src.height, self._src.width
        self.georef = with_pixel_size(Georef(gcps=_gcps(annotation), epsg=4326), self.shape)
        pid = folder / ".product-id"
        head = annotation.find("adsHeader")
        head = head if head is not None else annotation
        self.info = ProductInfo(
            product_id=pid.read_text().strip()
            if pid.is_file()
            else folder.name.removesuffix(".SAFE"),
            mission=_text(head, "missionId"),
            mode=_text(head, "mode"),
            product_type=_text(head, "productType"),
            polarisation=pol,
            polarisations=tuple(sorted(by_pol, key=POLARISATIONS.index)),
            start_time=_text(head, "startTime"),
            stop_time=_text(head, "stopTime"),
            absolute_orbit=int(_text(head, "absoluteOrbitNumber", "0")),
            pixel_spacing_m=(
                float(_text(annotation, ".//imageInformation/rangePixelSpacing", "nan")),
                float(_text(annotation, ".//imageInformation/azimuthPixelSpacing", "nan")),
            ),
            lines=self.lines,
            samples=self.samples,
            noise_removed=noise,
        )

    @property
    def shape(self) -> tuple[int, int]:
        return self.lines, self.samples

    def close(self) -> None:
        self._src.close()

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        rs, cs = key
        r0, r1, _ = rs.indices(self.lines)
        c0, c1, _ = cs.indices(self.samples)
        return self.read(r0, r1, c0, c1)

    def dn(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        with self._lock:
            window = ((r0, r1), (c0, c1))  # rasterio's (row, col) ranges
            out: np.ndarray = self._src.read(1, window=window)
        return out

    def read(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """σ0 (linear, float32) of rows r0:r1 and columns c0:c1; NaN where DN = 0."""
        dn = self.dn(r0, r1, c0, c1)
        rows = np.arange(r0, r1, dtype=np.float64)
        cols = np.arange(c0, c1, dtype=np.float64)
        power = dn.astype(np.float32)
        power *= power
        if self.noise_lut is not None:
            power -= self.noise(rows, cols)
        a = self.sigma_lut.window(rows, cols)
        a *= a
        sigma0 = power
        sigma0 /= a
        if self.noise_lut is not None:
            np.maximum(sigma0, NOISE_FLOOR, out=sigma0)
        sigma0[dn == 0] = np.nan
        return sigma0

    def noise(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Thermal noise power at rows x cols: range LUT times the azimuth LUT of its block."""
        assert self.noise_lut is not None
        power = self.noise_lut.window(rows, cols)
        for b in self.azimuth_blocks:
            rsel = (rows >= b.first_line) & (rows <= b.last_line)
            csel = (cols >= b.first_sample) & (cols <= b.last_sample)
            if rsel.any() and csel.any():
                factor = np.interp(rows[rsel], b.lines, b.lut).astype(np.float32)
                power[np.ix_(rsel, csel)] *= factor[:, None]
        return power


def _parse(path: Path) -> ET.Element:
    try:
        return ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise ImageError(f"cannot read {path.name} of the product: {exc}") from exc


def _gcps(annotation: ET.Element) -> tuple[tuple[float, float, float, float], ...]:
    """Geolocation grid points as GCPs; a grid point's (pixel, line) is a pixel's centre,
    so +0.5 puts it in GDAL's corner-based raster space."""
    out = []
    for p in annotation.iter("geolocationGridPoint"):
        out.append((
            float(_text(p, "pixel")) + 0.5,
            float(_text(p, "line")) + 0.5,
            float(_text(p, "longitude")),
            float(_text(p, "latitude")),
        ))  # fmt: skip
    if len(out) < 3:
        raise ImageError("the annotation has no geolocation grid")
    return tuple(out)


def _azimuth_blocks(root: ET.Element) -> list[_AzimuthBlock]:
    blocks = []
    for v in root.iter("noiseAzimuthVector"):
        lines = _floats(v.find("line"))
        lut = _floats(v.find("noiseAzimuthLut"))
        if len(lines) == 0 or len(lines) != len(lut):
            continue
        blocks.append(_AzimuthBlock(
            int(_text(v, "firstAzimuthLine", "0")), int(_text(v, "lastAzimuthLine", "0")),
            int(_text(v, "firstRangeSample", "0")), int(_text(v, "lastRangeSample", "0")),
            lines, lut,
        ))  # fmt: skip
    return blocks
