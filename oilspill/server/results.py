"""Write one image's outputs to its job folder and describe them.

Per image n, under `<job>/out/`: the annotated overlay (in the format its name
promises), the class mask (PNG, or GeoTIFF for georeferenced inputs), a preview
of the original (an uncompressed PNG when grey, else a JPEG) and a
thumbnail of the overlay for the web page.
The returned record is saved as `<n>.json`, last, which marks n as done.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from oilspill.backends.base import Segmentation
from oilspill.backends.sar import segment_raster
from oilspill.errors import BackendError, ImageError
from oilspill.io import images
from oilspill.io.georef import write_cog_mask
from oilspill.io.images import Raster
from oilspill.sar.overlay import CLASS_RGB, draw_overlay
from oilspill.sar.records import Cls
from oilspill.sar.tilemask import Mask, TileMask
from oilspill.server.jobs import Item

PREVIEW_PX = 1600
THUMB_PX = 360


# Image n's files are `out/<n:05d><suffix>`, the suffix saying what each one is.
def overlay_suffix(name: str, fmt: str) -> str:
    return f".annotated.{images.output_format(name, fmt)}"


def mask_suffix(mask_name: str) -> str:
    return ".mask.tif" if mask_name.endswith(".tif") else ".mask.png"


MASK_PREVIEW_SUFFIX = ".mask-preview.png"  # the mask in colours, at most MASK_PREVIEW_PX
MASK_PALETTE = {int(c): rgb for c, rgb in CLASS_RGB.items()}  # class id -> RGB, for the eye
MASK_PREVIEW_PX = PREVIEW_PX  # as large as the original's preview, which the page shows beside it
# The input for the page, at most PREVIEW_PX. Grey (SAR): an uncompressed PNG, lossless,
# 0.5 ms where a JPEG took 5 at 1250x650, for ~1.7x the bytes of a JPEG at quality 90 (read
# only when the page's viewer shows it). In colour, or as a remote service sent it: a JPEG,
# as every preview was before (a restart may bring such jobs back).
PREVIEW_SUFFIX = ".original-preview.png"
JPEG_PREVIEW_SUFFIX = ".original-preview.jpg"
THUMB_SUFFIX = ".annotated-thumbnail.jpg"  # the annotated image, at most THUMB_PX
KINDS = ("overlay", "original", "thumbnail", "mask", "mask-preview")
# Not written when the backend gives no mask (the overlay is its own thumbnail then).
MASK_KINDS = ("original", "thumbnail", "mask", "mask-preview")


def output_suffixes(kind: str, item: Item) -> tuple[str, ...]:
    """The file suffixes one of an image's outputs may have, by kind: the file is the first
    of them that exists. Empty for an unknown kind."""
    return {
        "overlay": (overlay_suffix(item.name, item.fmt),),
        "original": (PREVIEW_SUFFIX, JPEG_PREVIEW_SUFFIX),
        "thumbnail": (THUMB_SUFFIX,),
        "mask": (mask_suffix(item.mask_name),),
        "mask-preview": (MASK_PREVIEW_SUFFIX,),
    }.get(kind, ())


def process_file(
    path: Path,
    name: str,
    fmt: str,
    options: images.ReadOptions,
    pixel_size_m: float | None,
    out_dir: Path,
    index: int,
    mask_name: str,
    page_files: bool = True,
) -> dict[str, Any]:
    """Decode, segment with the embedded detector and write one image's outputs; its record
    (blocking), with the seconds of each stage under STAGES_KEY. What a worker thread or
    process runs for the embedded detector: paths go in and the record comes out, in one
    call (not three, each a trip through the event loop). `page_files` as in write_outputs."""
    started = time.monotonic()
    raster = images.load(path, name, fmt, options)
    try:
        raster.source = path
        decoded = time.monotonic()
        seg = segment_raster(raster, pixel_size_m)
        segmented = time.monotonic()
        record = write_outputs(raster, seg, out_dir, index, mask_name, page_files)
    finally:
        raster.close()
    record[STAGES_KEY] = {
        "decode": decoded - started,
        "segment": segmented - decoded,
        "write": time.monotonic() - segmented,
    }
    return record


STAGES_KEY = "_stage_seconds"  # process_file's stage times, for the metrics (not saved)


def write_outputs(
    raster: Raster,
    seg: Segmentation,
    out_dir: Path,
    index: int,
    mask_name: str,
    page_files: bool = True,
) -> dict[str, Any]:
    """Encode and write every output file of one image (blocking); return its record.

    Without `page_files`, the page's thumbnail and original preview, which no result zip
    holds, are not made (`oilspill segment`: ~4 ms of CPU an image at 1250x650).

    What a remote service sent encoded (overlay, mask, quicklook) is written as it came.
    A segmentation without a mask (a model server that answers with a picture only)
    gets its picture, checked to be whole, and nothing else: the page shows the picture
    itself as the thumbnail.
    """
    stem = out_dir / f"{index:05d}"
    fmt = images.output_format(raster.name, raster.fmt)
    overlay_path = Path(f"{stem}{overlay_suffix(raster.name, raster.fmt)}")
    if seg.mask is None:
        assert seg.overlay_file is not None
        sent_fmt, sent = seg.overlay_file
        try:
            images.check_whole(sent, sent_fmt)
        except ImageError as exc:
            raise BackendError(f"the model server's annotated image is broken: {exc}") from exc
        encoded = sent if sent_fmt == fmt else images.encode(_for(fmt, _decode(sent)), fmt)
        overlay_path.write_bytes(encoded)
        return describe(raster, seg)
    thumb = seg.thumbnail_jpeg
    if seg.overlay_file is not None:  # as a remote service sent it
        sent_fmt, sent = seg.overlay_file
        if thumb is None:
            thumb = thumbnail(_decode_reduced(sent, THUMB_PX))  # also proves that it decodes
        encoded = sent if sent_fmt == fmt else images.encode(_for(fmt, _decode(sent)), fmt)
    else:
        assert seg.overlay is not None
        if thumb is None and page_files:
            thumb = drawn_thumbnail(raster, seg)
        encoded = images.encode(_for(fmt, seg.overlay), fmt)
    overlay_path.write_bytes(encoded)
    if page_files and thumb is not None:
        Path(f"{stem}{THUMB_SUFFIX}").write_bytes(thumb)
    mask_path = Path(f"{stem}{mask_suffix(mask_name)}")
    preview_png = seg.mask_preview_png
    if mask_name.endswith(".tif"):  # georeferenced input: a Cloud-Optimized GeoTIFF
        write_cog_mask(mask_path, seg.mask, raster.georef, MASK_PALETTE)
    elif seg.mask_png is not None:
        mask_path.write_bytes(seg.mask_png)
    else:
        mask = np.ascontiguousarray(np.asarray(seg.mask), dtype=np.uint8)
        if preview_png is None and max(mask.shape) <= MASK_PREVIEW_PX:
            # The preview is the mask itself in colours: one deflate for both (1.3 ms less).
            mask_png, preview_png = images.encode_class_pngs(mask, MASK_PALETTE)
        else:
            mask_png = images.encode(mask, "png")
        mask_path.write_bytes(mask_png)
    Path(f"{stem}{MASK_PREVIEW_SUFFIX}").write_bytes(preview_png or mask_preview(seg.mask))

    if page_files:
        suffix, preview = original_preview(raster, seg)
        Path(f"{stem}{suffix}").write_bytes(preview)
    return describe(raster, seg)


def original_preview(raster: Raster, seg: Segmentation) -> tuple[str, bytes]:
    """The original as the annotated image shows it (same stretch), else a stretch of its
    own; and its file suffix."""
    if seg.quicklook_jpeg is not None:
        return JPEG_PREVIEW_SUFFIX, seg.quicklook_jpeg
    if seg.quicklook is not None:
        preview = images.fit_within(seg.quicklook, PREVIEW_PX)
    else:
        preview = _preview(raster)
    if preview.ndim == 2:
        return PREVIEW_SUFFIX, images.encode_png(preview, stored=True)
    return JPEG_PREVIEW_SUFFIX, images.encode(_for("jpeg", preview), "jpeg")


def _for(fmt: str, pixels: np.ndarray) -> np.ndarray:
    """Pixels as `fmt` can hold them: JPEG has no alpha."""
    if fmt == "jpeg" and pixels.ndim == 3 and pixels.shape[2] == 4:
        converted: np.ndarray = cv2.cvtColor(pixels, cv2.COLOR_BGRA2BGR)
        return converted
    return pixels


def _decode(data: bytes) -> np.ndarray:
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise BackendError("the model server's annotated image cannot be decoded")
    return pixels


def _decode_reduced(data: bytes, longest: int) -> np.ndarray:
    """An encoded image decoded at 1/2, 1/4 or 1/8 when it is that much larger than
    `longest` (JPEG decodes that much faster); raises BackendError when it is broken."""
    fmt = images.sniff(data[:64])
    flags = cv2.IMREAD_COLOR
    if fmt in ("jpeg", "png", "webp") and len(data) > 64:
        try:
            w, h = images.size_of(data, fmt)
        except ImageError as exc:
            raise BackendError(f"the model server's annotated image is broken: {exc}") from exc
        ratio = max(w, h) / longest
        reduced = (
            (8, cv2.IMREAD_REDUCED_COLOR_8),
            (4, cv2.IMREAD_REDUCED_COLOR_4),
            (2, cv2.IMREAD_REDUCED_COLOR_2),
        )
        flags = next((f for n, f in reduced if ratio >= n), cv2.IMREAD_COLOR)
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if pixels is None:
        raise BackendError("the model server's annotated image cannot be decoded")
    return pixels


def thumbnail(overlay: np.ndarray) -> bytes:
    """The page's thumbnail of an overlay: a JPEG at most THUMB_PX (blocking)."""
    return images.encode(_for("jpeg", images.fit_within(overlay, THUMB_PX, thumbnail=True)), "jpeg")


