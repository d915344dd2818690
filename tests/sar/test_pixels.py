"""pixels.where and pixels.components give what NumPy's and OpenCV's own calls give."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from oilspill.sar import pixels


def _masks() -> list[np.ndarray]:
    rng = np.random.default_rng(14)
    shapes = [(1, 1), (1, 9), (7, 1), (37, 53), (130, 250)]
    masks = []
    for shape in shapes:
        for share in (0.0, 0.001, 0.02, 0.05, 0.07, 0.3, 0.9, 1.0):
            masks.append(rng.random(shape) < share)
    # blobs, not salt: a few big parts with holes, dense and sparse
    blobs = np.zeros((200, 300), np.uint8)
    cv2.circle(blobs, (80, 90), 40, 1, -1)
    cv2.circle(blobs, (80, 90), 12, 0, -1)
    cv2.rectangle(blobs, (200, 10), (290, 60), 1, -1)
    masks.append(blobs.astype(bool))
    sparse = np.zeros((200, 300), bool)
    sparse[5, 7] = sparse[199, 299] = sparse[0, 0] = True
    sparse[100:103, 100:140] = True
    masks.append(sparse)
    return masks


def _reference(mask: np.ndarray, connectivity: int) -> tuple[int, np.ndarray, np.ndarray]:
    u8 = np.ascontiguousarray(mask != 0).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(u8, connectivity=connectivity)
    return n, labels, stats


@pytest.mark.parametrize("connectivity", [4, 8])
def test_components_gives_opencvs_labels_and_stats(connectivity: int) -> None:
    for mask in _masks():
        for given in (mask, mask.astype(np.uint8) * 255, mask.astype(np.float32)):
            n, labels, stats = pixels.components(given, connectivity)
            want_n, want_labels, want_stats = _reference(mask, connectivity)
            assert n == want_n
            assert labels.dtype == np.int32
            np.testing.assert_array_equal(labels, want_labels)
            np.testing.assert_array_equal(stats[1:], want_stats[1:])
            # row 0: the background's area, and the whole mask as its box
            assert stats[0, cv2.CC_STAT_AREA] == want_stats[0, cv2.CC_STAT_AREA]
            h, w = mask.shape
            assert tuple(stats[0, :4]) == (0, 0, w, h)


def test_components_of_a_view_that_is_not_contiguous() -> None:
    rng = np.random.default_rng(3)
    big = rng.random((120, 160)) < 0.03
    for view in (big[::2, ::3], big[10:90, 20:140], big.T):
        n, labels, stats = pixels.components(view)
        want_n, want_labels, want_stats = _reference(view, 8)
        assert n == want_n
        np.testing.assert_array_equal(labels, want_labels)
        np.testing.assert_array_equal(stats[1:], want_stats[1:])


def test_where_gives_numpys_nonzero_in_its_order() -> None:
    views = _masks()
    views += [views[-3][::2, 1::3], views[-3].T, np.zeros((0, 4), bool)]
    for mask in views:
        for given in (mask, mask.astype(np.uint8) * 3, mask.astype(np.int16)):
            ys, xs = pixels.where(given)
            want_ys, want_xs = np.nonzero(mask)
            assert ys.dtype == want_ys.dtype and xs.dtype == want_xs.dtype
            np.testing.assert_array_equal(ys, want_ys)
            np.testing.assert_array_equal(xs, want_xs)


def test_where_takes_only_two_dimensions() -> None:
    with pytest.raises(ValueError, match="2-D"):
        pixels.where(np.zeros((2, 3, 4), bool))
