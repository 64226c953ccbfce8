"""The numpy surface for reductions, array building, layouts and indexing (issue 10):
each function on traced values against numpy's own values (check_grads compares the replay
with the plain call, which is numpy's function) and against finite differences, plus the
special points, the errors and the free aliases."""
import numpy as np
import pytest

import tapegrad as tg
import tapegrad.jit as J
import tapegrad.numpy as tnp

RNG = np.random.default_rng(7)
A1, A2, A3 = RNG.normal(size=5), RNG.normal(size=(3, 4)), RNG.normal(size=(2, 3, 4))
SQ = RNG.normal(size=(4, 4))
POS2 = RNG.uniform(0.5, 2.0, size=(3, 4))

CASES = [
    # reductions
    ("min", lambda x: tnp.min(x), A2), ("min-axis", lambda x: tnp.min(x, axis=1, keepdims=True), A2),
    ("amin-tuple", lambda x: tnp.amin(x, axis=(0, 2)), A3), ("min-method", lambda x: x.min(0), A2),
    ("np.min", lambda x: np.min(x, axis=-1), A3),
    ("prod", lambda x: tnp.prod(x), POS2), ("prod-axis", lambda x: tnp.prod(x, axis=1, keepdims=True), A2),
    ("prod-tuple", lambda x: tnp.prod(x, axis=(0, 2)), A3), ("prod-0d", lambda x: tnp.prod(x), np.array(1.5)),
    ("prod-method", lambda x: x.prod(axis=0), A2), ("np.prod", lambda x: np.prod(x, axis=-1), A3),
    ("var", lambda x: tnp.var(x), A2), ("var-ddof", lambda x: tnp.var(x, axis=0, ddof=1), A2),
    ("var-tuple", lambda x: x.var(axis=(0, 2), keepdims=True), A3),
    ("std", lambda x: tnp.std(x, axis=1), A2), ("std-ddof", lambda x: np.std(x, ddof=1), A1),
    ("cumsum", lambda x: tnp.cumsum(x), A2), ("cumsum-method", lambda x: x.cumsum(axis=1), A3),
    ("cumprod", lambda x: np.cumprod(x, axis=0), A2), ("cumprod-method", lambda x: x.cumprod(), A1),
    ("trace", lambda x: tnp.trace(x), SQ), ("trace-offset", lambda x: np.trace(x, 1, 1, 2), A3),
    ("trace-method", lambda x: x.trace(-1), A2),
    ("diff", lambda x: tnp.diff(x), A1), ("diff-n2-axis0", lambda x: np.diff(x, n=2, axis=0), A3),
    ("diff-n0", lambda x: tnp.diff(x, 0), A2),
    ("diff-prepend", lambda x: tnp.diff(x, axis=0, prepend=x[:1] * 2.0, append=1.5), A2),
    ("diff-append-traced", lambda x: np.diff(A1, append=x[1:3]), A1),
    ("cumsum-0d-axis", lambda x: tnp.cumsum(x, axis=0), np.array(1.5)),
    ("gradient", lambda x: tnp.gradient(x), A1), ("gradient-2d", lambda x: np.gradient(x)[1], A2),
    ("gradient-h", lambda x: tnp.gradient(x, 0.5, axis=1, edge_order=2), A3),
    ("gradient-coords", lambda x: tnp.gradient(x, np.array([0.0, 0.3, 1.0, 1.1, 2.0]), edge_order=2), A1),
    ("gradient-coords-1", lambda x: np.gradient(x, [0.0, 0.5, 2.0], axis=0)[1:], A2),
    ("gradient-n2", lambda x: tnp.gradient(x[:2]), A1),
    ("norm", lambda x: tnp.linalg.norm(x), A3), ("norm-keep", lambda x: np.linalg.norm(x, keepdims=True), A2),
    ("norm-1", lambda x: tnp.linalg.norm(x, 1), A1), ("norm-inf", lambda x: tnp.linalg.norm(x, np.inf), A1),
    ("norm--inf", lambda x: tnp.linalg.norm(x, -np.inf), A1), ("norm-3", lambda x: tnp.linalg.norm(x, 3), A1),
    ("norm-0.5", lambda x: tnp.linalg.norm(x, 0.5), A1), ("norm-axis", lambda x: tnp.linalg.norm(x, axis=1), A3),
    ("norm-fro", lambda x: tnp.linalg.norm(x, "fro"), A2), ("norm-m1", lambda x: tnp.linalg.norm(x, 1), A2),
    ("norm-minf", lambda x: tnp.linalg.norm(x, -np.inf), A2),
    ("norm-m-axes", lambda x: np.linalg.norm(x, np.inf, axis=(2, 0), keepdims=True), A3),
    ("norm-m-1", lambda x: tnp.linalg.norm(x, -1, axis=(1, 2)), A3),
    # building arrays
    ("concatenate", lambda x: tnp.concatenate([x, x[:1] * 2.0, np.ones((1, 4))]), A2),
    ("np.concatenate", lambda x: np.concatenate([x, x], axis=None), A2),
    ("stack", lambda x: tnp.stack([x, -x], axis=-1), A2), ("np.stack", lambda x: np.stack([x[0], x[2]]), A2),
    ("hstack", lambda x: tnp.hstack([x, x[:, :1]]), A2), ("hstack-1d", lambda x: np.hstack([x, x[:2]]), A1),
    ("vstack", lambda x: tnp.vstack([x, x[0]]), A2), ("dstack", lambda x: np.dstack([x, x]), A2),
    ("column_stack", lambda x: tnp.column_stack([x, x * 2.0]), A1),
    ("array", lambda x: tnp.array([x[0], 2.0, x[1] * x[2]]), A1),
    ("array-nested", lambda x: tnp.array([[x[0], x[1]], [x[2], 0.0]]), A1),
    ("asarray", lambda x: tnp.asarray([x, x * x]), A1),
    ("r_", lambda x: tnp.r_[x, 1.0, x[:2]], A1), ("c_", lambda x: tnp.c_[x, x * 2.0], A1),
    ("split", lambda x: tnp.split(x, 2, axis=1)[1], A2), ("split-idx", lambda x: np.split(x, [1, 3])[1], A1),
    ("array_split", lambda x: tnp.array_split(x, 3, axis=2)[2], A3),
    # layouts
    ("repeat", lambda x: tnp.repeat(x, 2, axis=0), A2), ("repeat-flat", lambda x: x.repeat([1, 0, 2, 1, 3]), A1),
    ("tile", lambda x: tnp.tile(x, (2, 1, 2)), A2), ("roll", lambda x: np.roll(x, 2, axis=1), A2),
    ("roll-flat", lambda x: tnp.roll(x, -3), A3), ("flip", lambda x: tnp.flip(x), A3),
    ("flip-axis", lambda x: np.flip(x, 1), A2), ("fliplr", lambda x: tnp.fliplr(x), A2),
    ("flipud", lambda x: np.flipud(x), A2), ("rot90", lambda x: tnp.rot90(x), A2),
    ("rot90-k", lambda x: np.rot90(x, 3, axes=(0, 2)), A3), ("moveaxis", lambda x: tnp.moveaxis(x, 0, -1), A3),
    ("swapaxes", lambda x: tnp.swapaxes(x, 0, 2), A3), ("swapaxes-method", lambda x: x.swapaxes(0, 1), A2),
    ("rollaxis", lambda x: np.rollaxis(x, 2), A3), ("expand_dims", lambda x: tnp.expand_dims(x, (0, 2)), A2),
    ("squeeze", lambda x: tnp.squeeze(x[None, :, None]), A1), ("squeeze-method", lambda x: x[:1].squeeze(0), A2),
    ("atleast_2d", lambda x: tnp.atleast_2d(x), A1), ("atleast_3d", lambda x: np.atleast_3d(x), A2),
    ("atleast_1d-0d", lambda x: tnp.atleast_1d(x), np.array(2.0)),
    ("tril", lambda x: tnp.tril(x), A2), ("triu-k", lambda x: np.triu(x, 1), A3), ("tril-1d", lambda x: tnp.tril(x, -1), A1),
    ("diag", lambda x: tnp.diag(x), A1), ("diag-k", lambda x: np.diag(x, -2), A1), ("diag-2d", lambda x: tnp.diag(x, 1), A2),
    ("diagonal", lambda x: tnp.diagonal(x, 0, 1, 2), A3), ("diagonal-method", lambda x: x.diagonal(1), A2),
    ("pad", lambda x: tnp.pad(x, 1), A2), ("pad-values", lambda x: np.pad(x, ((1, 0), (0, 2)), constant_values=(3.0, -1.0)), A2),
    ("pad-reflect", lambda x: tnp.pad(x, 2, mode="reflect"), A1), ("pad-wrap", lambda x: np.pad(x, (1, 3), mode="wrap"), A1),
    ("pad-edge", lambda x: tnp.pad(x, ((0, 1), (2, 0)), mode="edge"), A2),
    ("ravel", lambda x: np.ravel(x.T), A2), ("flatten", lambda x: x.T.flatten(), A2),
    # indexing
    ("slices", lambda x: x[::-2, 1::2], A2), ("bool", lambda x: x[A2 > 0], A2),
    ("take", lambda x: tnp.take(x, [3, 0, 3]), A2), ("take-axis", lambda x: np.take(x, [2, 0], axis=1), A2),
    ("take-method", lambda x: x.take([1, 1], axis=0), A2),
    ("take_along_axis", lambda x: tnp.take_along_axis(x, np.argsort(A2, axis=1), axis=1), A2),
]


