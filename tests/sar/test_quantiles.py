"""quantiles.percentile(s) and quantiles.median give NumPy's figures to the last bit."""

from __future__ import annotations

import numpy as np
import pytest

from oilspill.sar import quantiles


def _samples() -> list[np.ndarray]:
    rng = np.random.default_rng(14)
    out = []
    for n in (1, 2, 3, 4, 7, 10, 101, 1000, 4097, 120_001):
        for dtype in (np.float32, np.float64):
            out.append(rng.normal(3.0, 2.0, n).astype(dtype))
            out.append(np.round(rng.gamma(2.0, 1.5, n), 1).astype(dtype))  # many ties
    out.append(rng.normal(size=(37, 53)).astype(np.float32))  # 2-D: flattened, as NumPy
    out.append(np.array([-np.inf, 1.0, np.inf], np.float32))
    return out


QS = [0, 2, 10, 50, 70, 90, 97, 98, 100, 33.3, 66.6, 99.99, 0.01]


@pytest.mark.parametrize("sample", _samples(), ids=lambda s: f"{s.dtype}-{s.size}")
def test_the_figures_are_numpys_to_the_bit(sample: np.ndarray) -> None:
    with np.errstate(invalid="ignore"):  # inf - inf in NumPy's own lerp, as in ours
        want = [float(x) for x in np.percentile(sample, QS)]
        got = quantiles.percentiles(sample, QS)
        assert np.array_equal(np.array(got), np.array(want), equal_nan=True)
        for q in QS:  # one Python q: NumPy computes in the sample's dtype
            one = quantiles.percentile(sample, q)
            assert np.array_equal(one, float(np.percentile(sample, q)), equal_nan=True), q
        assert np.array_equal(quantiles.median(sample), float(np.median(sample)), equal_nan=True)


def test_what_it_does_not_handle_goes_to_numpy() -> None:
    ints = np.arange(11, dtype=np.uint8)
    assert quantiles.percentiles(ints, [25, 50]) == [2.5, 5.0]
    assert quantiles.median(ints) == 5.0
    with_nan = np.array([1.0, np.nan, 3.0], np.float32)
    assert np.isnan(quantiles.percentile(with_nan, 50))
    assert np.isnan(quantiles.median(with_nan))
    with pytest.raises(ValueError, match="range"):
        quantiles.percentiles(np.ones(5, np.float32), [101])
    with pytest.raises(ValueError, match="range"):
        quantiles.percentile(np.ones(5, np.float32), -1)
