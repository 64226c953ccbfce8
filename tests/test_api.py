"""Conventions of grad / value_and_grad / jacobian: argnums, pytrees, types, caching."""
from collections import namedtuple

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.numpy as tnp
from conftest import assert_grad_matches_fd, numerical_jacobian

Params = namedtuple("Params", "w b")


# --- argnums --------------------------------------------------------------------------------

def f3(x, y, z):
    return x * y * y + tnp.sin(z) * x


X0, Y0, Z0 = 1.5, -0.5, 0.3
DX = Y0 * Y0 + np.sin(Z0)
DY = 2 * X0 * Y0
DZ = np.cos(Z0) * X0


def test_argnums_int_returns_single_gradient():
    g = tg.grad(f3, argnums=1)(X0, Y0, Z0)
    assert isinstance(g, float)
    assert g == pytest.approx(DY, rel=1e-14)
    assert tg.grad(f3)(X0, Y0, Z0) == pytest.approx(DX, rel=1e-14)  # default argnums=0


def test_argnums_tuple_returns_tuple():
    g = tg.grad(f3, argnums=(0, 2))(X0, Y0, Z0)
    assert isinstance(g, tuple) and len(g) == 2
    assert g == pytest.approx((DX, DZ), rel=1e-14)
    g1 = tg.grad(f3, argnums=(1,))(X0, Y0, Z0)
    assert isinstance(g1, tuple) and len(g1) == 1
    assert g1[0] == pytest.approx(DY, rel=1e-14)


def test_argnums_order_is_respected():
    g = tg.grad(f3, argnums=(2, 0, 1))(X0, Y0, Z0)
    assert g == pytest.approx((DZ, DX, DY), rel=1e-14)


def test_negative_argnums():
    assert tg.grad(f3, argnums=-1)(X0, Y0, Z0) == pytest.approx(DZ, rel=1e-14)
    assert tg.grad(f3, argnums=(-3, -2))(X0, Y0, Z0) == pytest.approx((DX, DY), rel=1e-14)


def test_value_and_grad_argnums():
    value, g = tg.value_and_grad(f3, argnums=(0, 1, 2))(X0, Y0, Z0)
    assert value == pytest.approx(X0 * Y0 * Y0 + np.sin(Z0) * X0, rel=1e-14)
    assert isinstance(value, float)
    assert g == pytest.approx((DX, DY, DZ), rel=1e-14)
    value, g = tg.value_and_grad(f3, argnums=2)(X0, Y0, Z0)
    assert g == pytest.approx(DZ, rel=1e-14)


def test_keyword_arguments_are_passed_through():
    def f(x, *, scale):
        return tnp.sum(x * x) * scale

    g = tg.grad(f)
    x = np.arange(3.0)
    np.testing.assert_allclose(g(x, scale=2.0), 4 * x)
    np.testing.assert_allclose(g(x, scale=3.0), 6 * x)  # a new value, not a stale tape


# --- pytrees ---------------------------------------------------------------------------------

def tree_loss(p):
    return (tnp.sum(p["a"] ** 2) + p["t"][0] * 3.0 + tnp.sum(tnp.sin(p["t"][1][0]))
            + tnp.sum(p["nt"].w * p["nt"].b) + p["l"][1] ** 3)


def make_tree(rng):
    return {
        "a": rng.normal(size=(2, 3)),
        "t": (0.7, [rng.normal(size=4)]),
        "nt": Params(w=rng.normal(size=3), b=rng.normal(size=3)),
        "l": [None, 1.3],
        "none": None,
    }


def test_pytree_gradient_has_the_argument_structure(rng):
    p = make_tree(rng)
    g = tg.grad(tree_loss)(p)
    assert isinstance(g, dict) and sorted(g) == sorted(p)
    assert g["none"] is None
    assert isinstance(g["t"], tuple) and isinstance(g["t"][1], list)
    assert isinstance(g["nt"], Params)
    assert isinstance(g["l"], list) and g["l"][0] is None
    np.testing.assert_allclose(g["a"], 2 * p["a"], rtol=1e-14)
    assert isinstance(g["t"][0], float) and g["t"][0] == pytest.approx(3.0, rel=1e-14)
    np.testing.assert_allclose(g["t"][1][0], np.cos(p["t"][1][0]), rtol=1e-14)
    np.testing.assert_allclose(g["nt"].w, p["nt"].b, rtol=1e-14)
    np.testing.assert_allclose(g["nt"].b, p["nt"].w, rtol=1e-14)
    assert g["l"][1] == pytest.approx(3 * 1.3 ** 2, rel=1e-14)