@pytest.mark.parametrize("name, fn, x", CASES, ids=[c[0] for c in CASES])
def test_function_against_numpy_and_finite_differences(name, fn, x):
    tg.check_grads(fn, (x,))
    out = tg.record(fn, x)
    np.testing.assert_allclose(out.forward(x + 0.25), np.asarray(fn(x + 0.25)), rtol=1e-12, atol=1e-12)


def test_at_set_and_add_against_numpy():
    x, v = A2.copy(), RNG.normal(size=3)
    key = (np.array([0, 2, 0]), np.array([1, 3, 1]))  # (0, 1) twice
    expected_set = x.copy()
    expected_set[key] = v
    expected_add = x.copy()
    np.add.at(expected_add, key, v)
    assert np.allclose(tg.record(lambda x, v: tg.at(x)[key].set(v), x, v, argnums=(0, 1)).forward(x, v), expected_set)
    assert np.allclose(tg.record(lambda x, v: tg.at(x)[key].add(v), x, v, argnums=(0, 1)).forward(x, v), expected_add)
    gx, gv = tg.grad(lambda x, v: tnp.sum(tg.at(x)[key].set(v)), argnums=(0, 1))(x, v)
    assert gx[0, 1] == 0 and gx[2, 3] == 0 and gx.sum() == x.size - 2
    assert gv.tolist() == [0.0, 1.0, 1.0]  # the overwritten repeat gets nothing
    gx, gv = tg.grad(lambda x, v: tnp.sum(tg.at(x)[key].add(v) ** 2), argnums=(0, 1))(x, v)
    assert np.allclose(gv, 2 * expected_add[key])
    for f in (lambda x, v: tg.at(x)[1:, ::2].set(v[:2]), lambda x, v: tnp.at(x)[key].add(v * v),
              lambda x, v: tg.at(x)[0].add(v[0]), lambda x, v: tg.at(x)[x > 0].set(0.0) + v[0]):
        tg.check_grads(f, (x, v))
    assert np.array_equal(tg.at(x)[0].set(1.0), np.where(np.arange(3)[:, None] == 0, 1.0, x))  # plain
    with pytest.raises(IndexError, match="at\\[...\\].set"):
        tg.grad(lambda x: tnp.sum(tg.at(x)[5].set(1.0)))(x)
    with pytest.raises(ValueError, match="cannot be broadcast"):
        tg.grad(lambda x: tnp.sum(tg.at(x)[0].set(np.ones(3))))(x)


