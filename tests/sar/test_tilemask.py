"""The deflated-tile mask of big scenes: windows, painting, counting, decimation."""

from __future__ import annotations

import numpy as np

from oilspill.sar.tilemask import TileMask, count_value


def filled(seed: int = 0) -> tuple[TileMask, np.ndarray]:
    rng = np.random.default_rng(seed)
    whole = rng.integers(0, 5, (250, 330)).astype(np.uint8)
    mask = TileMask(whole.shape, 64)
    for y in range(0, 250, 64):
        for x in range(0, 330, 64):
            mask.put(y, x, whole[y : y + 64, x : x + 64])
    return mask, whole


def test_windows_and_the_whole_array_match() -> None:
    mask, whole = filled()
    assert np.array_equal(np.asarray(mask), whole)
    assert np.array_equal(mask[37:201, 60:329], whole[37:201, 60:329])
    assert mask.stored_bytes < whole.nbytes


def test_paint_changes_only_the_classes_named() -> None:
    mask, whole = filled(1)
    region = np.ones((100, 150), bool)
    mask.paint(50, 40, region, 9, (1, 2))
    view = whole[40:140, 50:200]
    view[(view == 1) | (view == 2)] = 9
    assert np.array_equal(np.asarray(mask), whole)


def test_count_and_untouched_tiles_are_zero() -> None:
    mask = TileMask((300, 300), 128)
    block = np.zeros((128, 128), np.uint8)
    block[:10, :10] = 1
    mask.put(128, 0, block)
    assert count_value(mask, 1) == 100 and count_value(mask, 0) == 300 * 300 - 100
    assert count_value(np.asarray(mask), 1) == 100


def test_decimated_is_nearest_neighbour_of_the_whole() -> None:
    mask, whole = filled(2)
    small = mask.decimated((125, 165))
    assert small.shape == (125, 165)
    assert np.mean(small == whole[::2, ::2]) > 0.95
