"""Every opcode of the op table, checked against numpy and central finite differences.

``CASES`` maps each opcode name to front-end expressions that record it.  A test asserts
that the names are exactly ``tapegrad.jit.NAMES``: an op added to the table without cases
here fails the suite.  Each case is checked for (a) recording the opcode it names, (b) a
forward replay equal to numpy (tnp functions fall back to numpy on plain arrays), and (c) a
gradient of sum(w * f(x)) equal to central finite differences in float64.
"""
import ast
import inspect

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.jit as J
import tapegrad.numpy as tnp
from tapegrad.jit import dispatch, gen_dispatch

R = "real"      # inputs drawn from N(0, 1)
POS = "pos"     # inputs drawn from U(0.5, 2)

UNARY_SHAPES = [(), (5,), (3, 4)]
BINARY_SHAPES = [((), ()), ((5,), (5,)), ((3, 4), (4,)), ((3, 4), ()), ((), (3, 4)),
                 ((3, 1), (1, 4)), ((3, 4), (3, 1)), ((2, 3, 4), (3, 1)), ((2, 1, 4), (1, 3, 1))]


def unary(fn, domain=R, shapes=UNARY_SHAPES):
    return [(fn, (shape,), domain) for shape in shapes]


def binary(fn, domain=R, shapes=BINARY_SHAPES):
    return [(fn, pair, domain) for pair in shapes]


def axis_cases(fn, domain=R):
    out = []
    for shape, axis, keep in [((5,), None, False), ((3, 4), 0, False), ((3, 4), -1, True),
                              ((2, 3, 4), 1, False), ((2, 3, 4), (0, 2), True),
                              ((2, 3, 4), (0, 1), False), ((2, 3, 4), None, True)]:
        out.append((lambda x, a=axis, k=keep: fn(x, axis=a, keepdims=k), (shape,), domain))
    return out


MASK = np.array([[True, False, True, True], [False, False, True, False], [True, True, False, True]])
FLOAT_MASK = np.array([0.0, -2.0, np.nan, 1.0])  # numpy's truth: nonzero (NaN too) is true


def where_cases():
    """WHERE with a condition known when recording: same shapes, broadcasts of every
    operand (condition included), constants, one node on both sides, numpy's own where."""
    return [(lambda x, y: tnp.where(MASK, x, y), ((3, 4), (3, 4)), R),
            (lambda x, y: tnp.where(MASK, x, y), ((4,), ()), R),
            (lambda x, y: tnp.where(MASK[1], x, y), ((3, 1), (3, 4)), R),
            (lambda x, y: tnp.where(FLOAT_MASK, x, y), ((2, 4), (4,)), R),
            (lambda x: tnp.where(MASK, x, 2.0), ((3, 4),), R),
            (lambda x: tnp.where(MASK, np.arange(4.0), tnp.sin(x)), ((4,),), R),
            (lambda x: tnp.where(MASK, x, x * x), ((3, 4),), R),
            (lambda x: tnp.where(MASK, x, x), ((3, 4),), R),
            (lambda x: np.where(MASK[0], x, -x), ((4,),), R),
            (lambda x, y: np.where(True, x, y) + np.where(0, x, y), ((), ()), R)]


