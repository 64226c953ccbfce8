"""Every row of the table in docs/conventions.md, checked against tapegrad, JAX and autograd.

The table is the single source of the documented numbers: this module reads it, and for
each row computes the value and the gradient with tapegrad, and the gradient with JAX
(float64) and autograd when they are installed, and compares each with its cell.  The
functions themselves live here, in ``ROWS``, keyed by the row's id; a row of the table
without a function here, or a function without a row, fails ``test_every_row_is_tested``.

Cells are Python literals (``0.5``, ``(0.5, 0.5)`` for a tuple of gradients, ``[0.0, 1.0]``,
``nan``, ``inf``) or the name of the exception raised (``ValueError``).  Numbers match to
12 significant digits; NaN, infinities and exceptions exactly.

A row whose tapegrad result is wrong today (it breaks the stated convention) is marked in
``KNOWN_BUGS``: its test is ``xfail(strict=True)``, so fixing the bug makes the suite say
so.  Adding an op: add its rows to the table and their functions to ``ROWS``.
"""
import math
import re
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.numpy as tnp

DOC = Path(__file__).resolve().parent.parent / "docs" / "conventions.md"
A = np.array

# id -> (function builder taking a numpy-like namespace m, arguments, argnums)
ROWS = {
    # kinks and ties
    "maximum-tie": (lambda m: lambda x, y: m.maximum(x, y), (1.0, 1.0), (0, 1)),
    "relu-as-maximum": (lambda m: lambda x: m.maximum(x, 0.0), (0.0,), 0),
    "relu-as-mask": (lambda m: lambda x: x * (x > 0), (0.0,), 0),
    "abs-as-maximum": (lambda m: lambda x: m.maximum(x, -x), (0.0,), 0),
    "abs-as-sqrt": (lambda m: lambda x: m.sqrt(x ** 2), (0.0,), 0),
    "max-ties": (lambda m: lambda x: m.max(x), (A([1.0, 3.0, 3.0]),), 0),
    "maximum-nan": (lambda m: lambda x, y: m.maximum(x, y), (math.nan, 1.0), (0, 1)),
    "max-nan": (lambda m: lambda x: m.max(x), (A([1.0, math.nan, 3.0]),), 0),
    # kinks and ties of the dedicated ops
    "abs-0": (lambda m: lambda x: m.abs(x), (0.0,), 0),
    "abs-nan": (lambda m: lambda x: m.abs(x), (math.nan,), 0),
    "minimum-tie": (lambda m: lambda x, y: m.minimum(x, y), (1.0, 1.0), (0, 1)),
    "minimum-nan": (lambda m: lambda x, y: m.minimum(x, y), (math.nan, 1.0), (0, 1)),
    "fmin-tie": (lambda m: lambda x, y: m.fmin(x, y), (1.0, 1.0), (0, 1)),
    "fmin-nan": (lambda m: lambda x, y: m.fmin(x, y), (math.nan, 1.0), (0, 1)),
    "fmax-nan": (lambda m: lambda x, y: m.fmax(x, y), (1.0, math.nan), (0, 1)),
    "clip-lower": (lambda m: lambda x: m.clip(x, 0.0, 1.0), (0.0,), 0),
    "clip-upper": (lambda m: lambda x: m.clip(x, 0.0, 1.0), (1.0,), 0),
    "clip-inside": (lambda m: lambda x: m.clip(x, 0.0, 1.0), (0.5,), 0),
    "floor-flat": (lambda m: lambda x: m.floor(x), (1.5,), 0),
    "floor-jump": (lambda m: lambda x: m.floor(x), (2.0,), 0),
    "round-half": (lambda m: lambda x: m.round(x), (2.5,), 0),
    "sign-0": (lambda m: lambda x: m.sign(x), (0.0,), 0),
    "arctan2-0-0": (lambda m: lambda y, x: m.arctan2(y, x), (0.0, 0.0), (0, 1)),
    "hypot-0-0": (lambda m: lambda x, y: m.hypot(x, y), (0.0, 0.0), (0, 1)),
    "remainder-jump": (lambda m: lambda x, y: m.remainder(x, y), (3.0, 1.5), (0, 1)),
    "sinc-0": (lambda m: lambda x: m.sinc(x), (0.0,), 0),
    "cbrt-0": (lambda m: lambda x: m.cbrt(x), (0.0,), 0),
    "logaddexp-minus-inf": (lambda m: lambda x, y: m.logaddexp(x, y), (-math.inf, -math.inf), (0, 1)),
    # roots, logarithms, powers, division
    "sqrt-0": (lambda m: lambda x: m.sqrt(x), (0.0,), 0),
    "log-0": (lambda m: lambda x: m.log(x), (0.0,), 0),
    "log-negative": (lambda m: lambda x: m.log(x), (-1.0,), 0),
    "log1p-minus-1": (lambda m: lambda x: m.log1p(x), (-1.0,), 0),
    "pow-int-0": (lambda m: lambda x: x ** 0, (0.0,), 0),
    "pow-float-0": (lambda m: lambda x: x ** 0.0, (0.0,), 0),
    "pow-traced-0-0": (lambda m: lambda x, y: x ** y, (0.0, 0.0), (0, 1)),
    "zero-pow-y": (lambda m: lambda y: 0.0 ** y, (2.0,), 0),
    "pow-half-0": (lambda m: lambda x: x ** 0.5, (0.0,), 0),
    "square-negative": (lambda m: lambda x: x ** 2, (-3.0,), 0),
    "pow-traced-negative": (lambda m: lambda x, y: x ** y, (-3.0, 2.0), (0, 1)),
    "reciprocal-0": (lambda m: lambda x: 1.0 / x, (0.0,), 0),
    "divide-by-0": (lambda m: lambda x, y: x / y, (1.0, 0.0), (0, 1)),
    "zero-over-0": (lambda m: lambda x, y: x / y, (0.0, 0.0), (0, 1)),
    # large inputs
    "exp-overflow": (lambda m: lambda x: m.exp(x), (1000.0,), 0),
    "tanh-saturated": (lambda m: lambda x: m.tanh(x), (1000.0,), 0),
    "sigmoid-800": (lambda m: lambda x: m.sigmoid(x), (800.0,), 0),
    "sigmoid-minus-800": (lambda m: lambda x: m.sigmoid(x), (-800.0,), 0),
    "sigmoid-written-out": (lambda m: lambda x: 1.0 / (1.0 + m.exp(-x)), (-800.0,), 0),
    "softplus-stable": (lambda m: lambda x: m.maximum(x, 0.0) + m.log1p(m.exp(-m.maximum(x, -x))),
                        (800.0,), 0),
    "softplus-0": (lambda m: lambda x: m.maximum(x, 0.0) + m.log1p(m.exp(-m.maximum(x, -x))),
                   (0.0,), 0),
    "softplus-written-out": (lambda m: lambda x: m.log1p(m.exp(x)), (800.0,), 0),
    "logsumexp-1000": (lambda m: lambda x: m.logsumexp(x), (A([1000.0, 1000.0]),), 0),
    "logsumexp-1e15": (lambda m: lambda x: m.logsumexp(x), (A([1e15, 1e15]),), 0),
    "logsumexp-minus-inf": (lambda m: lambda x: m.logsumexp(x), (A([-math.inf, 0.0]),), 0),
    "logsumexp-all-minus-inf": (lambda m: lambda x: m.logsumexp(x), (A([-math.inf, -math.inf]),), 0),
    "softmax-large": (lambda m: lambda x: m.softmax(x)[0], (A([1000.0, 1000.0, 0.0]),), 0),
    "softmax-written-out": (lambda m: lambda x: (m.exp(x) / m.sum(m.exp(x)))[0],
                            (A([1000.0, 1000.0, 0.0]),), 0),
    # the where trap
    "mask-trap": (lambda m: lambda x: m.sum((x > 0) * m.log(x)), (A([0.0, 2.0]),), 0),
    "mask-safe": (lambda m: lambda x: m.sum((x > 0) * m.log(x * (x > 0) + (x <= 0))),
                  (A([0.0, 2.0]),), 0),
    "where-trap": (lambda m: lambda x: m.sum(m.where(x > 0, m.log(x), 0.0)), (A([0.0, 2.0]),), 0),
    "where-safe": (lambda m: lambda x: m.sum(m.where(x > 0, m.log(m.where(x > 0, x, 1.0)), 0.0)),
                   (A([0.0, 2.0]),), 0),
    # linear and structural ops
    "repeated-index": (lambda m: lambda x: m.sum(x[A([0, 0, 1])]), (A([1.0, 2.0, 3.0]),), 0),
    "broadcast-sums": (lambda m: lambda x: m.sum(m.broadcast_to(x, (3, 2))), (A([1.0, 2.0]),), 0),
    "unused-input": (lambda m: lambda x, y: x * 2.0, (1.0, 5.0), (0, 1)),
    "matmul-inf": (lambda m: lambda w: m.sum(w @ A([[math.inf], [0.0]])), (A([[1.0, 1.0]]),), 0),
    "mean-empty": (lambda m: lambda x: m.mean(x), (np.zeros(0),), 0),
    "max-empty": (lambda m: lambda x: m.max(x), (np.zeros(0),), 0),
    # reductions and norms
    "min-ties": (lambda m: lambda x: m.min(x), (A([1.0, 1.0, 3.0]),), 0),
    "prod-zero": (lambda m: lambda x: m.prod(x), (A([2.0, 0.0, 3.0]),), 0),
    "prod-two-zeros": (lambda m: lambda x: m.prod(x), (A([0.0, 0.0, 3.0]),), 0),
    "cumprod-zero": (lambda m: lambda x: m.sum(m.cumprod(x)), (A([2.0, 0.0, 3.0]),), 0),
    "std-constant": (lambda m: lambda x: m.std(x), (A([1.0, 1.0]),), 0),
    "norm-0": (lambda m: lambda x: m.linalg.norm(x), (np.zeros(2),), 0),
    "norm-1-0": (lambda m: lambda x: m.linalg.norm(x, 1), (np.zeros(2),), 0),
    "norm-inf-0": (lambda m: lambda x: m.linalg.norm(x, np.inf), (np.zeros(2),), 0),
    # linear algebra
    "eigvalsh-tie": (lambda m: lambda x: m.sum(m.linalg.eigh(x)[0] ** 2), (np.eye(2),), 0),
    "eigh-tie-vectors": (lambda m: lambda x: m.sum(m.linalg.eigh(x)[1][0] ** 2 * A([1.0, 2.0])), (np.eye(2),), 0),
    "eigh-lower": (lambda m: lambda x: m.sum(m.linalg.eigh(x)[0] ** 3), (A([[1.0, 5.0], [0.0, 2.0]]),), 0),
    "svdvals-tie": (lambda m: lambda x: m.sum(m.linalg.svd(x, compute_uv=False)), (np.eye(2),), 0),
    "svd-tie-vectors": (lambda m: lambda x: m.sum(m.linalg.svd(x)[0][0] ** 2 * A([1.0, 2.0])), (np.eye(2),), 0),
    "det-singular": (lambda m: lambda x: m.linalg.det(x), (A([[1.0, 2.0], [2.0, 4.0]]),), 0),
    "slogdet-singular": (lambda m: lambda x: m.linalg.slogdet(x)[1], (A([[1.0, 2.0], [2.0, 4.0]]),), 0),
    "cholesky-lower": (lambda m: lambda x: m.sum(m.linalg.cholesky(x)), (A([[4.0, 3.0], [1.0, 5.0]]),), 0),
    "cholesky-indefinite": (lambda m: lambda x: m.sum(m.linalg.cholesky(x)), (A([[1.0, 2.0], [2.0, 1.0]]),), 0),
    "inv-singular": (lambda m: lambda x: m.sum(m.linalg.inv(x)), (A([[1.0, 2.0], [2.0, 4.0]]),), 0),
}

