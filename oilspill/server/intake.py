"""Turn an uploaded zip into a job's input files, refusing anything unsafe.

Checks happen before anything is unpacked (entry count, declared sizes,
compression ratio, unsafe names, encryption, symlinks), and again while
unpacking (real byte counts), so a lying header cannot get past them.
Entry names are decoded as a person expects: UTF-8 where flagged or valid,
the Info-ZIP Unicode path field where present, else the legacy code page
that makes readable text (cp866 Cyrillic from Windows, cp1251, cp437).
"""

from __future__ import annotations

import itertools
import logging
import posixpath
import shutil
import stat
import struct
import unicodedata
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from oilspill.errors import (
    DISK_FULL_HINT,
    ArchiveTooLarge,
    BadArchive,
    DiskFull,
    ImageError,
    NoImages,
    is_disk_full,
)
from oilspill.io import images, safe
from oilspill.io.georef import read_georef
from oilspill.io.s1name import parse_s1_product_id
from oilspill.server.jobs import Item, ItemStatus, mask_preview_name

log = logging.getLogger(__name__)

RESERVED = {"summary.csv", "report.json", "slicks.geojson"}
_CHUNK = 1 << 20
# What reading a damaged or crafted zip raises (zipfile, zlib and the OS, found by fuzzing).
_DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError,
            RuntimeError, ValueError, struct.error)  # fmt: skip
_SMALL_ENTRY = 1 << 20  # ratios of tiny entries say nothing about bombs


@dataclass(frozen=True)
class Limits:
    max_entries: int
    max_uncompressed_bytes: int
    max_ratio: int
    max_image_pixels: int
    polarisation: str | None = None  # which measurement of a Sentinel-1 product to unpack


@dataclass
class Unpacked:
    items: list[Item] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    product_prefixes: list[str] = field(default_factory=list)  # "<id>.SAFE" folders unpacked


def decode_name(info: zipfile.ZipInfo) -> str:
    """The entry's name as its author saw it."""
    if info.flag_bits & 0x800:
        return info.filename
    unicode_path = _unicode_path_extra(info.extra)
    if unicode_path is not None:
        return unicode_path
    raw = info.orig_filename.encode("cp437")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    return max(
        (raw.decode(codec, "replace") for codec in ("cp866", "cp1251", "cp437")),
        key=_readability,
    )


def _unicode_path_extra(extra: bytes) -> str | None:
    """Info-ZIP's Unicode Path field (0x7075), written by 7-Zip and WinRAR beside a legacy name."""
    pos = 0
    while pos + 4 <= len(extra):
        tag = int.from_bytes(extra[pos : pos + 2], "little")
        size = int.from_bytes(extra[pos + 2 : pos + 4], "little")
        body = extra[pos + 4 : pos + 4 + size]
        if tag == 0x7075 and size > 5 and body[0] == 1:
            try:
                return body[5:].decode("utf-8")
            except UnicodeDecodeError:
                return None
        pos += 4 + size
    return None


def _readability(text: str) -> int:
    """Score a decoding: letters count, Cyrillic lowercase most; box-drawing and symbols lose."""
    score = 0
    for ch in text:
        if "а" <= ch <= "я" or ch == "ё":
            score += 3
        elif "А" <= ch <= "Я" or ch == "Ё":
            score += 2
        elif ch.isalnum() or ch in " ._-()[]/":
            score += 1
        else:
            score -= 2
    return score


def _visible(name: str) -> str:
    """Control and bidirectional-override characters shown as U+FFFD: a name travels into
    JSON, CSV, zip entries and HTTP headers, where CR, LF, ESC, NUL or U+202E would lie."""
    return "".join(
        "\ufffd" if unicodedata.category(c) in ("Cc", "Cf") and c != "\u200d" else c for c in name
    )


