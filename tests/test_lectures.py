"""Worked examples from the lecture notes, checked against their closed forms.

* lecture 004 (MML eq. 5.109 / 5.110): f(x) = sqrt(x^2 + e^{x^2}) + cos(x^2 + e^{x^2});
* lecture 003: the chain-rule examples and the 2-layer sigmoid/softmax network;
* lecture 001: the MLP backward recurrences with an L2 penalty, written out in numpy;
* a long scalar loop (Rosenbrock over x[i]) against its closed-form gradient.
"""
import math

import numpy as np
import pytest

import tapegrad as tg
from tapegrad.bench.workloads import rosenbrock_loop  # the function; the oracle is below
import tapegrad.numpy as tnp
from conftest import assert_grad_matches_fd

# --- lecture 004: MML 5.109 / 5.110 ---------------------------------------------------------


def mml_f(x):
    """MML eq. (5.109)."""
    u = x ** 2 + tnp.exp(x ** 2)
    return tnp.sqrt(u) + tnp.cos(u)


def mml_df(x):
    """MML eq. (5.110), the closed-form derivative of (5.109)."""
    e = math.exp(x * x)
    u = x * x + e
    return 2.0 * x * (1.0 / (2.0 * math.sqrt(u)) - math.sin(u)) * (1.0 + e)


@pytest.mark.parametrize("x", [-1.3, -0.7, -0.2, 0.0, 0.25, 0.5, 0.9, 1.2, 1.6])
def test_mml_5_109_gradient_is_5_110(x):
    value, slope = tg.value_and_grad(mml_f)(x)
    u = x * x + math.exp(x * x)
    assert value == pytest.approx(math.sqrt(u) + math.cos(u), rel=1e-12, abs=1e-15)
    assert slope == pytest.approx(mml_df(x), rel=1e-12, abs=1e-15)


def test_mml_5_109_one_tape_serves_all_points():
    g = tg.grad(mml_f)
    xs = [-1.1, 0.3, 0.8, 1.4]
    for x in xs:
        assert g(x) == pytest.approx(mml_df(x), rel=1e-12, abs=1e-15)
    assert len(g._tapes) == 1


def test_mml_5_109_elementwise_on_an_array():
    xs = np.linspace(-1.5, 1.5, 13)
    g = tg.grad(lambda x: tnp.sum(mml_f(x)))(xs)
    np.testing.assert_allclose(g, [mml_df(x) for x in xs], rtol=1e-12, atol=1e-15)


# --- lecture 003: chain rule ------------------------------------------------------------------

CHAIN_RULE_EXAMPLES = {
    # name: (f, closed-form derivative)
    "exp(x^2)": (lambda x: tnp.exp(x ** 2),
                 lambda x: 2 * x * math.exp(x * x)),
    # The lecture (003, item j) writes the result as 2x e^{x^2} e^{x^2}; the outer factor
    # is dy/dh2 = e^{h2} = e^{e^{x^2}}, as its own chain of h's shows.
    "exp(exp(x^2))": (lambda x: tnp.exp(tnp.exp(x ** 2)),
                      lambda x: 2 * x * math.exp(x * x) * math.exp(math.exp(x * x))),
    "1/exp(x^2)": (lambda x: 1.0 / tnp.exp(x ** 2),
                   lambda x: -1.0 / math.exp(x * x) ** 2 * 2 * x * math.exp(x * x)),
    "exp(sin(x^2))": (lambda x: tnp.exp(tnp.sin(x ** 2)),
                      lambda x: 2 * x * math.cos(x * x) * math.exp(math.sin(x * x))),
}


@pytest.mark.parametrize("name", sorted(CHAIN_RULE_EXAMPLES))
@pytest.mark.parametrize("x", [-1.2, -0.4, 0.0, 0.3, 0.8, 1.1])
def test_chain_rule_examples(name, x):
    f, df = CHAIN_RULE_EXAMPLES[name]
    assert tg.grad(f)(x) == pytest.approx(df(x), rel=1e-12, abs=1e-15)


