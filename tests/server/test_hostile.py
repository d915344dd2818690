"""Hostile uploads through the real HTTP API: each is refused, or contained to its own image.

Every case checks the answer (status and a `detail` saying what was wrong), that nothing
was written outside the data folder, that a refused upload leaves nothing in it (and an
accepted one only its job's folder), and that the server still answers `/healthz`.
"""

from __future__ import annotations

import gzip
import io
import re
import stat
import struct
import tarfile
import time
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from helpers import encode, make_zip, sar_image, upload, wait_for
from starlette.testclient import TestClient

GOOD = encode(sar_image(0, (160, 120)))
MARK = "evil"  # every escaping entry is named with it, so a file that got out can be found
HOUSEKEEPING = {".lock", ".uploads", ".trash"}  # the data folder's own, not an upload's


class Probe:
    """One app over `root/data`, and the checks every hostile upload must pass."""

    def __init__(self, client: TestClient, root: Path) -> None:
        self.client = client
        self.root = root
        self.data = root / "data"
        self.started = time.time()
        self.outside = self._outside()

    def refused(self, data: bytes, status: int, *words: str, name: str = "images.zip") -> str:
        """Upload `data`; it must be refused with `status` and a detail holding `words`."""
        response = upload(self.client, data, name=name)
        assert response.status_code == status, response.text
        body = response.json()
        assert body["status"] == status and body["error"]
        detail: str = body["detail"]
        for word in words:
            assert word in detail, detail
        self.check(job_id=None)
        return detail

    def accepted(self, data: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
        """Upload `data`; it must become a job. Its (legacy status, v1 resource) once done."""
        response = upload(self.client, data)
        assert response.status_code == 200, response.text
        job_id = response.json()["job_id"]
        legacy = wait_for(self.client, job_id, timeout=30)
        job = self.client.get(f"/api/v1/jobs/{job_id}").json()
        self.check(job_id)
        return legacy, job

    def check(self, job_id: str | None) -> None:
        stray = [
            p.relative_to(self.data).as_posix()
            for p in self.data.rglob("*")
            if not self._own(p.relative_to(self.data).parts, job_id)
        ]
        assert stray == [], f"left in the data folder: {stray}"
        assert self._outside() == self.outside, "files written beside the data folder"
        assert self._escaped() == [], "a payload file got out"
        health = self.client.get("/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok"

    @staticmethod
    def _own(parts: tuple[str, ...], job_id: str | None) -> bool:
        if parts[0] == job_id:
            return True
        return len(parts) == 1 and parts[0] in HOUSEKEEPING

    def _outside(self) -> set[Path]:
        return {p for p in self.root.rglob("*") if p != self.data and self.data not in p.parents}

    def _escaped(self) -> list[Path]:
        """Files named like a payload, new since the test began, wherever `..`, an absolute
        path, a drive or a share could have put them (cheap: no walk of all of /tmp)."""
        found = list(self.root.rglob(f"*{MARK}*"))
        for folder in (*self.root.parents, Path.cwd()):
            try:
                found += [
                    p
                    for p in folder.iterdir()
                    if MARK in p.name and p.lstat().st_mtime >= self.started - 1
                ]
            except OSError:
                continue
        found += [p for p in (Path("/abs/evil.png"), Path("//server/share/evil.png")) if p.exists()]
        return found


@pytest.fixture
def probe(make_client: Callable[..., TestClient], tmp_path: Path) -> Probe:
    return Probe(make_client(), tmp_path)


# ------------------------------------------------------------------ building hostile zips


def named_zip(name: str) -> bytes:
    """A stored zip of a good image and one whose raw name is `name`, past zipfile's rules."""
    placeholder = "x" * len(name.encode())
    raw = make_zip({"good.png": GOOD, placeholder: GOOD}, zipfile.ZIP_STORED)
    assert raw.count(placeholder.encode()) == 2  # the local header and the directory
    return raw.replace(placeholder.encode(), name.encode())


def headers(raw: bytes) -> tuple[list[int], list[int], int]:
    """Offsets of the local headers, the central directory entries and the end record."""
    local = [m.start() for m in re.finditer(b"PK\x03\x04", raw)]
    central = [m.start() for m in re.finditer(b"PK\x01\x02", raw)]
    return local, central, raw.rfind(b"PK\x05\x06")


def many_entries_zip(count: int) -> bytes:
    """`count` empty stored entries, packed by hand (zipfile takes ~2 s for 100,000), with
    the zip64 end records a count over 65,535 needs."""
    local, central, offset = [], [], 0
    for i in range(count):
        name = b"%06d.png" % i
        head = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0)
        entry = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 20, 0, 0, 0, 0, 0, 0, 0,
                            len(name), 0, 0, 0, 0, 0, offset)  # fmt: skip
        local.append(head + name)
        central.append(entry + name)
        offset += len(head) + len(name)
    directory = b"".join(central)
    start, end64 = offset, offset + len(directory)
    zip64 = struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, count, count,
                        len(directory), start)  # fmt: skip
    locator = struct.pack("<IIQI", 0x07064B50, 0, end64, 1)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, len(directory), start, 0)
    return b"".join(local) + directory + zip64 + locator + end