def safe_name(name: str) -> str:
    """Normalise an entry path; raise BadArchive when it would leave the job folder."""
    name = _visible(name.replace("\\", "/"))
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise BadArchive(f"entry {name!r} has an absolute path; zips must hold relative paths")
    parts = PurePosixPath(name).parts
    if ".." in parts:
        raise BadArchive(f"entry {name!r} points outside the archive ('..'); refusing the zip")
    return posixpath.normpath(name) if parts else ""


def _is_hidden(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return any(p.startswith(".") for p in parts) or (bool(parts) and parts[0] == "__MACOSX")


def _unique(name: str, taken: set[str]) -> str:
    stem, dot, ext = name.rpartition(".") if "." in PurePosixPath(name).name else (name, "", "")
    candidate, n = name, 1
    while candidate.lower() in taken:
        n += 1
        candidate = f"{stem} ({n}){dot}{ext}"
    taken.add(candidate.lower())
    return candidate


def open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, NotImplementedError, ValueError, EOFError) as exc:
        raise BadArchive(
            f"the upload is not a readable zip ({exc}); send a .zip of images, complete and "
            "not encrypted"
        ) from exc
    except OSError as exc:
        raise BadArchive(f"the upload cannot be read as a zip: {exc}") from exc


WHOLE_RATIO_ABOVE = 64 << 20  # below this many bytes unpacked, a zip's overall ratio is harmless


def check_entries(zf: zipfile.ZipFile, limits: Limits) -> list[tuple[zipfile.ZipInfo, str]]:
    """Validate every entry before unpacking; return (entry, decoded name) of the files.

    Refused: too many entries, unsafe names, links, encryption, unknown methods, an
    entry or the whole archive expanding more than `max_ratio` (a bomb of many small
    entries is caught by the whole), entries whose data overlap (a bomb by construction:
    one deflated stream counted many times), and more bytes than the limit.
    """
    infos = zf.infolist()
    archive_bytes = _archive_size(zf)
    _check_no_overlap(zf, infos, archive_bytes)
    if len(infos) > limits.max_entries:
        raise ArchiveTooLarge(
            f"the zip has {len(infos)} entries, more than {limits.max_entries} "
            "(split it, or raise --max-entries)"
        )
    total = 0
    files = []
    for info in infos:
        name = safe_name(decode_name(info))
        mode = info.external_attr >> 16
        if info.create_system == 3 and stat.S_ISLNK(mode):
            raise BadArchive(f"entry {name!r} is a symbolic link; zips with links are refused")
        if info.is_dir() or not name or name == ".":
            continue
        if info.flag_bits & 0x1:
            raise BadArchive(f"entry {name!r} is encrypted; upload a zip without a password")
        if info.compress_type not in (
            zipfile.ZIP_STORED,
            zipfile.ZIP_DEFLATED,
            zipfile.ZIP_BZIP2,
            zipfile.ZIP_LZMA,
        ):
            raise BadArchive(
                f"entry {name!r} uses compression method {info.compress_type}, which is not "
                "supported; re-zip with Deflate"
            )
        total += info.file_size
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > _SMALL_ENTRY and ratio > limits.max_ratio:
            raise ArchiveTooLarge(
                f"entry {name!r} expands {ratio:.0f}x (limit {limits.max_ratio}x); "
                "this looks like a zip bomb"
            )
        files.append((info, name))
    if total > WHOLE_RATIO_ABOVE and total / max(archive_bytes, 1) > limits.max_ratio:
        raise ArchiveTooLarge(
            f"the zip's entries expand {total / max(archive_bytes, 1):.0f}x in all "
            f"(limit {limits.max_ratio}x): this looks like a zip bomb"
        )
    if total > limits.max_uncompressed_bytes:
        raise ArchiveTooLarge(
            f"the zip unpacks to {total / 2**20:.0f} MiB, more than "
            f"{limits.max_uncompressed_bytes / 2**20:.0f} MiB (raise --max-uncompressed-mb)"
        )
    return files


