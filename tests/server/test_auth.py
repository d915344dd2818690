"""API keys against real servers: off (every call of the page and the legacy client works
without one), on (uploads, listing, DELETE and /metrics need one; links by id stay open),
reloaded on SIGHUP, never logged; and the headers every answer carries."""

from __future__ import annotations

import signal
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from helpers import Server, encode, make_zip, sar_image, upload, wait_for

KEY_A = "key-a-0123456789abcdef"
KEY_B = "key-b-0123456789abcdef"
KEY_C = "key-c-0123456789abcdef"


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def keyfile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "keys.txt"
    path.write_text(f"# the test's keys\n{KEY_B}\n\n")
    return path


@pytest.fixture(scope="module")
def keyed(module_server: Callable[..., Server], keyfile: Path) -> Server:
    return module_server("--api-key", KEY_A, "--api-key-file", str(keyfile))


def _finished_job(http: httpx.Client, data: bytes, key: str | None) -> dict[str, str]:
    headers = _bearer(key) if key else {}
    answer = http.post(
        "/api/v1/jobs", files={"file": ("x.zip", data, "application/zip")}, headers=headers
    )
    assert answer.status_code == 202, answer.text
    job = answer.json()
    wait_for(http, job["id"])
    return {"id": job["id"], "hash": job["user_hash"]}


def test_without_keys_the_pages_and_the_legacy_clients_calls_need_none(
    start_server: Callable[..., Server], tiny_zip: bytes
) -> None:
    with start_server().client() as http:
        legacy = upload(http, tiny_zip).json()
        assert wait_for(http, legacy["job_id"])["status"] == "SUCCESS"
        assert http.get(f"/api/download/{legacy['user_hash']}").status_code == 200
        assert http.get(f"/api/archive_time_left/{legacy['user_hash']}").json()["seconds_left"]
        job = _finished_job(http, tiny_zip, None)  # the page: POST, poll, images, DELETE
        resource = http.get(f"/api/v1/jobs/{job['id']}").json()
        assert http.get(resource["images"][0]["links"]["thumbnail"]).status_code == 200
        assert http.get(f"/api/v1/jobs/{job['id']}/images/0").status_code == 200
        assert http.delete(f"/api/v1/jobs/{job['id']}").status_code == 204
        listing = http.get("/api/v1/jobs")
        assert listing.status_code == 403 and listing.json()["error"] == "forbidden"


def test_uploads_need_a_valid_key(keyed: Server, tiny_zip: bytes) -> None:
    with keyed.client() as http:
        for url in ("/api/upload", "/api/v1/jobs"):
            missing = upload(http, tiny_zip, url=url)
            assert missing.status_code == 401
            assert missing.json()["error"] == "unauthorized"
            assert missing.headers["WWW-Authenticate"].startswith("Bearer")
            wrong = http.post(
                url, files={"file": ("x.zip", tiny_zip)}, headers=_bearer("not-" + KEY_A)
            )
            assert wrong.status_code == 401
            assert 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]
        assert not [p for p in (keyed.log.parent / "data").iterdir() if not p.name.startswith(".")]


def test_links_by_id_or_hash_stay_open_to_a_keyless_client(keyed: Server, tiny_zip: bytes) -> None:
    with keyed.client() as http:
        answer = http.post(
            "/api/upload", files={"file": ("x.zip", tiny_zip)}, headers=_bearer(KEY_A)
        )
        legacy = answer.json()
    with keyed.client() as anyone:  # the legacy web client, given no key
        assert wait_for(anyone, legacy["job_id"])["status"] == "SUCCESS"
        assert anyone.get(f"/api/download/{legacy['user_hash']}").status_code == 200
        assert anyone.get(f"/api/archive_time_left/{legacy['user_hash']}").json()["seconds_left"]
        resource = anyone.get(f"/api/v1/jobs/{legacy['job_id']}")
        assert resource.status_code == 200
        assert anyone.get(resource.json()["images"][0]["links"]["overlay"]).status_code == 200
        assert anyone.get(f"/api/v1/jobs/{legacy['job_id']}/result.zip").status_code == 200
        assert anyone.delete(f"/api/v1/jobs/{legacy['job_id']}").status_code == 401


