"""How a download is answered: validators, single byte ranges (RFC 9110 §14), names.

`requested` reads `Range` and `If-Range` against the representation's size and
validators: None for the whole of it (no Range, an If-Range that no longer holds,
a unit other than bytes, several ranges, a malformed one: all allowed by RFC 9110
§14.2), else the (first, last) byte positions; RangeNotSatisfiable (416) when the
range starts past the end. `content_disposition` gives a name any browser reads:
an ASCII fallback and, for other names, RFC 6266's `filename*`.
"""

from __future__ import annotations

import email.utils
import re
import time
from dataclasses import dataclass
from urllib.parse import quote

from starlette.datastructures import Headers

from oilspill.errors import RangeNotSatisfiable

_UNSAFE = re.compile(r"[^A-Za-z0-9._()+ -]")


@dataclass(frozen=True)
class Validators:
    etag: str  # a strong entity tag, quoted
    modified: float  # Unix time of the last change

    def headers(self) -> dict[str, str]:
        return {
            "ETag": self.etag,
            "Last-Modified": email.utils.formatdate(self.modified, usegmt=True),
            "Accept-Ranges": "bytes",
        }


def requested(headers: Headers, size: int, validators: Validators) -> tuple[int, int] | None:
    """The one byte range to send, or None for the whole representation."""
    raw = headers.get("range")
    if raw is None:
        return None
    condition = headers.get("if-range")
    if condition is not None and not _if_range_holds(condition.strip(), validators):
        return None
    return parse_range(raw, size)


def _if_range_holds(condition: str, validators: Validators) -> bool:
    """Strong comparison of an entity tag, or an exact date (which must be a strong
    validator: at least a second before now, RFC 9110 §8.8.2.2)."""
    if condition.startswith(('"', "W/")):
        return condition == validators.etag
    try:
        when = email.utils.parsedate_to_datetime(condition).timestamp()
    except (TypeError, ValueError, IndexError):
        return False
    return int(when) == int(validators.modified) and validators.modified <= time.time() - 1


def parse_range(raw: str, size: int) -> tuple[int, int] | None:
    unit, _, spec = raw.partition("=")
    spec = spec.strip()
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = (p.strip() for p in spec.partition("-"))
    if not dash or not _digits(first or "0") or not _digits(last or "0"):
        return None
    if not first:  # a suffix: the last N bytes
        if not last:
            return None
        count = int(last)
        if count == 0 or size == 0:
            raise _unsatisfiable(raw, size)
        return max(0, size - count), size - 1
    start = int(first)
    if last and int(last) < start:
        return None  # invalid: ignored
    if start >= size:
        raise _unsatisfiable(raw, size)
    return start, min(int(last), size - 1) if last else size - 1


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _unsatisfiable(raw: str, size: int) -> RangeNotSatisfiable:
    return RangeNotSatisfiable(
        f"the range {raw[:100]!r} starts past the end of the {size} bytes there are", size
    )


def partial_headers(first: int, last: int, size: int) -> dict[str, str]:
    length = str(last - first + 1)
    return {"Content-Range": f"bytes {first}-{last}/{size}", "Content-Length": length}


def content_disposition(kind: str, name: str) -> str:
    """`attachment` or `inline` with the file name: quoted ASCII (unsafe characters become
    '_'), plus RFC 6266's `filename*` (UTF-8, percent-encoded) when that changed it."""
    name = name.replace("\\", "/").rpartition("/")[2] or "download"
    ascii_name = _UNSAFE.sub("_", name).strip() or "download"
    value = f'{kind}; filename="{ascii_name}"'
    if ascii_name != name:
        value += f"; filename*=UTF-8''{quote(name, safe='')}"
    return value
