"""The vectorisable exp and sigmoid against numpy and scipy, ulp by ulp."""
import numpy as np
import pytest
import scipy.special

import tapegrad as tg
import tapegrad.numpy as tnp

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def _exp_by_tape(x):
    return tg.record(tnp.exp, x).forward(x)


def _ulps(got, ref):
    return np.abs(got - ref) / np.spacing(np.abs(ref))


def test_exp_within_one_ulp_of_numpy_over_the_whole_range():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-745.5, 709.9, 200_000), rng.uniform(-1, 1, 100_000),
                        rng.uniform(-1e-8, 1e-8, 10_000)])
    got, ref = _exp_by_tape(x), np.exp(x)
    normal = np.isfinite(ref) & (ref >= np.finfo(float).tiny)
    assert _ulps(got[normal], ref[normal]).max() <= 1.0
    # subnormal results: within one unit of the smallest subnormal
    sub = ref < np.finfo(float).tiny
    assert sub.any() and np.abs(got[sub] - ref[sub]).max() <= 5e-324


def test_exp_special_values():
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 709.78, 709.79, -745.13, -745.14, 1e-300])
    got = _exp_by_tape(x)
    ref = np.exp(x)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(ref))
    finite = np.isfinite(ref)
    np.testing.assert_allclose(got[finite], ref[finite], rtol=3e-16, atol=0)


def test_sigmoid_matches_scipy_expit_without_overflow():
    x = np.concatenate([np.linspace(-800, 800, 10_001), [np.inf, -np.inf, np.nan, 0.0]])
    got = tg.record(tnp.sigmoid, x).forward(x)
    ref = scipy.special.expit(x)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    ok = ~np.isnan(ref)
    np.testing.assert_allclose(got[ok], ref[ok], rtol=4e-16, atol=1e-300)
