"""`oilspill ml-serve`: the earlier ML service's API, and our JSON result beside it."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import cv2
import numpy as np
import pytest
from helpers import encode, sar_image
from starlette.testclient import TestClient

from oilspill import sar
from oilspill.config import Settings
from oilspill.errors import ConfigError
from oilspill.mlserve.app import create_ml_app
from oilspill.sar.records import Cls


@pytest.fixture
def ml() -> Iterator[TestClient]:
    with TestClient(create_ml_app(Settings(workers=2))) as client:
        yield client


def test_segment_answers_the_annotated_image_in_the_input_format(ml: TestClient) -> None:
    png = encode(sar_image(0, (480, 360)))
    response = ml.post("/segment", files={"file": ("a.png", png, "image/png")})
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    annotated = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)
    assert annotated.shape == (360, 480, 3)
    jpeg = encode(sar_image(1, (400, 300)), ".jpg")
    response = ml.post("/segment", files={"file": ("b.jpg", jpeg, "image/jpeg")})
    assert response.headers["content-type"] == "image/jpeg"
    assert response.content[:3] == b"\xff\xd8\xff"
    assert ml.get("/health").json() == {"status": "ok"}


def test_json_result_holds_the_detectors_mask_and_slicks(ml: TestClient) -> None:
    image = sar_image(0, (480, 360))
    response = ml.post(
        "/segment?pixel_size_m=10",
        files={"file": ("a.png", encode(image), "image/png")},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    mask = cv2.imdecode(
        np.frombuffer(base64.b64decode(body["mask_png"]), np.uint8), cv2.IMREAD_UNCHANGED
    )
    # The same detector on the same pixels: the same mask and slicks as in process.
    found = sar.detect(image, pixel_size_m=10.0)
    assert np.array_equal(mask, np.asarray(found.mask))
    assert [s["area_px"] for s in body["slicks"]] == [s.area_px for s in found.slicks]
    oil = [s for s in body["slicks"] if s["cls"] == Cls.OIL]
    assert oil and all(s["area_km2"] == pytest.approx(s["area_px"] * 1e-4) for s in oil)
    assert body["overlay"]["format"] == "png" and (body["width"], body["height"]) == (480, 360)
    assert base64.b64decode(body["quicklook_jpeg"])[:3] == b"\xff\xd8\xff"
    assert base64.b64decode(body["thumbnail_jpeg"])[:3] == b"\xff\xd8\xff"
    preview = base64.b64decode(body["mask_preview_png"])
    assert cv2.imdecode(np.frombuffer(preview, np.uint8), cv2.IMREAD_UNCHANGED).shape[:2] == (
        360,
        480,
    )  # the palette PNG decodes to the mask's size (it is under 1600 px)
    assert set(body["timings_ms"]) == {"decode", "segment", "encode"}


def test_an_image_ranked_above_json_gets_the_image(ml: TestClient) -> None:
    png = encode(sar_image(0, (200, 160)))
    accept = "image/png, application/json;q=0.5"
    response = ml.post("/segment", files={"file": ("a.png", png)}, headers={"Accept": accept})
    assert response.headers["content-type"] == "image/png"


def test_bad_requests_say_what_was_wrong(ml: TestClient) -> None:
    bad = ml.post("/segment", files={"file": ("a.png", b"nope", "image/png")})
    assert bad.status_code == 422 and bad.json()["error"] == "bad_image"
    none = ml.post("/segment", files={"other": ("a.png", b"x", "image/png")})
    assert none.status_code == 400 and "file" in none.json()["detail"]
    png = encode(sar_image(0, (200, 160)))
    size = ml.post("/segment?pixel_size_m=-3", files={"file": ("a.png", png)})
    assert size.status_code == 400 and "pixel_size_m" in size.json()["detail"]
    assert ml.get("/nowhere").status_code == 404


def test_stats_count_requests_and_time(ml: TestClient) -> None:
    png = encode(sar_image(0, (200, 160)))
    ml.post("/segment", files={"file": ("a.png", png)})
    ml.post("/segment", files={"file": ("a.png", b"junk")})
    stats = ml.get("/stats").json()
    assert stats["requests"] == 2 and stats["errors"] == 1 and stats["in_flight"] == 0
    assert stats["backend"] == "sar" and stats["mean_ms"] > 0


def test_ml_serve_refuses_a_remote_backend() -> None:
    with pytest.raises(ConfigError, match="in-process"):
        create_ml_app(Settings(backend="http", ml_url="http://127.0.0.1:1/segment"))
