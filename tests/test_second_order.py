"""Second order: grad of grad, hvp, hessian, jvp, forward/reverse jacobian.

Oracles: closed forms (the lecture function, quadratic forms, Rosenbrock's Hessian, nested
derivatives of order 3), central finite differences of the (kernel) gradient in float64,
Hessian symmetry, jvp against jacobian @ v, and random programs (hvp against finite
differences of grad).  Plus what makes the traced path trustworthy: inner guards become
outer guards, value-dependent inner recordings are never replayed, one recording serves
later calls.
"""
import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tapegrad as tg
import tapegrad.numpy as tnp
from tapegrad.bench.models import mlp_loss, rosenbrock
from conftest import numerical_grad, numerical_jacobian
from random_programs import Builder, run
from test_lectures import mml_df, mml_f


def rosen(x):
    return rosenbrock(x, tnp)


def rosen_hessian(x):
    n = len(x)
    H = np.zeros((n, n))
    i = np.arange(n - 1)
    H[i, i] += 1200 * x[:-1] ** 2 - 400 * x[1:] + 2
    H[i + 1, i + 1] += 200
    H[i, i + 1] = H[i + 1, i] = -400 * x[:-1]
    return H


# --- grad of grad: closed forms ---------------------------------------------------------------

@pytest.mark.parametrize("x", [-1.1, -0.3, 0.0, 0.4, 0.9])
def test_lecture_second_derivative_against_finite_differences_of_5_110(x):
    h = 1e-6
    expected = (mml_df(x + h) - mml_df(x - h)) / (2 * h)
    assert tg.grad(tg.grad(mml_f))(x) == pytest.approx(expected, rel=1e-6, abs=1e-7)


ORDER_3 = {  # f, f', f'', f'''
    "x^5": (lambda x: x ** 5, lambda x: 5 * x ** 4, lambda x: 20 * x ** 3, lambda x: 60 * x ** 2),
    "sin(2x) x": (lambda x: tnp.sin(2 * x) * x, lambda x: 2 * math.cos(2 * x) * x + math.sin(2 * x),
                  lambda x: -4 * math.sin(2 * x) * x + 4 * math.cos(2 * x),
                  lambda x: -8 * math.cos(2 * x) * x - 12 * math.sin(2 * x)),
    "exp(x^2)": (lambda x: tnp.exp(x * x), lambda x: 2 * x * math.exp(x * x),
                 lambda x: (2 + 4 * x * x) * math.exp(x * x),
                 lambda x: (12 * x + 8 * x ** 3) * math.exp(x * x)),
    "log(1+x^2)": (lambda x: tnp.log(1 + x ** 2), lambda x: 2 * x / (1 + x * x),
                   lambda x: 2 * (1 - x * x) / (1 + x * x) ** 2,
                   lambda x: 4 * x * (x * x - 3) / (1 + x * x) ** 3),
    "tanh(x)": (tnp.tanh, lambda x: 1 - math.tanh(x) ** 2,
                lambda x: -2 * math.tanh(x) * (1 - math.tanh(x) ** 2),
                lambda x: -2 * (1 - math.tanh(x) ** 2) * (1 - 3 * math.tanh(x) ** 2)),
    "1/x": (lambda x: 1.0 / x, lambda x: -1 / x ** 2, lambda x: 2 / x ** 3, lambda x: -6 / x ** 4),
}


@pytest.mark.parametrize("name", sorted(ORDER_3))
@pytest.mark.parametrize("x", [-0.8, 0.35, 1.3])
def test_nested_grad_of_order_3_against_closed_forms(name, x):
    f, d1, d2, d3 = ORDER_3[name]
    g1 = tg.grad(f)
    g2 = tg.grad(g1)
    g3 = tg.grad(g2)
    for g, d in ((g1, d1), (g2, d2), (g3, d3)):
        assert g(x) == pytest.approx(d(x), rel=1e-11, abs=1e-11)
    assert g3(x + 0.1) == pytest.approx(d3(x + 0.1), rel=1e-11, abs=1e-11)  # replayed
    assert len(g3._tapes) == 1


