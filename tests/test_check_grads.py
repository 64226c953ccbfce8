"""tg.check_grads: passes on correct derivatives, fails (AssertionError) on wrong ones.

Three groups:

* it passes on correct functions: the lecture's MML 5.109, an MLP loss with a dict of
  parameters, namedtuples and dataclasses, float32 arguments, non-scalar outputs, and a
  sweep over today's op families (these are ordinary op tests written with check_grads);
* the checker self-test: a deliberately wrong derivative makes it fail.  The gradients
  that ``tapegrad.value_and_grad`` returns are corrupted by wrapping
  ``tapegrad.api._Transformed.__call__`` (a wrong factor, one leaf, one element, a missing
  transpose, a wrong dtype or shape, a wrong value), which is what a wrong op rule
  produces; the kernels themselves are not touched;
* what it refuses: second order and forward mode (issue 11), bad arguments, and points
  where f is not finite.  Never a silent pass.
"""
import collections
import dataclasses
import re

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.api as api
import tapegrad.numpy as tnp
from tapegrad import pytree


# --- functions with correct derivatives --------------------------------------------------------

def mml_f(x):
    """MML eq. (5.109), the lecture's chain-rule example."""
    u = x ** 2 + tnp.exp(x ** 2)
    return tnp.sqrt(u) + tnp.cos(u)


def mlp_loss(params, X, Y):
    """A 2-layer sigmoid MLP with softmax cross-entropy, parameters in a dict."""
    h = tnp.sigmoid(X @ params["W1"] + params["b1"])
    logits = h @ params["W2"] + params["b2"]
    return tnp.mean(tnp.logsumexp(logits, axis=1) - tnp.sum(logits * Y, axis=1))


def mlp_data(rng, batch=5, n_in=4, n_hidden=6, n_out=3, dtype=np.float64):
    params = {"W1": rng.normal(size=(n_in, n_hidden)) / 2, "b1": rng.normal(size=n_hidden) / 4,
              "W2": rng.normal(size=(n_hidden, n_out)) / 2, "b2": rng.normal(size=n_out) / 4}
    params = {k: v.astype(dtype) for k, v in params.items()}
    X = rng.normal(size=(batch, n_in)).astype(dtype)
    Y = np.eye(n_out)[rng.integers(0, n_out, size=batch)]
    return params, X, Y


Layer = collections.namedtuple("Layer", "w b")


@dataclasses.dataclass
class Model:
    layers: list
    scale: float


def model_loss(m, x):
    h = x
    for layer in m.layers:
        h = tnp.tanh(h @ layer.w + layer.b)
    return m.scale * tnp.sum(h ** 2)


@pytest.mark.parametrize("x", [-1.3, -0.2, 0.0, 0.5, 1.2])
def test_passes_on_the_lecture_function(x):
    tg.check_grads(mml_f, (x,))
    tg.check_grads(lambda v: tnp.sum(mml_f(v)), (np.linspace(-1.5, 1.5, 7),))


def test_passes_on_an_mlp_loss_with_dict_parameters(rng):
    params, X, Y = mlp_data(rng)
    tg.check_grads(mlp_loss, (params, X, Y))            # every float argument, Y included
    tg.check_grads(mlp_loss, (params, X, Y), argnums=0, directions=5, seed=3)


def test_passes_on_namedtuple_and_dataclass_pytrees(rng):
    m = Model([Layer(rng.normal(size=(3, 4)), rng.normal(size=4)),
               Layer(rng.normal(size=(4, 2)), 0.3)], 0.7)
    tg.check_grads(model_loss, (m, rng.normal(size=(5, 3))))


def test_passes_with_python_floats_and_several_arguments():
    tg.check_grads(lambda x, y, z: x * y + tnp.sin(y) / z, (2.0, 3.0, 1.5))
    tg.check_grads(lambda x, y, z: x * y + tnp.sin(y) / z, (2.0, 3.0, 1.5), argnums=(2, 0))


