"""Small but format-faithful Sentinel-1 IW GRD products (SAFE folders, optionally zipped) for tests.

Element names, file names and layout follow ESA's Level-1 product format (IPF >= 2.9 noise
layout: range LUT vectors plus an azimuth noise vector).  Only what a GRD reader needs is
written; the known truth (sigma0, LUTs at every pixel, the exact pixel -> lon/lat mapping) comes
back in a `Truth`.

Pixel convention (geolocation grid, tie points, LUT `pixel`/`line`, `Truth.lonlat`): integer
(col, row) = (pixel, line) is the CENTRE of that pixel.  The tie points are written exactly as the
grid, with GTRasterTypeGeoKey = PixelIsArea, as ESA does, so GDAL (which reads area tie points as
corner coordinates) is half a pixel off this convention - just as it is on real products.
"""

from __future__ import annotations

import binascii
import hashlib
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import tifffile
from pyproj import Geod

F64 = npt.NDArray[np.float64]
BETA = 470.0  # betaNought (and dn) LUT value, constant as in real GRD products
HEADING = -12.0  # platform heading, degrees from north (ascending-like tilt); rows go along it
CROSS_POL_DB = -7.0  # the second polarisation's sigma0 relative to the first
_RE, _RS, _C = 6371e3, 6371e3 + 693e3, 299792458.0  # earth radius, orbit radius, light speed
_POLCODE = {("VV", "VH"): "DV", ("VV",): "SV", ("HH", "HV"): "DH", ("HH",): "SH"}
_NS = {
    "xmlns:xfdu": "urn:ccsds:schema:xfdu:1",
    "xmlns:gml": "http://www.opengis.net/gml",
    "xmlns:safe": "http://www.esa.int/safe/sentinel-1.0",
    "xmlns:s1": "http://www.esa.int/safe/sentinel-1.0/sentinel-1",
    "xmlns:s1sarl1": "http://www.esa.int/safe/sentinel-1.0/sentinel-1/sar/level-1",
    "version": "esa/safe/sentinel-1.0/sentinel-1/sar/level-1/standard/iwdp",
}
_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'


@dataclass
class Truth:
    product_dir: Path  # the <name>.SAFE folder
    zip_path: Path | None  # folder/<name>.zip when zipped=True
    name: str  # product id
    sigma0: npt.NDArray[np.float32]  # linear co-pol sigma0 the DN encode (before noise), NaN: DN 0
    a_sigma: F64  # sigmaNought LUT at every pixel (bilinear over the LUT grid)
    noise: F64  # noise power (range LUT x azimuth LUT) at every pixel
    lonlat: Callable[[F64, F64], tuple[F64, F64]]  # (col, row) pixel centres -> (lon, lat)
    pixel_spacing_m: tuple[float, float]  # (range, azimuth)


def lut_bilinear(
    lines: Sequence[int], pixels: Sequence[Sequence[int]], values: Sequence[F64], h: int, w: int
) -> F64:
    """Reference LUT interpolation: np.interp along pixels on the two vectors bracketing a row,
    then linear in line (linear extrapolation before the first / after the last vector)."""
    out = np.empty((h, w))
    cols = np.arange(w, dtype=np.float64)
    for row in range(h):
        j = int(np.clip(np.searchsorted(lines, row, side="right") - 1, 0, len(lines) - 2))
        v0 = np.interp(cols, pixels[j], values[j])
        v1 = np.interp(cols, pixels[j + 1], values[j + 1])
        out[row] = v0 + (row - lines[j]) / (lines[j + 1] - lines[j]) * (v1 - v0)
    return out


def _e(tag: str, *kids: str, **attrs: object) -> str:
    """One pretty-printed XML element: a lone non-markup child is its text."""
    at = "".join(f' {k}="{v}"' for k, v in attrs.items())
    if len(kids) == 1 and not kids[0].startswith("<"):
        return f"<{tag}{at}>{kids[0]}</{tag}>"
    body = "".join(f"  {line}\n" for kid in kids for line in kid.splitlines())
    return f"<{tag}{at}>\n{body}</{tag}>" if kids else f"<{tag}{at}/>"


def _text(values: Sequence[float] | F64, fmt: str = ".6e") -> str:
    return " ".join(format(int(v) if fmt == "d" else float(v), fmt) for v in values)


def _list(tag: str, values: Sequence[float] | F64, fmt: str = ".6e") -> str:
    return _e(tag, _text(values, fmt), count=len(values))


