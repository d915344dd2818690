"""Range requests (RFC 9110) on the result zip and the images, against a real server: a
download cut short and resumed is the same bytes; If-Range; 416; what is ignored."""

from __future__ import annotations

import io
import os
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from helpers import Server, image_zip, wait_for
from zipstream import ZipStream

from oilspill.errors import RangeNotSatisfiable
from oilspill.server import archive
from oilspill.server.downloads import content_disposition, parse_range


@pytest.fixture(scope="module")
def finished(module_server: Callable[..., Server]) -> tuple[Server, str, str]:
    server = module_server()
    with server.client() as http:
        job = http.post("/api/v1/jobs", files={"file": ("x.zip", image_zip(4))}).json()
        wait_for(http, job["id"])
    return server, job["id"], job["user_hash"]


def test_a_cut_download_resumes_to_the_same_bytes(finished: tuple[Server, str, str]) -> None:
    server, job_id, user_hash = finished
    with server.client() as http:
        whole = http.get(f"/api/v1/jobs/{job_id}/result.zip")
        assert whole.headers["Accept-Ranges"] == "bytes"
        etag = whole.headers["ETag"]
        # The first try breaks off after some of the body.
        got = b""
        with http.stream("GET", f"/api/download/{user_hash}") as cut:
            for chunk in cut.iter_bytes(4096):
                got += chunk
                if len(got) > len(whole.content) // 3:
                    break
        rest = http.get(
            f"/api/download/{user_hash}", headers={"Range": f"bytes={len(got)}-", "If-Range": etag}
        )
    assert rest.status_code == 206
    size = len(whole.content)
    assert rest.headers["Content-Range"] == f"bytes {len(got)}-{size - 1}/{size}"
    assert int(rest.headers["Content-Length"]) == size - len(got)
    assert got + rest.content == whole.content
    assert zipfile.ZipFile(io.BytesIO(got + rest.content)).testzip() is None


def test_a_middle_range_and_a_suffix(finished: tuple[Server, str, str]) -> None:
    server, job_id, _ = finished
    url = f"/api/v1/jobs/{job_id}/result.zip"
    with server.client() as http:
        whole = http.get(url).content
        middle = http.get(url, headers={"Range": "bytes=1000-1999"})
        suffix = http.get(url, headers={"Range": "bytes=-22"})
    assert middle.status_code == 206 and middle.content == whole[1000:2000]
    assert suffix.content == whole[-22:] and suffix.content.startswith(b"PK\x05\x06")


def test_a_stale_if_range_gets_the_whole_zip(finished: tuple[Server, str, str]) -> None:
    server, job_id, _ = finished
    with server.client() as http:
        answer = http.get(
            f"/api/v1/jobs/{job_id}/result.zip",
            headers={"Range": "bytes=10-", "If-Range": '"not-this-one"'},
        )
        several = http.get(f"/api/v1/jobs/{job_id}/result.zip", headers={"Range": "bytes=0-1,5-9"})
    assert answer.status_code == 200 and answer.content.startswith(b"PK\x03\x04")
    assert several.status_code == 200  # several ranges: the whole, as RFC 9110 allows


def test_a_range_past_the_end_is_416(finished: tuple[Server, str, str]) -> None:
    server, job_id, _ = finished
    with server.client() as http:
        size = int(http.get(f"/api/v1/jobs/{job_id}/result.zip").headers["Content-Length"])
        answer = http.get(f"/api/v1/jobs/{job_id}/result.zip", headers={"Range": f"bytes={size}-"})
    assert answer.status_code == 416
    assert answer.headers["Content-Range"] == f"bytes */{size}"
    assert answer.json()["error"] == "range_not_satisfiable"