def test_static_arguments_are_passed_unchanged(rng):
    def f(x, n, mode):
        y = x[:n] if mode == "head" else x[n:]
        return tnp.sum(tnp.exp(y))
    tg.check_grads(f, (rng.normal(size=6), 2, "head"))   # argnums=None skips int and str
    with pytest.raises(TypeError, match="argument 1 must be made of floats"):
        tg.check_grads(f, (rng.normal(size=6), 2, "head"), argnums=(0, 1))


def test_passes_on_non_scalar_outputs(rng):
    A = rng.normal(size=(4, 3))
    tg.check_grads(lambda x: tnp.tanh(A @ x), (rng.normal(size=3),))
    tg.check_grads(lambda x: tnp.softmax(x, axis=0), (rng.normal(size=(3, 2)),))
    tg.check_grads(lambda x, y: x[:, None] * y, (rng.normal(size=3), rng.normal(size=4)))
    tg.check_grads(lambda x: tnp.reshape(x, (1, 1)), (1.5,))    # size 1, not 0-d


def test_passes_on_float32_arguments_at_float32_tolerance(rng):
    params, X, Y = mlp_data(rng, dtype=np.float32)
    tg.check_grads(mlp_loss, (params, X, Y))


# --- op sweep: today's ops, written with check_grads ----------------------------------------

OPS = {
    "elementwise": lambda x: tnp.exp(tnp.sin(x)) * tnp.tanh(x) + tnp.cos(x) ** 3 + tnp.sigmoid(2 * x),
    "logs and roots": lambda x: tnp.log(x * x + 1.0) + tnp.log1p(x ** 2) + tnp.sqrt(x * x + 0.5),
    "powers": lambda x: (x * x + 1.0) ** 1.5 - 2.0 ** x + (x * x + 1.0) ** (0.5 * x),
    "broadcast": lambda x: x[:, None] / (2.0 + tnp.cos(x)[None, :]) - x[None, :],
    "maximum": lambda x: tnp.maximum(x, 0.3 * x[::-1]),
    "reductions": lambda x: tnp.sum(x, axis=0) + tnp.mean(x ** 2, axis=0) + tnp.max(x * 1.0, axis=0),
    "logsumexp": lambda x: tnp.logsumexp(x, axis=1, keepdims=True) * x,
    "softmax": lambda x: tnp.softmax(3.0 * x, axis=0),
    "matmul": lambda x: x @ x.T @ x + tnp.dot(x[0], x[0]),
    "indexing": lambda x: x[[0, 0, 1]] * x[::-1][:3] + x.T[0] @ x,
    "layout": lambda x: tnp.transpose(tnp.broadcast_to(x, (2,) + x.shape), (2, 0, 1)).reshape(-1),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(OPS))
def test_op_families(name, dtype, rng):
    fn = OPS[name]
    x = rng.uniform(0.2, 1.5, size=(4, 3)) * rng.choice([-1.0, 1.0], size=(4, 3))
    if name in ("elementwise", "logs and roots", "powers", "broadcast", "maximum"):
        x = x[:, 0].copy()
    tg.check_grads(fn, (x.astype(dtype),))


# --- the checker self-test: wrong derivatives must fail -------------------------------------

