"""--backend onnx: small models built in code, whose answers are known, run by onnxruntime."""

from __future__ import annotations

import io
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import anyio
import cv2
import numpy as np
import pytest
from backends.onnx_models import (
    constant_yolo,
    dark_is_oil,
    dark_is_oil_labels,
    odd_outputs,
    oil_probability,
)
from helpers import image_zip, upload, wait_for
from starlette.testclient import TestClient

from oilspill.backends import CpuPool, make_segmenter
from oilspill.backends.onnx import Detection, Model, load_model, merge, segment_raster
from oilspill.backends.tensors import ModelInput, Window, crop, semantic, to_tensor, windows
from oilspill.config import Settings
from oilspill.errors import BackendError, ConfigError, ImageError
from oilspill.io.images import Raster
from oilspill.sar.records import Cls
from oilspill.server.app import create_app


def _sea(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Bright speckled sea, 8-bit."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(180, 20, (h, w)), 110, 255).astype(np.uint8)


def _with_slick(img: np.ndarray, x: int, y: int, w: int, h: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img[y : y + h, x : x + w] = np.clip(rng.normal(40, 8, (h, w)), 20, 70).astype(np.uint8)
    return img


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def _model(path: Path, **settings: object) -> Model:
    return load_model(Settings(backend="onnx", model=str(path), **settings))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "logits": dark_is_oil(root / "logits.onnx"),
        "logits512": dark_is_oil(root / "logits512.onnx", size=512),
        "labels": dark_is_oil_labels(root / "labels.onnx"),
    }


# Semantic models -------------------------------------------------------------


def test_dark_pixels_of_a_logits_model_are_one_slick_with_its_mean_probability(
    models: dict[str, Path],
) -> None:
    img = _with_slick(_sea(240, 320), 100, 80, 120, 60)
    seg = segment_raster(_model(models["logits"]), Raster(img, "a.png", "png"))
    truth = np.zeros(img.shape, bool)
    truth[80:140, 100:220] = True
    assert _iou(np.asarray(seg.mask) == Cls.OIL, truth) > 0.9
    [slick] = seg.slicks
    assert slick.cls == Cls.OIL and slick.bbox == (100, 80, 120, 60)
    expected = float(oil_probability(img[truth]).mean())
    assert slick.confidence == pytest.approx(expected, abs=2e-3)
    assert seg.info["backend"] == "onnx" and seg.info["model"] == "logits.onnx"
    assert seg.info["model_kind"] == "semantic" and seg.info["input_size"] == [512, 512]
    assert seg.info["providers"] == ["CPUExecutionProvider"] and "model" in seg.info["timings_ms"]


def test_a_labels_model_gives_slicks_without_confidence(models: dict[str, Path]) -> None:
    img = _with_slick(_sea(240, 320), 100, 80, 120, 60)
    seg = segment_raster(_model(models["labels"]), Raster(img, "a.png", "png"))
    [slick] = seg.slicks
    assert slick.cls == Cls.OIL and slick.confidence is None
    assert "the model gives labels only: slicks have no confidence" in seg.info["warnings"]


def test_the_class_map_turns_model_class_1_into_lookalikes(models: dict[str, Path]) -> None:
    img = _with_slick(_sea(240, 320), 100, 80, 120, 60)
    model = _model(models["logits"], model_classes="sea,lookalike")
    seg = segment_raster(model, Raster(img, "a.png", "png"))
    [slick] = seg.slicks
    assert slick.cls == Cls.LOOKALIKE and slick.confidence == 0.0  # no model class is oil
    assert seg.oil_pixels == 0 and (np.asarray(seg.mask) == Cls.LOOKALIKE).sum() > 6000


def test_a_large_image_is_tiled_and_a_slick_across_tiles_comes_out_whole(
    models: dict[str, Path],
) -> None:
    tiles = windows(1800, 2500, (512, 512))
    cut_x, cut_y = tiles[0].core[2:]  # where the first tile's answer ends
    x, y = cut_x - 150, cut_y - 40
    img = _with_slick(_sea(1800, 2500), x, y, 500, 100)  # across both borders
    seg = segment_raster(_model(models["logits512"]), Raster(img, "big.png", "png"))
    assert seg.info["tiles"] == len(tiles) == 24
    [slick] = seg.slicks
    assert slick.bbox == (x, y, 500, 100) and slick.area_px == 500 * 100


def test_a_window_reader_is_refused(models: dict[str, Path]) -> None:
    class Reader:
        shape = (100, 100)

    raster = Raster(Reader(), "big.tif", "tiff")
    with pytest.raises(ImageError, match="--backend sar"):
        segment_raster(_model(models["logits"]), raster)


# YOLO segmentation ------------------------------------------------------------

YOLO_SIZE = 320  # input; prototypes 80x80
YOLO_SIZE_WH = (YOLO_SIZE, YOLO_SIZE)
DISK = (200, 100, 60)  # centre x, y and radius of the known mask, in image pixels (400x200)
BOX = (150, 30, 280, 170)  # the detection's box: it crops the disk's left side


def _yolo_arrays() -> tuple[np.ndarray, np.ndarray]:
    """Anchors of a 2-class model (oil, lookalike) for a 400x200 image, letterboxed into
    320x320 at 0.8, 80 px of padding above: an oil disk cropped by its box, a weaker
    duplicate whose mask would fill its box, one under the score threshold, a look-alike."""
    scale, top = 0.8, 80
    protos = np.full((1, 32, 80, 80), -8.0, np.float32)
    v, u = np.mgrid[0:80, 0:80]
    x, y = (u + 0.5) * 4 / scale, ((v + 0.5) * 4 - top) / scale  # image coordinates
    cx, cy, r = DISK
    protos[0, 0][(x - cx) ** 2 + (y - cy) ** 2 <= r * r] = 8.0
    protos[0, 1] = 8.0  # a full box

    def anchor(box: tuple[float, float, float, float], scores: tuple[float, float], proto: int):
        x0, y0, x1, y1 = (c * scale for c in box)
        col = np.zeros(4 + 2 + 32, np.float32)
        col[:4] = ((x0 + x1) / 2, (y0 + y1) / 2 + top, x1 - x0, y1 - y0)
        col[4:6] = scores
        col[6 + proto] = 1.0
        return col

    cols = [
        anchor(BOX, (0.9, 0.05), 0),
        anchor((153, 32, 283, 172), (0.6, 0.05), 1),  # the same slick, weaker: NMS drops it
        anchor((300, 120, 390, 190), (0.1, 0.05), 1),  # under --model-conf
        anchor((300, 10, 390, 80), (0.2, 0.5), 1),  # a look-alike, oil score 0.2
    ]
    return np.stack(cols, axis=1)[None], protos


@pytest.fixture(scope="module")
def yolo(tmp_path_factory: pytest.TempPathFactory) -> Model:
    pred, protos = _yolo_arrays()
    path = constant_yolo(tmp_path_factory.mktemp("yolo") / "yolo-seg.onnx", pred, protos, YOLO_SIZE)
    return _model(path, model_classes="oil,lookalike")


def test_a_yolo_mask_is_pasted_back_at_full_resolution_inside_its_box(yolo: Model) -> None:
    assert yolo.kind == "yolo" and yolo.spec.size == (320, 320) and yolo.spec.channels == 3
    seg = segment_raster(yolo, Raster(_sea(200, 400), "yolo.png", "png"))
    mask = np.asarray(seg.mask)
    v, u = np.mgrid[0:200, 0:400]
    cx, cy, r = DISK
    x0, y0, x1, y1 = BOX
    truth = ((u - cx) ** 2 + (v - cy) ** 2 <= r * r) & (u >= x0) & (u < x1) & (v >= y0) & (v < y1)
    oil = mask == Cls.OIL
    assert _iou(oil, truth) > 0.9
    assert not oil[:, :x0].any() and not oil[:, x1:].any()  # cropped to the box
    assert seg.info["detections"] == 2  # the duplicate and the weak one are gone
    oil_slick = next(s for s in seg.slicks if s.cls == Cls.OIL)
    assert oil_slick.confidence == pytest.approx(0.9, abs=1e-3)


def test_nms_drops_the_duplicate_and_the_threshold_the_weak(yolo: Model) -> None:
    seg = segment_raster(yolo, Raster(_sea(200, 400), "yolo.png", "png"))
    mask = np.asarray(seg.mask)
    assert not (mask[32:172, 261:283] == Cls.OIL).any()  # the duplicate would fill its box
    assert not (mask[120:190, 300:390] != Cls.SEA).any()  # score 0.1 < 0.25
    lookalike = mask[10:80, 300:390]
    assert (lookalike == Cls.LOOKALIKE).mean() > 0.95
    [slick] = [s for s in seg.slicks if s.cls == Cls.LOOKALIKE]
    assert slick.confidence == pytest.approx(0.2, abs=1e-3)  # its oil score


def test_a_lower_score_threshold_keeps_the_weak_detection(tmp_path: Path) -> None:
    pred, protos = _yolo_arrays()
    path = constant_yolo(tmp_path / "y.onnx", pred, protos, YOLO_SIZE)
    model = _model(path, model_classes="oil,lookalike", model_conf=0.05)
    seg = segment_raster(model, Raster(_sea(200, 400), "yolo.png", "png"))
    assert (np.asarray(seg.mask)[120:190, 300:390] == Cls.OIL).mean() > 0.95


def test_an_anchors_by_channels_export_reads_the_same(yolo: Model, tmp_path: Path) -> None:
    pred, protos = _yolo_arrays()
    path = constant_yolo(tmp_path / "t.onnx", pred.transpose(0, 2, 1).copy(), protos, YOLO_SIZE)
    transposed = _model(path, model_classes="oil,lookalike")
    image = Raster(_sea(200, 400), "yolo.png", "png")
    assert transposed.kind == "yolo"
    assert (segment_raster(transposed, image).mask == segment_raster(yolo, image).mask).all()


def test_an_image_over_twice_the_input_is_tiled_for_yolo(yolo: Model) -> None:
    seg = segment_raster(yolo, Raster(_sea(300, 700), "wide.png", "png"))
    assert seg.info["tiles"] == len(windows(300, 700, YOLO_SIZE_WH)) == 3
    assert segment_raster(yolo, Raster(_sea(300, 600), "a.png", "png")).info["tiles"] == 1


def test_detections_of_neighbouring_tiles_are_merged_once() -> None:
    def det(x: float, score: float, cls: int = 0) -> Detection:
        return Detection(
            (x, 10.0, 50.0, 20.0), score, cls, score, (int(x), 10), np.ones((20, 50), bool)
        )

    kept = merge([det(400, 0.8), det(402, 0.7), det(402, 0.6, cls=1), det(900, 0.5)], 0.45)
    assert sorted((d.box[0], d.model_class) for d in kept) == [(400, 0), (402, 1), (900, 0)]


# Tensors ----------------------------------------------------------------------


def test_windows_cover_the_image_and_their_cores_partition_it() -> None:
    for h, w in ((1800, 2500), (300, 200), (512, 513)):
        covered = np.zeros((h, w), np.int32)
        owned = np.zeros((h, w), np.int32)
        for win in windows(h, w, (512, 512)):
            covered[win.slices] += 1
            x0, y0, x1, y1 = win.core
            owned[y0:y1, x0:x1] += 1
        assert covered.min() >= 1 and (owned == 1).all()


def test_a_small_image_is_padded_not_stretched() -> None:
    [win] = windows(100, 150, (512, 512))
    assert win == Window(0, 0, 150, 100, (0, 0, 150, 100))
    tile = crop(np.full((100, 150), 7, np.uint8), win, (512, 512))
    assert tile.shape == (512, 512) and (tile[:100, :150] == 7).all() and not tile[100:].any()


def test_to_tensor_feeds_rgb_normalised() -> None:
    spec = ModelInput((4, 2), 3, (1.0, 2.0, 3.0), (2.0, 2.0, 2.0), (Cls.SEA, Cls.OIL))
    bgr = np.zeros((2, 4, 3), np.uint8) + np.array([10, 20, 30], np.uint8)
    tensor = to_tensor(bgr, spec)
    assert tensor.shape == (1, 3, 2, 4) and tensor.dtype == np.float32
    assert tensor[0, :, 0, 0].tolist() == [14.5, 9.0, 3.5]  # (R - 1) / 2, (G - 2) / 2, (B - 3) / 2


def test_half_resolution_logits_and_in_graph_softmax_are_read() -> None:
    spec = ModelInput((64, 64), 1, (0.0,), (255.0,), (Cls.SEA, Cls.OIL))
    probs = np.zeros((1, 2, 32, 32), np.float32)
    probs[0, 0], probs[0, 1, :8] = 1.0, 0.0
    probs[0, 0, :8], probs[0, 1, :8] = 0.3, 0.7  # sums to 1: already probabilities
    classes, oil = semantic(probs, spec)
    assert classes.shape == (64, 64) and (classes[:14] == Cls.OIL).all()
    assert (classes[18:] == Cls.SEA).all() and oil[0, 0] == pytest.approx(0.7)


def test_a_single_logit_is_model_class_1_against_class_0() -> None:
    spec = ModelInput((4, 4), 1, (0.0,), (255.0,), (Cls.SEA, Cls.OIL))
    logit = np.full((1, 1, 4, 4), -2.0, np.float32)
    logit[0, 0, :2] = 3.0
    classes, oil = semantic(logit, spec)
    assert (classes[:2] == Cls.OIL).all() and (classes[2:] == Cls.SEA).all()
    assert oil[0, 0] == pytest.approx(1 / (1 + np.exp(-3.0)))


def test_labels_outside_the_class_map_are_a_backend_error() -> None:
    spec = ModelInput((8, 8), 1, (0.0,), (255.0,), (Cls.SEA, Cls.OIL))
    with pytest.raises(BackendError, match="class 7"):
        semantic(np.full((1, 8, 8), 7, np.int64), spec)


@pytest.mark.parametrize(
    ("settings", "shape", "words"),
    [
        ({"model_size": "big"}, None, "--model-size must be N or WxH"),
        ({"model_size": "512"}, [1, 3, 640, 640], "does not fit the model"),
        ({"model_channels": 3}, [1, 1, "H", "W"], "the model takes 1 channels"),
        ({"model_mean": "1,2"}, [1, 3, 64, 64], "--model-mean has 2 values"),
        ({"model_std": "0"}, None, "--model-std must not be 0"),
        ({"model_classes": "sea,slick"}, None, "'slick' is not"),
    ],
)
def test_bad_model_settings_are_named(
    settings: dict[str, object], shape: list[object] | None, words: str
) -> None:
    with pytest.raises(ConfigError, match=words):
        ModelInput.from_settings(Settings(**settings), shape)


def test_sizes_and_channels_come_from_the_settings_else_the_model() -> None:
    assert ModelInput.from_settings(Settings(), None).size == (512, 512)
    assert ModelInput.from_settings(Settings(model_size="640x480"), None).size == (640, 480)
    fixed = ModelInput.from_settings(Settings(), [1, 3, 256, 320])
    assert fixed.size == (320, 256) and fixed.channels == 3 and fixed.mean == (0.0, 0.0, 0.0)
    assert ModelInput.from_settings(Settings(model_mean="1,2,3"), None).channels == 3


# Loading ----------------------------------------------------------------------


def test_a_missing_or_broken_model_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nothing\.onnx: no such file"):
        _model(tmp_path / "nothing.onnx")
    (tmp_path / "text.onnx").write_text("not a model")
    with pytest.raises(ConfigError, match=r"text\.onnx is not an ONNX model"):
        _model(tmp_path / "text.onnx")


def test_outputs_that_fit_no_kind_say_what_they_are(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[1, 84, 8400\].*--model-kind"):
        _model(odd_outputs(tmp_path / "odd.onnx"))
    with pytest.raises(ConfigError, match="--model-kind yolo needs"):
        _model(dark_is_oil(tmp_path / "sem.onnx"), model_kind="yolo")


def test_more_model_classes_than_named_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="2 classes but --model-classes names 1"):
        _model(dark_is_oil(tmp_path / "sem.onnx"), model_classes="sea")


def test_cuda_without_onnxruntime_gpu_says_what_to_install(models: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="onnxruntime-gpu"):
        _model(models["logits"], device="cuda")


def test_without_onnxruntime_the_error_says_how_to_install_it(
    models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ConfigError, match=r"pip install onnxruntime \(or onnxruntime-gpu"):
        _model(models["logits"])


# Through the service ----------------------------------------------------------


def test_a_job_of_two_images_ends_with_masks(
    models: dict[str, Path], make_client: Callable[..., TestClient]
) -> None:
    client = make_client(backend="onnx", model=str(models["logits"]))
    body = upload(client, image_zip(2)).json()
    assert wait_for(client, body["job_id"])["status"] == "SUCCESS"
    job = client.get(f"/api/v1/jobs/{body['job_id']}").json()
    assert [i["status"] for i in job["images"]] == ["done", "done"]
    archive = zipfile.ZipFile(io.BytesIO(client.get(f"/api/download/{body['user_hash']}").content))
    mask = cv2.imdecode(np.frombuffer(archive.read("masks/scene_00.png"), np.uint8), -1)
    assert mask.shape == (240, 320) and (mask == Cls.OIL).sum() > 1000  # the drawn slick


def test_the_segmenter_is_made_and_closed_from_settings(models: dict[str, Path]) -> None:
    segmenter = make_segmenter(Settings(backend="onnx", model=str(models["logits"])), CpuPool(1))
    img = _with_slick(_sea(240, 320), 100, 80, 120, 60)

    async def main() -> int:
        seg = await segmenter.segment(Raster(img, "a.png", "png"))
        await segmenter.aclose()
        return len(seg.slicks)

    assert segmenter.name == "onnx" and anyio.run(main) == 1


def test_a_bad_model_path_stops_the_service_at_start(tmp_path: Path) -> None:
    settings = Settings(backend="onnx", model=str(tmp_path / "gone.onnx"), data_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"gone\.onnx"), TestClient(create_app(settings)):
        pass
