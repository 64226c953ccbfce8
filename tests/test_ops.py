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
UNIT = "unit"   # inputs drawn from U(-0.9, 0.9): arcsin, arccos, arctanh, tan
GT1 = "gt1"     # inputs drawn from U(1.2, 3): arccosh
SIGNED = "signed"  # U(0.5, 2) with a random sign: divisors of % and fmod

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


ZEROS = np.array([[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 1.0]])  # one zero, two zeros per row


def scan_cases(fn):
    """CUMSUM / CUMPROD: 0-d to 3-d, every axis, None (flattened), empty, non-contiguous."""
    return [(lambda x, a=a: fn(x, axis=a), (s,), R) for s, a in
            [((), None), ((5,), 0), ((3, 4), 0), ((3, 4), -1), ((2, 3, 4), 1), ((2, 3, 4), None),
             ((0, 3), 1), ((3, 0), 1)]] + [(lambda x: fn(x.T, axis=0), ((3, 4),), R),
                                          (lambda x: fn(x[::2], axis=0), ((5, 2),), R)]


def concat_cases():
    """CONCAT: any operand count, any axis, constants among operands, empty operands,
    stacking (new axis) and one node twice."""
    return [(lambda a, b: tnp.concatenate([a, b]), ((2,), (3,)), R),
            (lambda a, b: tnp.concatenate([a, b, a], axis=1), ((3, 2), (3, 1)), R),
            (lambda a, b: tnp.concatenate((a, np.ones((2, 3, 2)), b), axis=-1), ((2, 3, 1), (2, 3, 4)), R),
            (lambda a, b: tnp.concatenate([a, b], axis=None), ((2, 2), (3,)), R),
            (lambda a, b: tnp.concatenate([a, b]), ((0, 2), (3, 2)), R),
            (lambda a, b: tnp.stack([a, b], axis=1), ((3, 2), (3, 2)), R),
            (lambda a, b: tnp.stack([a, b, a * b]), ((), ()), R),
            (lambda a: np.stack([a.T, a.T]), ((3, 2),), R),
            (lambda a, b: tnp.array([[a, 1.0], [b, a]]), ((), ()), R)]


def _spd(x):
    """A symmetric positive definite matrix (stack) made from x."""
    return x @ tnp.swapaxes(x, -1, -2) + 3.0 * np.eye(x.shape[-1])


def _eigh_vectors(x):
    w, v = tnp.linalg.eigh(x)
    return v * v * w[..., None, :]  # independent of the eigenvectors' signs


def _svd_vectors(x):
    u, s, vh = tnp.linalg.svd(x, full_matrices=False)
    return (u * s[..., None, :]) @ vh + u @ vh  # sign-independent products


def decomp_cases():
    """The decomposition rows (stacks, vector right-hand sides, both orientations of
    non-square matrices, numpy's own functions); sign-independent uses of eigen- and
    singular vectors, whose signs LAPACK chooses."""
    return {
        "SOLVE": [(tnp.linalg.solve, ((3, 3), (3,)), R), (tnp.linalg.solve, ((3, 3), (3, 2)), R),
                  (np.linalg.solve, ((2, 3, 3), (3, 2)), R), (tnp.linalg.solve, ((2, 3, 3), (2, 3, 1)), R),
                  (lambda a, b: tnp.linalg.solve(a, b * 2.0), ((2, 1, 3, 3), (3, 3, 2)), R)],
        "INV": [(tnp.linalg.inv, ((3, 3),), R), (np.linalg.inv, ((2, 3, 3),), R), (tnp.linalg.inv, ((1, 1),), POS)],
        "DET": [(tnp.linalg.det, ((3, 3),), R), (np.linalg.det, ((2, 3, 3),), R), (tnp.linalg.det, ((0, 0),), R)],
        "SLOGDET": [(lambda x: tnp.linalg.slogdet(x)[1], ((3, 3),), R),
                    (lambda x: (lambda s, l: s * tnp.exp(l))(*np.linalg.slogdet(x)), ((2, 4, 4),), R)],
        "CHOLESKY": [(lambda x: tnp.linalg.cholesky(_spd(x)), ((3, 3),), R), (lambda x: tnp.linalg.cholesky(_spd(x)), ((2, 3, 3),), R),
                     (lambda x: np.linalg.cholesky(3.0 * np.eye(3) + x), ((3, 3),), UNIT),
                     (lambda x: tnp.linalg.cholesky(3.0 * np.eye(3) + x, upper=True), ((3, 3),), UNIT)],
        "EIGH": [(lambda x: tnp.linalg.eigh(x)[0], ((4, 4),), R), (_eigh_vectors, ((4, 4),), R),
                 (_eigh_vectors, ((2, 3, 3),), R), (lambda x: np.linalg.eigvalsh(x, UPLO="U"), ((3, 3),), R),
                 (lambda x: _eigh_vectors(x.T), ((3, 3),), R)],
        "SVD": [(lambda x: tnp.linalg.svd(x, compute_uv=False), ((4, 3),), R), (_svd_vectors, ((4, 3),), R),
                (_svd_vectors, ((3, 5),), R), (_svd_vectors, ((2, 3, 3),), R),
                (lambda x: np.linalg.svd(x)[1], ((3, 3),), R)],
        "PINV": [(tnp.linalg.pinv, ((4, 3),), R), (tnp.linalg.pinv, ((3, 5),), R), (np.linalg.pinv, ((2, 3, 3),), R),
                 (lambda x: tnp.linalg.pinv(x, rcond=1e-10), ((1, 3),), R)],
    }