def corrupt(monkeypatch, change_grads=None, change_value=None):
    """Make every tapegrad.grad / value_and_grad return ``change_grads(argnum, grad)`` and
    ``change_value(value)``: the effect a wrong op rule would have."""
    original = api._Transformed.__call__

    def wrong(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        if self._mode != "value_and_grad":
            return out
        value, grads = out
        nums = (self._argnums,) if isinstance(self._argnums, int) else tuple(self._argnums)
        if change_grads is not None:
            grads = tuple(change_grads(k % len(args), g) for k, g in zip(nums, grads))
        if change_value is not None:
            value = change_value(value)
        return value, grads

    monkeypatch.setattr(api._Transformed, "__call__", wrong)


def scale_leaves(g, factor, only=None):
    leaves, tree = pytree.flatten(g)
    return pytree.unflatten(tree, [type(x)(x * factor) if isinstance(x, float) else
                                   (x * factor).astype(x.dtype) if only in (None, i) else x
                                   for i, x in enumerate(leaves)])


def test_self_test_a_wrong_factor_fails_and_the_message_says_where(monkeypatch, rng):
    x = rng.normal(size=5)
    tg.check_grads(mml_f, (x,))                      # correct: passes
    corrupt(monkeypatch, lambda k, g: g * 1.001)
    with pytest.raises(AssertionError) as info:
        tg.check_grads(mml_f, (x,))
    msg = str(info.value)
    assert "argument 0" in msg and "direction 0" in msg
    analytic = float(re.search(r"<gradient, v> = (\S+),", msg).group(1))
    numeric = float(re.search(r"extrapolated to h = 0 = (\S+) ", msg).group(1))
    assert analytic == pytest.approx(1.001 * numeric, rel=1e-7)  # both numbers, as computed


def test_self_test_names_the_argument_and_the_leaf(monkeypatch, rng):
    params, X, Y = mlp_data(rng)
    # params' leaves in order: W1, W2, b1, b2 (dict keys sorted); corrupt b1 only
    corrupt(monkeypatch, lambda k, g: scale_leaves(g, 1.01, only=2) if k == 0 else g)
    with pytest.raises(AssertionError, match=r"argument 0 \(the leaves that disagree on "
                                             r"their own: argument 0\['b1'\]\)"):
        tg.check_grads(mlp_loss, (params, X, Y))
    tg.check_grads(mlp_loss, (params, X, Y), argnums=(1, 2))   # X and Y are still right


def test_self_test_one_wrong_element_of_a_large_gradient(monkeypatch, rng):
    x = rng.normal(size=2000)

    def off_by_one_element(k, g):
        g = g.copy()
        g[1234] *= 1.05
        return g
    corrupt(monkeypatch, off_by_one_element)
    with pytest.raises(AssertionError, match="argument 0"):
        tg.check_grads(lambda v: tnp.sum(tnp.sin(v) * v), (x,))


def test_self_test_a_missing_transpose(monkeypatch, rng):
    """The classic matmul-rule bug: dW given as its transpose (shapes agree when square)."""
    W, x = rng.normal(size=(4, 4)), rng.normal(size=(3, 4))
    corrupt(monkeypatch, lambda k, g: g.T.copy() if k == 0 else g)
    with pytest.raises(AssertionError, match="argument 0"):
        tg.check_grads(lambda W, x: tnp.sum(tnp.tanh(x @ W)), (W, x))
    tg.check_grads(lambda W, x: tnp.sum(tnp.tanh(x @ W)), (W, x), argnums=1)


def test_self_test_non_scalar_output_wrong_vjp(monkeypatch, rng):
    corrupt(monkeypatch, lambda k, g: g * -1.0)
    with pytest.raises(AssertionError, match="random cotangent"):
        tg.check_grads(lambda x: tnp.exp(x) * 2.0, (rng.normal(size=(2, 3)),))


def test_self_test_float32_tolerance_is_float32(monkeypatch, rng):
    """An error of 1e-5 relative is float32 noise but a float64 bug; 1e-2 is a bug in both."""
    x = rng.normal(size=6)
    corrupt(monkeypatch, lambda k, g: scale_leaves(g, 1.0 + 1e-5))
    tg.check_grads(lambda v: tnp.sum(tnp.exp(v)), (x.astype(np.float32),))
    with pytest.raises(AssertionError):
        tg.check_grads(lambda v: tnp.sum(tnp.exp(v)), (x,))
    monkeypatch.undo()
    corrupt(monkeypatch, lambda k, g: scale_leaves(g, 1.01))
    with pytest.raises(AssertionError):
        tg.check_grads(lambda v: tnp.sum(tnp.exp(v)), (x.astype(np.float32),))


def test_self_test_wrong_dtype_shape_or_structure(monkeypatch, rng):
    x32 = rng.normal(size=3).astype(np.float32)
    corrupt(monkeypatch, lambda k, g: g.astype(np.float64))
    with pytest.raises(AssertionError, match="dtype float64, the argument shape .* dtype float32"):
        tg.check_grads(lambda v: tnp.sum(v * v), (x32,))
    monkeypatch.undo()
    corrupt(monkeypatch, lambda k, g: g[None])
    with pytest.raises(AssertionError, match=r"shape \(1, 3\)"):
        tg.check_grads(lambda v: tnp.sum(v * v), (x32,))
    monkeypatch.undo()
    corrupt(monkeypatch, lambda k, g: list(g) if isinstance(g, tuple) else g)
    with pytest.raises(AssertionError, match="structure"):
        tg.check_grads(lambda p: p[0] * p[1], ((1.0, 2.0),))


def test_self_test_wrong_value_of_the_replay(monkeypatch):
    corrupt(monkeypatch, change_value=lambda v: v + 1e-3)
    with pytest.raises(AssertionError, match="replayed from tapegrad's tape"):
        tg.check_grads(mml_f, (0.7,))


def test_self_test_nan_gradient_fails(monkeypatch):
    corrupt(monkeypatch, lambda k, g: float("nan"))
    with pytest.raises(AssertionError, match="nan"):
        tg.check_grads(mml_f, (0.7,))


# --- what check_grads refuses ----------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [dict(order=2), dict(modes=("fwd",)), dict(modes=("fwd", "rev")),
                                    dict(modes="fwd"), dict(order=3, modes=("rev",))])