def drawn_thumbnail(raster: Raster, seg: Segmentation) -> bytes:
    """The thumbnail drawn afresh on the quicklook shrunk to THUMB_PX: one grey channel
    shrunk instead of three, the tints and outlines drawn on 1/12 of the pixels (1 ms
    where shrinking the overlay took 2.5). Shrinking the overlay when there is no
    quicklook or the mask is tiled."""
    if seg.quicklook is None or not isinstance(seg.mask, np.ndarray):
        assert seg.overlay is not None
        return thumbnail(seg.overlay)
    small = images.fit_within(seg.quicklook, THUMB_PX, thumbnail=True)
    scale = small.shape[1] / raster.shape[1]
    drawn = draw_overlay(small, scale, seg.mask, seg.slicks, seg.ships)
    return images.encode(drawn, "jpeg")


def mask_preview(mask: Mask) -> bytes:
    """The class mask in colours: a palette PNG at most MASK_PREVIEW_PX (blocking)."""
    return images.encode_png_indexed(_mask_preview(mask), MASK_PALETTE)


def _mask_preview(mask: Mask) -> np.ndarray:
    """The class mask at most MASK_PREVIEW_PX, decimated (nearest) tile by tile."""
    h, w = mask.shape[:2]
    scale = min(1.0, MASK_PREVIEW_PX / max(h, w))
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    if isinstance(mask, TileMask):
        small = mask.decimated(size)
    elif scale < 1.0:
        small = cv2.resize(np.asarray(mask, np.uint8), size[::-1], interpolation=cv2.INTER_NEAREST)
    else:
        small = np.asarray(mask, np.uint8)
    return small