def test_chain_rule_wrong_lecture_formula_is_not_what_we_compute():
    # Guard against the lecture's typo (2x e^{x^2} e^{x^2} for d/dx e^{e^{x^2}}) being
    # "fixed" into the library: the two differ for any x != 0.
    f, _ = CHAIN_RULE_EXAMPLES["exp(exp(x^2))"]
    x = 0.7
    assert tg.grad(f)(x) != pytest.approx(2 * x * math.exp(x * x) ** 2, rel=1e-3)


# --- lecture 003: the 2-layer sigmoid / softmax network ---------------------------------------

W1 = np.array([[0.1, 0.3, 0.8, -0.4],
               [-0.3, -0.2, 0.5, 0.5],
               [-0.3, 0.0, 0.5, 0.4],
               [0.2, 0.5, -0.9, 0.7]])
W2 = np.array([[0.5, 0.8, 0.2, 0.4],
               [0.5, 0.2, 0.3, -0.5]])
X = np.array([2.0, 5.0, 3.0, 3.0])
Y = np.array([1.0, 0.0])
B1 = np.zeros(4)
B2 = np.zeros(2)


def lecture_net(W1, b1, W2, b2, x, y):
    h1 = tnp.sigmoid(W1 @ x + b1)
    yhat = tnp.softmax(W2 @ h1 + b2)
    return tnp.sum((y - yhat) ** 2)


def test_lecture_net_preactivation():
    # a1 = W1 x: replayed from a tape (recorded at another x) and its Jacobian wrt x is W1
    tape = tg.record(lambda x, W1: W1 @ x, np.zeros(4), W1)
    np.testing.assert_allclose(tape.forward(X, W1), [2.9, 1.4, 2.1, 2.3], rtol=0, atol=1e-12)
    np.testing.assert_allclose(tg.jacobian(lambda x: W1 @ x)(X), W1, rtol=0, atol=0)


def test_lecture_net_loss_and_dw212():
    vg = tg.value_and_grad(lecture_net, argnums=(0, 1, 2, 3))
    loss, (gW1, gb1, gW2, gb2) = vg(W1, B1, W2, B2, X, Y)
    # lecture: L = (1 - 0.77)^2 + (0 - 0.23)^2 = 0.1058 (it rounds yhat to 2 decimals)
    assert abs(loss - 0.1058) < 5e-4
    # closed form: with y = [1, 0] and two classes, yhat2 = 1 - yhat1, so L = 2 (1 - yhat1)^2
    h1 = 1.0 / (1.0 + np.exp(-(W1 @ X)))
    a2 = W2 @ h1
    yhat1 = 1.0 / (1.0 + np.exp(-(a2[0] - a2[1])))
    assert loss == pytest.approx(2.0 * (1.0 - yhat1) ** 2, rel=1e-12)

    # The lecture's dL/dw_212 = -2 (y1 - yhat1) * yhat1 (1 - yhat1) * h12 = -0.065 follows only
    # the path through yhat1, i.e. it is the derivative of the first term (y1 - yhat1)^2.
    first_term = lambda W2: (Y[0] - tnp.softmax(W2 @ tnp.sigmoid(W1 @ X))[0]) ** 2  # noqa: E731
    d_first = tg.grad(first_term)(W2)
    assert abs(d_first[0, 1] - (-0.065)) < 5e-4
    assert d_first[0, 1] == pytest.approx(-2 * (1 - yhat1) * yhat1 * (1 - yhat1) * h1[1], rel=1e-12)
    # The second term (0 - yhat2)^2 = (1 - yhat1)^2 contributes exactly as much, so the
    # gradient of the whole loss is twice the lecture's number.
    assert gW2[0, 1] == pytest.approx(2 * d_first[0, 1], rel=1e-12)
    assert abs(gW2[0, 1] - 2 * (-0.065)) < 1e-3