# rows whose tapegrad result breaks the documented convention today: id -> (reason, fix)
KNOWN_BUGS = {}  # row id -> the bug and its fix; fixed: maximum-nan, logsumexp-1e15


def _namespaces():
    """The numpy-like namespace of each library that is installed (x64 for JAX)."""
    out = {"tapegrad": tnp}
    try:
        import jax
        import jax.numpy as jnp
        import jax.scipy.special as jsp
    except ImportError:
        pass
    else:
        out["jax"] = SimpleNamespace(**{n: getattr(jnp, n) for n in dir(jnp) if not n.startswith("_")})
        out["jax"].logsumexp, out["jax"].sigmoid, out["jax"].softmax = jsp.logsumexp, jax.nn.sigmoid, jax.nn.softmax
    try:
        import autograd.numpy as anp
        import autograd.scipy.special as asp
    except ImportError:
        pass
    else:
        out["autograd"] = SimpleNamespace(**{n: getattr(anp, n) for n in dir(anp) if not n.startswith("_")})
        out["autograd"].logsumexp, out["autograd"].sigmoid = asp.logsumexp, asp.expit
        out["autograd"].softmax = lambda x, axis=-1: anp.exp(x - asp.logsumexp(x, axis=axis, keepdims=True))
    return out


NAMESPACES = _namespaces()