def test_each_key_lists_and_deletes_its_own_jobs_only(keyed: Server, tiny_zip: bytes) -> None:
    with keyed.client() as http:
        mine = _finished_job(http, tiny_zip, KEY_A)
        theirs = _finished_job(http, tiny_zip, KEY_B)
        listed = http.get("/api/v1/jobs", headers=_bearer(KEY_A)).json()["jobs"]
        assert mine["id"] in [j["id"] for j in listed]
        assert theirs["id"] not in [j["id"] for j in listed]
        assert "images" not in listed[0]
        assert http.get("/api/v1/jobs").status_code == 401
        # Another key's job answers exactly as an id that never existed.
        other = http.delete(f"/api/v1/jobs/{theirs['id']}", headers=_bearer(KEY_A))
        unknown = http.delete(f"/api/v1/jobs/{'0' * 32}", headers=_bearer(KEY_A))
        assert other.status_code == unknown.status_code == 404
        assert other.json()["detail"].replace(theirs["id"], "ID") == unknown.json()[
            "detail"
        ].replace("0" * 32, "ID")
        assert (
            http.delete(f"/api/v1/jobs/{theirs['id']}", headers=_bearer(KEY_B)).status_code == 204
        )


def test_metrics_need_a_key_when_keys_are_on(keyed: Server) -> None:
    with keyed.client() as http:
        assert http.get("/metrics").status_code == 401
        assert http.get("/metrics", headers=_bearer(KEY_B)).status_code == 200
        assert http.get("/healthz").status_code == 200 and http.get("/readyz").status_code == 200


def test_sighup_reloads_the_key_file(
    start_server: Callable[..., Server], tmp_path: Path, tiny_zip: bytes
) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text(KEY_B + "\n")
    server = start_server("--api-key-file", str(keys))
    keys.write_text(KEY_C + "\n")
    with server.client() as http:
        assert http.get("/metrics", headers=_bearer(KEY_C)).status_code == 401
        server.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while http.get("/metrics", headers=_bearer(KEY_C)).status_code != 200:
            assert time.monotonic() < deadline, server.log.read_text()
            time.sleep(0.05)
        assert http.get("/metrics", headers=_bearer(KEY_B)).status_code == 401
        assert server.proc.poll() is None  # SIGHUP did not end it
    log = server.log.read_text()
    assert "API keys reloaded" in log
    assert KEY_B not in log and KEY_C not in log


def test_keys_are_never_logged(keyed: Server) -> None:
    log = keyed.log.read_text()
    assert "API keys on: 2 keys" in log
    assert KEY_A not in log and KEY_B not in log


def test_answers_say_nosniff_and_image_names_are_safe(
    start_server: Callable[..., Server],
) -> None:
    name = 'пятно "1".png'
    data = make_zip({name: encode(sar_image(1, (96, 64)))})
    with start_server().client() as http:
        job = _finished_job(http, data, None)
        for url in ("/healthz", "/nowhere", f"/api/v1/jobs/{job['id']}"):
            assert http.get(url).headers["X-Content-Type-Options"] == "nosniff"
        overlay = http.get(f"/api/v1/jobs/{job['id']}/images/0/overlay")
        disposition = overlay.headers["Content-Disposition"]
        assert disposition.startswith('inline; filename="')
        ascii_part = disposition.split('filename="')[1].split('"')[0]
        assert ascii_part.isascii() and '"' not in ascii_part
        encoded = disposition.split("filename*=UTF-8''")[1]
        assert urllib.parse.unquote(encoded) == name
        zipped = http.get(f"/api/v1/jobs/{job['id']}/result.zip")
        assert zipped.headers["Content-Disposition"].startswith("attachment; ")