@pytest.mark.parametrize("k", range(4))
def test_lecture_net_all_gradients_vs_finite_differences(k):
    params = [W1, B1, W2, B2]
    grads = tg.grad(lecture_net, argnums=(0, 1, 2, 3))(*params, X, Y)
    assert len(grads) == 4

    def loss_k(p):
        ps = list(params)
        ps[k] = p
        return lecture_net(*ps, X, Y)

    assert grads[k].shape == params[k].shape
    assert_grad_matches_fd(loss_k, params[k], grads[k], rtol=1e-6)


def test_lecture_net_gradient_wrt_input_vs_finite_differences():
    gx = tg.grad(lecture_net, argnums=4)(W1, B1, W2, B2, X, Y)
    assert_grad_matches_fd(lambda x: lecture_net(W1, B1, W2, B2, x, Y), X, gx)


# --- lecture 001: MLP backward recurrences with an L2 penalty ---------------------------------

ACTS = {
    "sigmoid": (tnp.sigmoid, lambda a, h: h * (1.0 - h)),
    "tanh": (tnp.tanh, lambda a, h: 1.0 - h * h),
}


def mlp_loss(params, X, Y, act, out, lam):
    """J = L(yhat, y) + lam * Omega with Omega = 1/2 sum ||W||^2; examples are columns."""
    f = ACTS[act][0]
    h = X
    for k, (W, b) in enumerate(params):
        a = W @ h + b[:, None]
        if k < len(params) - 1:
            h = f(a)
    n = X.shape[1]
    if out == "softmax_ce":
        logp = a - tnp.logsumexp(a, axis=0, keepdims=True)
        L = -tnp.sum(Y * logp) / n
    else:  # sigmoid output, squared error
        L = tnp.sum((tnp.sigmoid(a) - Y) ** 2) / n
    omega = 0.0
    for W, _ in params:
        omega = omega + 0.5 * tnp.sum(W * W)
    return L + lam * omega


def mlp_backprop(params, X, Y, act, out, lam):
    """Lecture 001's recurrences, by hand in numpy.

    forward:  a(k) = b(k) + W(k) h(k-1),  h(k) = f(a(k))
    backward: g <- grad_yhat J;  g <- g * f'(a(k));
              grad_b(k) = g (+ lam grad Omega = 0);  grad_W(k) = g h(k-1)^T + lam W(k);
              g <- W(k)^T g
    """
    sig = lambda a: 1.0 / (1.0 + np.exp(-a))  # noqa: E731
    f = {"sigmoid": sig, "tanh": np.tanh}[act]
    fprime = ACTS[act][1]
    n = X.shape[1]
    hs, As = [X], []
    for k, (W, b) in enumerate(params):
        a = W @ hs[-1] + b[:, None]
        As.append(a)
        if k < len(params) - 1:
            hs.append(f(a))
    a = As[-1]
    if out == "softmax_ce":
        z = a - a.max(axis=0, keepdims=True)
        yhat = np.exp(z) / np.exp(z).sum(axis=0, keepdims=True)
        g = (yhat - Y) / n          # grad wrt the output pre-activation (softmax + CE combined)
    else:
        yhat = sig(a)
        g = 2.0 * (yhat - Y) / n    # grad_yhat J
        g = g * yhat * (1.0 - yhat)  # g <- g * f'(a) for the sigmoid output layer
    grads = [None] * len(params)
    for k in range(len(params) - 1, -1, -1):
        W, _ = params[k]
        if k < len(params) - 1:
            g = g * fprime(As[k], hs[k + 1])
        grads[k] = (g @ hs[k].T + lam * W, g.sum(axis=1))
        g = W.T @ g
    return grads