def gradient(lib, row_id):
    """The gradient of row ``row_id`` computed by ``lib``, as a float, a list or a tuple."""
    build, args, argnums = ROWS[row_id]
    f = build(NAMESPACES[lib])
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # autograd's "Output seems independent", numpy's empty mean
        if lib == "tapegrad":
            g = tg.grad(f, argnums=argnums)(*args)
        elif lib == "jax":
            import jax
            previous = jax.config.jax_enable_x64
            jax.config.update("jax_enable_x64", True)
            try:
                g = jax.grad(f, argnums=argnums)(*[jax.numpy.asarray(a, dtype=np.float64) for a in args])
            finally:
                jax.config.update("jax_enable_x64", previous)
        else:
            import autograd
            plain = [np.asarray(a, dtype=np.float64) for a in args]  # not Python floats: 0. ** -0.5 raises
            nums = (argnums,) if isinstance(argnums, int) else argnums
            g = tuple(autograd.grad(f, argnum=k)(*plain) for k in nums)
            g = g[0] if isinstance(argnums, int) else g
    if isinstance(g, tuple):
        return tuple(np.asarray(t, dtype=np.float64).tolist() for t in g)
    return np.asarray(g, dtype=np.float64).tolist()


def doc_rows():
    """{id: {"value": cell, "tapegrad": cell, "jax": cell, "autograd": cell}} from the table."""
    rows = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and re.fullmatch(r"`[a-z0-9-]+`", cells[0]):
            row_id = cells[0].strip("`")
            assert row_id not in rows, f"row {row_id} appears twice in {DOC.name}"
            rows[row_id] = dict(zip(("value", "tapegrad", "jax", "autograd"),
                                    (c.strip("`").strip() for c in cells[2:6])))
    return rows


