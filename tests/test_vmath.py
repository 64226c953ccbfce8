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


def test_exp_constants_against_mpmath():
    """ln2/128 = hi + lo with kd * hi exact for every |kd| < 2^18 that occurs, and each table
    row 2^(j/128) = s (1 + tail) to far below an ulp."""
    mpmath = pytest.importorskip("mpmath")
    from tapegrad.jit.vmath import EXP_N, EXP_TABLE, LN2_N_HI, LN2_N_LO, N_OVER_LN2
    mpmath.mp.prec = 200
    m, _ = np.frexp(LN2_N_HI)
    assert float(m * 2.0 ** 35) == round(m * 2.0 ** 35)  # at most 35 significant bits
    step = mpmath.log(2) / EXP_N
    # lo is rounded: < 2^-84 relative, so kd * (hi + lo) is off by < 2^-75 for |kd| < 2^18
    assert abs(mpmath.mpf(LN2_N_HI) + mpmath.mpf(LN2_N_LO) - step) < step * 2.0 ** -84
    assert N_OVER_LN2 == float(1 / step)
    for j in range(EXP_N):
        s, tail = EXP_TABLE[2 * j], EXP_TABLE[2 * j + 1]
        exact = mpmath.mpf(2) ** (mpmath.mpf(j) / EXP_N)
        assert s == float(exact) and abs(s * (1 + mpmath.mpf(tail)) - exact) < exact * 2.0 ** -100


def test_sigmoid_matches_scipy_expit_without_overflow():
    x = np.concatenate([np.linspace(-800, 800, 10_001), [np.inf, -np.inf, np.nan, 0.0]])
    got = tg.record(tnp.sigmoid, x).forward(x)
    ref = scipy.special.expit(x)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    ok = ~np.isnan(ref)
    np.testing.assert_allclose(got[ok], ref[ok], rtol=4e-16, atol=1e-300)


# --- sine and cosine -------------------------------------------------------------------------
def _sin_cos_by_tape(x):
    """sin x and cos x through the SIN and COS rows: forward rules, then the backward rules
    (d sin = cos, d cos = -sin) as the gradient of a sum."""
    x = np.asarray(x, dtype=float)
    sin = tg.record(tnp.sin, x).forward(x)
    cos = tg.record(tnp.cos, x).forward(x)
    dsin = tg.grad(lambda v: tnp.sum(tnp.sin(v)))(x)
    dcos = tg.grad(lambda v: tnp.sum(tnp.cos(v)))(x)
    np.testing.assert_array_equal(dsin, cos)  # the same function, bit for bit
    np.testing.assert_array_equal(dcos, -sin)
    return sin, cos


def _samples():
    rng = np.random.default_rng(7)
    return np.concatenate([
        rng.uniform(-np.pi, np.pi, 60_000), rng.uniform(-1e3, 1e3, 60_000),
        rng.uniform(-1e6, 1e6, 40_000), rng.uniform(-1e9, 1e9, 40_000),
        rng.choice([-1.0, 1.0], 60_000) * 2.0 ** rng.uniform(-30, 1023.9, 60_000)])


def _near_multiples_of_half_pi(count, mpmath):
    """The doubles nearest k pi/2 (and their neighbours) for k from 1 to 2^1000: the
    arguments with the smallest remainders, where a reduction's cancellation shows."""
    rng = np.random.default_rng(3)
    ks = np.concatenate([np.arange(1.0, count + 1), np.floor(2.0 ** rng.uniform(20, 53, count)),
                         2.0 ** rng.uniform(53, 1000, count)])
    mpmath.mp.prec = 1200
    near = np.array([float(mpmath.mpf(float(k)) * mpmath.pi / 2) for k in ks])
    # the hardest double of all for the reduction (|x mod pi/2| ~ 2^-61, Muller's table)
    near = np.concatenate([near, np.nextafter(near, 0), np.nextafter(near, np.inf),
                           [6381956970095103 * 2.0 ** 797]])
    return np.concatenate([near, -near])


def test_sin_cos_within_one_ulp_of_numpy_over_the_whole_range():
    x = _samples()
    sin, cos = _sin_cos_by_tape(x)
    assert _ulps(sin, np.sin(x)).max() <= 1.0
    assert _ulps(cos, np.cos(x)).max() <= 1.0


def test_sin_cos_below_one_ulp_of_the_exact_value():
    mpmath = pytest.importorskip("mpmath")
    rng = np.random.default_rng(11)
    x = np.concatenate([rng.choice(_samples(), 3000, replace=False), _near_multiples_of_half_pi(500, mpmath)])
    sin, cos = _sin_cos_by_tape(x)
    mpmath.mp.prec = 1200  # enough to reduce any double by pi/2 exactly
    for got, f in ((sin, mpmath.sin), (cos, mpmath.cos)):
        exact = [f(mpmath.mpf(float(v))) for v in x]
        err = [abs(mpmath.mpf(float(g)) - e) / float(np.spacing(abs(float(e)))) for g, e in zip(got, exact)]
        assert float(max(err)) < 1.0


def test_sin_cos_special_values():
    tiny = np.finfo(float).tiny
    x = np.array([0.0, -0.0, 5e-324, -5e-324, tiny, -tiny / 3, 1e-300, 2.0 ** -26, -2.0 ** -27, 1e-9,
                  np.nan, np.inf, -np.inf, np.finfo(float).max, -np.finfo(float).max])
    sin, cos = _sin_cos_by_tape(x)
    ref_sin, ref_cos = np.sin(x), np.cos(x)
    np.testing.assert_array_equal(np.isnan(sin), np.isnan(ref_sin))
    np.testing.assert_array_equal(np.isnan(cos), np.isnan(ref_cos))
    ok = ~np.isnan(ref_sin)
    np.testing.assert_array_equal(sin[ok], ref_sin[ok])  # sin x = x for tiny x, exactly
    np.testing.assert_array_equal(np.signbit(sin[ok]), np.signbit(ref_sin[ok]))  # sin(-0) = -0
    assert _ulps(cos[ok], ref_cos[ok]).max() <= 1.0


def test_two_over_pi_digits():
    mpmath = pytest.importorskip("mpmath")
    from tapegrad.jit.vmath import TWO_OVER_PI_1280
    mpmath.mp.prec = 1400
    assert TWO_OVER_PI_1280 == int(mpmath.floor(2 / mpmath.pi * mpmath.mpf(2) ** 1280))


def test_sin_cos_vectorised_loops_match_the_scalar_path_bit_for_bit():
    x = _samples()[::50]
    whole = _sin_cos_by_tape(x)
    tape_sin, tape_cos = tg.record(tnp.sin, x[:1]), tg.record(tnp.cos, x[:1])
    one_by_one = [np.array([t.forward(v[None])[0] for v in x]) for t in (tape_sin, tape_cos)]
    np.testing.assert_array_equal(whole[0], one_by_one[0])
    np.testing.assert_array_equal(whole[1], one_by_one[1])
