"""The HTTP API in-process: legacy shapes, v1 resource, errors, downloads, TTL, cancel."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from helpers import encode, image_zip, make_zip, sar_image, upload, wait_for
from starlette.testclient import TestClient

from oilspill.server import results


def test_legacy_upload_answers_with_the_old_shape(client: TestClient) -> None:
    response = upload(client, image_zip(2))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"status", "job_id", "user_hash"}
    assert body["status"] == "processing"
    assert len(body["job_id"]) == 32 and len(body["user_hash"]) == 32
    assert body["job_id"] != body["user_hash"]


def test_legacy_status_goes_to_success_with_the_old_result_shape(client: TestClient) -> None:
    body = upload(client, image_zip(3)).json()
    status = wait_for(client, body["job_id"])
    assert set(status) == {"status", "result", "processed", "total"}
    assert status["status"] == "SUCCESS"
    assert status["processed"] == status["total"] == 3
    assert status["result"] == {
        "archive": f"/api/download/{body['user_hash']}",
        "processed_files": ["scene_00.png", "scene_01.png", "scene_02.png"],
        "errors": [],
    }


def test_status_while_queued_has_no_result(make_client: Callable[..., TestClient]) -> None:
    client = make_client(workers=1)
    first = upload(client, image_zip(6)).json()
    second = upload(client, image_zip(1)).json()
    status = client.get(f"/api/status/{second['job_id']}").json()
    assert status["status"] in ("PENDING", "STARTED", "SUCCESS")
    if status["status"] == "PENDING":
        assert status["result"] is None and status["processed"] == 0
    wait_for(client, first["job_id"])


def test_download_is_a_streamed_zip_with_every_output(client: TestClient) -> None:
    body = upload(client, image_zip(2)).json()
    wait_for(client, body["job_id"])
    response = client.get(f"/api/download/{body['user_hash']}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="result_{body["user_hash"]}.zip"'
    )
    assert int(response.headers["content-length"]) == len(response.content)
    zf = zipfile.ZipFile(io.BytesIO(response.content))
    assert set(zf.namelist()) == {
        "scene_00.png", "scene_01.png", "masks/scene_00.png", "masks/scene_01.png",
        "masks/scene_00.preview.png", "masks/scene_01.preview.png",
        "summary.csv", "report.json", "slicks.geojson",
    }  # fmt: skip
    annotated = cv2.imdecode(np.frombuffer(zf.read("scene_00.png"), np.uint8), cv2.IMREAD_COLOR)
    assert annotated.shape == (240, 320, 3)
    mask = cv2.imdecode(np.frombuffer(zf.read("masks/scene_00.png"), np.uint8), -1)
    assert (
        mask.shape == (240, 320)
        and mask.dtype == np.uint8
        and set(np.unique(mask)) <= set(range(5))
    )
    preview = cv2.imdecode(np.frombuffer(zf.read("masks/scene_00.preview.png"), np.uint8), -1)
    assert preview.shape == (240, 320, 3)  # the mask in the dataset's colours
    oil = mask == 1
    if oil.any():
        assert tuple(preview[oil][0]) == (255, 255, 0)  # cyan, BGR
    rows = list(csv.DictReader(io.StringIO(zf.read("summary.csv").decode())))
    assert [r["name"] for r in rows] == ["scene_00.png", "scene_01.png"]
    assert all(r["status"] == "done" for r in rows)
    report = json.loads(zf.read("report.json"))
    assert report["job"]["id"] == body["job_id"]
    assert [i["name"] for i in report["images"]] == ["scene_00.png", "scene_01.png"]
    slicks = sum(len(i["slicks"]) for i in report["images"])
    geojson = json.loads(zf.read("slicks.geojson"))
    assert geojson["type"] == "FeatureCollection" and len(geojson["features"]) == slicks
    assert "pixel coordinates" in geojson["note"]  # PNGs carry no georeference


def test_the_drawn_slick_is_found(client: TestClient) -> None:
    body = upload(client, image_zip(1, size=(480, 360))).json()
    wait_for(client, body["job_id"])
    job = client.get(f"/api/v1/jobs/{body['job_id']}").json()
    image = job["images"][0]
    assert image["slicks"] >= 1
    assert image["oil_pixels"] > 1000
    assert image["oil_area_km2"] is None  # a PNG has no pixel size: no area is guessed


def test_pixel_size_setting_gives_areas_in_km2(make_client: Callable[..., TestClient]) -> None:
    client = make_client(pixel_size_m=10.0)
    body = upload(client, image_zip(1, size=(480, 360))).json()
    wait_for(client, body["job_id"])
    image = client.get(f"/api/v1/jobs/{body['job_id']}").json()["images"][0]
    assert image["oil_area_km2"] == pytest.approx(image["oil_pixels"] * 100 / 1e6, rel=0.05)


def test_download_before_finishing_is_409(make_client: Callable[..., TestClient]) -> None:
    client = make_client(workers=1)
    body = upload(client, image_zip(8)).json()
    response = client.get(f"/api/download/{body['user_hash']}")
    if response.status_code != 200:  # a very fast machine may have finished already
        assert response.status_code == 409
        assert "not finished" in response.json()["detail"]
    wait_for(client, body["job_id"])


def test_unknown_and_malformed_ids(client: TestClient) -> None:
    unknown = "0" * 32
    assert client.get(f"/api/status/{unknown}").status_code == 404
    assert client.get(f"/api/download/{unknown}").status_code == 404
    assert client.get(f"/api/archive_time_left/{unknown}").json() == {"seconds_left": 0}
    for bad in ("..%2F..%2Fetc", "ABC", "x" * 200):
        response = client.get(f"/api/status/{bad}")
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"
    assert client.get("/api/archive_time_left/..meta").json() == {"seconds_left": 0}


def test_time_left_counts_down_from_the_ttl(make_client: Callable[..., TestClient]) -> None:
    client = make_client(ttl=300)
    body = upload(client, image_zip(1)).json()
    wait_for(client, body["job_id"])
    left = client.get(f"/api/archive_time_left/{body['user_hash']}").json()["seconds_left"]
    assert 290 <= left <= 300


def test_results_expire_after_the_ttl(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    client = make_client(ttl=1)
    body = upload(client, image_zip(1)).json()
    wait_for(client, body["job_id"])
    job_dir = tmp_path / "data" / body["job_id"]
    assert job_dir.is_dir()
    deadline = time.monotonic() + 10
    while job_dir.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not job_dir.exists()
    gone = client.get(f"/api/download/{body['user_hash']}")
    assert gone.status_code == 404 and gone.json()["error"] == "gone"
    assert gone.json()["reason"] == "expired" and "expired" in gone.json()["detail"]
    assert client.get(f"/api/archive_time_left/{body['user_hash']}").json() == {"seconds_left": 0}


def test_a_broken_image_does_not_fail_the_job(client: TestClient) -> None:
    good = encode(sar_image(1))
    truncated = encode(sar_image(2), ".jpg")[:300]
    data = make_zip({"good.png": good, "fake.jpg": b"garbage", "cut.jpg": truncated})
    body = upload(client, data).json()
    status = wait_for(client, body["job_id"])
    assert status["status"] == "SUCCESS"
    assert status["result"]["processed_files"] == ["good.png"]
    errors = {e["file"]: e["error"] for e in status["result"]["errors"]}
    assert set(errors) == {"fake.jpg", "cut.jpg"}
    assert all(errors.values())


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"not a zip", 400, "bad_archive"),
        (make_zip({}), 400, "no_images"),
        (make_zip({"../x.png": encode(sar_image())}), 400, "bad_archive"),
    ],
)
def test_bad_uploads_get_json_errors_and_leave_nothing(
    client: TestClient, tmp_path: Path, data: bytes, status: int, code: str
) -> None:
    response = upload(client, data)
    assert response.status_code == status
    body = response.json()
    assert body["error"] == code and body["status"] == status and body["detail"]
    # The folder's own housekeeping (.uploads, .lock, an empty .trash) is not the upload's.
    own = {".uploads", ".lock", ".trash"}
    leftovers = [p for p in (tmp_path / "data").rglob("*") if p.name not in own]
    assert leftovers == []


def test_upload_over_the_limit_is_413(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    client = make_client(max_upload_mb=1)
    noise = np.random.default_rng(0).integers(0, 255, 2 << 20, dtype=np.uint8).tobytes()
    response = upload(client, make_zip({"a.png": noise}, zipfile.ZIP_STORED))
    assert response.status_code == 413
    assert "--max-upload-mb" in response.json()["detail"]
    assert list((tmp_path / "data" / ".uploads").iterdir()) == []


def test_missing_file_field_is_400(client: TestClient) -> None:
    response = client.post("/api/upload", files={"other": ("a.zip", b"x")})
    assert response.status_code == 400
    assert "'file'" in response.json()["detail"]
    assert client.post("/api/upload", content=b"raw").status_code == 400


def test_full_queue_is_503_with_retry_after(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_queued_jobs=1, workers=1)
    first = upload(client, image_zip(6)).json()
    response = upload(client, image_zip(1))
    if response.status_code == 200:  # the first job already finished
        return
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) > 0
    wait_for(client, first["job_id"])


def test_v1_job_resource(client: TestClient) -> None:
    response = upload(client, image_zip(2), url="/api/v1/jobs")
    assert response.status_code == 202
    job = response.json()
    assert response.headers["location"] == f"/api/v1/jobs/{job['id']}"
    wait_for(client, job["id"])
    job = client.get(f"/api/v1/jobs/{job['id']}").json()
    assert job["state"] == "succeeded"
    assert job["progress"] == {"done": 2, "total": 2, "failed": 0}
    assert job["created_at"] <= job["finished_at"] < job["expires_at"]
    assert job["upload_name"] == "images.zip" and job["ttl"] == 600
    image = job["images"][0]
    assert {"name", "status", "slicks", "oil_pixels", "oil_area_km2", "error", "links"} <= set(
        image
    )
    assert len(image["confidences"]) == image["slicks"]
    for link in image["links"].values():
        assert client.get(link).status_code == 200
    result = client.get(job["links"]["result"])
    assert result.status_code == 200 and result.content[:2] == b"PK"


def test_v1_image_detail_has_slicks_with_confidence(client: TestClient) -> None:
    body = upload(client, image_zip(1, size=(480, 360))).json()
    wait_for(client, body["job_id"])
    detail = client.get(f"/api/v1/jobs/{body['job_id']}/images/0").json()
    assert detail["name"] == "scene_00.png"
    assert detail["slicks"] and 0.0 <= detail["slicks"][0]["confidence"] <= 1.0
    assert client.get(f"/api/v1/jobs/{body['job_id']}/images/7").status_code == 404
    assert client.get(f"/api/v1/jobs/{body['job_id']}/images/0/nope").status_code == 404


def test_delete_cancels_and_removes_files(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    client = make_client(workers=1)
    job = upload(client, image_zip(10), url="/api/v1/jobs").json()
    assert client.delete(f"/api/v1/jobs/{job['id']}").status_code == 204
    assert not (tmp_path / "data" / job["id"]).exists()
    gone = client.get(f"/api/v1/jobs/{job['id']}")
    assert gone.status_code == 404 and gone.json()["error"] == "gone"
    assert gone.json()["reason"] == "deleted"
    assert client.delete(f"/api/v1/jobs/{job['id']}").status_code == 404
    # The service goes on working for others.
    other = upload(client, image_zip(1)).json()
    assert wait_for(client, other["job_id"])["status"] == "SUCCESS"


def test_cors_allows_any_origin_by_default(client: TestClient) -> None:
    response = client.get("/healthz", headers={"Origin": "http://elsewhere.example"})
    assert response.headers["access-control-allow-origin"] == "*"


def test_cors_origins_are_configurable(make_client: Callable[..., TestClient]) -> None:
    client = make_client(cors_origins="http://a.example")
    ok = client.get("/healthz", headers={"Origin": "http://a.example"})
    assert ok.headers["access-control-allow-origin"] == "http://a.example"
    other = client.get("/healthz", headers={"Origin": "http://b.example"})
    assert "access-control-allow-origin" not in other.headers


def test_openapi_describes_every_endpoint(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    for path in (
        "/api/upload", "/api/status/{job_id}", "/api/download/{user_hash}",
        "/api/archive_time_left/{user_hash}", "/api/v1/jobs", "/api/v1/jobs/{job_id}",
        "/api/v1/jobs/{job_id}/result.zip", "/healthz",
    ):  # fmt: skip
        assert path in paths, path
    # The old ML service's API is `oilspill ml-serve`: the main app has no unqueued path.
    assert "/segment" not in paths and "/health" not in paths
    assert "delete" in paths["/api/v1/jobs/{job_id}"]
    # Every response is {description: text}: a comma in an unquoted YAML description once
    # split it into junk keys (found by schemathesis).
    for path, ops in paths.items():
        for op in ops.values():
            for code, response in op["responses"].items():
                assert set(response) == {"description"}, (path, code, response)
                assert isinstance(response["description"], str) and response["description"]


def test_method_not_allowed_says_which_are(client: TestClient) -> None:
    response = client.request("TRACE", "/healthz")
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD"}


def test_error_shape_is_the_same_everywhere(client: TestClient) -> None:
    for response in (
        client.get("/api/status/" + "0" * 32),
        client.get("/no/such/route"),
        client.post("/api/upload", content=b"x"),
        client.put("/api/upload"),
    ):
        body = response.json()
        assert set(body) >= {"detail", "error", "status"}
        assert body["status"] == response.status_code


def test_healthz_tells_clients_the_limits(make_client: Callable[..., TestClient]) -> None:
    health = make_client(max_upload_mb=3, ttl=60).get("/healthz").json()
    assert health["status"] == "ok" and health["backend"] == "sar"
    assert health["max_upload_bytes"] == 3 << 20 and health["ttl"] == 60


def test_an_image_whose_results_cannot_be_saved_fails_alone(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from oilspill.server.store import JobStore

    original = JobStore.save_item_result

    def flaky(self: JobStore, job_id: str, index: int, result: dict[str, object]) -> None:
        if index == 1:
            raise OSError(28, "No space left on device")
        original(self, job_id, index, result)

    monkeypatch.setattr(JobStore, "save_item_result", flaky)
    status = wait_for(client, upload(client, image_zip(3)).json()["job_id"])
    assert status["status"] == "SUCCESS"
    assert status["result"]["processed_files"] == ["scene_00.png", "scene_02.png"]
    (error,) = status["result"]["errors"]
    assert error["file"] == "scene_01.png" and "No space left" in error["error"]


def test_success_is_announced_only_once_the_zip_can_be_served(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from oilspill.server import reports

    slow_write = reports.write_reports

    def slow(*args: object) -> None:
        time.sleep(0.3)
        slow_write(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(reports, "write_reports", slow)
    body = upload(client, image_zip(1)).json()
    deadline = time.monotonic() + 30
    while True:
        status = client.get(f"/api/status/{body['job_id']}").json()["status"]
        download = client.get(f"/api/download/{body['user_hash']}")
        if status == "SUCCESS":  # once announced, the zip must be complete
            assert download.status_code == 200
            break
        assert download.status_code in (409, 200)  # it may finish between the two calls
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_a_job_whose_reports_cannot_be_written_fails_and_the_pool_goes_on(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from oilspill.server import reports

    real_write = reports.write_reports
    calls = {"n": 0}

    def disk_full_once(*args: object) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(28, "No space left on device")
        real_write(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(reports, "write_reports", disk_full_once)
    first = upload(client, image_zip(2)).json()
    status = wait_for(client, first["job_id"])
    assert status["status"] == "FAILURE" and "No space left" in status["result"]
    assert client.get(f"/api/archive_time_left/{first['user_hash']}").json()["seconds_left"] > 0
    second = upload(client, image_zip(1)).json()  # the workers and the scheduler still run
    assert wait_for(client, second["job_id"])["status"] == "SUCCESS"


def test_an_image_index_that_is_not_ascii_digits_is_404(client: TestClient) -> None:
    body = upload(client, image_zip(1)).json()
    wait_for(client, body["job_id"])
    answer = client.get(f"/api/v1/jobs/{body['job_id']}/images/²")
    assert answer.status_code == 404 and answer.json()["error"] == "not_found"


def test_a_job_whose_every_image_failed_is_legacy_success_and_v1_failed(
    client: TestClient,
) -> None:
    data = make_zip({"cut.jpg": encode(sar_image(2), ".jpg")[:300]})
    body = upload(client, data).json()
    legacy = wait_for(client, body["job_id"])
    assert legacy["status"] == "SUCCESS" and legacy["result"]["processed_files"] == []
    assert [e["file"] for e in legacy["result"]["errors"]] == ["cut.jpg"]
    job = client.get(f"/api/v1/jobs/{body['job_id']}").json()
    assert job["state"] == "failed" and "none of the 1 images" in job["error"]
    assert client.get(f"/api/download/{body['user_hash']}").status_code == 200


def test_uploads_below_the_free_space_floor_get_507_and_leave_nothing(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    client = make_client(min_free_mb=1 << 30)  # a floor no disk reaches
    response = upload(client, image_zip(1))
    assert response.status_code == 507
    body = response.json()
    assert body["error"] == "insufficient_storage" and "--min-free-mb" in body["detail"]
    assert not [p for p in (tmp_path / "data").rglob("*") if p.is_file() and p.name != ".lock"]


def test_a_zip_that_would_unpack_past_the_floor_gets_507(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    import shutil

    free_mb = shutil.disk_usage(tmp_path).free >> 20
    client = make_client(min_free_mb=free_mb - 4, max_ratio=10**6)  # ~4 MiB of room
    big = make_zip({"zeros.png": b"\x89PNG\r\n\x1a\n" + bytes(64 << 20)})
    response = upload(client, big)
    assert response.status_code == 507, response.text
    assert "--min-free-mb" in response.json()["detail"]
    assert not [p for p in (tmp_path / "data").rglob("*") if p.is_file() and p.name != ".lock"]


def test_healthz_says_broken_when_the_worker_pool_died(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    service = client.app.state.service  # type: ignore[attr-defined]
    for task in service.runner._workers:
        client.portal.call(_cancel, task)  # type: ignore[union-attr]
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json()["status"] == "broken"


async def _cancel(task: Any) -> None:
    import asyncio

    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def test_an_output_file_gone_from_disk_is_404_not_500(client: TestClient, tmp_path: Path) -> None:
    body = upload(client, image_zip(1)).json()
    wait_for(client, body["job_id"])
    for path in (tmp_path / "data" / body["job_id"] / "out").glob("*.annotated.*"):
        path.unlink()
    response = client.get(f"/api/v1/jobs/{body['job_id']}/images/0/overlay")
    assert response.status_code == 404 and "gone" in response.json()["detail"]


def test_the_job_resource_is_paged(client: TestClient) -> None:
    body = upload(client, image_zip(5)).json()
    wait_for(client, body["job_id"])
    url = f"/api/v1/jobs/{body['job_id']}"
    first = client.get(f"{url}?limit=2").json()
    assert [i["index"] for i in first["images"]] == [0, 1]
    assert first["page"] == {"offset": 0, "limit": 2, "total": 5, "next": f"{url}?offset=2&limit=2"}
    assert first["progress"]["total"] == 5  # the summary is always whole
    last = client.get(f"{url}?offset=4&limit=2").json()
    assert [i["index"] for i in last["images"]] == [4] and last["page"]["next"] is None
    assert client.get(f"{url}?offset=-1").status_code == 400


def test_a_big_job_resource_comes_in_pages_of_1000() -> None:
    from oilspill.server.jobs import Item, Job
    from oilspill.server.resources import job_resource

    items = [
        Item(index=n, name=f"{n}.png", mask_name=f"masks/{n}.png", fmt="png") for n in range(2500)
    ]
    job = Job(id="a" * 32, user_hash="b" * 32, items=items)
    page = job_resource(job)
    assert len(page["images"]) == 1000 and page["page"]["next"].endswith("offset=1000&limit=1000")


def test_a_cached_job_page_is_the_resource_until_something_it_shows_changes() -> None:
    from starlette.responses import JSONResponse

    from oilspill.server.jobs import Item, ItemStatus, Job, JobStatus
    from oilspill.server.resources import PageCache, job_resource

    items = [Item(n, f"{n}.png", f"masks/{n}.png", "png") for n in range(3)]
    job = Job(id="a" * 32, user_hash="b" * 32, items=items, status=JobStatus.STARTED)
    pages = PageCache(size=2)

    def fresh(busy: tuple[int, ...] = ()) -> bytes:
        return bytes(JSONResponse(job_resource(job, 0, 1000, busy)).body)

    assert pages.body(job, 0, 1000) == fresh()
    assert pages.body(job, 0, 1000, (1,)) == fresh((1,))  # a worker took image 1
    items[1].status, items[1].slicks = ItemStatus.DONE, 4
    assert pages.body(job, 0, 1000, (1,)) == fresh((1,))  # image 1 done: the counts moved
    assert pages.body(job, 0, 1000, (2,)) == fresh((2,))  # image 2 taken
    job.status, job.finished_at, job.expires_at = JobStatus.SUCCESS, time.time(), time.time() + 9
    assert pages.body(job, 0, 1000) == fresh()
    job.error = "a note"
    assert pages.body(job, 0, 1000) == fresh()
    for n in range(3):  # other pages and jobs push the oldest out; it is then made again
        pages.body(Job(id=f"{n}" * 32, user_hash="c" * 32, items=[]), 0, 1000)
    assert pages.body(job, 0, 1000) == fresh()


def test_the_data_folder_cap_refuses_uploads_that_would_pass_it(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    client = make_client(max_data_mb=1)
    big = make_zip(
        {
            f"{i}.png": bytes(np.random.default_rng(i).integers(0, 255, 300_000, np.uint8))
            for i in range(5)
        },
        zipfile.ZIP_STORED,
    )
    response = upload(client, big)
    assert response.status_code == 507 and "--max-data-mb" in response.json()["detail"]
    assert not [p for p in (tmp_path / "data").rglob("*") if p.is_file() and p.name != ".lock"]
    body = upload(client, image_zip(1)).json()  # a small one still fits
    assert wait_for(client, body["job_id"])["status"] == "SUCCESS"


def test_the_original_is_shown_with_the_annotated_images_stretch(client: TestClient) -> None:
    body = upload(client, image_zip(1)).json()
    wait_for(client, body["job_id"])
    base = f"/api/v1/jobs/{body['job_id']}/images/0"

    def picture(kind: str) -> np.ndarray:
        data = np.frombuffer(client.get(f"{base}/{kind}").content, np.uint8)
        return cv2.imdecode(data, cv2.IMREAD_UNCHANGED)

    mask = cv2.imdecode(np.frombuffer(client.get(f"{base}/mask").content, np.uint8), -1)
    original, overlay = picture("original"), picture("overlay")
    assert original.shape == overlay.shape[:2]
    # Nothing is drawn over the open sea but the outlines of what lies in it: where the
    # overlay is grey there, both lossless PNGs hold the same grey.
    grey = (mask == 0) & (overlay[..., 0] == overlay[..., 1]) & (overlay[..., 1] == overlay[..., 2])
    assert grey.sum() > 0.8 * (mask == 0).sum()
    assert np.array_equal(original[grey], overlay[..., 0][grey])
    response = client.get(f"{base}/original")
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-disposition"].endswith('scene_00.original.png"')


def test_an_original_preview_sent_as_jpeg_is_served_as_one(
    client: TestClient, tmp_path: Path
) -> None:
    """A remote service's JPEG quicklook (and every job written before the uncompressed PNG
    previews, which a restart brings back) is the page's original, named and typed as such."""
    body = upload(client, image_zip(1)).json()
    wait_for(client, body["job_id"])
    out = tmp_path / "data" / body["job_id"] / "out"
    png = out / f"00000{results.PREVIEW_SUFFIX}"
    grey = cv2.imdecode(np.frombuffer(png.read_bytes(), np.uint8), cv2.IMREAD_UNCHANGED)
    (out / f"00000{results.JPEG_PREVIEW_SUFFIX}").write_bytes(encode(grey, ".jpg"))
    png.unlink()
    response = client.get(f"/api/v1/jobs/{body['job_id']}/images/0/original")
    assert response.status_code == 200 and response.content[:3] == b"\xff\xd8\xff"
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["content-disposition"].endswith('scene_00.original.jpg"')


def test_the_summary_says_why_an_area_is_not_in_km2(client: TestClient) -> None:
    body = upload(client, image_zip(1)).json()  # PNGs that state no pixel size
    wait_for(client, body["job_id"])
    data = client.get(f"/api/download/{body['user_hash']}").content
    (row,) = csv.DictReader(
        io.StringIO(zipfile.ZipFile(io.BytesIO(data)).read("summary.csv").decode())
    )
    assert row["oil_area_km2"] == "" and "--pixel-size-m" in row["note"]


def test_images_a_worker_has_in_hand_say_processing(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(workers=1)
    body = upload(client, image_zip(6, size=(1250, 650))).json()
    url = f"/api/v1/jobs/{body['job_id']}"
    seen: set[str] = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = client.get(url).json()
        states = [i["status"] for i in job["images"]]
        seen.update(states)
        # One worker: its image, and the one before it while that one's commit runs.
        assert states.count("processing") <= 2
        if job["state"] in ("succeeded", "failed"):
            break
        time.sleep(0.02)
    assert "processing" in seen and states == ["done"] * 6