DOC_ROWS = doc_rows()


_ERRORS = {e.__name__: e for e in (ValueError, TypeError, ZeroDivisionError, AssertionError,
                                    NotImplementedError, np.linalg.LinAlgError)}  # autograd: a primitive without a VJP


def parse(cell):
    """A cell as a Python value, or an exception class for a cell naming one."""
    if cell in _ERRORS:
        return _ERRORS[cell]
    return eval(cell, {"__builtins__": {}}, {"nan": math.nan, "inf": math.inf})  # table literals only


def assert_matches(got, cell, what):
    expected = parse(cell)
    got_arr, exp_arr = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert got_arr.shape == exp_arr.shape, f"{what}: got {got}, the table says {cell}"
    np.testing.assert_allclose(got_arr, exp_arr, rtol=1e-12, atol=0, equal_nan=True,
                               err_msg=f"{what}: got {got}, the table says {cell}")


def compute(lib, row_id):
    """(result, None) or (None, exception class) for a row."""
    try:
        return gradient(lib, row_id), None
    except tuple(_ERRORS.values()) as err:  # a documented exception (autograd raises asserts)
        return None, type(err)


def check_cell(lib, row_id, cell):
    expected = parse(cell)
    got, error = compute(lib, row_id)
    if isinstance(expected, type):
        assert error is expected, f"{lib} {row_id}: expected {cell}, got {got if error is None else error}"
    else:
        assert error is None, f"{lib} {row_id}: raised {error.__name__}, the table says {cell}"
        assert_matches(got, cell, f"{lib} {row_id}")


def needs_where(row_id):
    return row_id.startswith("where-") and not hasattr(tnp, "where")


def test_every_row_is_tested():
    assert DOC_ROWS, f"no table rows found in {DOC}"
    assert set(DOC_ROWS) == set(ROWS), (f"in the table only: {sorted(set(DOC_ROWS) - set(ROWS))}; "
                                       f"in ROWS only: {sorted(set(ROWS) - set(DOC_ROWS))}")
    assert set(KNOWN_BUGS) <= set(ROWS)