@pytest.mark.parametrize("act", ["sigmoid", "tanh"])
@pytest.mark.parametrize("out", ["softmax_ce", "squared_error"])
@pytest.mark.parametrize("lam", [0.0, 0.03])
def test_mlp_matches_hand_written_backprop(rng, act, out, lam):
    sizes = [5, 7, 6, 3]  # 3 layers: 5 -> 7 -> 6 -> 3
    n = 8
    params = [(rng.normal(scale=0.7, size=(m, k)), rng.normal(scale=0.2, size=m))
              for k, m in zip(sizes[:-1], sizes[1:])]
    X = rng.normal(size=(sizes[0], n))
    labels = rng.integers(0, sizes[-1], size=n)
    Y = np.eye(sizes[-1])[:, labels]

    g = tg.grad(mlp_loss)
    got = g(params, X, Y, act, out, lam)
    want = mlp_backprop(params, X, Y, act, out, lam)
    assert isinstance(got, list) and len(got) == 3
    assert all(isinstance(layer, tuple) and len(layer) == 2 for layer in got)
    for (gW, gb), (wW, wb), (W, b) in zip(got, want, params):
        assert gW.shape == W.shape and gb.shape == b.shape
        np.testing.assert_allclose(gW, wW, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(gb, wb, rtol=1e-10, atol=1e-12)

    # a second batch of data replays the same tape (X, Y are traced inputs) and still agrees
    X2 = rng.normal(size=X.shape)
    got2 = g(params, X2, Y, act, out, lam)
    want2 = mlp_backprop(params, X2, Y, act, out, lam)
    assert len(g._tapes) == 1
    for (gW, gb), (wW, wb) in zip(got2, want2):
        np.testing.assert_allclose(gW, wW, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(gb, wb, rtol=1e-10, atol=1e-12)


def test_mlp_l2_penalty_gradient_is_lambda_w(rng):
    # The only difference between lam and lam = 0 is lam * W in every weight gradient, and
    # nothing in the bias gradients.
    sizes = [4, 5, 3]
    params = [(rng.normal(size=(m, k)), rng.normal(size=m)) for k, m in zip(sizes[:-1], sizes[1:])]
    X = rng.normal(size=(4, 6))
    Y = np.eye(3)[:, rng.integers(0, 3, size=6)]
    g = tg.grad(mlp_loss)
    g0 = g(params, X, Y, "tanh", "softmax_ce", 0.0)
    g1 = g(params, X, Y, "tanh", "softmax_ce", 0.25)
    for (a, b), (c, d), (W, _) in zip(g0, g1, params):
        np.testing.assert_allclose(c - a, 0.25 * W, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(d, b, rtol=1e-12, atol=1e-14)


# --- a long scalar loop: Rosenbrock -----------------------------------------------------------

def rosenbrock_closed_form(x):
    x = np.asarray(x, dtype=np.float64)
    r = x[1:] - x[:-1] ** 2
    value = float(np.sum(100.0 * r ** 2 + (1.0 - x[:-1]) ** 2))
    g = np.zeros_like(x)
    g[:-1] += -400.0 * x[:-1] * r - 2.0 * (1.0 - x[:-1])
    g[1:] += 200.0 * r
    return value, g


def test_rosenbrock_loop_vs_closed_form(rng):
    vg = tg.value_and_grad(rosenbrock_loop)
    for _ in range(3):
        x = rng.normal(size=400)
        value, g = vg(x)
        want_value, want_g = rosenbrock_closed_form(x)
        assert value == pytest.approx(want_value, rel=1e-12)
        np.testing.assert_allclose(g, want_g, rtol=1e-10, atol=1e-10)
    assert len(vg._tapes) == 1  # the loop does not depend on values: one tape, replayed


def test_rosenbrock_minimum_has_zero_gradient():
    value, g = tg.value_and_grad(rosenbrock_loop)(np.ones(50))
    assert value == 0.0
    np.testing.assert_array_equal(g, np.zeros(50))


def test_rosenbrock_small_vs_finite_differences(rng):
    x = rng.normal(size=6)
    assert_grad_matches_fd(rosenbrock_loop, x, tg.grad(rosenbrock_loop)(x))
