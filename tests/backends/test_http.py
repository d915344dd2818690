"""`--backend http`: model servers of the earlier API, faulty ones, and our ml-serve."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from faulty import Faulty, running
from helpers import Server, encode, image_zip, make_zip, sar_image, upload, wait_for
from starlette.testclient import TestClient

from oilspill import sar
from oilspill.backends import CpuPool, http
from oilspill.backends.base import Segmentation
from oilspill.backends.http import HttpSegmenter
from oilspill.config import Settings
from oilspill.errors import BackendError, ImageError
from oilspill.io import images


@pytest.fixture
def faulty() -> Iterator[Faulty]:
    with running() as server:
        yield server


def _segment(settings: Settings, path: Path) -> Segmentation:
    """One image through an HttpSegmenter, as the runner hands it over (header only)."""

    fmt = images.sniff(path.read_bytes()[:64])
    assert fmt is not None

    async def go() -> Segmentation:
        seg = HttpSegmenter(CpuPool(1), settings)
        try:
            raster = images.header(path, path.name, fmt, settings.read_options)
            return await seg.segment(raster)
        finally:
            await seg.aclose()

    return asyncio.run(go())


def _http(*urls: str, **extra: Any) -> Settings:
    return Settings(backend="http", ml_url=",".join(urls), **{"ml_timeout": 5.0, **extra})


@pytest.fixture
def jpeg(tmp_path: Path) -> Path:
    path = tmp_path / "scene.jpg"
    path.write_bytes(encode(sar_image(0, (320, 240)), ".jpg"))
    return path


def test_an_annotated_image_is_kept_as_it_came_and_no_mask_is_guessed(
    faulty: Faulty, jpeg: Path
) -> None:
    seg = _segment(_http(f"{faulty.url}/echo/segment"), jpeg)
    assert seg.mask is None and seg.oil_pixels is None and seg.slicks == []
    assert seg.overlay_file == ("jpeg", jpeg.read_bytes())
    assert seg.info["masks"] is False and "no mask" in seg.info["warnings"][0]


def test_5xx_is_retried_until_it_answers(faulty: Faulty, jpeg: Path) -> None:
    seg = _segment(_http(f"{faulty.url}/flaky/segment"), jpeg)
    assert seg.overlay_file is not None and faulty.calls["flaky"] == 3


def test_429_waits_as_long_as_retry_after_says(faulty: Faulty, jpeg: Path) -> None:
    started = time.monotonic()
    _segment(_http(f"{faulty.url}/limited/segment"), jpeg)
    assert faulty.calls["limited"] == 2
    assert time.monotonic() - started >= 1.0  # Retry-After: 1, not the 0.2 s backoff


def test_a_4xx_is_the_images_error_and_is_not_retried(faulty: Faulty, jpeg: Path) -> None:
    with pytest.raises(BackendError, match=r"refused the image.*RGB only"):
        _segment(_http(f"{faulty.url}/refuse/segment"), jpeg)
    assert faulty.calls["refuse"] == 1


def test_an_answer_that_is_no_image_is_the_images_error(faulty: Faulty, jpeg: Path) -> None:
    with pytest.raises(BackendError, match=r"did not answer with an image.*text/plain"):
        _segment(_http(f"{faulty.url}/garbage/segment"), jpeg)


def test_a_hanging_server_times_out_and_retries_end(faulty: Faulty, jpeg: Path) -> None:
    settings = _http(f"{faulty.url}/slow/segment", ml_timeout=0.3, ml_retries=1)
    with pytest.raises(BackendError, match=r"timed out \(after 2 tries\)"):
        _segment(settings, jpeg)


def test_a_refused_connection_moves_to_the_next_endpoint(faulty: Faulty, tmp_path: Path) -> None:
    dead = "http://127.0.0.1:9/segment"
    settings = _http(dead, f"{faulty.url}/echo/segment", ml_retries=3)

    async def go() -> HttpSegmenter:
        seg = HttpSegmenter(CpuPool(1), settings)
        for n in range(6):
            path = tmp_path / f"{n}.png"
            path.write_bytes(encode(sar_image(n, (120, 100))))
            raster = images.header(path, path.name, "png", settings.read_options)
            assert (await seg.segment(raster)).overlay_file is not None
        await seg.aclose()
        return seg

    seg = asyncio.run(go())
    dead_one, live = seg.endpoints
    assert dead_one.served == 0 and dead_one.failures >= 1 and live.served == 6


def test_an_endpoint_failing_in_a_row_is_taken_out_and_probed_back(
    faulty: Faulty, jpeg: Path
) -> None:
    faulty.fail_first = http.DOWN_AFTER
    settings = _http(f"{faulty.url}/flaky/segment", ml_retries=http.DOWN_AFTER)

    async def go() -> bool:
        seg = HttpSegmenter(CpuPool(1), settings)
        raster = images.header(jpeg, jpeg.name, "jpeg", settings.read_options)
        await seg.segment(raster)  # 500 three times: taken out; the fourth try answers
        endpoint = seg.endpoints[0]
        for _ in range(50):  # the probe puts it back once /health answers
            if not endpoint.down:
                break
            await asyncio.sleep(0.1)
        await seg.aclose()
        return endpoint.outages == 1 and not endpoint.down

    assert asyncio.run(go())
    assert faulty.calls["flaky"] == http.DOWN_AFTER + 1 and faulty.calls["health"] >= 1


def test_a_product_or_a_missing_source_is_refused(faulty: Faulty) -> None:
    async def go() -> None:
        seg = HttpSegmenter(CpuPool(1), _http(f"{faulty.url}/echo/segment"))
        try:
            with pytest.raises(ImageError, match="Sentinel-1"):
                await seg.segment(images.Raster(np.zeros((4, 4), np.uint8), "x", "png"))
        finally:
            await seg.aclose()

    asyncio.run(go())


def _job(client: TestClient, data: bytes) -> dict[str, Any]:
    job_id = upload(client, data).json()["job_id"]
    wait_for(client, job_id)
    job: dict[str, Any] = client.get(f"/api/v1/jobs/{job_id}").json()
    return job


def test_a_job_on_an_echo_server_keeps_each_answer_and_says_there_is_no_mask(
    faulty: Faulty, make_client: Callable[..., TestClient]
) -> None:
    client = make_client(backend="http", ml_url=f"{faulty.url}/echo/segment")
    scenes = {f"s{n}.jpg": encode(sar_image(n, (320, 240)), ".jpg") for n in range(3)}
    job = _job(client, make_zip(scenes))
    assert job["state"] == "succeeded"
    assert all(i["status"] == "done" and i["masks"] is False for i in job["images"])
    assert all(i["slicks"] is None and "mask" not in i["links"] for i in job["images"])
    archive = zipfile.ZipFile(io.BytesIO(client.get(job["links"]["result"]).content))
    names = set(archive.namelist())
    assert names == {*scenes, "summary.csv", "report.json", "slicks.geojson"}
    assert all(archive.read(n) == data for n, data in scenes.items())  # as the server sent it
    rows = list(csv.DictReader(io.StringIO(archive.read("summary.csv").decode())))
    assert all(r["slicks"] == "" and "no mask" in r["note"] for r in rows)
    report = json.loads(archive.read("report.json"))
    assert all(i["mask"] is None for i in report["images"])
    detail = client.get(job["images"][0]["links"]["detail"])
    assert detail.status_code == 200
    mask = client.get(f"/api/v1/jobs/{job['id']}/images/0/mask")
    assert mask.status_code == 404 and "annotated image only" in mask.json()["detail"]
    thumbnail = client.get(job["images"][0]["links"]["thumbnail"])  # the picture itself
    assert thumbnail.status_code == 200 and thumbnail.content == scenes["s0.jpg"]


def test_broken_answers_fail_their_image_only(
    faulty: Faulty, make_client: Callable[..., TestClient]
) -> None:
    client = make_client(backend="http", ml_url=f"{faulty.url}/truncated/segment")
    job = _job(client, image_zip(2, size=(320, 240)))
    assert job["state"] == "failed"
    assert all(i["error_code"] == "backend_error" for i in job["images"])
    assert all("truncated" in i["error"] for i in job["images"])


def test_a_server_dying_mid_job_loses_no_image(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    with running() as steady, running() as dying:
        dying.die_after = 3
        urls = f"{dying.url}/dying/segment,{steady.url}/echo/segment"
        client = make_client(backend="http", ml_url=urls, ml_concurrency=2, ml_timeout=5.0)
        job = _job(client, image_zip(12, size=(160, 120)))
    assert job["state"] == "succeeded"
    assert [i["status"] for i in job["images"]] == ["done"] * 12
    assert dying.calls["dying"] >= 3 and steady.calls["echo"] >= 12 - dying.calls["dying"]


def test_two_ml_serve_processes_share_a_job_and_send_masks(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    a = start_server("--workers", "1", command="ml-serve")
    b = start_server("--workers", "1", command="ml-serve")
    coordinator = start_server(
        "--backend", "http", "--ml-url", f"{a.url}/segment", "--ml-url", f"{b.url}/segment",
        "--pixel-size-m", "10", data_dir=tmp_path / "coord",
    )  # fmt: skip
    scenes = {f"s{n}.png": sar_image(n, (480, 360)) for n in range(4)}
    with coordinator.client() as client:
        data = make_zip({n: encode(img) for n, img in scenes.items()})
        job = _job(client, data)
        assert job["state"] == "succeeded"
        archive = zipfile.ZipFile(io.BytesIO(client.get(job["links"]["result"]).content))
    for item in job["images"]:
        # The remote detector is the embedded one: the same mask as in process.
        found = sar.detect(scenes[item["name"]], pixel_size_m=10.0)
        mask = cv2.imdecode(
            np.frombuffer(archive.read(f"masks/{Path(item['name']).stem}.png"), np.uint8),
            cv2.IMREAD_UNCHANGED,
        )
        assert np.array_equal(mask, np.asarray(found.mask)), item["name"]
        assert item["oil_pixels"] == found.oil_pixels
        assert item["slicks"] == sum(1 for s in found.slicks if s.cls == 1)
        assert item["oil_area_km2"] == pytest.approx(found.oil_pixels * 1e-4, rel=1e-6)
    served = [httpx.get(f"{s.url}/stats").json()["requests"] for s in (a, b)]
    assert sum(served) == 4 and min(served) >= 1
