"""The scalar fast path (tapegrad.emit.scalar) records exactly what the general emitters
record: every program below is recorded twice, once as users run it and once with the
operators sent straight to ``elementwise.binary`` / ``affine`` / ``shape.getitem`` (what
they did before the fast path existed), and the two tapes must agree column by column,
values bit for bit, as must the errors raised and the eager values the function sees."""
import math

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import tapefile
from tapegrad.bench import models as M
from tapegrad.emit import elementwise, shape
from tapegrad.recorder import ALIAS, CONST, INPUT, Recorder
from tapegrad.tracer import EMIT

_GENERAL = {"neg": lambda t: elementwise.affine(t, -1.0, 0.0), "getitem": shape.getitem}
for _name, _method in (("ADD", "add"), ("SUB", "sub"), ("MUL", "mul"), ("DIV", "truediv"),
                       ("POW", "pow")):
    _GENERAL[_method] = lambda t, o, n=_name: elementwise.binary(n, t, o)
    _GENERAL["r" + _method] = lambda t, o, n=_name: elementwise.binary(n, o, t)


@pytest.fixture
def general(monkeypatch):
    """Within the test, ``general()`` switches the operators to the general emitters."""
    def switch():
        for name, fn in _GENERAL.items():
            monkeypatch.setattr(EMIT, name, fn)
    return switch


def _bits(a):
    a = np.asarray(a)
    return a.view(np.int64) if a.dtype == np.float64 else a


def _assert_same_tape(t1, t2):
    for name in sorted(tapefile.STORED) + ["need", "live"]:
        a, b = getattr(t1, name), getattr(t2, name)
        assert a.dtype == b.dtype and np.array_equal(_bits(a), _bits(b)), name
    # the sites' entries (with debug_nans; their lines differ: _GENERAL's are user code)
    assert (t1.output, [s[0] for s in t1.guard_sites], t1.value_dependent) == \
        (t2.output, [s[0] for s in t2.guard_sites], t2.value_dependent)
    assert str(t1) == str(t2)


def _seen(values):
    """(shape, dtype, C order, bits) of each eager value a program saw; a 0-d value's
    Python float (what the scalar path computes with) has the same bits."""
    for v in values:
        assert (v._float is None) == (v._value.ndim > 0)
        assert v._float is None or _bits(v._float) == _bits(v._value)
    return [(v._value.shape, v._value.dtype, v._value.flags.c_contiguous,
             _bits(v._value).tolist()) for v in values]


SPECIALS = [0.0, -0.0, 1.0, -2.5, 3, 0, 2, 2.0, 1e308, -1e-310, math.inf, -math.inf, math.nan]
X = np.array([0.0, -0.0, 1.5, -2.0, 1e308, math.inf, math.nan, 5e-324])


OPERATORS = [lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b, lambda a, b: a / b,
             lambda a, b: a ** b]


@pytest.mark.parametrize("op", OPERATORS, ids=["add", "sub", "mul", "div", "pow"])
def test_scalar_operators_record_the_general_tape(general, op):

    def f(x, seen):
        out = 0.0
        with np.errstate(all="ignore"):
            for i in range(len(x)):
                for j in range(len(x)):
                    r = op(x[i], x[j])
                    seen.append(r)
                    out = out + r
                for c in SPECIALS:
                    for r in (op(x[i], c), op(c, x[i]), -x[i], x[-1 - i]):
                        if isinstance(r, tg.tracer.Traced):
                            seen.append(r)
                            out = out + r
        return out

    fast_seen, general_seen = [], []
    fast = tg.record(lambda x: f(x, fast_seen), X)
    general()
    slow = tg.record(lambda x: f(x, general_seen), X)
    _assert_same_tape(fast, slow)
    assert _seen(fast_seen) == _seen(general_seen)


def test_mixed_shapes_and_numpy_numbers_take_the_general_path(general):
    def f(x):
        s = x[0] + x            # 0-d with 1-d
        s = s * np.float64(2.0) + x[1] * np.int64(3) - np.array(1.5) / x[2]
        s = s + x[1:3].sum() ** 3.0 + 2.0 ** x[0] + x[np.int64(1)] + x[True * 1]
        return (s * (x[0] / 0.0) + x[2] / x[3] - x[0] / x[3]).sum()

    x = np.array([1.0, 2.0, 3.0, 0.0])
    with np.errstate(all="ignore"):
        fast = tg.record(f, x)
        general()
        slow = tg.record(f, x)
    _assert_same_tape(fast, slow)


def test_elements_rows_and_strided_values(general):
    def f(X):
        s = X[0][1] * X[1][0] + X.T[0][1] - X[:, 0][1] + X[::2][0][1] + X[-1, -2] * X[2, 1]
        s = s + X[np.int64(1), 0] + X[1, True * 1] + X[1, ...].sum() + X[(0, slice(None))].sum()
        return s + X.reshape(3, 1, 2)[1, 0, 1] + X.T[1, 2] + X[1:][1, 0] + X.sum()[()]

    X = np.arange(1.0, 7.0).reshape(3, 2)
    fast = tg.record(f, X)
    general()
    _assert_same_tape(fast, tg.record(f, X))