CASES = {
    "AFFINE": unary(lambda x: 2.5 * x - 1.0) + unary(lambda x: 3.0 - x) + unary(lambda x: -x),
    "POWC": unary(lambda x: x ** 2) + unary(lambda x: x ** 3.0) + unary(lambda x: x ** 0.5, POS)
            + unary(lambda x: x ** -1.5, POS) + unary(lambda x: tnp.square(x)),
    "EXP": unary(tnp.exp),
    "LOG": unary(tnp.log, POS),
    "SQRT": unary(tnp.sqrt, POS),
    "SIN": unary(tnp.sin),
    "COS": unary(tnp.cos),
    "TANH": unary(tnp.tanh),
    "LOG1P": unary(tnp.log1p, POS),
    "SIGMOID": unary(tnp.sigmoid) + unary(lambda x: tnp.sigmoid(30.0 * x)),
    "ADD": binary(lambda a, b: a + b),
    "SUB": binary(lambda a, b: a - b),
    "MUL": binary(lambda a, b: a * b),
    "DIV": binary(lambda a, b: a / b, POS) + unary(lambda x: x / 4.0) + unary(lambda x: 2.0 / x, POS),
    "POW": binary(lambda a, b: a ** b, POS) + unary(lambda x: 2.0 ** x),
    "MAXIMUM": binary(tnp.maximum),
    "WHERE": where_cases(),
    "SUM": axis_cases(tnp.sum) + axis_cases(tnp.mean),
    "MAX": axis_cases(tnp.max),
    "LOGSUMEXP": axis_cases(tnp.logsumexp),
    "SOFTMAX": [(lambda x, a=a: tnp.softmax(x, axis=a), (s,), R)
                for s, a in [((5,), -1), ((3, 4), 0), ((3, 4), 1), ((2, 3, 4), 1), ((3, 4), None)]],
    "MATMUL": [(lambda a, b: a @ b, pair, R) for pair in
               [((3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)), ((1, 4), (4, 1)),
                ((2, 3, 4), (4, 5)), ((2, 3, 4), (2, 4, 5)), ((3, 4), (2, 4, 5)), ((2, 1, 3, 4), (3, 4, 2))]]
               + [(tnp.dot, ((3, 4), (4, 2)), R)],
    "GATHER": [(lambda x: x[::2], ((5,),), R), (lambda x: x[::-2], ((5,),), R),
               (lambda x: x[:, 0], ((3, 4),), R), (lambda x: x[[0, 0, 2]], ((3, 4),), R),
               (lambda x: x[None, ..., 1:3], ((3, 4),), R), (lambda x: x.T, ((3, 4),), R),
               (lambda x: tnp.transpose(x, (2, 0, 1)), ((2, 3, 4),), R),
               (lambda x: tnp.broadcast_to(x, (3, 4)), ((4,),), R)],
}

PARAMS = [pytest.param(name, fn, shapes, domain, id=f"{name}-{i}-{'x'.join(map(str, shapes))}")
          for name, cases in CASES.items() for i, (fn, shapes, domain) in enumerate(cases)]


def test_every_opcode_has_cases():
    assert set(CASES) == set(J.NAMES)


def test_generated_dispatch_is_up_to_date():
    """jit/dispatch.py is generated from the op table; after changing a row or a family
    template, regenerate it with: python -m tapegrad.jit.gen_dispatch"""
    with open(gen_dispatch.PATH) as f:
        committed = f.read()
    assert committed == gen_dispatch.source(), (
        "tapegrad/jit/dispatch.py differs from the generator's output: run "
        "python -m tapegrad.jit.gen_dispatch")
    assert J.forward_sweep is dispatch.forward_sweep and J.backward_sweep is dispatch.backward_sweep


def test_a_stale_dispatch_refuses_to_run(monkeypatch):
    """Sweeps generated for another table would skip an op in silence: they are never used."""
    from tapegrad.jit import interpreter
    monkeypatch.setattr(dispatch, "TABLE", dispatch.TABLE[:-1])
    forward, backward = interpreter.load_sweeps()
    for sweep in (forward, backward):
        with pytest.raises(RuntimeError, match="python -m tapegrad.jit.gen_dispatch"):
            sweep()


def test_interpreter_has_one_branch_per_opcode():
    """Both sweeps compare the opcode with each table constant once, calling that row's rule."""
    for sweep, rules in ((dispatch.forward_sweep, "F"), (dispatch.backward_sweep, "B")):
        tree = ast.parse(inspect.getsource(sweep.py_func))
        branches = {}
        for node in ast.walk(tree):
            if (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
                    and isinstance(node.test.comparators[0], ast.Attribute)
                    and node.test.comparators[0].value.id == "T"):
                name = node.test.comparators[0].attr
                called = [n for n in ast.walk(node.body[0]) if isinstance(n, ast.Attribute)
                          and isinstance(n.value, ast.Name) and n.value.id == rules]
                branches.setdefault(name, []).append(called[0].attr)
        assert sorted(branches) == sorted(J.NAMES)
        assert all(calls == [name] for name, calls in branches.items())