def test_pytree_argnums_tuple_with_none_argument():
    def f(x, nothing, p):
        assert nothing is None
        return x * tnp.sum(p.w) + p.b

    g = tg.grad(f, argnums=(0, 1, 2))(2.0, None, Params(np.arange(3.0), 0.5))
    assert g[0] == pytest.approx(3.0)
    assert g[1] is None
    assert isinstance(g[2], Params)
    np.testing.assert_allclose(g[2].w, [2.0, 2.0, 2.0])
    assert g[2].b == pytest.approx(1.0)


def test_pytree_list_of_layers_matches_finite_differences(rng):
    layers = [(rng.normal(size=(3, 4)), rng.normal(size=3)), (rng.normal(size=(2, 3)), rng.normal(size=2))]
    x = rng.normal(size=4)

    def loss(layers, x):
        h = x
        for W, b in layers:
            h = tnp.tanh(W @ h + b)
        return tnp.sum(h ** 2)

    g = tg.grad(loss)(layers, x)
    assert isinstance(g, list) and len(g) == 2
    for k in range(2):
        for j in range(2):
            def f(v, k=k, j=j):
                ls = [list(layer) for layer in layers]
                ls[k][j] = v
                return loss([tuple(layer) for layer in ls], x)

            assert g[k][j].shape == layers[k][j].shape
            assert_grad_matches_fd(f, layers[k][j], g[k][j])


def test_dict_keys_any_insertion_order():
    a, b = np.arange(3.0), np.ones(2)
    f = lambda d: tnp.sum(d["x"] * 2.0) + tnp.sum(d["y"] ** 2)  # noqa: E731
    g1 = tg.grad(f)({"x": a, "y": b})
    g2 = tg.grad(f)({"y": b, "x": a})
    for g in (g1, g2):
        np.testing.assert_array_equal(g["x"], 2.0 * np.ones(3))
        np.testing.assert_array_equal(g["y"], 2.0 * b)


# --- gradient types ------------------------------------------------------------------------

@pytest.mark.parametrize("x, kind, dtype", [
    (2.0, float, None),
    (np.float64(2.0), np.float64, np.float64),
    (np.float32(2.0), np.float32, np.float32),
    (np.array(2.0), np.ndarray, np.float64),
    (np.full(3, 2.0), np.ndarray, np.float64),
    (np.full((2, 3), 2.0, dtype=np.float32), np.ndarray, np.float32),
])
def test_gradient_type_shape_dtype_follow_the_argument(x, kind, dtype):
    g = tg.grad(lambda x: tnp.sum(x ** 3))(x)
    assert type(g) is kind
    if dtype is not None:
        assert g.dtype == dtype
    assert np.shape(g) == np.shape(x)
    np.testing.assert_allclose(g, 3 * np.asarray(x, dtype=np.float64) ** 2, rtol=1e-6)


def test_value_is_float_for_scalar_output():
    value, g = tg.value_and_grad(lambda x: tnp.sum(x))(np.ones(3, np.float32))
    assert isinstance(value, float) and value == 3.0
    assert g.dtype == np.float32


# --- traced vs static non-differentiated arguments -------------------------------------------

def test_float_array_argument_is_traced_not_baked(rng):
    def f(w, data):
        return tnp.sum(tnp.tanh(data @ w))

    g = tg.grad(f)
    w = rng.normal(size=3)
    for _ in range(3):
        data = rng.normal(size=(5, 3))
        got = g(w, data)
        assert_grad_matches_fd(lambda v: f(v, data), w, got)
    assert len(g._tapes) == 1


def test_float_scalar_argument_is_traced_not_baked():
    g = tg.value_and_grad(lambda x, c: c * x ** 2)
    for c in (1.0, -2.0, 3.5):
        value, d = g(1.5, c)
        assert value == pytest.approx(c * 2.25)
        assert d == pytest.approx(c * 3.0)
    assert len(g._tapes) == 1


def test_int_argument_is_static():
    g = tg.grad(lambda x, n: x ** n)
    assert g(2.0, 2) == pytest.approx(4.0)
    assert g(2.0, 3) == pytest.approx(12.0)
    assert g(2.0, 2) == pytest.approx(4.0)
    assert len(g._tapes) == 2  # one recording per value of n, reused for n = 2


def test_string_argument_is_static():
    def f(x, how):
        return tnp.sum(tnp.sin(x)) if how == "sin" else tnp.sum(tnp.cos(x))

    g = tg.grad(f)
    x = np.linspace(0, 1, 4)
    np.testing.assert_allclose(g(x, "sin"), np.cos(x), rtol=1e-14)
    np.testing.assert_allclose(g(x, "cos"), -np.sin(x), rtol=1e-14)
    np.testing.assert_allclose(g(x + 1, "sin"), np.cos(x + 1), rtol=1e-14)
    assert len(g._tapes) == 2


