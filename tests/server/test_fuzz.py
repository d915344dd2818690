"""Property tests (hypothesis, bounded): intake and image reading never fail but in words.

Whatever bytes arrive, unpacking answers with one of our errors (a status and a message)
or a list of items, and writes only inside the job's input folder; reading an image
answers with an image or an ImageError. Mutated real zips and images find the paths that
random bytes never reach.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
from helpers import encode, make_zip, sar_image
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oilspill.errors import ImageError, OilspillError
from oilspill.io import images
from oilspill.server import intake

LIMITS = intake.Limits(
    max_entries=50, max_uncompressed_bytes=8 << 20, max_ratio=100, max_image_pixels=10**7
)
FUZZ = settings(
    max_examples=int(os.environ.get("OILSPILL_FUZZ_EXAMPLES", "120")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
PNG = encode(sar_image(0, (48, 32)))
JPEG = encode(sar_image(1, (48, 32)), ".jpg")
BMP = encode(sar_image(2, (48, 32)), ".bmp")
_tif = io.BytesIO()
tifffile.imwrite(_tif, np.full((32, 48), 700, np.uint16))
TIFF = _tif.getvalue()
ZIP = make_zip({"a.png": PNG, "b/c.jpg": JPEG, "d.txt": b"notes"})


def mutated(seed: bytes) -> st.SearchStrategy[bytes]:
    """`seed` with a few bytes overwritten, inserted or cut, anywhere."""

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        data = bytearray(seed)
        for _ in range(draw(st.integers(1, 6))):
            pos = draw(st.integers(0, max(len(data) - 1, 0)))
            op = draw(st.sampled_from(["set", "insert", "cut"]))
            if op == "set" and data:
                data[pos] = draw(st.integers(0, 255))
            elif op == "insert":
                data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
            else:
                del data[pos : pos + draw(st.integers(1, 64))]
        return bytes(data)

    return build()


def unpack_safely(tmp_path: Path, data: bytes) -> None:
    root = tmp_path / "case"
    root.mkdir(exist_ok=True)
    for old in root.rglob("*"):
        if old.is_file():
            old.unlink()
    path = root / "up.zip"
    path.write_bytes(data)
    try:
        intake.unpack(path, root / "input", LIMITS)
    except OilspillError as exc:
        assert 400 <= exc.status < 600 and exc.message
    outside = [p for p in root.parent.rglob("*") if p.is_file() and root not in p.parents]
    assert outside == []


@FUZZ
@given(data=st.binary(max_size=2048))
def test_random_bytes_never_crash_intake(tmp_path: Path, data: bytes) -> None:
    unpack_safely(tmp_path, data)


@FUZZ
@given(data=mutated(ZIP))
def test_mutated_zips_never_crash_intake(tmp_path: Path, data: bytes) -> None:
    unpack_safely(tmp_path, data)


@pytest.mark.parametrize("seed", [PNG, JPEG, BMP, TIFF], ids=["png", "jpeg", "bmp", "tiff"])
def test_mutated_images_decode_or_say_why(tmp_path: Path, seed: bytes) -> None:
    @FUZZ
    @given(data=mutated(seed))
    def check(data: bytes) -> None:
        path = tmp_path / "img"
        path.write_bytes(data)
        fmt = images.sniff(data[:64])
        if fmt is None:
            return
        try:
            raster = images.load(path, "img", fmt, images.ReadOptions(10**7))
        except ImageError as exc:
            assert exc.message
            return
        assert raster.shape[0] > 0 and raster.shape[1] > 0

    check()


@FUZZ
@given(head=st.binary(max_size=64))
def test_sniffing_any_header_is_a_format_or_none(head: bytes) -> None:
    assert images.sniff(head) in (None, *images.FORMATS)


def test_the_seed_zip_is_readable() -> None:
    assert zipfile.ZipFile(io.BytesIO(ZIP)).testzip() is None