def test_quadratic_form_hessian_and_hvp():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(5, 5))
    b = rng.normal(size=5)
    f = lambda x: x @ A @ x + b @ x  # noqa: E731
    x, v = rng.normal(size=5), rng.normal(size=5)
    np.testing.assert_allclose(tg.hessian(f)(x), A + A.T, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(tg.hvp(f)(x, v), (A + A.T) @ v, rtol=1e-13, atol=1e-13)
    # <grad f(x), v> differentiated with respect to v is grad f(x) again
    np.testing.assert_allclose(tg.grad(lambda x, v: tnp.sum(tg.grad(f)(x) * v), 1)(x, v),
                               (A + A.T) @ x + b, rtol=1e-13)


@pytest.mark.parametrize("n", [2, 5, 12])
def test_rosenbrock_hessian_closed_form_vectorised_and_loop(n):
    x = np.random.default_rng(n).normal(size=n)
    np.testing.assert_allclose(tg.hessian(rosen)(x), rosen_hessian(x), rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(tg.hessian(_loop)(x), rosen_hessian(x), rtol=1e-12, atol=1e-10)


def _loop(x):
    s = 0.0
    for i in range(len(x) - 1):
        s = s + 100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2
    return s


def test_loop_inlining_costs_linear_entries():
    """A scalar loop's window adjoints are assembled by one CONCAT per owner, not one
    scatter per element: the hvp tape grows linearly with n."""
    sizes = []
    for n in (20, 40):
        tape = tg.record(lambda x, v: tnp.sum(tg.grad(_loop)(x) * v), np.ones(n), np.ones(n))
        sizes.append(len(tape))
    assert sizes[1] < 2.2 * sizes[0]


def _mlp_params(rng, sizes):
    params = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        params += [rng.normal(size=(b, a)) / np.sqrt(a), 0.1 * rng.normal(size=b)]
    return params


def test_mlp_loss_hvp_against_finite_differences_of_the_gradient():
    rng = np.random.default_rng(3)
    params = _mlp_params(rng, [6, 5, 3])
    X = rng.normal(size=(4, 6))
    Y = np.eye(3)[rng.integers(0, 3, size=4)]
    loss = lambda p, X, Y: mlp_loss(p, X, Y, tnp)  # noqa: E731
    V = [rng.normal(size=p.shape) for p in params]
    got = tg.hvp(loss)(params, X, Y, V)
    g = tg.grad(loss)
    h = 1e-5
    up = g([p + h * v for p, v in zip(params, V)], X, Y)
    down = g([p - h * v for p, v in zip(params, V)], X, Y)
    assert isinstance(got, list) and len(got) == len(params)
    for a, u, d in zip(got, up, down):
        np.testing.assert_allclose(a, (u - d) / (2 * h), rtol=1e-6, atol=1e-8)


def test_hessian_is_symmetric_and_matches_finite_differences():
    rng = np.random.default_rng(4)
    W = rng.normal(size=(3, 4))
    f = lambda x: tnp.sum(tnp.tanh(W @ x) ** 2) + tnp.logsumexp(x) * x[0]  # noqa: E731
    x = rng.normal(size=4)
    H = tg.hessian(f)(x)
    np.testing.assert_allclose(H, H.T, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(H, numerical_jacobian(tg.grad(f), x), rtol=1e-6, atol=1e-8)


# --- jvp and the two jacobians ---------------------------------------------------------------

def test_jvp_against_jacobian_times_vector():
    rng = np.random.default_rng(5)
    A = rng.normal(size=(3, 4))
    f = lambda x, y: tnp.sin(A @ x) * y  # noqa: E731
    x, y, vx, vy = rng.normal(size=4), rng.normal(size=3), rng.normal(size=4), rng.normal(size=3)
    out, tangent = tg.jvp(f, (x, y), (vx, vy))
    np.testing.assert_allclose(out, np.sin(A @ x) * y, rtol=1e-14)
    Jx, Jy = tg.jacobian(f, argnums=(0, 1))(x, y)
    np.testing.assert_allclose(tangent, Jx @ vx + Jy @ vy, rtol=1e-12, atol=1e-12)
    x2 = rng.normal(size=4)  # a second call replays the same tape
    _, t2 = tg.jvp(f, (x2, y), (vx, vy))
    np.testing.assert_allclose(t2, np.cos(A @ x2) * y * (A @ vx) + np.sin(A @ x2) * vy, rtol=1e-12)


def test_jvp_of_a_scalar_function_and_of_pytrees():
    out, t = tg.jvp(lambda d: d["a"] * tnp.exp(d["b"]), ({"a": 2.0, "b": 0.5},), ({"a": 1.0, "b": -1.0},))
    assert out == pytest.approx(2 * math.exp(0.5))
    assert t == pytest.approx(math.exp(0.5) - 2 * math.exp(0.5))
    with pytest.raises(ValueError, match="structure"):
        tg.jvp(lambda x: x, (1.0,), ((1.0, 2.0),))


@pytest.mark.parametrize("shape_in, shape_out", [((2,), (6,)), ((6,), (2,)), ((3,), (3,))])
def test_forward_and_reverse_jacobians_agree(shape_in, shape_out):
    rng = np.random.default_rng(6)
    A = rng.normal(size=shape_out + shape_in)
    f = lambda x: tnp.exp(0.3 * (A @ x)) * tnp.sum(x)  # noqa: E731
    x = rng.normal(size=shape_in)
    want = numerical_jacobian(f, x)
    for mode in ("rev", "fwd", None):
        jac = tg.jacobian(f, mode=mode)
        for _ in range(2):  # mode None: reverse on the first call, then the cheaper one
            np.testing.assert_allclose(jac(x), want, rtol=1e-7, atol=1e-9)
    with pytest.raises(ValueError, match="mode must be"):
        tg.jacobian(f, mode="forward")


def test_jacobian_of_grad_and_grad_of_value_and_grad():
    f = lambda x: tnp.sum(tnp.sin(x) * x ** 2)  # noqa: E731
    x = np.array([0.3, -1.2, 2.0])
    d2 = 2 * np.sin(x) + 4 * x * np.cos(x) - x ** 2 * np.sin(x)
    np.testing.assert_allclose(tg.jacobian(tg.grad(f))(x), np.diag(d2), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(tg.jacobian(tg.grad(f), mode="fwd")(x), np.diag(d2), rtol=1e-12, atol=1e-13)
    both = tg.grad(lambda x: tg.value_and_grad(f)(x)[0] + tnp.sum(tg.value_and_grad(f)(x)[1]))
    np.testing.assert_allclose(both(x), tg.grad(f)(x) + d2, rtol=1e-12)
    # the Jacobian of a Jacobian: third derivatives of a cubic
    cube = lambda x: x ** 3  # noqa: E731
    np.testing.assert_allclose(tg.jacobian(tg.jacobian(cube))(x),
                               np.einsum("i,ij,ik->ijk", 6 * x, np.eye(3), np.eye(3)), atol=1e-12)


def test_argnums_and_tuple_hessians():
    f = lambda x, y: tnp.sum(x ** 2 * y) + tnp.sum(y ** 3)  # noqa: E731
    x, y = np.array([1.0, 2.0]), np.array([3.0, -1.0])
    (Hxx, Hxy), (Hyx, Hyy) = tg.hessian(f, argnums=(0, 1))(x, y)
    np.testing.assert_allclose(Hxx, np.diag(2 * y))
    np.testing.assert_allclose(Hxy, np.diag(2 * x))
    np.testing.assert_allclose(Hyx, np.diag(2 * x))
    np.testing.assert_allclose(Hyy, np.diag(6 * y))
    hx, hy = tg.hvp(f, argnums=(0, 1))(x, y, (np.ones(2), np.zeros(2)))
    np.testing.assert_allclose(hx, 2 * y)
    np.testing.assert_allclose(hy, 2 * x)
    np.testing.assert_allclose(tg.hessian(f, argnums=1)(x, y), Hyy)


# --- the traced path: recorded once, guarded, never stale -------------------------------------

def test_hvp_records_once_and_replays():
    hv = tg.hvp(rosen)
    rng = np.random.default_rng(7)
    for _ in range(3):
        x, v = rng.normal(size=8), rng.normal(size=8)
        np.testing.assert_allclose(hv(x, v), rosen_hessian(x) @ v, rtol=1e-12, atol=1e-10)
    (outer,) = hv._outer.values()
    assert len(outer._tapes) == 1 and len(next(iter(outer._tapes.values()))[0].tapes) == 1


def test_inner_branches_become_guards_of_the_outer_tape():
    def f(x):
        if x > 0:
            return x ** 3
        return -(x ** 2)
    g2 = tg.grad(tg.grad(f))
    assert g2(2.0) == pytest.approx(12.0)
    assert g2(-1.0) == pytest.approx(-2.0)   # the guard fails: the other branch is recorded
    assert g2(3.0) == pytest.approx(18.0)
    assert g2(-4.0) == pytest.approx(-2.0)
    tape = tg.record(lambda x: tg.grad(f)(x), 2.0)
    assert len(tape.guards) == 1 and "x > 0" in tape.guard_site(tape.guards[0])
    with pytest.raises(tg.GuardFailed):
        tape.forward(-1.0)


def test_a_value_dependent_inner_recording_is_never_replayed():
    f = lambda x: tnp.sum(tnp.where(x > 0, x ** 3, x ** 2))  # noqa: E731  (a mask: value dependent)
    h = tg.hessian(f)
    for x in (np.array([1.0, -2.0]), np.array([-1.0, 3.0]), np.array([2.0, 2.0])):
        np.testing.assert_allclose(h(x), np.diag(np.where(x > 0, 6 * x, 2.0)))
    tape = tg.record(lambda x: tg.grad(f)(x), np.array([1.0, -2.0]))
    assert tape.value_dependent
    with pytest.raises(ValueError, match="branched on a traced value"):
        tape.forward(np.array([-1.0, 1.0]))


SCALE = 2.0


def test_a_changed_global_of_the_inner_function_records_again():
    global SCALE
    SCALE = 2.0

    def f(x):
        return SCALE * x ** 3
    g2 = tg.grad(tg.grad(f))
    assert g2(1.0) == pytest.approx(12.0)
    SCALE = 5.0
    assert g2(1.0) == pytest.approx(30.0)


def test_closure_over_an_outer_traced_value_is_refused_with_the_fix():
    with pytest.raises(NotImplementedError, match="pass the value as an argument"):
        tg.grad(lambda x: tg.grad(lambda y: x * y ** 2)(1.0))(2.0)
    # the fix the message names
    assert tg.grad(lambda x: tg.grad(lambda y, x: x * y ** 2)(1.0, x))(2.0) == pytest.approx(2.0)


def test_gradient_tape_saves_and_loads(tmp_path):
    tape = tg.record(lambda x: tg.grad(rosen)(x), np.ones(4))
    tape.save(tmp_path / "grad.npz")
    back = tg.Tape.load(tmp_path / "grad.npz")
    x = np.array([0.5, -1.0, 2.0, 0.1])
    np.testing.assert_allclose(back.forward(x), tg.grad(rosen)(x), rtol=1e-13)
    np.testing.assert_allclose(back.jacobian(x), rosen_hessian(x), rtol=1e-12, atol=1e-10)


def test_record_of_traced_values_is_refused():
    with pytest.raises(NotImplementedError, match="tapegrad.record was given a value traced"):
        tg.grad(lambda x: tg.record(lambda y: y, x).forward(1.0))(2.0)


# --- random programs: hvp against finite differences of grad ----------------------------------

@settings(derandomize=True, max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.filter_too_much])
@given(st.data())
def test_random_programs_hvp_against_finite_differences_of_grad(data):
    seed = data.draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    shapes = [tuple(data.draw(st.lists(st.sampled_from([2, 3, 1]), max_size=2)))
              for _ in range(data.draw(st.integers(1, 2)))]
    x0 = [np.array(np.round(rng.normal(size=s), 4)) for s in shapes]
    program = Builder(data, x0).program(rng)
    f = lambda *xs: run(program, xs)  # noqa: E731
    nums = tuple(range(len(x0)))
    vs = tuple(rng.normal(size=s) for s in shapes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = tg.hvp(f, argnums=nums)(*x0, vs)
        grad = tg.grad(f, argnums=nums)
        h = 1e-6
        up = grad(*[x + h * v for x, v in zip(x0, vs)])
        down = grad(*[x - h * v for x, v in zip(x0, vs)])
    for k, (a, u, d) in enumerate(zip(got, up, down)):
        want = (np.asarray(u) - np.asarray(d)) / (2 * h)
        scale = max(1.0, float(np.max(np.abs(want), initial=0.0)))
        np.testing.assert_allclose(a, want, rtol=2e-5, atol=2e-5 * scale,
                                   err_msg=f"input {k}, program {program}")
