"""The oil network: shipped small, loaded per thread, fed as a quicklook, and finding oil
that fills most of a patch (where no sea around it sets a background level)."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import onnx

from oilspill import sar
from oilspill.sar import forms, oilnet
from oilspill.sar.records import Cls


def _speckled(db: np.ndarray, seed: int, looks: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (10 ** (db / 10) * rng.gamma(looks, 1 / looks, db.shape)).astype(np.float32)


def test_weights_are_small_and_described() -> None:
    assert (oilnet.MODEL_DIR / "oilnet.onnx").stat().st_size < 2 * 2**20
    meta = oilnet.info()
    assert meta.multiple == 32 and meta.output_scale in (1, 2) and 0 < meta.threshold < 1


def test_the_shipped_network_ends_in_one_depth_to_space() -> None:
    # Not a hand-written reshape/transpose (train/depth_to_space.py): ONNX Runtime runs
    # that ~1.5 ms slower a scene. A re-export by an old train_oilnet.py would bring it back.
    graph = onnx.load(str(oilnet.MODEL_DIR / "oilnet.onnx")).graph
    last = graph.node[-1]
    assert last.op_type == "DepthToSpace" and last.output[0] == graph.output[0].name
    assert not any(n.op_type == "Transpose" for n in graph.node)


def test_probability_keeps_the_input_size_for_any_shape() -> None:
    for shape in ((256, 256), (301, 517), (40, 70)):
        prob = oilnet.probability(np.full(shape, 130, np.uint8))
        assert prob.shape == shape and prob.dtype == np.float32
        assert float(prob.min()) >= 0.0 and float(prob.max()) <= 1.0


def test_each_thread_gets_its_own_net_and_the_same_answer() -> None:
    grey = sar.synth.make_scene(5, (640, 320)).image
    expected = oilnet.probability(grey)
    got: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda: got.append(oilnet.probability(grey)))]
    threads += [threading.Thread(target=lambda: got.append(oilnet.probability(grey)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 2 and all(np.allclose(g, expected, atol=1e-5) for g in got)


def test_sigma0_is_shown_to_the_net_as_a_quicklook() -> None:
    db = np.full((64, 64), -12.0, np.float32)
    db[:, 32:] = -20.0
    sar_img = forms.load(10 ** (db / 10), "sigma0")
    grey = oilnet.grey8(sar_img)
    assert grey.dtype == np.uint8
    # 8 dB darker is 8 x GREY_PER_DB grey levels darker, whatever the scene's level.
    assert abs(int(grey[0, 0]) - int(grey[0, 63]) - 8 * oilnet.GREY_PER_DB) <= 1


def test_a_patch_that_is_mostly_oil_is_still_found() -> None:
    h, w = 256, 256
    db = np.full((h, w), -8.0, np.float32)
    oil = np.zeros((h, w), np.uint8)
    cv2.ellipse(oil, (128, 128), (150, 110), 15, 0, 360, 1, -1)
    db[oil > 0] -= 9.0
    found = sar.detect(_speckled(db, 1), form="sigma0")
    truth = oil > 0
    assert truth.mean() > 0.6
    hit = found.mask == Cls.OIL
    assert np.count_nonzero(hit & truth) >= 0.5 * np.count_nonzero(truth)  # most of it is found
    assert np.count_nonzero(hit & ~truth) <= 0.05 * np.count_nonzero(hit)  # and little else
