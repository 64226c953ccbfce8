"""The elementwise rows beyond their cases in test_ops.py: forward values at special points
(NaN, infinities, signed zeros, huge and tiny numbers) against numpy, the functions and
numpy dispatch generated from the rows' ``numpy=`` names, the traced operators and methods
(``abs``, ``%``, ``.clip``, ``.round``, ``.astype``, ``.real``, ``.conj``), and zero-gradient
rows that a replay recomputes.
"""
import warnings

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.jit as J
import tapegrad.numpy as tnp
from tapegrad import tracer
from tapegrad.jit.ops_elementwise import NUMPY

SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.5, -2.5, 3.0,
                    1e-300, -1e-300, 5e-324, 1e300, -1e300, 700.0, -700.0, 0.99999, 1e-5])
NAMED = [(row.name, row.family) for row in J.OPS if row.name in NUMPY]


def _replayed(fn, *special):
    """fn recorded at ordinary values of the special arrays' shapes, replayed at them."""
    ordinary = [np.linspace(0.3, 0.9, s.size).reshape(s.shape) for s in special]
    tape = tg.record(fn, *ordinary, argnums=tuple(range(len(special))))
    with np.errstate(all="ignore"):
        return tape.forward(*special)


@pytest.mark.parametrize("name, family", NAMED, ids=[n for n, _ in NAMED])
def test_forward_at_special_points_is_numpys(name, family):
    eager = getattr(np, NUMPY[name][0])
    fn = getattr(tnp, NUMPY[name][0])
    if family == "map":
        args = (SPECIAL,)
    else:  # every pair of special values
        n = SPECIAL.size
        args = (np.repeat(SPECIAL, n).reshape(n, n), np.tile(SPECIAL, n).reshape(n, n))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = eager(*args)
    got = _replayed(fn, *args)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=0, equal_nan=True)
    zero = want == 0
    if name in ("MAXIMUM", "MINIMUM", "FMIN", "FMAX"):  # max(0.0, -0.0): either, numpy's SIMD varies
        return
    assert (np.signbit(got[zero]) == np.signbit(want[zero])).all(), "signed zeros differ"


@pytest.mark.parametrize("fn", [lambda x: tnp.clip(x, -1.0, 2.5), lambda x: tnp.clip(x, 3.0, -1.0),
                                lambda x: tnp.round(x, 2), lambda x: tnp.round(x, -2),
                                lambda x: tnp.round(x)])
def test_float_attribute_rows_at_special_points(fn):
    with np.errstate(all="ignore"):
        want = fn(SPECIAL)
    np.testing.assert_allclose(_replayed(fn, SPECIAL), want, rtol=1e-13, atol=0, equal_nan=True)


def test_every_numpy_name_is_generated_and_dispatches():
    """tnp.<name> and np.<name> on a traced value both record the row naming it."""
    for row_name, names in NUMPY.items():
        for public in names:
            fn, target = getattr(tnp, public), getattr(np, public)
            table = tracer.UFUNCS if isinstance(target, np.ufunc) else tracer.FUNCTIONS
            assert fn.__name__ == public and table[target].__name__ in names  # np.abs is np.absolute
            arity = J.OPS[J.CODES[row_name]].arity
            tape = tg.record(lambda *xs: target(*xs), *[np.array([0.4, 0.7])] * arity,
                             argnums=tuple(range(arity)))
            assert [J.NAMES[o] for o in tape.op] == [row_name], public


def test_tnp_functions_call_numpy_on_plain_arrays():
    x = np.array([-1.5, 0.25, 2.0])
    assert tnp.arctan2(x, 2.0).tolist() == np.arctan2(x, 2.0).tolist()
    assert tnp.abs(x).tolist() == [1.5, 0.25, 2.0]
    assert tnp.clip(x, 0.0, 1.0).tolist() == [0.0, 0.25, 1.0]
    assert tnp.round(x).tolist() == [-2.0, 0.0, 2.0]
    assert tnp.real(x) is not None and tnp.conj(x).tolist() == x.tolist()