def test_special_points():
    # prod with zeros: the product of the others, exact
    assert tg.grad(tnp.prod)(np.array([2.0, 0.0, 3.0])).tolist() == [0.0, 6.0, 0.0]
    assert tg.grad(tnp.prod)(np.array([0.0, 0.0, 3.0])).tolist() == [0.0, 0.0, 0.0]
    assert tg.grad(lambda x: tnp.sum(tnp.cumprod(x)))(np.array([2.0, 0.0, 3.0])).tolist() == [1.0, 8.0, 0.0]
    # min ties split evenly, like max; NaN propagates
    assert tg.grad(tnp.min)(np.array([1.0, 1.0, 3.0])).tolist() == [0.5, 0.5, 0.0]
    assert np.isnan(tg.value_and_grad(tnp.min)(np.array([1.0, np.nan]))[0])
    # norms at 0: the 2-norm's gradient is NaN (0 * inf, as JAX and autograd); 1 and inf give 0
    assert np.isnan(tg.grad(tnp.linalg.norm)(np.zeros(3))).all()
    assert tg.grad(lambda x: tnp.linalg.norm(x, 1))(np.zeros(3)).tolist() == [0.0, 0.0, 0.0]
    assert tg.grad(lambda x: tnp.linalg.norm(x, np.inf))(np.zeros(3)).tolist() == [0.0, 0.0, 0.0]
    with pytest.warns(tg.TapegradWarning, match="independent"):  # a count of nonzeros: flat
        assert tg.grad(lambda x: tnp.linalg.norm(x, 0))(np.array([1.0, 0.0])).tolist() == [0.0, 0.0]
    # std of a constant: NaN (sqrt's inf at 0 times 0), as JAX
    assert np.isnan(tg.grad(tnp.std)(np.ones(3))).all()
    # empty: prod is 1, var NaN, cumsum empty
    with pytest.warns(tg.TapegradWarning, match="independent"):
        assert tg.value_and_grad(tnp.prod)(np.zeros(0))[0] == 1.0
    assert tg.grad(lambda x: tnp.sum(tnp.cumsum(x)))(np.zeros((0, 2))).shape == (0, 2)


