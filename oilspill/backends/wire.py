"""The JSON result a model server sends with `Accept: application/json`.

`oilspill ml-serve` answers `POST /segment` with it, and the http backend reads
it back into a `Segmentation`, so a coordinator gets masks, slicks and ships
from remote detectors without decoding a pixel of the input:

    {"oilspill": "0.1.0", "width": 1250, "height": 650,
     "mask_png": "<base64 PNG of class ids 0-4, 255 = no data>",
     "overlay": {"format": "jpeg", "data": "<base64>"},
     "quicklook_jpeg": "<base64 JPEG: the input as the overlay shows it>" | null,
     "thumbnail_jpeg": "<base64 JPEG, at most 360 px>" | null,
     "mask_preview_png": "<base64 palette PNG of the mask, at most 1600 px>" | null,
     "slicks": [{...Slick fields...}], "ships": [{...Ship fields...}],
     "info": {...detector info...}, "timings_ms": {"decode": 9.1, "segment": 80.2, ...}}
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from typing import Any

import cv2
import numpy as np

from oilspill import __version__
from oilspill.backends.base import Segmentation
from oilspill.errors import BackendError
from oilspill.io import images
from oilspill.sar.records import Ship, Slick

MEDIA_TYPE = "application/json"
_SLICK_FIELDS = {f.name for f in dataclasses.fields(Slick)}
_SHIP_FIELDS = {f.name for f in dataclasses.fields(Ship)}


def to_json(
    seg: Segmentation,
    overlay: tuple[str, bytes],
    shape: tuple[int, int],
    timings_ms: dict[str, float],
    thumbnail_jpeg: bytes | None = None,
    mask_preview_png: bytes | None = None,
) -> dict[str, Any]:
    """The JSON result of one segmented image (blocking: encodes the mask and quicklook).

    The page's thumbnail and the mask's colour preview, when given, travel too: the
    coordinator then writes them as they came instead of decoding the overlay (~20 ms).
    """
    assert seg.mask is not None
    mask = np.ascontiguousarray(np.asarray(seg.mask), dtype=np.uint8)
    quick = None
    if seg.quicklook is not None:
        quick = _b64(images.encode(seg.quicklook, "jpeg"))
    return {
        "oilspill": __version__,
        "width": shape[1],
        "height": shape[0],
        "mask_png": _b64(images.encode(mask, "png")),
        "overlay": {"format": overlay[0], "data": _b64(overlay[1])},
        "quicklook_jpeg": quick,
        "thumbnail_jpeg": _b64(thumbnail_jpeg) if thumbnail_jpeg else None,
        "mask_preview_png": _b64(mask_preview_png) if mask_preview_png else None,
        "slicks": [s.to_dict() for s in seg.slicks],
        "ships": [s.to_dict() for s in seg.ships],
        "info": seg.info,
        "timings_ms": timings_ms,
    }


def from_json(body: Any, shape: tuple[int, int], url: str) -> Segmentation:
    """A `Segmentation` from a JSON result of the image of `shape` (blocking: decodes the
    mask); BackendError when it is not one, or does not fit the image."""
    try:
        mask_png = base64.b64decode(body["mask_png"], validate=True)
        overlay = base64.b64decode(body["overlay"]["data"], validate=True)
        raw_quick = body.get("quicklook_jpeg")
        quick = base64.b64decode(raw_quick, validate=True) if raw_quick else None
        raw_thumb, raw_preview = body.get("thumbnail_jpeg"), body.get("mask_preview_png")
        thumb = base64.b64decode(raw_thumb, validate=True) if raw_thumb else None
        preview = base64.b64decode(raw_preview, validate=True) if raw_preview else None
        slicks = [
            Slick(**{k: v for k, v in s.items() if k in _SLICK_FIELDS}) for s in body["slicks"]
        ]
        ships = [Ship(**{k: v for k, v in s.items() if k in _SHIP_FIELDS}) for s in body["ships"]]
        info = dict(body.get("info") or {})
    except (KeyError, TypeError, ValueError, binascii.Error, AttributeError) as exc:
        raise BackendError(
            f"the model server at {url} sent JSON that is no oilspill result: {exc!r}"
        ) from exc
    mask = cv2.imdecode(np.frombuffer(mask_png, np.uint8), cv2.IMREAD_UNCHANGED)
    if mask is None or mask.dtype != np.uint8 or mask.ndim != 2:
        raise BackendError(f"the model server at {url} sent a mask that is not a grey PNG")
    if mask.shape != shape:
        raise BackendError(
            f"the model server at {url} sent a {mask.shape[1]}x{mask.shape[0]} mask for a "
            f"{shape[1]}x{shape[0]} image"
        )
    overlay_fmt = images.sniff(overlay[:64])  # what it is, whatever the JSON calls it
    if overlay_fmt is None:
        raise BackendError(f"the model server at {url} sent an overlay that is not an image")
    info.setdefault("timings_ms", body.get("timings_ms"))
    return Segmentation(
        mask,
        None,
        slicks,
        ships,
        info,
        overlay_file=(overlay_fmt, overlay),
        mask_png=mask_png,
        quicklook_jpeg=quick,
        thumbnail_jpeg=thumb if thumb and images.sniff(thumb[:64]) == "jpeg" else None,
        mask_preview_png=preview if preview and images.sniff(preview[:64]) == "png" else None,
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