CASES = {
    "AFFINE": unary(lambda x: 2.5 * x - 1.0) + unary(lambda x: 3.0 - x) + unary(lambda x: -x),
    "POWC": unary(lambda x: x ** 2) + unary(lambda x: x ** 3.0) + unary(lambda x: x ** 0.5, POS)
            + unary(lambda x: x ** -1.5, POS),
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
    # ops_unary
    "ABS": unary(tnp.abs) + unary(abs) + unary(np.absolute) + unary(tnp.fabs),
    "SIGN": unary(tnp.sign) + unary(np.sign),
    "FLOOR": unary(tnp.floor) + unary(lambda x: np.floor(3.0 * x)),
    "CEIL": unary(tnp.ceil) + unary(np.ceil),
    "TRUNC": unary(lambda x: tnp.trunc(3.0 * x)),
    "RINT": unary(lambda x: tnp.rint(3.0 * x)) + unary(np.rint),
    "ROUND": unary(lambda x: tnp.round(3.0 * x)) + unary(lambda x: np.round(x, 2))
             + unary(lambda x: (x * 10.0).round(-1)) + unary(lambda x: tnp.around(x, 1)),
    "CLIP": unary(lambda x: tnp.clip(x, -0.5, 0.5)) + unary(lambda x: x.clip(-0.3))
            + unary(lambda x: np.clip(x, None, 0.2)) + unary(lambda x: x.clip(min=0.4, max=-0.4)),
    "SQUARE": unary(tnp.square) + unary(np.square),
    "RECIPROCAL": unary(tnp.reciprocal, POS) + unary(np.reciprocal, POS),
    "CBRT": unary(tnp.cbrt),
    "EXPM1": unary(tnp.expm1) + unary(lambda x: np.expm1(1e-6 * x)),
    "EXP2": unary(tnp.exp2),
    "LOG2": unary(tnp.log2, POS),
    "LOG10": unary(np.log10, POS),
    "SINH": unary(tnp.sinh),
    "COSH": unary(np.cosh),
    "ARCSINH": unary(tnp.arcsinh),
    "ARCCOSH": unary(tnp.arccosh, GT1),
    "ARCTANH": unary(tnp.arctanh, UNIT),
    "TAN": unary(tnp.tan, UNIT),
    "ARCSIN": unary(tnp.arcsin, UNIT),
    "ARCCOS": unary(np.arccos, UNIT),
    "ARCTAN": unary(tnp.arctan),
    "SINC": unary(tnp.sinc) + unary(np.sinc) + unary(lambda x: tnp.sinc(1e-5 * x)),
    "DEG2RAD": unary(lambda x: tnp.deg2rad(50.0 * x)) + unary(np.radians),
    "RAD2DEG": unary(tnp.rad2deg) + unary(np.degrees),
    # ops_binary
    "MINIMUM": binary(tnp.minimum) + unary(lambda x: tnp.minimum(x, 0.0)) + unary(lambda x: np.minimum(1.0, x))
               + binary(lambda x, lo: tnp.clip(x, lo, 0.5), shapes=[((3, 4), (4,))]),
    "FMIN": binary(tnp.fmin),
    "FMAX": binary(np.fmax) + unary(lambda x: tnp.fmax(x, -0.2)),
    "REMAINDER": binary(lambda a, b: a % b, SIGNED) + unary(lambda x: x % 0.75) + unary(lambda x: 2.0 % x, SIGNED)
                 + binary(tnp.mod, SIGNED, shapes=[((3, 4), (4,))]) + binary(np.remainder, SIGNED, [((5,), ())]),
    "FLOOR_DIVIDE": binary(lambda a, b: a // b, SIGNED) + unary(lambda x: divmod(x, 0.75)[0])
                    + unary(lambda x: 2.0 // x, SIGNED) + binary(np.floor_divide, SIGNED, [((5,), ())]),
    "FMOD": binary(tnp.fmod, SIGNED) + unary(lambda x: np.fmod(x, 0.7)),
    "ARCTAN2": binary(tnp.arctan2) + unary(lambda x: np.arctan2(x, 1.5)),
    "HYPOT": binary(tnp.hypot) + unary(lambda x: np.hypot(2.0, x)),
    "LOGADDEXP": binary(tnp.logaddexp) + unary(lambda x: np.logaddexp(x, 0.0)),
    "LOGADDEXP2": binary(tnp.logaddexp2) + unary(lambda x: np.logaddexp2(30.0 * x, 1.0)),
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
    # guards: branches that both the recording point and the replay point take
    "GUARD_LT": [(lambda x: tnp.sin(x) if x < 10.0 else x, ((),), R)],
    "GUARD_LE": [(lambda x, y: x * y if x <= y + 10.0 else x, ((), ()), R)],
    "GUARD_GT": [(lambda x: x ** 2 if x > 0 else -x, ((),), POS)],
    "GUARD_GE": [(lambda x: x * 3.0 if x[0] >= -5.0 else x, ((1,),), R)],
    "GUARD_EQ": [(lambda x: x * 3.0 if x == 100.0 else tnp.exp(x), ((),), R)],
    "GUARD_NE": [(lambda x: tnp.cos(x) if x != 100.0 else x, ((),), R),
                 (lambda x: tnp.cos(x) if x else x, ((),), POS)],
    "CUMSUM": scan_cases(tnp.cumsum),
    "CUMPROD": scan_cases(tnp.cumprod) + [(lambda x: tnp.cumprod(x * ZEROS, axis=1), ((2, 4),), R),
                                          (lambda x: tnp.prod(x, axis=(0, 2)), ((2, 3, 4),), R),
                                          (lambda x: tnp.prod(x * ZEROS), ((2, 4),), R)],
    "CONCAT": concat_cases(),
    **decomp_cases(),
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
    with open(gen_dispatch.BATCH_PATH) as f:
        assert f.read() == gen_dispatch.batch_source(), (
            "tapegrad/jit/batch_dispatch.py differs from the generator's output: run "
            "python -m tapegrad.jit.gen_dispatch")


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
    from tapegrad.jit import batch_dispatch
    for sweep, rules in ((dispatch.forward_sweep, "F"), (dispatch.backward_sweep, "B"),
                         (batch_dispatch.batch_forward_sweep, "F"),
                         (batch_dispatch.batch_backward_sweep, "B")):
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
    draw = {R: lambda s: rng.normal(size=s), POS: lambda s: rng.uniform(0.5, 2.0, size=s),
            UNIT: lambda s: rng.uniform(-0.9, 0.9, size=s), GT1: lambda s: rng.uniform(1.2, 3.0, size=s),
            SIGNED: lambda s: rng.uniform(0.5, 2.0, size=s) * rng.choice([-1.0, 1.0], size=s)}[domain]
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


@pytest.mark.parametrize("name, fn, shapes, domain", PARAMS)
def test_op_batched(name, fn, shapes, domain):
    """Each case at 3 points through batch_value_and_grad equals value_and_grad per point,
    bit for bit (every opcode through the batched sweeps, flat or per point)."""
    points = [_inputs(shapes, domain, seed=s) for s in (3, 4, 5)]
    w = np.random.default_rng(1).normal(size=np.shape(fn(*points[0])))

    def loss(*args):
        return tnp.sum(w * fn(*args))

    nums = tuple(range(len(shapes)))
    stacked = [np.stack([p[k] for p in points]) for k in nums]
    values, grads = tg.batch_value_and_grad(loss, argnums=nums)(*stacked)
    per_point = tg.value_and_grad(loss, argnums=nums)
    for i, p in enumerate(points):
        value, grad = per_point(*p)
        assert values[i] == value, (name, i)
        assert all(np.array_equal(g[i], h) for g, h in zip(grads, grad)), (name, i)


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


ELEMENTWISE_FAMILIES = ("map", "zip", "select")
ELEMENTWISE_PARAMS = [p for p in PARAMS if J.OPS[J.CODES[p.values[0]]].family in ELEMENTWISE_FAMILIES]


def _strided(x):
    """The same values as a non-contiguous view: every other element of a larger array,
    with transposed storage for 2-d and more."""
    if x.ndim == 0:
        return x
    t = x.T  # for 2-d and more, transposed storage as well
    return np.stack([t, np.full_like(t, np.nan)], axis=-1)[..., 0].T


@pytest.mark.parametrize("name, fn, shapes, domain", ELEMENTWISE_PARAMS)
def test_elementwise_layouts_and_float32(name, fn, shapes, domain):
    """Every elementwise case: non-contiguous inputs give the gradient of contiguous ones,
    and float32 inputs give the float64 gradient to float32 tolerance, in float32."""
    xs = _inputs(shapes, domain, seed=len(name) * 7 + len(shapes))
    w = np.random.default_rng(1).normal(size=np.shape(fn(*xs)))
    nums = tuple(range(len(xs)))
    d = tg.grad(lambda *args: tnp.sum(w * fn(*args)), argnums=nums)
    expected = d(*xs)
    strided = [_strided(x) for x in xs]
    assert any(x.ndim == 0 for x in xs) or not all(s.flags.c_contiguous for s in strided)
    for got, want in zip(d(*strided), expected):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
    singles = [x.astype(np.float32) for x in xs]
    at_singles = d(*[s.astype(np.float64) for s in singles])  # the float64 gradient there
    for got, want in zip(d(*singles), at_singles):
        assert np.asarray(got).dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6)