def test_free_aliases_and_entry_counts():
    """A reshape-like layout records nothing; stack and array record one CONCAT."""
    for f in (lambda x: tnp.expand_dims(x, 0), lambda x: tnp.squeeze(x[None]), tnp.atleast_3d,
              lambda x: tnp.swapaxes(x[None], 0, 1), lambda x: tnp.moveaxis(x[:, None], 1, 0),
              lambda x: tnp.split(x, 3)[1], tnp.ravel):
        assert len(tg.record(f, A2)) == 0
    tape = tg.record(lambda x: tnp.array([x[0], x[1], x[2] * 2.0]), A1)
    assert [J.NAMES[o] for o in tape.op] == ["AFFINE", "CONCAT"]


def test_size_one_output_is_a_scalar():
    assert tg.grad(lambda x: x.reshape(1, 1) * 3.0)(2.0) == 3.0
    assert tg.grad(lambda x: tnp.sum(x, keepdims=True))(A2).tolist() == np.ones((3, 4)).tolist()
    with pytest.raises(TypeError, match="scalar output"):
        tg.grad(lambda x: x * 2.0)(A1)


def test_errors_name_the_function_before_recording():
    with pytest.raises(ValueError, match="concatenate: .*dimension"):
        tg.grad(lambda x: tnp.sum(tnp.concatenate([x, A1])))(A2)
    with pytest.raises(ValueError, match="stack: all input arrays must have the same shape"):
        tg.grad(lambda x: tnp.sum(np.stack([x, x[:2]])))(A1)
    with pytest.raises(np.exceptions.AxisError, match="flip"):
        tg.grad(lambda x: tnp.sum(tnp.flip(x, 3)))(A2)
    with pytest.raises(ValueError, match="split: array split does not result in an equal division"):
        tg.grad(lambda x: tnp.sum(tnp.split(x, 2)[0]))(A1)
    with pytest.raises(ValueError, match="min: zero-size"):
        tg.grad(tnp.min)(np.zeros(0))
    with pytest.raises(ValueError, match="diff: order must be non-negative"):
        tg.grad(lambda x: tnp.sum(tnp.diff(x, -1)))(A1)
    with pytest.raises(ValueError, match="gradient: Shape of array too small"):
        tg.grad(lambda x: tnp.sum(tnp.gradient(x, edge_order=2)))(A1[:2])
    with pytest.raises(NotImplementedError, match="singular values"):
        tg.grad(lambda x: tnp.linalg.norm(x, 2))(A2)
    with pytest.raises(NotImplementedError, match="pad: mode 'mean'"):
        tg.grad(lambda x: tnp.sum(tnp.pad(x, 1, mode="mean")))(A1)
    with pytest.raises(TypeError, match="take: this argument must be known"):
        tg.grad(lambda x: tnp.sum(tnp.take(A1, x)) + tnp.sum(tnp.take(x, x)))(A1)