def _params():
    out = []
    for row_id in ROWS:
        marks = []
        if row_id in KNOWN_BUGS:
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[row_id]))
        if needs_where(row_id):
            marks.append(pytest.mark.skip(reason="tnp.where is not in this version yet (issue 10)"))
        out.append(pytest.param(row_id, marks=marks, id=row_id))
    return out


@pytest.mark.parametrize("row_id", _params())
def test_tapegrad_gradient(row_id):
    """tapegrad's gradient is the table's tapegrad cell: the documented convention."""
    check_cell("tapegrad", row_id, DOC_ROWS[row_id]["tapegrad"])


@pytest.mark.parametrize("row_id", [r for r in ROWS if not needs_where(r)])
def test_tapegrad_value(row_id):
    """The value tapegrad records (value_and_grad) is the table's value cell."""
    cell = DOC_ROWS[row_id]["value"]
    build, args, argnums = ROWS[row_id]
    expected = parse(cell)
    f = tg.value_and_grad(build(tnp), argnums=argnums)
    if isinstance(expected, type):
        with pytest.raises(expected):
            f(*args)
        return
    with np.errstate(all="ignore"):
        value, _ = f(*args)
    assert_matches(value, cell, f"tapegrad value {row_id}")


@pytest.mark.parametrize("lib", ["jax", "autograd"])
@pytest.mark.parametrize("row_id", list(ROWS))
def test_peer_gradient(lib, row_id):
    """What the table says JAX and autograd give (each skipped when not installed)."""
    if lib not in NAMESPACES:
        pytest.skip(f"{lib} is not installed")
    check_cell(lib, row_id, DOC_ROWS[row_id][lib])


def test_where_trap_with_tnp_where():
    """With tnp.where: the trap's value is right (0) but its gradient is NaN; the safe
    rewrite gives 0 for both.  Skipped until tnp.where exists."""
    if not hasattr(tnp, "where"):
        pytest.skip("tnp.where is not in this version yet (issue 10)")
    x = np.array([0.0, 2.0])
    value, g = tg.value_and_grad(lambda x: tnp.sum(tnp.where(x > 0, tnp.log(x), 0.0)))(x)
    assert value == pytest.approx(math.log(2.0)) and np.isnan(g[0]) and g[1] == 0.5
    safe = lambda x: tnp.sum(tnp.where(x > 0, tnp.log(tnp.where(x > 0, x, 1.0)), 0.0))  # noqa: E731
    value, g = tg.value_and_grad(safe)(x)
    assert value == pytest.approx(math.log(2.0)) and g.tolist() == [0.0, 0.5]


def test_conventions_hold_on_arrays_and_replays():
    """The elementwise conventions hold element by element, and on a replayed tape."""
    d = tg.grad(lambda x: tnp.sum(tnp.maximum(x, 0.0) + tnp.sqrt(x * x + 0.0)))
    first = d(np.array([0.0, 1.0, -1.0]))
    again = d(np.array([0.0, 2.0, -2.0]))           # same shapes: replays the tape
    assert np.isnan(first[0]) and first[1:].tolist() == [2.0, -1.0]
    assert np.isnan(again[0]) and again[1:].tolist() == [2.0, -1.0]
    ties = tg.grad(lambda x: tnp.sum(tnp.max(x, axis=1)))(np.array([[2.0, 2.0, 1.0], [0.0, 5.0, 5.0]]))
    assert ties.tolist() == [[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]]


def test_check_grads_agrees_away_from_the_special_points():
    """Next to each kink the ordinary derivative is what tapegrad gives (check_grads)."""
    tg.check_grads(lambda x: tnp.maximum(x, 0.0) + tnp.maximum(x, -x), (np.array([-0.7, 0.4]),))
    tg.check_grads(lambda x: tnp.logsumexp(x), (np.array([1000.0, 999.0]),))
    tg.check_grads(lambda x: tnp.sigmoid(x), (np.array([-30.0, 30.0]),))


def test_prose_claims_about_jax_relu():
    """The page says jax.nn.relu gives 0 at 0 but jnp.maximum(x, 0.) gives 0.5, as tapegrad."""
    if "jax" not in NAMESPACES:
        pytest.skip("jax is not installed")
    import jax
    assert float(jax.grad(jax.nn.relu)(0.0)) == 0.0
    assert float(jax.grad(lambda x: jax.numpy.maximum(x, 0.0))(0.0)) == 0.5