def _archive_size(zf: zipfile.ZipFile) -> int:
    fp = zf.fp
    if fp is None:
        return 0
    pos = fp.tell()
    try:
        return int(fp.seek(0, 2))
    finally:
        fp.seek(pos)


def _check_no_overlap(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], size: int) -> None:
    """Refuse entries whose local header and data overlap another's (or the directory)."""
    spans = []
    for info in infos:
        if info.header_offset < 0 or (size and info.header_offset >= size):
            raise BadArchive(
                f"the zip's directory points outside the file (entry at byte "
                f"{info.header_offset} of {size}): the zip is damaged or crafted; re-create it"
            )
        codec = "utf-8" if info.flag_bits & 0x800 else "cp437"
        name_len = len(info.orig_filename.encode(codec, errors="replace"))
        spans.append((info.header_offset, info.header_offset + 30 + name_len + info.compress_size))
    spans.sort()
    directory = getattr(zf, "start_dir", None)
    for (start, end), (next_start, _) in itertools.pairwise(spans):
        if next_start < end:
            raise ArchiveTooLarge(
                f"zip entries overlap (bytes {next_start} and {start}-{end}): one stream "
                "counted several times is a zip bomb; re-create the zip"
            )
    if spans and directory is not None and spans[-1][1] > directory:
        raise BadArchive("the last entry runs into the zip's directory; the zip is damaged")


def unpack(zip_path: Path, input_dir: Path, limits: Limits) -> Unpacked:
    """Unpack the images of `zip_path` into `input_dir` as 00000, 00001, ... (blocking)."""
    result = Unpacked()
    input_dir.mkdir(parents=True, exist_ok=True)
    taken = set(RESERVED)
    budget = limits.max_uncompressed_bytes
    with open_zip(zip_path) as zf:
        entries = check_entries(zf, limits)
        budget -= _unpack_products(zf, entries, result, taken, input_dir, limits, budget)
        for info, name in entries:
            if _is_hidden(name) or _in_product(name, result):
                continue
            if _is_product_zip(name):
                budget -= _unpack_inner_product(zf, info, name, result, taken, input_dir, limits,
                                                budget)  # fmt: skip
                continue
            dest = input_dir / f"{len(result.items):05d}"
            extracted = _extract(zf, info, name, dest, budget, _worth_unpacking)
            if extracted is None:  # not an image by its first bytes nor by its name
                result.skipped.append(name)
                continue
            head, size = extracted
            budget -= size
            _admit(result, taken, name, dest, head, limits)
    return _checked(result)


def collect(paths: list[Path], input_dir: Path, limits: Limits) -> Unpacked:
    """Take image files (or SAFE folders) from disk (the `segment` command): linked or copied."""
    result = Unpacked()
    input_dir.mkdir(parents=True, exist_ok=True)
    taken = set(RESERVED)
    for path in paths:
        dest = input_dir / f"{len(result.items):05d}"
        if safe.is_product_dir(path):
            _collect_product(path, dest, result, taken, limits)
            continue
        try:
            dest.hardlink_to(path)
        except OSError:
            shutil.copyfile(path, dest)
        with dest.open("rb") as fh:
            head = fh.read(64)
        _admit(result, taken, path.name, dest, head, limits)
    return _checked(result, "the files given hold")


# ---------------------------------------------------------------- Sentinel-1 products
# A product (`<id>.SAFE/` with manifest.safe) becomes one item whose input is a folder
# holding the manifest, the annotations and the one measurement TIFF to read. It may come
# as the upload itself (ESA's product zip), as a folder inside the upload, or as a product
# zip inside the upload.


def _in_product(name: str, result: Unpacked) -> bool:
    return any(name.startswith(prefix + "/") for prefix in result.product_prefixes)


def _is_product_zip(name: str) -> bool:
    base = PurePosixPath(name).name
    return base.lower().endswith(".zip") and parse_s1_product_id(base) is not None