def test_numpy_array_of_traced_values_still_raises():
    """numpy.array does not dispatch: a list of traced values cannot be intercepted there,
    so it raises (never a constant); tnp.array is the spelling that records."""
    with pytest.raises(TypeError):
        tg.grad(lambda x: np.sum(np.array([x[0], x[1]])))(A1)
    assert tg.grad(lambda x: tnp.sum(tnp.array([x[0], x[1]]) ** 2))(A1).tolist() == \
        [2 * A1[0], 2 * A1[1], 0.0, 0.0, 0.0]


def test_numpy_r_and_c_do_not_dispatch_but_tnp_r_and_c_do():
    with pytest.raises(TypeError):
        tg.grad(lambda x: tnp.sum(np.r_[x, x]))(A1)
    g = tg.grad(lambda x: tnp.sum(tnp.r_[x, 0:3, x[:2]] ** 2))(A1)
    assert np.allclose(g, 2 * A1 + 2 * A1 * (np.arange(5) < 2))
    assert np.array_equal(tnp.r_[A1, 0:2], np.r_[A1, 0:2])  # plain: numpy's own


def test_stacking_a_python_loop_of_scalars_is_one_entry():
    def f(x):
        out = [x[0]]
        for k in range(1, len(x)):
            out.append(out[-1] * 0.5 + x[k])
        return tnp.sum(tnp.array(out) ** 2)
    x = np.linspace(-1.0, 1.0, 50)
    tape = tg.record(f, x)
    assert [J.NAMES[o] for o in tape.op].count("CONCAT") == 1
    tg.check_grads(f, (x,))


def test_variadic_concat_in_a_saved_tape(tmp_path):
    """A CONCAT entry survives the file format and its validator; a count that does not
    match the operand list, or widths that do not fit, are refused before any kernel runs."""
    from tapegrad import tapefile
    tape = tg.record(lambda x: tnp.sum(tnp.concatenate([x, x * 2.0, x[:1]]) ** 2), A1)
    tape.save(tmp_path / "t.npz")
    loaded = tg.Tape.load(tmp_path / "t.npz")
    assert np.allclose(loaded.forward(A1 + 1.0), tape.forward(A1 + 1.0))
    grad = tg.grad(lambda x: tnp.sum(tnp.concatenate([x, x * 2.0, x[:1]]) ** 2))(A1)
    assert np.allclose(grad, 10 * A1 + np.eye(5)[0] * 2 * A1[0])
    start = int(tape.iarg[[J.NAMES[o] for o in tape.op].index("CONCAT")])
    for k, bad, why in ((0, 2, "operand count"), (2, 4, "pre \\* its width"), (1, 2, "size")):
        state = tapefile.encode(tape)
        state["ints"] = state["ints"].copy()
        state["ints"][start + k] = bad
        state["sha256"] = tapefile.checksum(state)
        with pytest.raises(ValueError, match=f"CONCAT.*{why}"):
            tapefile.decode(state)


def test_only_a_variadic_row_has_arity_zero():
    from tapegrad.jit.oprow import Op
    from tapegrad.jit import checks
    with pytest.raises(ValueError, match="arity"):
        Op("X", "reduce", 0, None, None, "", checks.reduce)
    with pytest.raises(ValueError, match="arity"):
        Op("X", "variadic", 2, None, None, "", checks.concat)
    assert [row.name for row in J.OPS if row.arity == 0] == ["CONCAT"]
