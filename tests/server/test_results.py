"""One image's output files: what `results.process_file` writes for the page, and without it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from helpers import encode, sar_image

from oilspill.backends.sar import segment_raster
from oilspill.io import images
from oilspill.server import results


def _outputs(tmp_path: Path, page_files: bool) -> tuple[set[str], dict[str, Any]]:
    source = tmp_path / "scene.png"
    source.write_bytes(encode(sar_image(3, (640, 400))))
    out = tmp_path / ("page" if page_files else "no-page")
    out.mkdir()
    options = images.ReadOptions(10**8)
    record = results.process_file(
        source, "scene.png", "png", options, None, out, 0, "masks/scene.png", page_files
    )
    record.pop(results.STAGES_KEY)
    record["info"].pop("timings_ms")  # the run's own times
    return {p.name for p in out.iterdir()}, record


def test_without_the_page_no_thumbnail_or_original_preview_is_made(tmp_path: Path) -> None:
    with_page, record = _outputs(tmp_path, page_files=True)
    without, bare_record = _outputs(tmp_path, page_files=False)
    page_only = {f"00000{results.THUMB_SUFFIX}", f"00000{results.PREVIEW_SUFFIX}"}
    assert page_only <= with_page
    assert without == with_page - page_only  # the zip's files (overlay, mask, its preview) stay
    assert f"00000{results.MASK_PREVIEW_SUFFIX}" in without
    assert bare_record == record


def test_the_original_preview_is_lossless_unless_a_service_sent_a_jpeg(tmp_path: Path) -> None:
    source = tmp_path / "scene.png"
    source.write_bytes(encode(sar_image(4, (300, 200))))
    raster = images.load(source, "scene.png", "png", images.ReadOptions(10**8))
    seg = segment_raster(raster)
    assert seg.quicklook is not None
    results.write_outputs(raster, seg, tmp_path, 0, "masks/scene.png")
    png = (tmp_path / f"00000{results.PREVIEW_SUFFIX}").read_bytes()
    decoded = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(decoded, seg.quicklook)  # the grey the overlay was drawn on
    sent = encode(seg.quicklook, ".jpg")
    results.write_outputs(raster, replace(seg, quicklook_jpeg=sent), tmp_path, 1, "masks/s.png")
    assert (tmp_path / f"00001{results.JPEG_PREVIEW_SUFFIX}").read_bytes() == sent
    assert not (tmp_path / f"00001{results.PREVIEW_SUFFIX}").exists()


def test_a_colour_original_is_previewed_as_a_jpeg(tmp_path: Path) -> None:
    """Without a grey quicklook (a backend that made none), a colour input's preview is a
    JPEG: uncompressed, its three channels would be ~8x the bytes."""
    source = tmp_path / "colour.png"
    grey = sar_image(5, (300, 200))
    source.write_bytes(encode(cv2.merge([grey, grey // 2, grey])))
    raster = images.load(source, "colour.png", "png", images.ReadOptions(10**8))
    seg = replace(segment_raster(raster), quicklook=None)
    suffix, data = results.original_preview(raster, seg)
    assert suffix == results.JPEG_PREVIEW_SUFFIX and data[:3] == b"\xff\xd8\xff"
    shown = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert shown.shape == (200, 300, 3)
