"""Image reading and writing: sniffing by content, header sizes, and exact PNG round trips."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from helpers import encode, sar_image

from oilspill.errors import ImageError
from oilspill.io import images


@pytest.mark.parametrize(("ext", "fmt"), [(".png", "png"), (".jpg", "jpeg"), (".webp", "webp"),
                                          (".bmp", "bmp"), (".tif", "tiff")])  # fmt: skip
def test_sniff_and_header_size(tmp_path: Path, ext: str, fmt: str) -> None:
    data = encode(sar_image(0, (123, 45)), ext)
    assert images.sniff(data[:64]) == fmt
    path = tmp_path / "x"
    path.write_bytes(data)
    assert images.read_size(path, fmt) == (123, 45)


def test_garbage_is_no_image() -> None:
    assert images.sniff(b"hello world, not an image") is None
    assert images.sniff(b"") is None


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_fast_png_round_trips_exactly(channels: int) -> None:
    rng = np.random.default_rng(channels)
    shape = (37, 53) if channels == 1 else (37, 53, channels)
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    decoded = cv2.imdecode(np.frombuffer(images.encode_png(pixels), np.uint8), -1)
    assert np.array_equal(decoded, pixels)


@pytest.mark.parametrize("stored", [False, True])
def test_fast_png_chunks_carry_the_standard_crc(stored: bool) -> None:
    """Every chunk's CRC-32 is zlib's figure over its type and data (the PNG spec's)."""
    data = images.encode_png(
        np.arange(64 * 48 * 3, dtype=np.uint32).astype(np.uint8).reshape(64, 48, 3),
        stored=stored,
    )
    at, kinds = 8, []
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind_and_data = data[at + 4 : at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length : at + 12 + length])
        assert crc == zlib.crc32(kind_and_data)
        kinds.append(kind_and_data[:4])
        at += 12 + length
    assert kinds == [b"IHDR", b"IDAT", b"IEND"]


# Stored blocks hold at most 65535 bytes: rows of 1 + width bytes that end short of a
# block, exactly on one (3 rows of 21845 = 65535 - 3 + 3 filter bytes), and past several.
@pytest.mark.parametrize("shape", [(1, 1), (3, 21844), (7, 30000), (650, 1250), (40, 30, 4)])
def test_uncompressed_png_round_trips_and_is_a_valid_zlib_stream(shape: tuple[int, ...]) -> None:
    pixels = np.random.default_rng(len(shape)).integers(0, 256, shape, dtype=np.uint8)
    data = images.encode_png(pixels, stored=True)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(decoded, pixels)
    (length,) = struct.unpack(">I", data[33:37])  # the IDAT, after the signature and IHDR
    rows = zlib.decompress(data[41 : 41 + length])  # checks the Adler-32 too
    assert len(rows) == shape[0] * (1 + int(np.prod(shape[1:])))


def test_class_pngs_hold_the_same_ids_grey_and_in_colours() -> None:
    ids = np.zeros((40, 70), np.uint8)
    ids[5:20, 10:60], ids[30:, :8], ids[0, 0] = 1, 4, 255
    palette = {0: (0, 0, 0), 1: (0, 255, 255), 4: (0, 153, 0), 255: (128, 128, 128)}
    grey, coloured = images.encode_class_pngs(ids, palette)
    assert grey == images.encode(ids, "png")  # what the mask alone would have been
    assert coloured == images.encode_png_indexed(ids, palette)
    assert np.array_equal(cv2.imdecode(np.frombuffer(grey, np.uint8), -1), ids)
    bgr = cv2.imdecode(np.frombuffer(coloured, np.uint8), cv2.IMREAD_COLOR)
    for value, (r, g, b) in palette.items():
        assert (bgr[ids == value] == (b, g, r)).all()


def test_masks_round_trip_through_png() -> None:
    mask = np.zeros((40, 60), np.uint8)
    mask[10:20, 5:50] = 1
    mask[30:, :10] = 4
    data = images.encode(mask, "png")
    assert np.array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), -1), mask)


def test_16_bit_and_float_tiffs_keep_their_values(tmp_path: Path) -> None:
    for dtype in (np.uint16, np.float32):
        values = (np.arange(20 * 30).reshape(20, 30) * 7).astype(dtype)
        path = tmp_path / f"{np.dtype(dtype).name}.tif"
        tifffile.imwrite(path, values)
        raster = images.load(path, path.name, "tiff", images.ReadOptions(10**6))
        assert raster.pixels.dtype == dtype and np.array_equal(raster.pixels, values)


def test_pixel_limit_is_checked_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(encode(sar_image(0, (200, 100))))
    with pytest.raises(ImageError, match="--max-image-mpx"):
        images.load(path, "big.png", "png", images.ReadOptions(10_000))


def test_truncated_image_is_an_image_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.jpg"
    path.write_bytes(encode(sar_image(0), ".jpg")[:200])
    with pytest.raises(ImageError):
        images.load(path, "cut.jpg", "jpeg", images.ReadOptions(10**8))


def test_results_keep_the_format_the_name_promises() -> None:
    assert images.output_format("a.png", "webp") == "png"
    assert images.output_format("scene.JPG", "jpeg") == "jpeg"
    assert images.output_format("noext", "tiff") == "tiff"


def test_a_png_can_state_its_ground_pixel_size(tmp_path: Path) -> None:
    png = images.encode(np.full((20, 30), 90, np.uint8), "png")
    assert images.png_pixel_size(png) is None
    stated = images.with_pixel_size(png, 12.5)
    assert images.png_pixel_size(stated) == 12.5
    path = tmp_path / "a.png"
    path.write_bytes(stated)
    raster = images.read(path)
    assert raster.pixel_size_m == 12.5 and raster.shape == (20, 30)


def test_synthetic_pngs_carry_their_pixel_size_so_areas_are_in_km2(tmp_path: Path) -> None:
    import zipfile

    from oilspill.backends.sar import segment_raster
    from oilspill.sar import synth

    synth.write_zip(tmp_path / "s.zip", 1, size=(640, 400), seed=3)
    data = zipfile.ZipFile(tmp_path / "s.zip").read("synth_00003.png")
    assert images.png_pixel_size(data) == synth.SYNTH_PIXEL_M
    (tmp_path / "s.png").write_bytes(data)
    seg = segment_raster(images.read(tmp_path / "s.png"))
    assert seg.info["pixel_size_m"] == [synth.SYNTH_PIXEL_M] * 2
    assert all(s.area_km2 is not None for s in seg.slicks)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".webp", ".bmp", ".tif"])
def test_a_truncated_image_is_caught_from_its_structure(ext: str) -> None:
    data = encode(sar_image(0, (120, 90)), ext)
    fmt = images.sniff(data[:64])
    assert fmt is not None
    images.check_whole(data, fmt)
    assert images.size_of(data, fmt) == (120, 90)
    with pytest.raises(ImageError, match=r"truncated|header"):
        images.check_whole(data[: len(data) * 2 // 3], fmt)
