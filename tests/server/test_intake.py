"""Reading uploaded zips: names, content sniffing, and every unsafe archive refused."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import cv2
import pytest
from helpers import encode, make_zip, sar_image

from oilspill.errors import ArchiveTooLarge, BadArchive, NoImages
from oilspill.server import intake
from oilspill.server.jobs import ItemStatus

LIMITS = intake.Limits(
    max_entries=100, max_uncompressed_bytes=50 << 20, max_ratio=100, max_image_pixels=10**8
)
PNG = encode(sar_image(0, (64, 48)))


def unpack(tmp_path: Path, data: bytes, limits: intake.Limits = LIMITS) -> intake.Unpacked:
    path = tmp_path / "up.zip"
    path.write_bytes(data)
    return intake.unpack(path, tmp_path / "input", limits)


def legacy_name_zip(name: bytes, data: bytes) -> bytes:
    """A zip whose entry name is raw legacy bytes without the UTF-8 flag (as Windows writes)."""
    placeholder = "x" * (len(name) - 4) + ".png"
    raw = make_zip({placeholder: data}, zipfile.ZIP_STORED)
    assert raw.count(placeholder.encode()) == 2
    return raw.replace(placeholder.encode(), name)


def test_cp866_names_from_windows_are_readable_cyrillic(tmp_path: Path) -> None:
    raw = legacy_name_zip("снимок_нефть.png".encode("cp866"), PNG)
    result = unpack(tmp_path, raw)
    assert [i.name for i in result.items] == ["снимок_нефть.png"]


def test_cp1251_names_are_readable_cyrillic(tmp_path: Path) -> None:
    raw = legacy_name_zip("отчёт.png".encode("cp1251"), PNG)
    assert unpack(tmp_path, raw).items[0].name == "отчёт.png"


def test_utf8_names_stay(tmp_path: Path) -> None:
    result = unpack(tmp_path, make_zip({"папка/пятно.png": PNG}))
    assert result.items[0].name == "папка/пятно.png"
    assert result.items[0].mask_name == "masks/папка/пятно.png"


def test_webp_named_png_is_an_image(tmp_path: Path) -> None:
    webp = encode(sar_image(1, (64, 48)), ".webp")
    item = unpack(tmp_path, make_zip({"a.png": webp})).items[0]
    assert item.fmt == "webp" and item.status is ItemStatus.PENDING


def test_garbage_named_jpg_is_an_item_error_not_a_rejection(tmp_path: Path) -> None:
    result = unpack(tmp_path, make_zip({"good.png": PNG, "bad.jpg": b"not a jpeg at all"}))
    bad = next(i for i in result.items if i.name == "bad.jpg")
    assert bad.status is ItemStatus.FAILED and "not a recognised image" in (bad.error or "")
    assert not (tmp_path / "input" / f"{bad.index:05d}").exists()


def test_junk_is_skipped_and_listed(tmp_path: Path) -> None:
    entries = {
        "a.png": PNG,
        "notes.txt": b"hello",
        "__MACOSX/._a.png": b"junk",
        ".DS_Store": b"junk",
        "dir/.hidden.png": PNG,
    }
    result = unpack(tmp_path, make_zip(entries))
    assert [i.name for i in result.items] == ["a.png"]
    assert result.skipped == ["notes.txt"]


def test_duplicate_names_and_stems_do_not_collide(tmp_path: Path) -> None:
    jpg = encode(sar_image(2, (64, 48)), ".jpg")
    result = unpack(tmp_path, make_zip({"a.png": PNG, "a.jpg": jpg, "summary.csv.png": PNG}))
    masks = [i.mask_name for i in result.items]
    assert len(set(masks)) == 3 and masks[0] == "masks/a.png"
    names = {i.name for i in result.items} | set(masks)
    assert not names & intake.RESERVED


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"PK\x03\x04 this is not really a zip", "not a readable zip"),
        (b"", "not a readable zip"),
        (make_zip({"a.png": PNG})[:-30], "not a readable zip"),
        (make_zip({}), "no readable images"),
        (make_zip({"readme.txt": b"x"}), "no readable images"),
    ],
)
def test_bad_archives_are_refused(tmp_path: Path, data: bytes, message: str) -> None:
    with pytest.raises((BadArchive, NoImages), match=message):
        unpack(tmp_path, data)


def test_truncated_entry_data_is_refused(tmp_path: Path) -> None:
    raw = make_zip({"a.png": PNG * 20})
    # Keep the central directory but damage the compressed data.
    cut = bytearray(raw)
    cut[60:400] = b"\x00" * 340
    with pytest.raises(BadArchive):
        unpack(tmp_path, bytes(cut))


@pytest.mark.parametrize("name", ["../evil.png", "/abs/evil.png", "a/../../evil.png", "C:/x.png"])
def test_paths_escaping_the_folder_are_refused(tmp_path: Path, name: str) -> None:
    raw = make_zip({"x" * len(name): PNG}).replace(b"x" * len(name), name.encode())
    with pytest.raises(BadArchive, match=r"absolute|outside"):
        unpack(tmp_path, raw)
    assert not (tmp_path / "evil.png").exists()


def test_symlinks_are_refused(tmp_path: Path) -> None:
    info = zipfile.ZipInfo("link.png")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    path = tmp_path / "link.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(info, "/etc/passwd")
        zf.writestr("a.png", PNG)
    with pytest.raises(BadArchive, match="symbolic link"):
        intake.unpack(path, tmp_path / "input", LIMITS)


def test_encrypted_entries_are_refused(tmp_path: Path) -> None:
    raw = bytearray(make_zip({"a.png": PNG}, zipfile.ZIP_STORED))
    raw[6] |= 0x1  # local header flags
    cd = raw.rfind(b"PK\x01\x02")
    raw[cd + 8] |= 0x1  # central directory flags
    with pytest.raises(BadArchive, match="encrypted"):
        unpack(tmp_path, bytes(raw))


def test_zip_bombs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ArchiveTooLarge, match="zip bomb"):
        unpack(tmp_path, make_zip({"a.png": PNG, "zeros.png": bytes(20 << 20)}))


def test_too_many_entries_are_refused(tmp_path: Path) -> None:
    entries = {f"{i}.png": PNG for i in range(101)}
    with pytest.raises(ArchiveTooLarge, match="101 entries"):
        unpack(tmp_path, make_zip(entries))


def test_total_unpacked_size_is_limited(tmp_path: Path) -> None:
    small = intake.Limits(100, 2 * len(PNG), 100, 10**8)
    with pytest.raises(ArchiveTooLarge, match="unpacks to"):
        unpack(tmp_path, make_zip({f"{i}.png": PNG for i in range(3)}), small)


def test_a_decompression_bomb_is_that_images_error_and_the_rest_goes_on(tmp_path: Path) -> None:
    img = bytearray(PNG)
    img[16:24] = (100_000).to_bytes(4, "big") * 2  # IHDR claims 100000 x 100000
    result = unpack(tmp_path, make_zip({"big.png": bytes(img), "good.png": PNG}))
    bomb, good = result.items
    assert bomb.status is ItemStatus.FAILED and "Mpx" in (bomb.error or "")
    assert not (tmp_path / "input" / f"{bomb.index:05d}").exists()  # never kept, never decoded
    assert good.status is ItemStatus.PENDING


def test_a_zip_of_only_decompression_bombs_has_no_images(tmp_path: Path) -> None:
    img = bytearray(PNG)
    img[16:24] = (100_000).to_bytes(4, "big") * 2
    with pytest.raises(NoImages):
        unpack(tmp_path, make_zip({"big.png": bytes(img)}))


def test_images_are_unpacked_by_index(tmp_path: Path) -> None:
    result = unpack(tmp_path, make_zip({"b.png": PNG, "a.png": PNG}))
    assert [i.index for i in result.items] == [0, 1]
    data = (tmp_path / "input" / "00001").read_bytes()
    decoded = cv2.imdecode(__import__("numpy").frombuffer(data, "uint8"), cv2.IMREAD_UNCHANGED)
    assert decoded.shape == (48, 64)


def test_control_characters_in_names_are_replaced_and_names_stay_unique(tmp_path: Path) -> None:
    entries = {
        "crlf\r\nX-Injected: 1.png": PNG,
        "crlf\n\rX-Injected: 1.png": PNG,
        "\u202egnp.png": PNG,
    }
    names = [i.name for i in unpack(tmp_path, make_zip(entries)).items]
    assert not any(c in n for n in names for c in "\r\n\x1b\x00\u202e")
    assert len(set(names)) == 3 and all("\ufffd" in n for n in names)


def test_masks_are_geotiffs_only_for_georeferenced_tiffs(tmp_path: Path) -> None:
    import io

    import numpy as np
    import tifffile

    from oilspill.io.georef import Georef, encode_geotiff

    plain = io.BytesIO()
    tifffile.imwrite(plain, np.full((40, 30), 900, np.uint16))
    geo = encode_geotiff(
        np.full((40, 30), 900, np.uint16), Georef(transform=(5e5, 10, 0, 6e6, 0, -10), epsg=32631)
    )
    result = unpack(tmp_path, make_zip({"plain.tif": plain.getvalue(), "geo.tif": geo}))
    assert [i.mask_name for i in result.items] == ["masks/plain.png", "masks/geo.tif"]


def overlapping_zip(copies: int) -> bytes:
    """One deflated local entry (a PNG signature and 1 MiB of zeros) that `copies` central
    directory entries all point at: a bomb by construction, tiny on disk."""
    import struct
    import zlib as z

    data = b"\x89PNG\r\n\x1a\n" + bytes(1 << 20)
    comp = z.compressobj(9, z.DEFLATED, -15)
    packed = comp.compress(data) + comp.flush()
    crc = z.crc32(data)
    name = b"a.png"
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, len(packed), len(data),
                        len(name), 0) + name + packed  # fmt: skip
    central = b""
    for i in range(copies):
        entry = f"{i:05d}.png".encode()
        head = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, crc,
                           len(packed), len(data), len(entry), 0, 0, 0, 0, 0, 0)  # fmt: skip
        central += head + entry
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, copies, copies, len(central), len(local), 0)
    return local + central + end


def test_overlapping_entries_are_a_bomb(tmp_path: Path) -> None:
    with pytest.raises(ArchiveTooLarge, match="overlap"):
        unpack(tmp_path, overlapping_zip(50))
    assert not any((tmp_path / "input").iterdir())


def test_many_small_entries_are_judged_by_the_whole_archive(tmp_path: Path) -> None:
    # 80 entries of 1 MiB of zeros each (under the per-entry size where ratios are checked).
    entries = {f"{i}.png": b"\x89PNG\r\n\x1a\n" + bytes((1 << 20) - 8) for i in range(80)}
    with pytest.raises(ArchiveTooLarge, match="in all"):
        unpack(tmp_path, make_zip(entries))
    assert not any((tmp_path / "input").iterdir())


def test_non_images_are_judged_by_their_first_bytes_and_never_inflated(tmp_path: Path) -> None:
    data = make_zip({"a.png": PNG, "big.bin": bytes(3 << 20)}, zipfile.ZIP_STORED)
    result = unpack(tmp_path, data)
    assert result.skipped == ["big.bin"] and len(result.items) == 1
    path = tmp_path / "up.zip"
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("big.bin")
        assert (
            intake._extract(zf, info, "big.bin", tmp_path / "x", 1 << 30, lambda n, h: False)
            is None
        )
    assert not (tmp_path / "x").exists()