def _preview(raster: Raster) -> np.ndarray:
    """The input for the page, at most PREVIEW_PX, from a decimated raster (never a full copy)."""
    small = images.decimated(raster.pixels, PREVIEW_PX)
    if raster.fmt == "safe":  # calibrated σ0: stretch it in dB, as the eye sees radar
        with np.errstate(divide="ignore", invalid="ignore"):
            small = 10 * np.log10(np.maximum(small, 1e-6))
    return images.to_display(small)


def describe(raster: Raster, seg: Segmentation) -> dict[str, Any]:
    """The JSON record of one segmented image: summary numbers, slicks, ships, detector info.

    Without a mask nothing was counted: the counts are None, not 0, and `masks` is False.
    """
    height, width = raster.shape
    record: dict[str, Any] = {
        "slicks": [s.to_dict() for s in seg.slicks],
        "ships": [s.to_dict() for s in seg.ships],
        "info": seg.info,
        "georef": _georef_record(raster),
        "product": raster.product,
    }
    oil_pixels = seg.oil_pixels
    if oil_pixels is None:
        unknown = dict.fromkeys(
            ("slicks", "lookalikes", "ships", "oil_pixels", "oil_fraction", "oil_area_km2")
        )
        summary: dict[str, Any] = {
            **unknown,
            "max_confidence": None,
            "confidences": [],
            "masks": False,
        }
        return {"summary": {**summary, "width": width, "height": height}, **record}
    oil = [s for s in seg.slicks if s.cls == Cls.OIL]
    scores = [s.confidence for s in oil if s.confidence is not None]
    areas = [s.area_km2 for s in oil]
    known = bool(oil) and all(a is not None for a in areas)
    pixel_size = raster.georef.pixel_size_m if raster.georef else None
    if not oil and (pixel_size or seg.info.get("pixel_size_m")):
        known = True  # no oil, and the pixel size is known: the area is truly 0 km²
    summary = {
        "slicks": len(oil),
        "lookalikes": sum(1 for s in seg.slicks if s.cls == Cls.LOOKALIKE),
        "ships": len(seg.ships),
        "oil_pixels": oil_pixels,
        "oil_fraction": round(oil_pixels / max(width * height, 1), 6),
        "oil_area_km2": round(sum(a or 0.0 for a in areas), 6) if known else None,
        "max_confidence": max(scores, default=None),
        "confidences": sorted((round(c, 3) for c in scores), reverse=True),
        "width": width,
        "height": height,
    }
    return {"summary": summary, **record}


def _georef_record(raster: Raster) -> dict[str, Any] | None:
    if raster.georef is None:
        return None
    return raster.georef.to_record()