def test_images_take_ranges_and_a_date_in_if_range(finished: tuple[Server, str, str]) -> None:
    server, job_id, _ = finished
    url = f"/api/v1/jobs/{job_id}/images/1/overlay"
    # A date is a strong validator only a second after the change (RFC 9110 §8.8.2.2): age the
    # files rather than wait.
    an_hour_ago = time.time() - 3600
    for path in (server.log.parent / "data" / job_id / "out").iterdir():
        os.utime(path, (an_hour_ago, an_hour_ago))
    with server.client() as http:
        whole = http.get(url)
        modified = whole.headers["Last-Modified"]
        part = http.get(url, headers={"Range": "bytes=8-23", "If-Range": modified})
        old = http.get(
            url, headers={"Range": "bytes=8-23", "If-Range": "Mon, 01 Jan 2001 00:00:00 GMT"}
        )
        past = http.get(url, headers={"Range": f"bytes={len(whole.content)}-"})
    assert part.status_code == 206 and part.content == whole.content[8:24]
    assert part.headers["Content-Range"] == f"bytes 8-23/{len(whole.content)}"
    assert old.status_code == 200 and old.content == whole.content
    assert past.status_code == 416


def test_parse_range_follows_rfc_9110() -> None:
    assert parse_range("bytes=0-0", 10) == (0, 0)
    assert parse_range("bytes=5-", 10) == (5, 9)
    assert parse_range("bytes=5-100", 10) == (5, 9)
    assert parse_range("bytes=-3", 10) == (7, 9)
    assert parse_range("bytes=-30", 10) == (0, 9)
    for ignored in ("items=0-1", "bytes=5-2", "bytes=a-b", "bytes=", "bytes=0-1,3-4", "bytes=٣-"):
        assert parse_range(ignored, 10) is None, ignored
    for unsatisfiable in ("bytes=10-", "bytes=-0"):
        with pytest.raises(RangeNotSatisfiable):
            parse_range(unsatisfiable, 10)


def test_content_disposition_is_safe_for_any_name() -> None:
    assert content_disposition("attachment", "a.zip") == 'attachment; filename="a.zip"'
    tricky = content_disposition("inline", 'dir/ev"il\r\n;x=.png')
    assert "\r" not in tricky and "\n" not in tricky
    assert tricky.startswith("inline; filename=\"ev_il___x_.png\"; filename*=UTF-8''ev%22il")


# Last: it deletes the module's job.
def test_a_head_request_tells_the_size_and_holds_nothing(finished: tuple[Server, str, str]) -> None:
    server, job_id, _ = finished
    with httpx.Client(base_url=server.url) as http:
        head = http.head(f"/api/v1/jobs/{job_id}/result.zip")
        image = http.head(f"/api/v1/jobs/{job_id}/images/0/overlay")
        size = len(http.get(f"/api/v1/jobs/{job_id}/result.zip").content)
        started = time.monotonic()
        assert http.delete(f"/api/v1/jobs/{job_id}").status_code == 204
    assert head.status_code == 200 and head.headers["Accept-Ranges"] == "bytes"
    assert int(head.headers["Content-Length"]) == size and head.content == b""
    assert image.status_code == 200 and int(image.headers["Content-Length"]) > 0
    data = server.log.parent / "data"
    while (data / job_id).exists():  # no read lease left behind: the files go at once
        assert time.monotonic() - started < 5
        time.sleep(0.02)


def test_the_zip_stream_comes_in_blocks_of_its_whole_bytes(tmp_path: Path) -> None:
    """ResultZip joins zipstream-ng's 64 KiB pieces into BLOCK-sized chunks (one thread
    trip each): the same bytes, and a range of them is the same slice."""
    rng = np.random.default_rng(0)
    stream = ZipStream(sized=True)
    for i, size in enumerate((3 * archive.BLOCK + 5, 10, archive.BLOCK // 3)):
        path = tmp_path / f"f{i}.bin"
        path.write_bytes(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
        stream.add_path(str(path), path.name)
    result = archive.ResultZip(stream)
    chunks = list(result)
    whole = b"".join(chunks)
    assert len(whole) == result.size
    assert all(len(c) >= archive.BLOCK for c in chunks[:-1]) and len(chunks) <= 5
    with zipfile.ZipFile(io.BytesIO(whole)) as zf:
        assert zf.testzip() is None and len(zf.namelist()) == 3
    first, last = archive.BLOCK + 7, 2 * archive.BLOCK + 100
    again = ZipStream(sized=True)
    for i in range(3):
        again.add_path(str(tmp_path / f"f{i}.bin"), f"f{i}.bin")
    assert b"".join(archive.ResultZip(again).chunks(first, last)) == whole[first : last + 1]