def png_bomb() -> bytes:
    img = bytearray(GOOD)
    img[16:24] = struct.pack(">II", 100_000, 100_000)
    img[29:33] = struct.pack(">I", zlib.crc32(bytes(img[12:29])))  # a valid IHDR CRC
    return bytes(img)


def bmp_bomb() -> bytes:
    img = bytearray(encode(sar_image(3, (32, 24)), ".bmp"))
    img[18:26] = struct.pack("<ii", 60_000, 60_000)
    return bytes(img)


def jpeg_bomb() -> bytes:
    img = bytearray(encode(sar_image(4, (32, 24)), ".jpg"))
    pos = 2
    while img[pos + 1] != 0xC0:  # walk the segments to the baseline frame header
        pos += 2 + int.from_bytes(img[pos + 2 : pos + 4], "big")
    img[pos + 5 : pos + 9] = struct.pack(">HH", 65_000, 65_000)  # height, width
    return bytes(img)


def tiff_bomb() -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.zeros((24, 32), np.uint8), metadata=None)
    img = bytearray(buf.getvalue())
    assert img[:4] == b"II*\x00"
    ifd = int.from_bytes(img[4:8], "little")
    for n in range(int.from_bytes(img[ifd : ifd + 2], "little")):
        entry = ifd + 2 + 12 * n
        tag, kind = struct.unpack("<HH", img[entry : entry + 4])
        if tag in (256, 257):  # ImageWidth, ImageLength
            value = struct.pack("<I", 100_000) if kind == 4 else struct.pack("<HH", 65_535, 0)
            img[entry + 8 : entry + 12] = value
    return bytes(img)


def symlink_zip() -> bytes:
    info = zipfile.ZipInfo("evil.png")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(info, "../../evil.png")
        zf.writestr("good.png", GOOD)
    return buf.getvalue()


def tar_data() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("good.png")
        info.size = len(GOOD)
        tar.addfile(info, io.BytesIO(GOOD))
    return buf.getvalue()


# ------------------------------------------------------------------ names escaping the folder


OUTSIDE = "points outside the archive"
ABSOLUTE = "has an absolute path"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../evil.png", OUTSIDE),
        ("a/../../evil.png", OUTSIDE),
        ("/abs/evil.png", ABSOLUTE),
        ("C:\\evil.png", ABSOLUTE),
        ("C:/evil.png", ABSOLUTE),
        ("..\\evil.png", OUTSIDE),
        ("\\\\server\\share\\evil.png", ABSOLUTE),
    ],
)
def test_a_path_escaping_the_folder_is_400(probe: Probe, name: str, message: str) -> None:
    probe.refused(named_zip(name), 400, message)


def test_a_symlink_entry_is_400(probe: Probe) -> None:
    probe.refused(symlink_zip(), 400, "symbolic link")


def test_duplicate_names_are_both_processed_under_unique_names(probe: Probe) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        zf.writestr("a.png", GOOD)
        zf.writestr("a.png", encode(sar_image(5, (160, 120))))
    legacy, job = probe.accepted(buf.getvalue())
    assert legacy["status"] == "SUCCESS" and legacy["result"]["errors"] == []
    assert legacy["result"]["processed_files"] == ["a.png", "a (2).png"]
    masks = [i["mask_name"] for i in job["images"]]
    assert masks == ["masks/a.png", "masks/a (2).png"]
    result = zipfile.ZipFile(io.BytesIO(probe.client.get(job["links"]["result"]).content))
    assert {"a.png", "a (2).png", *masks} <= set(result.namelist())


# ------------------------------------------------------------------ too many, damaged, lying


def test_100000_entries_are_refused_by_the_entry_limit_fast(probe: Probe) -> None:
    data = many_entries_zip(100_000)
    started = time.monotonic()
    probe.refused(data, 413, "100000 entries", "--max-entries")
    assert time.monotonic() - started < 5