def _unpack_products(
    zf: zipfile.ZipFile,
    entries: list[tuple[zipfile.ZipInfo, str]],
    result: Unpacked,
    taken: set[str],
    input_dir: Path,
    limits: Limits,
    budget: int,
) -> int:
    """Unpack the SAFE products among `entries`; return the bytes written."""
    by_name = {name: info for info, name in entries}
    names = list(by_name)
    written = 0
    for prefix, product_id in safe.product_members(names).items():
        result.product_prefixes.append(prefix)
        dest = input_dir / f"{len(result.items):05d}"
        members = _start_product(result, taken, product_id, prefix, names, limits)
        if members is None:
            continue
        dest.mkdir()
        for name in members:
            target = dest / name[len(prefix) + 1 :]
            target.parent.mkdir(parents=True, exist_ok=True)
            size = _copy(zf, by_name[name], name, target, budget - written)
            written += size
        (dest / ".product-id").write_text(product_id)
    return written


def _unpack_inner_product(
    zf: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    name: str,
    result: Unpacked,
    taken: set[str],
    input_dir: Path,
    limits: Limits,
    budget: int,
) -> int:
    """A product zip inside the upload: copy it out, unpack its product, delete the copy."""
    inner = input_dir / f".inner-{len(result.items):05d}.zip"
    try:
        size = _copy(zf, info, name, inner, budget)
        with open_zip(inner) as izf:
            entries = check_entries(izf, limits)
            if not safe.product_members([n for _, n in entries]):
                item = _product_item(result, taken, PurePosixPath(name).stem)
                item.status = ItemStatus.FAILED
                item.error = "the product zip holds no <id>.SAFE/manifest.safe"
                item.error_code = "bad_image"
                return size
            written = _unpack_products(izf, entries, result, taken, input_dir, limits,
                                       budget - size)  # fmt: skip
        return written
    finally:
        inner.unlink(missing_ok=True)


def _collect_product(
    path: Path, dest: Path, result: Unpacked, taken: set[str], limits: Limits
) -> None:
    """A .SAFE folder on disk: link (or copy) the files to read into the job's input."""
    product_id = path.name.removesuffix(".SAFE")
    names = [p.relative_to(path.parent).as_posix() for p in sorted(path.rglob("*")) if p.is_file()]
    members = _start_product(result, taken, product_id, path.name, names, limits)
    if members is None:
        return
    for name in members:
        source = path.parent / name
        target = dest / name[len(path.name) + 1 :]
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            target.hardlink_to(source)
        except OSError:
            shutil.copyfile(source, target)
    (dest / ".product-id").write_text(product_id)


def _start_product(
    result: Unpacked,
    taken: set[str],
    product_id: str,
    prefix: str,
    names: list[str],
    limits: Limits,
) -> list[str] | None:
    """Add a product's item; the member names to unpack, or None when it cannot be read
    (the item then fails, saying why, and the rest of the upload goes on)."""
    item = _product_item(result, taken, product_id)
    try:
        return safe.needed_members(prefix, names, limits.polarisation)
    except ImageError as exc:
        item.status, item.error, item.error_code = ItemStatus.FAILED, exc.message, exc.code
        return None


def _product_item(result: Unpacked, taken: set[str], product_id: str) -> Item:
    name = _unique(f"{product_id}.png", taken)
    item = Item(index=len(result.items), name=name, mask_name="", fmt="safe")
    item.mask_name = _unique(_mask_name(name, True), taken)
    taken.add(mask_preview_name(item.mask_name).lower())
    result.items.append(item)
    return item