def test_int_array_argument_is_static():
    g = tg.grad(lambda x, idx: tnp.sum(x[idx] ** 2))
    x = np.arange(1.0, 6.0)
    np.testing.assert_allclose(g(x, np.array([0, 2])), [2, 0, 6, 0, 0])
    np.testing.assert_allclose(g(x, np.array([1, 4])), [0, 4, 0, 0, 10])
    np.testing.assert_allclose(g(x, np.array([1, 1, 3])), [0, 8, 0, 8, 0])
    assert len(g._tapes) == 3
    np.testing.assert_allclose(g(2 * x, np.array([0, 2])), [4, 0, 12, 0, 0])
    assert len(g._tapes) == 3


# --- record once, replay many ------------------------------------------------------------------

def test_same_shapes_reuse_one_tape(rng):
    f = lambda x: tnp.sum(tnp.exp(tnp.sin(x)) * x)  # noqa: E731
    g = tg.grad(f)
    for _ in range(4):
        x = rng.normal(size=5)
        np.testing.assert_allclose(g(x), np.exp(np.sin(x)) * (np.cos(x) * x + 1), rtol=1e-13)
    assert len(g._tapes) == 1


def test_new_shape_or_dtype_gets_new_tape(rng):
    g = tg.grad(lambda x: tnp.sum(x ** 2))
    g(np.ones(3))
    g(np.ones(4))
    g(np.ones(3, np.float32))
    assert len(g._tapes) == 3
    x = rng.normal(size=4)
    np.testing.assert_allclose(g(x), 2 * x, rtol=1e-15)
    assert len(g._tapes) == 3


def test_value_and_grad_value_is_not_stale():
    vg = tg.value_and_grad(lambda x: tnp.sum(x ** 2))
    assert vg(np.array([1.0, 2.0]))[0] == 5.0
    value, g = vg(np.array([3.0, 4.0]))
    assert value == 25.0
    np.testing.assert_array_equal(g, [6.0, 8.0])


def test_gradients_are_not_views_of_reused_buffers():
    g = tg.grad(lambda x: tnp.sum(x ** 2))
    first = g(np.array([1.0, 2.0]))
    g(np.array([10.0, 20.0]))
    np.testing.assert_array_equal(first, [2.0, 4.0])
    held = [g(np.array([float(k), 1.0])) for k in range(7)]  # more than the buffer pool holds
    g(np.array([-5.0, -5.0]))
    for k, grad in enumerate(held):
        np.testing.assert_array_equal(grad, [2.0 * k, 2.0])


# --- branching on a traced value ------------------------------------------------------------

def branchy(x):
    if x > 0:
        return x ** 2
    return -3.0 * x


def via_bool(x):
    return tnp.sin(x) * 2.0 if bool(x < 1.0) else tnp.exp(x)


def test_branch_gives_right_side_every_call_and_keeps_one_variant_per_branch():
    g = tg.grad(branchy)
    for x, want in [(2.0, 4.0), (-1.0, -3.0), (3.0, 6.0), (-5.0, -3.0), (0.5, 1.0)]:
        assert g(x) == pytest.approx(want)
    (variants, _), = g._tapes.values()
    assert sorted(t.guard_outcomes for t in variants.tapes) == [(False,), (True,)]


def test_branch_via_bool():
    # float(x) is refused (tests/test_conversions.py); bool() of a comparison branches
    vg = tg.value_and_grad(via_bool)
    v, d = vg(0.5)
    assert v == pytest.approx(np.sin(0.5) * 2.0) and d == pytest.approx(np.cos(0.5) * 2.0)
    v, d = vg(2.0)
    assert v == pytest.approx(np.exp(2.0)) and d == pytest.approx(np.exp(2.0))
    v, d = vg(0.25)
    assert v == pytest.approx(np.sin(0.25) * 2.0) and d == pytest.approx(np.cos(0.25) * 2.0)
    (variants, _), = vg._tapes.values()
    assert len(variants.tapes) == 2


def test_branch_on_non_differentiated_traced_argument():
    def f(x, c):
        return x * 2.0 if c > 0 else x * 5.0

    g = tg.grad(f)
    assert g(1.0, 1.0) == 2.0
    assert g(1.0, -1.0) == 5.0
    assert g(1.0, 1.0) == 2.0
    (variants, _), = g._tapes.values()
    assert len(variants.tapes) == 2


def test_branch_on_array_reduction():
    def f(x):
        return tnp.sum(x ** 2) if tnp.sum(x) > 0 else tnp.sum(x ** 3)

    g = tg.grad(f)
    a, b = np.array([1.0, 2.0]), np.array([-1.0, -2.0])
    np.testing.assert_allclose(g(a), 2 * a)
    np.testing.assert_allclose(g(b), 3 * b ** 2)
    np.testing.assert_allclose(g(a), 2 * a)