@pytest.mark.parametrize("debug", [False, True])
def test_rosenbrock_loop_tape_and_gradient(general, debug):
    x = np.random.default_rng(3).standard_normal(7)
    tg.config.update("debug_nans", debug)
    def run():  # one call site: debug_nans keeps the caller's line of every entry
        return tg.record(M.rosenbrock_loop, x)

    try:
        fast = run()
        general()
        slow = run()
    finally:
        tg.config.update("debug_nans", False)
    _assert_same_tape(fast, slow)
    assert len(fast.guard_sites) == (len(fast) if debug else 0)
    assert {site[2:] for site in fast.guard_sites} <= {(run.__code__.co_firstlineno + 1,
                                                        "return tg.record(M.rosenbrock_loop, x)")}
    a, b = x[:-1], x[1:]  # closed form of the gradient
    g = np.zeros_like(x)
    g[:-1] += -400.0 * a * (b - a ** 2) - 2.0 * (1.0 - a)
    g[1:] += 200.0 * (b - a ** 2)
    np.testing.assert_allclose(fast.gradient(x), g, rtol=1e-12)


def _error(f, *args):
    with pytest.raises(Exception) as info:
        f(*args)
    return type(info.value), str(info.value)


def test_errors_are_the_general_paths(general):
    leaked = []
    tg.record(lambda x: leaked.append(x[0]) or x[1] * 2.0, np.ones(3))
    cases = [
        lambda: tg.record(lambda x: x[3] + 1.0, np.ones(3)),   # index out of range
        lambda: tg.record(lambda x: x[-4] + 1.0, np.ones(3)),
        lambda: tg.record(lambda x: x[1, 2] + 1.0, np.ones((2, 2))),
        lambda: tg.record(lambda x: x[-3, 0] + 1.0, np.ones((2, 2))),
        lambda: tg.record(lambda x: x[0, 0, 0] + 1.0, np.ones((2, 2))),
        lambda: tg.record(lambda x: x[0][0] + 1.0, np.ones(2)),
        lambda: tg.record(lambda x: x[0] * 10 ** 400, np.ones(3)),  # int too large for a float
        lambda: leaked[0] + 1.0,                               # a finished recording
        lambda: leaked[0] * leaked[0],
        lambda: -leaked[0],
        lambda: leaked[0] / 2.0,
        lambda: leaked[0] ** 2,
        lambda: tg.record(lambda x: x[0] + leaked[0], np.ones(3)),
        lambda: tg.record(lambda x: tg.record(lambda y: y[0] * x[0], np.ones(2)), np.ones(2)),
        lambda: tg.record(lambda x: x[0] + "a", np.ones(2)),
    ]
    fast = [_error(case) for case in cases]
    general()
    assert fast == [_error(case) for case in cases]


def test_recorder_scalar_rows_are_the_general_rows():
    """Recorder.scalar_entry / scalar_node append exactly what entry / node append for a
    0-d value, between entries and nodes of other shapes."""
    rng = np.random.default_rng(5)
    general, scalar = Recorder(), Recorder()
    for rec in (general, scalar):
        rec.node(np.arange(6.0).reshape(2, 3), INPUT)
        rec.node(np.array(2.5), INPUT)
    for step in range(200):
        value, kind = float(rng.normal()), int(rng.integers(4))
        if kind == 0:    # an entry with float attributes
            args, floats = tuple(int(a) for a in rng.integers(0, step + 2, 2)), (1.5, -0.0)
            assert general.entry(3, args, np.array(value), floats=floats) == \
                scalar.scalar_entry(3, args, value, floats)
        elif kind == 1:  # a constant
            assert general.node(np.array(value), CONST) == scalar.scalar_node(value, CONST)
        elif kind == 2:  # an element of the 2-d input, and of an alias of it
            base, start = (0, int(rng.integers(6))) if step % 2 else (step + 1, 0)
            assert general.node(np.array(value), ALIAS, base, start) == \
                scalar.scalar_node(None, ALIAS, base, start)
        else:            # an array entry from the general path in both
            for rec in (general, scalar):
                rec.entry(4, (0,), np.full((2, 1), value), ints=(2, 1))
        assert general.shape(step + 2) == scalar.shape(step + 2) == \
            ((2, 1) if kind == 3 else ())
    a, b = general.columns(), scalar.columns()
    for part in ("entries", "nodes"):
        for name in a[part]:
            assert a[part][name].dtype == b[part][name].dtype
            np.testing.assert_array_equal(a[part][name], b[part][name])
    for name in ("args", "floats", "values", "ints", "shapes"):
        assert a[name].dtype == b[name].dtype and np.array_equal(_bits(a[name]), _bits(b[name]))
    with pytest.raises(ValueError, match="finished recording"):
        scalar.scalar_entry(3, (0,), 1.0)
    with pytest.raises(ValueError, match="finished recording"):
        scalar.scalar_node(1.0, CONST)