def _as_written(values: F64) -> F64:
    # LUT values as a reader gets them back from the XML (6 significant digits, like ESA)
    return np.array(_text(values).split(), np.float64)


def _incidence(col: F64, row: F64, w: int, h: int) -> F64:
    # A whole IW swath (30..46 deg) squeezed into the small image, plus a slight azimuth drift.
    return 30.0 + 16.0 * col / max(w - 1, 1) + 1.0 * row / max(h - 1, 1)


def _a_sigma(col: F64, row: F64, w: int, h: int) -> F64:
    # sigma0 = beta0 * sin(incidence), so A_sigma = A_beta / sqrt(sin(incidence))
    return BETA / np.sqrt(np.sin(np.radians(_incidence(col, row, w, h))))


def _vector_lines(h: int, parts: int) -> list[int]:
    step = -(-h // parts)  # 0, ~h/parts, ..., the last at >= h (past the last line, like ESA)
    return [k * step for k in range(parts + 1)]


def _vector_pixels(w: int, step: int) -> list[int]:
    return [*range(0, w - 1, step), w - 1]


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")


def build_product(
    folder: Path,
    sigma0_db: npt.NDArray[np.floating[Any]],
    *,
    pols: tuple[str, ...] = ("VV", "VH"),
    noise_db: float | None = -25.0,
    nodata_cols: int = 0,
    zipped: bool = False,
    mission: str = "S1A",
    start: str = "2023-07-05T05:30:12.345678",
    stop: str = "2023-07-05T05:30:37.345678",
    orbit: int = 49296,
    spacing_m: float = 10.0,
    centre_lonlat: tuple[float, float] = (20.0, 55.0),
) -> Truth:
    """Write folder/<name>.SAFE (and folder/<name>.zip if zipped); return the truth.

    The first polarisation gets sigma0_db, the second (cross-pol) sigma0_db + CROSS_POL_DB.  Both
    share the calibration and noise LUTs: DN = round(sqrt(sigma0 * A_sigma^2 + N)), clipped to
    1..65535, and DN = 0 in the first `nodata_cols` columns.  noise_db=None: all-zero noise LUTs."""
    if pols not in _POLCODE:
        raise ValueError(f"unsupported polarisations {pols}")
    h, w = sigma0_db.shape
    t0, t1 = datetime.fromisoformat(start), datetime.fromisoformat(stop)
    take = (388491 + 8 * (orbit - 49296)) % 0x1000000  # datatake id; orbit 049296 -> 05ED8B
    stamp = f"{t0:%Y%m%dT%H%M%S}_{t1:%Y%m%dT%H%M%S}_{orbit:06d}_{take:06X}"
    res = "H" if spacing_m < 25 else "M"
    prefix = f"{mission}_IW_GRD{res}_1S{_POLCODE[pols]}_{stamp}"
    name = f"{prefix}_{binascii.crc_hqx(prefix.encode(), 0xFFFF):04X}"  # ESA: a CRC-16 too
    safe = folder / f"{name}.SAFE"
    for sub in ("measurement", "annotation/calibration"):
        (safe / sub).mkdir(parents=True, exist_ok=True)

    # Truth georeference: from the centre go (row - rc) * spacing along HEADING, then
    # (col - cc) * spacing along HEADING + 90 (right-looking: range to the right of the track).
    geod, rc, cc = Geod(ellps="WGS84"), (h - 1) / 2, (w - 1) / 2

    def lonlat(col: F64, row: F64) -> tuple[F64, F64]:
        c, r = np.broadcast_arrays(np.asarray(col, np.float64), np.asarray(row, np.float64))
        lon0, lat0 = np.full(c.shape, centre_lonlat[0]), np.full(c.shape, centre_lonlat[1])
        lon1, lat1, _ = geod.fwd(lon0, lat0, np.full(c.shape, HEADING), (r - rc) * spacing_m)
        lon, lat, _ = geod.fwd(lon1, lat1, np.full(c.shape, HEADING + 90), (c - cc) * spacing_m)
        return np.asarray(lon, np.float64), np.asarray(lat, np.float64)

    def az_time(line: float) -> str:
        return _iso(t0 + (t1 - t0) * (float(line) / max(h - 1, 1)))

    # Geolocation grid: 8 pixels x 6 lines including the last ones, line-major like ESA.
    gp, gl = (np.unique(np.rint(np.linspace(0, n - 1, k))) for n, k in ((w, 8), (h, 6)))
    pp, ll = np.meshgrid(gp, gl)
    glon, glat = lonlat(pp, ll)
    inc = _incidence(pp, ll, w, h)
    elev = np.degrees(np.arcsin(_RE / _RS * np.sin(np.radians(inc))))
    srt = 2 * _RE * np.sin(np.radians(inc - elev)) / np.sin(np.radians(elev)) / _C  # two-way
    points = [
        _e("geolocationGridPoint", _e("azimuthTime", az_time(li)),
           _e("slantRangeTime", f"{s:.12e}"), _e("line", str(int(li))), _e("pixel", str(int(p))),
           _e("latitude", f"{la:.16e}"), _e("longitude", f"{lo:.16e}"),
           _e("height", "0.000000e+00"), _e("incidenceAngle", f"{i:.12e}"),
           _e("elevationAngle", f"{el:.12e}"))
        for p, li, la, lo, s, i, el in zip(
            *(a.ravel() for a in (pp, ll, glat, glon, srt, inc, elev)), strict=True)
    ]  # fmt: skip
    ties = np.stack([pp, ll, 0 * pp, glon, glat, 0 * pp], -1).ravel()  # pixel line k lon lat h
    geokeys = (1, 1, 0, 4, 1024, 0, 1, 2, 1025, 0, 1, 1, 2048, 0, 1, 4326, 2054, 0, 1, 9102)

    # Calibration LUT: vectors at 0, ~h/4, ..., past the last line; pixels 0, 40, ..., w-1.
    c_lines, c_pix = _vector_lines(h, 4), _vector_pixels(w, 40)
    px = np.asarray(c_pix, np.float64)
    sig_lut = [_as_written(_a_sigma(px, px * 0 + line, w, h)) for line in c_lines]
    a_sigma = lut_bilinear(c_lines, [c_pix] * len(c_lines), sig_lut, h, w)
    cal_vectors = [
        _e("calibrationVector", _e("azimuthTime", az_time(line)), _e("line", str(line)),
           _list("pixel", c_pix, "d"), _list("sigmaNought", sig),
           _list("betaNought", [BETA] * len(c_pix)),
           _list("gamma", BETA / np.sqrt(np.tan(np.radians(_incidence(px, px * 0 + line, w, h))))),
           _list("dn", [BETA] * len(c_pix)))
        for line, sig in zip(c_lines, sig_lut, strict=True)
    ]  # fmt: skip

    # Noise: range LUT = NESZ(pixel) * A_sigma^2 (NESZ ~ noise_db, higher at the swath edges) on
    # its own grid (vectors every ~h/3, pixels every 37), times one azimuth vector of 0.9..1.1.
    lin = 0.0 if noise_db is None else 10 ** (noise_db / 10)
    n_lines, n_pix = _vector_lines(h, 3), _vector_pixels(w, 37)
    npx = np.asarray(n_pix, np.float64)
    nesz = lin * (0.7 + 0.9 * (2 * npx / max(w - 1, 1) - 1) ** 2)
    rng_lut = [_as_written(nesz * _a_sigma(npx, npx * 0 + line, w, h) ** 2) for line in n_lines]
    az_lines = [int(v) for v in np.unique(np.rint(np.linspace(0, h - 1, 6)))]
    az_phase = 2 * np.pi * np.array(az_lines, np.float64) / max(h - 1, 1)
    az_lut = _as_written((lin > 0) * (1 + 0.1 * np.sin(az_phase)))
    az_rows = np.interp(np.arange(h), az_lines, az_lut)
    noise = lut_bilinear(n_lines, [n_pix] * len(n_lines), rng_lut, h, w) * az_rows[:, None]
    noise_lists = [
        _e("noiseRangeVectorList", *(
            _e("noiseRangeVector", _e("azimuthTime", az_time(line)), _e("line", str(line)),
               _list("pixel", n_pix, "d"), _list("noiseRangeLut", v))
            for line, v in zip(n_lines, rng_lut, strict=True)), count=len(n_lines)),
        _e("noiseAzimuthVectorList", _e(
            "noiseAzimuthVector", _e("swath", "IW1"), _e("firstAzimuthLine", "0"),
            _e("firstRangeSample", "0"), _e("lastAzimuthLine", str(h - 1)),
            _e("lastRangeSample", str(w - 1)), _list("line", az_lines, "d"),
            _list("noiseAzimuthLut", az_lut)), count=1),
    ]  # fmt: skip

    sigma = 10 ** (np.asarray(sigma0_db, np.float64) / 10)
    info = [
        _e("productFirstLineUtcTime", _iso(t0)), _e("productLastLineUtcTime", _iso(t1)),
        _e("slantRangeTime", f"{srt.min():.12e}"), _e("pixelValue", "Detected"),
        _e("outputPixels", "16 bit Unsigned Integer"),
        _e("rangePixelSpacing", f"{spacing_m:.6e}"), _e("azimuthPixelSpacing", f"{spacing_m:.6e}"),
        _e("azimuthTimeInterval", f"{(t1 - t0).total_seconds() / max(h - 1, 1):.12e}"),
        _e("numberOfSamples", str(w)), _e("numberOfLines", str(h)),
        _e("incidenceAngleMidSwath", f"{float(_incidence(np.array(cc), np.array(rc), w, h)):.12e}"),
    ]  # fmt: skip
    general = _e("generalAnnotation", _e(
        "productInformation", _e("pass", "Ascending"), _e("timelinessCategory", "NRT-3h"),
        _e("platformHeading", f"{HEADING:.12e}"), _e("projection", "Ground Range"),
        _e("radarFrequency", "5.405000454334350e+09")))  # fmt: skip
    objects: list[tuple[str, str, str]] = []  # (dataObject ID, repID, href)
    for number, pol in enumerate(pols, 1):
        base = f"{mission}-iw-grd-{pol}-{stamp.replace('_', '-')}-{number:03d}".lower()
        oid = base.replace("-", "", 4)  # as ESA: s1aiwgrdvv20230705t053012-...-001
        s = sigma * 10 ** ((number > 1) * CROSS_POL_DB / 10)
        dn = np.clip(np.rint(np.sqrt(s * a_sigma**2 + noise)), 1, 65535).astype(np.uint16)
        dn[:, :nodata_cols] = 0
        tifffile.imwrite(
            safe / "measurement" / f"{base}.tiff", dn, photometric="minisblack",
            compression=None, rowsperstrip=1, metadata=None, software="Sentinel-1 IPF 003.61",
            description=f"Sentinel-1{mission[-1]} IW GRD {res}R L1",
            extratags=[(33922, 12, ties.size, tuple(ties.tolist()), True),
                       (34735, 3, len(geokeys), geokeys, True)],
        )  # fmt: skip
        ads = _e(
            "adsHeader", _e("missionId", mission), _e("productType", "GRD"),
            _e("polarisation", pol), _e("mode", "IW"), _e("swath", "IW"),
            _e("startTime", _iso(t0)), _e("stopTime", _iso(t1)),
            _e("absoluteOrbitNumber", str(orbit)), _e("missionDataTakeId", str(take)),
            _e("imageNumber", f"{number:03d}"))  # fmt: skip
        files = {
            f"annotation/{base}.xml": _e(
                "product", ads, general, _e("imageAnnotation", _e("imageInformation", *info)),
                _e("geolocationGrid", _e("geolocationGridPointList", *points, count=len(points)))),
            f"annotation/calibration/calibration-{base}.xml": _e(
                "calibration", ads, _e("calibrationInformation",
                                       _e("absoluteCalibrationConstant", "1.000000e+00")),
                _e("calibrationVectorList", *cal_vectors, count=len(cal_vectors))),
            f"annotation/calibration/noise-{base}.xml": _e("noise", ads, *noise_lists),
        }  # fmt: skip
        for href, xml in files.items():
            (safe / href).write_text(_HEAD + xml + "\n")
        objects += [
            (f"product{oid}", "s1Level1ProductSchema", f"annotation/{base}.xml"),
            (oid, "s1Level1MeasurementSchema", f"measurement/{base}.tiff"),
            (f"calibration{oid}", "s1Level1CalibrationSchema",
             f"annotation/calibration/calibration-{base}.xml"),
            (f"noise{oid}", "s1Level1NoiseSchema", f"annotation/calibration/noise-{base}.xml"),
        ]  # fmt: skip

    clon, clat = lonlat(np.array([0.0, w - 1, w - 1, 0.0]), np.array([0.0, 0.0, h - 1, h - 1]))
    footprint = " ".join(f"{la:.6f},{lo:.6f}" for lo, la in zip(clon, clat, strict=True))

    def wrap(oid: str, text: str, body: str) -> str:
        return _e("metadataObject", _e(
            "metadataWrap", _e("xmlData", body), mimeType="text/xml", vocabularyName="SAFE",
            textInfo=text), ID=oid, classification="DESCRIPTION", category="DMD")  # fmt: skip

    def data_object(oid: str, rep: str, href: str) -> str:
        blob = (safe / href).read_bytes()
        mime = "application/octet-stream" if href.endswith(".tiff") else "text/xml"
        return _e("dataObject", _e(
            "byteStream", _e("fileLocation", locatorType="URL", href=f"./{href}"),
            _e("checksum", hashlib.md5(blob).hexdigest(), checksumName="MD5"),
            mimeType=mime, size=len(blob)), ID=oid, repID=rep)  # fmt: skip

    mode = _e("s1sarl1:instrumentMode", _e("s1sarl1:mode", "IW"),
              *(_e("s1sarl1:swath", f"IW{k}") for k in "123"))  # fmt: skip
    instrument = _e("safe:instrument", _e("safe:familyName", "Synthetic Aperture Radar",
                    abbreviation="SAR-C"), _e("safe:extension", mode))  # fmt: skip
    rel = (orbit - {"S1A": 73, "S1B": 27}.get(mission, 73)) % 175 + 1
    manifest = _e(
        "xfdu:XFDU",
        _e("informationPackageMap", _e(
            "xfdu:contentUnit", *(
                _e("xfdu:contentUnit", _e("dataObjectPointer", dataObjectID=oid), repID=rep,
                   unitType="Measurement Data Unit" if "Measure" in rep else "Metadata Unit")
                for oid, rep, _ in objects),
            unitType="SAFE Archive Information Package",
            textInfo="Sentinel-1 IW Level-1 GRD Product")),
        _e("metadataSection",
           wrap("acquisitionPeriod", "Acquisition Period", _e(
               "safe:acquisitionPeriod", _e("safe:startTime", _iso(t0)),
               _e("safe:stopTime", _iso(t1)))),
           wrap("platform", "Platform Description", _e(
               "safe:platform", _e("safe:familyName", "SENTINEL-1"),
               _e("safe:number", mission[-1]), instrument)),
           wrap("generalProductInformation", "General Product Information", _e(
               "s1sarl1:standAloneProductInformation", _e("s1sarl1:productClass", "S"),
               _e("s1sarl1:productType", "GRD"), _e("s1sarl1:missionDataTakeID", str(take)),
               *(_e("s1sarl1:transmitterReceiverPolarisation", p) for p in pols))),
           wrap("measurementOrbitReference", "Orbit Reference", _e(
               "safe:orbitReference", _e("safe:orbitNumber", str(orbit), type="start"),
               _e("safe:orbitNumber", str(orbit), type="stop"),
               _e("safe:relativeOrbitNumber", str(rel), type="start"),
               _e("safe:extension", _e("s1:orbitProperties", _e("s1:pass", "ASCENDING"))))),
           wrap("measurementFrameSet", "Frame Set", _e("safe:frameSet", _e("safe:frame", _e(
               "safe:footPrint", _e("gml:coordinates", footprint),
               srsName="http://www.opengis.net/gml/srs/epsg.xml#4326"))))),
        _e("dataObjectSection", *(data_object(*o) for o in objects)),
        **_NS,
    )  # fmt: skip
    (safe / "manifest.safe").write_text(_HEAD + manifest + "\n")
    zip_path = None
    if zipped:
        zip_path = folder / f"{name}.zip"
        with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted([safe, *safe.rglob("*")]):
                zf.write(path, path.relative_to(folder).as_posix())
    sigma0 = sigma.astype(np.float32)
    sigma0[:, :nodata_cols] = np.nan
    return Truth(safe, zip_path, name, sigma0, a_sigma, noise, lonlat, (spacing_m, spacing_m))


if __name__ == "__main__":
    import shutil

    out = Path("/tmp/s1safe_check")
    shutil.rmtree(out, ignore_errors=True)
    ramp = np.linspace(-8.0, -16.0, 400)[None, :] + np.zeros((300, 1))
    truth = build_product(out, ramp, nodata_cols=5, zipped=True)
    print(truth.name, truth.zip_path)
    for f in sorted(truth.product_dir.rglob("*")):
        print(" ", f.relative_to(out), f.stat().st_size if f.is_file() else "")
    for f in sorted([*truth.product_dir.rglob("*.xml"), truth.product_dir / "manifest.safe"]):
        lines = f.read_text().splitlines()
        after = next((i for i, x in enumerate(lines) if "</adsHeader>" in x), 4)
        print(f"--- {f.name}", *lines[:4], "  ...", *lines[after : after + 16], sep="\n")