def _inputs(shapes, domain, seed):
    rng = np.random.default_rng(seed)
    draw = (lambda s: rng.normal(size=s)) if domain == R else (lambda s: rng.uniform(0.5, 2.0, size=s))
    return [np.asarray(draw(s), dtype=np.float64) for s in shapes]


def _central_difference(loss, xs, k, h=1e-6):
    x = xs[k]
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for j in range(flat.size):
        step = h * max(1.0, abs(flat[j]))
        old = flat[j]
        flat[j] = old + step
        up = loss(*xs)
        flat[j] = old - step
        down = loss(*xs)
        flat[j] = old
        gflat[j] = (up - down) / (2 * step)
    return g


@pytest.mark.parametrize("name, fn, shapes, domain", PARAMS)
def test_op(name, fn, shapes, domain):
    xs = _inputs(shapes, domain, seed=len(name) * 7 + len(shapes))
    expected = np.asarray(fn(*xs), dtype=np.float64)  # plain numpy: the reference
    w = np.random.default_rng(1).normal(size=expected.shape)

    def loss(*args):
        return tnp.sum(w * fn(*args))

    nums = tuple(range(len(xs)))
    tape = tg.record(fn, *xs, argnums=nums)
    assert J.CODES[name] in set(tape.op.tolist()), f"{name} case records {[J.NAMES[o] for o in tape.op]}"

    new = _inputs(shapes, domain, seed=99)
    np.testing.assert_allclose(tape.forward(*new), np.asarray(fn(*new)), rtol=1e-13, atol=1e-13)

    grads = tg.grad(loss, argnums=nums)(*xs)
    for k, g in enumerate(grads):
        assert np.shape(g) == xs[k].shape
        np.testing.assert_allclose(g, _central_difference(loss, xs, k), rtol=1e-6, atol=1e-8)


def test_dot_product_identity_large():
    """<J v, u> = <v, J^T u> for a large composed function, with J v by finite differences."""
    rng = np.random.default_rng(5)
    A = rng.normal(size=(300, 200)) / 15
    x, v = rng.normal(size=200), rng.normal(size=200)
    u = rng.normal(size=300)

    def f(x):
        return tnp.tanh(A @ tnp.sin(x)) * tnp.exp(0.1 * x[:150].sum())

    def project(x):
        return tnp.sum(u * f(x))

    vjp = tg.grad(project)(x)
    h = 1e-6
    jvp = (np.asarray(f(x + h * v)) - np.asarray(f(x - h * v))) / (2 * h)
    np.testing.assert_allclose(vjp @ v, u @ jvp, rtol=1e-7)


VIEWS = [((5,), lambda x: x[1:]), ((5,), lambda x: x[2]), ((5,), lambda x: x[-1]),
         ((3, 4), lambda x: x[1]), ((3, 4), lambda x: x[1, 2]), ((3, 4), lambda x: x[1:3]),
         ((2, 3, 4), lambda x: x[1, 1:]), ((3, 4), lambda x: x.reshape(2, 6)[1])]


@pytest.mark.parametrize("shape, select", VIEWS)
def test_contiguous_selections_are_views_without_entries(shape, select):
    """A selection contiguous in memory is a window on its source: no entry, same adjoint."""
    x = np.random.default_rng(3).normal(size=shape)
    tape = tg.record(select, x)
    assert len(tape) == 0
    new = x + 1.0
    np.testing.assert_array_equal(tape.forward(new), select(new))
    w = np.random.default_rng(4).normal(size=np.shape(select(x)))

    def loss(x):
        return tnp.sum(w * tnp.exp(select(x)))

    np.testing.assert_allclose(tg.grad(loss)(x), _central_difference(loss, [x.copy()], 0),
                               rtol=1e-6, atol=1e-8)