def test_second_order_and_forward_mode_raise(kwargs):
    with pytest.raises(NotImplementedError, match=r"second order / forward mode are not supported "
                                                  r"yet \(issue 11\)"):
        tg.check_grads(mml_f, (0.3,), **kwargs)


@pytest.mark.parametrize("kwargs, error", [
    (dict(modes=()), ValueError), (dict(modes=("jvp",)), ValueError), (dict(order=0), ValueError),
    (dict(order=1.0), ValueError), (dict(directions=0), ValueError),
    (dict(argnums=3), ValueError), (dict(argnums=(0, 0)), ValueError), (dict(argnums="0"), TypeError)])
def test_bad_options_raise(kwargs, error):
    with pytest.raises(error):
        tg.check_grads(lambda x, y: x * y, (0.3, 2.0), **kwargs)


def test_bad_arguments_raise():
    with pytest.raises(TypeError, match="tuple of positional arguments"):
        tg.check_grads(mml_f, 0.3)
    with pytest.raises(ValueError, match="nothing to differentiate"):
        tg.check_grads(lambda n: 1.0, (3,))
    with pytest.raises(ValueError, match="not finite"):
        tg.check_grads(tnp.log, (0.0,))
    with pytest.raises(TypeError, match="must return a float"):
        tg.check_grads(lambda x: "x", (0.0,))


def test_deterministic_and_seeded(monkeypatch, rng):
    """The same seed draws the same directions: the same failure message, twice."""
    corrupt(monkeypatch, lambda k, g: g * 1.01)
    messages = []
    for _ in range(2):
        with pytest.raises(AssertionError) as info:
            tg.check_grads(lambda v: tnp.sum(tnp.sin(v)), (np.linspace(0, 1, 4),), seed=7)
        messages.append(str(info.value))
    assert messages[0] == messages[1] and "seed 7" in messages[0]


def test_docstring_examples_run():
    """The examples in check_grads' docstring (pytest collects docs/, not module doctests)."""
    import doctest
    import tapegrad.checking
    result = doctest.testmod(tapegrad.checking)
    assert result.attempted >= 3 and result.failed == 0


def test_a_kink_closer_than_the_smallest_step_fails_as_documented():
    """Finite differences see maximum(x, 0) at x = 1e-9 as a kink (slope 1/2), tapegrad
    the slope 1 of its side: the check fails, as the docstring says; at the kink itself
    both give the even split, and a step away both give 1."""
    with pytest.raises(AssertionError, match="argument 0"):
        tg.check_grads(lambda x: tnp.maximum(x, 0.0), (1e-9,))
    tg.check_grads(lambda x: tnp.maximum(x, 0.0), (0.0,))
    tg.check_grads(lambda x: tnp.maximum(x, 0.0), (0.01,))