def test_a_zip_cut_in_the_middle_is_400(probe: Probe) -> None:
    raw = make_zip({f"{i}.png": encode(sar_image(i, (160, 120))) for i in range(3)})
    probe.refused(raw[: len(raw) // 2], 400, "not a readable zip")


def test_sizes_smaller_than_the_data_in_both_headers_are_400(probe: Probe) -> None:
    raw = bytearray(make_zip({"lie.png": GOOD, "good.png": GOOD}))
    local, central = (offsets[0] for offsets in headers(bytes(raw))[:2])
    real = int.from_bytes(raw[local + 22 : local + 26], "little")
    assert real == len(GOOD)
    raw[local + 22 : local + 26] = (real // 2).to_bytes(4, "little")
    raw[central + 24 : central + 28] = (real // 2).to_bytes(4, "little")
    probe.refused(bytes(raw), 400, "'lie.png' is damaged")


@pytest.mark.parametrize(
    ("field", "message"),
    [(16, "points outside the file"), (12, "not a readable zip")],
    ids=["directory-offset", "directory-size"],
)
def test_an_end_record_pointing_past_the_end_is_400(probe: Probe, field: int, message: str) -> None:
    raw = bytearray(make_zip({"a.png": GOOD}))
    _, _, end = headers(bytes(raw))
    raw[end + field : end + field + 4] = (len(raw) + 4096).to_bytes(4, "little")
    probe.refused(bytes(raw), 400, message)


def test_an_encrypted_entry_is_400(probe: Probe) -> None:
    raw = bytearray(make_zip({"good.png": GOOD, "secret.png": GOOD}, zipfile.ZIP_STORED))
    local, central, _ = headers(bytes(raw))
    raw[local[1] + 6] |= 0x1
    raw[central[1] + 8] |= 0x1
    probe.refused(bytes(raw), 400, "'secret.png' is encrypted")


# ------------------------------------------------------------------ other archives renamed


@pytest.mark.parametrize(
    "data",
    [
        tar_data(),
        b"Rar!\x1a\x07\x00" + bytes(64),
        b"7z\xbc\xaf\x27\x1c" + bytes(64),
        gzip.compress(GOOD),
    ],
    ids=["tar", "rar", "7z", "gzip"],
)
def test_another_archive_named_zip_is_400(probe: Probe, data: bytes) -> None:
    probe.refused(data, 400, "not a readable zip")


# ------------------------------------------------------------------ a zip inside the zip

INNER = make_zip({"inner_a.png": GOOD, "inner_b.png": GOOD})


def test_a_zip_holding_only_a_zip_has_no_readable_images(probe: Probe) -> None:
    probe.refused(make_zip({"inner.zip": INNER}), 400, "no readable images", "inner.zip")


def test_a_zip_inside_the_zip_is_skipped_never_expanded(probe: Probe) -> None:
    legacy, job = probe.accepted(make_zip({"inner.zip": INNER, "good.png": GOOD}))
    assert legacy["status"] == "SUCCESS"
    assert legacy["result"]["processed_files"] == ["good.png"]
    assert job["skipped"] == ["inner.zip"] and job["progress"]["total"] == 1


# ------------------------------------------------------------------ bombs in image headers


BOMBS = [
    ("bomb.png", png_bomb),
    ("bomb.bmp", bmp_bomb),
    ("bomb.jpg", jpeg_bomb),
    ("bomb.tif", tiff_bomb),
]


@pytest.mark.parametrize(("name", "build"), BOMBS, ids=["png", "bmp", "jpeg", "tiff"])
def test_a_header_declaring_a_huge_image_is_that_images_error(
    probe: Probe, name: str, build: Callable[[], bytes]
) -> None:
    started = time.monotonic()
    legacy, _ = probe.accepted(make_zip({name: build(), "good.png": GOOD}))
    assert time.monotonic() - started < 10
    assert legacy["status"] == "SUCCESS"
    assert legacy["result"]["processed_files"] == ["good.png"]
    (error,) = legacy["result"]["errors"]
    assert error["file"] == name and "Mpx" in error["error"], error


def test_a_tiff_of_1000_pages_is_read_quickly(probe: Probe) -> None:
    buf = io.BytesIO()
    page = sar_image(6, (64, 48))
    with tifffile.TiffWriter(buf) as tif:
        for _ in range(1000):
            tif.write(page, contiguous=False, metadata=None)
    started = time.monotonic()
    legacy, _ = probe.accepted(make_zip({"pages.tif": buf.getvalue(), "good.png": GOOD}))
    assert time.monotonic() - started < 5
    assert legacy["status"] == "SUCCESS"
    errors = {e["file"]: e["error"] for e in legacy["result"]["errors"]}
    assert "good.png" in legacy["result"]["processed_files"]
    assert "pages.tif" in legacy["result"]["processed_files"] or errors["pages.tif"]