# --- jacobian ------------------------------------------------------------------------------

def vec_fn(x):
    return tnp.tanh(x[:3] * x[1:]) + tnp.sum(x ** 2) * x[:3]


def test_jacobian_vs_finite_differences(rng):
    x = rng.normal(size=4)
    J = tg.jacobian(vec_fn)(x)
    assert J.shape == (3, 4)
    np.testing.assert_allclose(J, numerical_jacobian(vec_fn, x), rtol=1e-6, atol=1e-8)


def test_jacobian_matrix_in_matrix_out(rng):
    W = rng.normal(size=(3, 2))

    def f(A):
        return tnp.sin(A @ W)

    A = rng.normal(size=(4, 3))
    J = tg.jacobian(f)(A)
    assert J.shape == (4, 2, 4, 3)
    np.testing.assert_allclose(J, numerical_jacobian(f, A), rtol=1e-6, atol=1e-8)


def test_jacobian_argnums_tuple(rng):
    x, y = rng.normal(size=3), rng.normal(size=2)
    Jx, Jy = tg.jacobian(lambda x, y: tnp.reshape(x, (3, 1)) * y, argnums=(0, 1))(x, y)
    assert Jx.shape == (3, 2, 3) and Jy.shape == (3, 2, 2)
    np.testing.assert_allclose(Jx, numerical_jacobian(lambda v: v[:, None] * y, x), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(Jy, numerical_jacobian(lambda v: x[:, None] * v, y), rtol=1e-6, atol=1e-9)


def test_jacobian_of_scalar_function_is_gradient(rng):
    x = rng.normal(size=(2, 3))
    f = lambda x: tnp.sum(tnp.sin(x) * x)  # noqa: E731
    J = tg.jacobian(f)(x)
    assert J.shape == (2, 3)
    np.testing.assert_allclose(J, tg.grad(f)(x), rtol=1e-15)


def test_jacobian_replays_at_new_inputs(rng):
    jac = tg.jacobian(vec_fn)
    for _ in range(3):
        x = rng.normal(size=4)
        np.testing.assert_allclose(jac(x), numerical_jacobian(vec_fn, x), rtol=1e-6, atol=1e-8)
    assert len(jac._tapes) == 1


def test_jacobian_keeps_float32():
    J = tg.jacobian(lambda x: x * 2.0)(np.ones(3, np.float32))
    assert J.dtype == np.float32
    np.testing.assert_array_equal(J, 2.0 * np.eye(3))


# --- degenerate functions --------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:Output seems independent of input")
def test_constant_output_gives_zero_gradient():
    g = tg.grad(lambda x: 5.0)(np.ones((2, 3)))
    assert g.shape == (2, 3)
    np.testing.assert_array_equal(g, np.zeros((2, 3)))
    assert tg.grad(lambda x: 5.0)(2.0) == 0.0
    value, g = tg.value_and_grad(lambda x, c: c * 2.0)(1.0, 4.0)  # depends on c only
    assert value == 8.0 and g == 0.0


def test_output_independent_of_one_argument():
    g = tg.grad(lambda x, y: tnp.sum(x * 3.0), argnums=(0, 1))(np.ones(2), np.ones(4))
    np.testing.assert_array_equal(g[0], [3.0, 3.0])
    np.testing.assert_array_equal(g[1], np.zeros(4))


def test_function_returning_its_input():
    assert tg.grad(lambda x: x)(2.5) == 1.0
    assert tg.value_and_grad(lambda x: x)(2.5) == (2.5, 1.0)
    assert tg.grad(lambda x, y: y, argnums=(0, 1))(2.0, 3.0) == (0.0, 1.0)
    np.testing.assert_array_equal(tg.jacobian(lambda x: x)(np.arange(3.0)), np.eye(3))
    g = tg.grad(lambda x: x)
    assert g(7.0) == 1.0 and g(-7.0) == 1.0


def test_function_returning_reshaped_input():
    g = tg.grad(lambda x: x.reshape(()))(np.array([4.0]))
    np.testing.assert_array_equal(g, [1.0])


def test_input_used_twice_in_one_op():
    assert tg.grad(lambda x: x * x)(3.0) == 6.0
    A = np.array([[1.0, 2.0], [3.0, 4.0]])
    # d/dA sum(A @ A) = 1 1^T A^T + A^T 1 1^T
    ones = np.ones((2, 2))
    np.testing.assert_allclose(tg.grad(lambda A: tnp.sum(A @ A))(A), ones @ A.T + A.T @ ones)


# --- cache keys -------------------------------------------------------------------------------

def test_keyword_float_signed_zero_is_not_confused():
    g = tg.grad(lambda x, *, c: x / c)
    assert g(1.0, c=0.0) == np.inf
    assert g(1.0, c=-0.0) == -np.inf