def _admit(
    result: Unpacked, taken: set[str], name: str, dest: Path, head: bytes, limits: Limits
) -> None:
    """Classify one unpacked file by content: an image item, a broken image, or skipped."""
    fmt = images.sniff(head)
    if fmt is None and images.format_for_name(name) is None:
        dest.unlink()
        result.skipped.append(name)
        return
    out_name = _unique(name, taken)
    item = Item(index=len(result.items), name=out_name, mask_name="", fmt=fmt or "")
    georeferenced = fmt == "tiff" and read_georef(dest) is not None
    item.mask_name = _unique(_mask_name(out_name, georeferenced), taken)
    taken.add(mask_preview_name(item.mask_name).lower())
    if fmt is None:
        dest.unlink()
        item.status = ItemStatus.FAILED
        item.error = (
            "not a recognised image: the content is not PNG, JPEG, WebP, BMP or TIFF "
            f"although the name ends in {PurePosixPath(name).suffix}"
        )
        item.error_code = "not_an_image"
    elif (too_big := _pixel_bomb(dest, fmt, limits.max_image_pixels)) is not None:
        dest.unlink()  # never decoded: the image is listed in `errors`, the rest goes on
        item.status = ItemStatus.FAILED
        item.error, item.error_code = too_big, "too_large"
    result.items.append(item)


def _checked(result: Unpacked, holder: str = "the zip holds") -> Unpacked:
    if not any(item.status is ItemStatus.PENDING for item in result.items):
        listed = ", ".join(result.skipped[:5]) or "none"
        raise NoImages(
            f"{holder} no readable images (PNG, JPEG, WebP, BMP or TIFF); skipped files: {listed}"
        )
    return result


def _mask_name(name: str, georeferenced: bool) -> str:
    """A GeoTIFF (COG) mask for georeferenced inputs, for GIS software; else a PNG."""
    stem = posixpath.splitext(name)[0]
    return f"masks/{stem}.{'tif' if georeferenced else 'png'}"


def _worth_unpacking(name: str, head: bytes) -> bool:
    """An image by content, or a file named like one (its error is then reported)."""
    return images.sniff(head) is not None or images.format_for_name(name) is not None


def _copy(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, dest: Path, budget: int) -> int:
    """Copy one entry whatever it holds; the bytes written."""
    copied = _extract(zf, info, name, dest, budget)
    assert copied is not None
    return copied[1]


def _extract(
    zf: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    name: str,
    dest: Path,
    budget: int,
    wanted: Callable[[str, bytes], bool] | None = None,
) -> tuple[bytes, int] | None:
    """Copy one entry in chunks, counting real bytes against its declared size and the budget.

    With `wanted`, the first 64 bytes are inflated and judged first: an unwanted entry
    is never inflated further (None), so a refused bomb costs no CPU.
    """
    size = 0
    try:
        with zf.open(info) as src:
            head = src.read(64)
            if wanted is not None and not wanted(name, head):
                return None
            with dest.open("wb") as out:
                chunk = head
                while chunk:
                    size += len(chunk)
                    if size > info.file_size or size > budget:
                        raise ArchiveTooLarge(
                            f"entry {name!r} unpacks to more than it declares or the job may "
                            "hold; this looks like a zip bomb"
                        )
                    out.write(chunk)
                    chunk = src.read(_CHUNK)
    except _DAMAGED as exc:  # the one place entries are read: every caller gets our errors
        if is_disk_full(exc):
            raise DiskFull(DISK_FULL_HINT) from exc
        raise BadArchive(f"entry {name!r} is damaged ({exc}); the zip may be truncated") from exc
    return head, size


def _pixel_bomb(path: Path, fmt: str, max_pixels: int) -> str | None:
    """Why an image's header declares too many pixels to decode, or None."""
    try:
        width, height = images.read_size(path, fmt)
    except Exception:
        return None  # a broken header is that image's own error, found when it is decoded
    if width * height <= max_pixels:
        return None
    return (
        f"{width}x{height} ({width * height / 1e6:.0f} Mpx) is over the limit of "
        f"{max_pixels / 1e6:.0f} Mpx (a decompression bomb, or raise --max-image-mpx)"
    )
