"""One image's output files: what `results.process_file` writes for the page, and without it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helpers import encode, sar_image

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