def test_operators_and_methods():
    x = np.array([-1.25, 0.5, 2.0])
    f = lambda x: tnp.sum(abs(x) + x % 0.75 + 1.0 % (x + 3.0) + x.clip(-1.0, 1.0) + x.round()  # noqa: E731
                          + x.astype(float) + x.astype(np.float32) + x.real + x.conj() + x.conjugate())
    value, g = tg.value_and_grad(f)(x)
    want = np.sum(abs(x) + x % 0.75 + 1.0 % (x + 3.0) + x.clip(-1.0, 1.0) + x.round() + 5 * x)
    assert value == pytest.approx(want, rel=1e-14)
    # abs, x % c, 1 % y (d/dy = -floor(1 / y) = 0 for y > 1), clip, round, five identities
    np.testing.assert_allclose(g, np.sign(x) + 1.0 + 0.0 + np.array([0.0, 1.0, 0.0]) + 0.0 + 5.0)
    tape = tg.record(f, x)
    assert {"ABS", "REMAINDER", "CLIP", "ROUND"} <= {J.NAMES[o] for o in tape.op}


def test_divmod_and_floor_division():
    x = np.array([-1.25, 0.5, 2.0, 7.0])
    q, r = tg.record(lambda x: divmod(x, 0.75)[0], x), tg.record(lambda x: divmod(1.5, x + 3.0)[1], x)
    new = np.array([3.0, -0.7, 1e-3, -4.5])
    np.testing.assert_array_equal(q.forward(new), new // 0.75)
    np.testing.assert_array_equal(r.forward(new), 1.5 % (new + 3.0))
    assert tg.grad(lambda x: tnp.sum(x // 0.75 * x))(x).tolist() == (x // 0.75).tolist()


@pytest.mark.parametrize("dtype", [int, np.int32, bool, np.float16, complex])
def test_astype_to_another_kind_raises(dtype):
    with pytest.raises(TypeError, match=f"converted to {np.dtype(dtype).name} by astype"):
        tg.grad(lambda x: tnp.sum(x.astype(dtype)))(np.ones(2))


def test_zero_gradient_rows_are_recomputed_on_replay():
    """floor and friends are entries, not constants: a replay at new inputs rounds again."""
    f = lambda x: tnp.sum(tnp.floor(x) * x + tnp.sign(x) + tnp.round(x, 1) + tnp.rint(x))  # noqa: E731
    tape = tg.record(f, np.array([0.3, 1.7]))
    new = np.array([-2.6, 5.45])
    assert tape.forward(new) == pytest.approx(float(np.sum(np.floor(new) * new + np.sign(new)
                                                           + np.round(new, 1) + np.rint(new))))
    g = tg.grad(f)
    g(np.array([0.3, 1.7]))
    assert g(new).tolist() == np.floor(new).tolist()


def test_traced_bounds_of_clip_split_ties_like_maximum():
    lo = 0.5
    g = tg.grad(lambda x, lo: tnp.clip(x, lo, 2.0), argnums=(0, 1))(0.5, lo)
    assert g == (0.5, 0.5)


@pytest.mark.parametrize("fn", [lambda x: np.spacing(x), lambda x: np.heaviside(x, 0.5),
                                lambda x: np.nextafter(x, 1.0), lambda x: np.frexp(x)[0]])
def test_a_ufunc_without_a_row_names_itself(fn):
    with pytest.raises(TypeError, match=r"numpy\.(spacing|heaviside|nextafter|frexp).*not supported"):
        tg.grad(lambda x: tnp.sum(fn(x)))(np.ones(3))


def test_check_grads_on_a_composite_of_the_new_ops():
    """tg.check_grads (random directions against finite differences) through a chain of them."""
    def f(x, y):
        z = tnp.arctan2(tnp.sinh(x), tnp.hypot(y, 1.0)) + tnp.logaddexp(x, y) * tnp.minimum(x, y)
        return tnp.sum(tnp.expm1(0.1 * z) + tnp.cbrt(tnp.cosh(x)) + tnp.fmod(x, 0.7) + tnp.sinc(y))
    rng = np.random.default_rng(2)
    tg.check_grads(f, (rng.normal(size=(3, 4)), rng.normal(size=4)))


def test_tapes_with_the_new_rows_save_load_and_replay(tmp_path):
    f = lambda x: tnp.sum(tnp.clip(x, -0.5, 0.5) + tnp.round(x, 1) + x % 0.3 + tnp.arccos(0.5 * tnp.tanh(x)))  # noqa: E731
    x = np.array([[-1.2, 0.1], [0.4, 2.0]])
    tape = tg.record(f, x)
    tape.save(tmp_path / "t.npz")
    back = tg.Tape.load(tmp_path / "t.npz")
    new = x[::-1] * 0.7
    assert back.forward(new) == tape.forward(new) == pytest.approx(float(f(new)), rel=1e-14)
    assert "CLIP" in str(back) and "lo=-0.5" in str(back)
