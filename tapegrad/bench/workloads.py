"""The benchmark problems, each with a reference gradient computed in closed form or by
hand-written numpy backprop (never by an AD system).

A workload has a list of sizes; ``make(size)`` builds a :class:`Problem` holding the
inputs and the reference.  All data is float64 and drawn from a fixed seed, so every system
in a run, and every run, sees the same numbers.  The functions differentiated are those of
``tapegrad.bench.models``; the references here are their derivatives, written by hand.
"""
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from tapegrad.bench.models import loop_ops, rosenbrock_loop  # noqa: F401 - re-exported for tests


@dataclass
class Problem:
    workload: str
    size: str             # label shown in tables and used by --sizes
    scale: float          # a number for plots: problem size on the x axis (record: operations)
    data: dict            # the inputs, by name
    reference: object     # the expected gradient: an array or a list of arrays
    rtol: float = 1e-9
    atol: float = 1e-12


@dataclass
class Workload:
    name: str
    title: str
    sizes: tuple
    quick_sizes: tuple
    make: Callable = field(repr=False)
    series: bool = True   # the sizes are one problem scaled up (worth a time-vs-size plot)


def _rng():
    return np.random.default_rng(20261123)


# 1. the lecture function (MML eq. 5.109) and its closed-form derivative (eq. 5.110) -------

def lecture_derivative(x):
    e = np.exp(x ** 2)
    return 2 * x * (1 / (2 * np.sqrt(x ** 2 + e)) - np.sin(x ** 2 + e)) * (1 + e)


def _lecture(size, workload="lecture"):
    return Problem(workload, size, 1.0, {"x": 0.7}, float(lecture_derivative(0.7)))


# 2./3. Rosenbrock, vectorised and as a Python loop over scalars ---------------------------

def rosenbrock_grad(x):
    g = np.zeros_like(x)
    g[:-1] = -400.0 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2.0 * (1.0 - x[:-1])
    g[1:] += 200.0 * (x[1:] - x[:-1] ** 2)
    return g


def _rosenbrock(name):
    def make(size):
        x = _rng().uniform(-1.0, 1.0, int(size))
        return Problem(name, str(size), float(size), {"x": x}, rosenbrock_grad(x))
    return make


# 3b. a branch on a traced value that flips on every call, against the same work unbranched

def branchy_grad(x, branch=True):
    """The gradient of ``models.branchy`` (or ``branch_free``) at x, by hand."""
    g = rosenbrock_grad(x)
    g[0] += 2.0 * x[0] if x[0] > 0 or not branch else -2.0 * x[0]
    return g


def _branch(name):
    """Two points whose first coordinates differ in sign: a call is a gradient at each, so
    with ``branch-flip`` every gradient takes the other branch than the one before."""
    def make(size):
        x = _rng().uniform(-1.0, 1.0, int(size))
        x[0] = 0.5
        x2 = x.copy()
        x2[0] = -0.5
        flip = name == "branch-flip"
        return Problem(name, str(size), float(size), {"x": x, "x2": x2},
                       [branchy_grad(x, flip), branchy_grad(x2, flip)])
    return make


# 4. the MLP: sigmoid hidden layers, softmax cross-entropy ----------------------------------

def mlp_data(spec):
    """spec '784-256-128-10x64': layer widths and batch size.  Weights are stored
    ``(out, in)``, as in PyTorch's ``nn.Linear`` and most model code."""
    widths, batch = spec.split("x")
    sizes = [int(w) for w in widths.split("-")]
    rng = _rng()
    params = []
    for i, o in zip(sizes[:-1], sizes[1:]):
        params += [rng.normal(size=(o, i)) / np.sqrt(i), rng.normal(size=o) * 0.1]
    X = rng.normal(size=(int(batch), sizes[0]))
    Y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], int(batch))]
    return params, X, Y


def mlp_numpy_grad(params, X, Y):
    """Hand-written backprop of ``models.mlp_loss`` (the lectures' recurrences, vectorised
    over the batch): the layer ``h @ W.T + b`` has ``dW = g.T @ h`` and ``dh = g @ W``."""
    n, hs = X.shape[0], [X]
    for W, b in zip(params[0:-2:2], params[1:-2:2]):
        hs.append(1.0 / (1.0 + np.exp(-(hs[-1] @ W.T + b))))
    z = hs[-1] @ params[-2].T + params[-1]
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    g = (p - Y) / n
    grads = []
    for k in range(len(params) // 2 - 1, -1, -1):
        W, h = params[2 * k], hs[k]
        grads[:0] = [g.T @ h, g.sum(0)]
        if k:
            g = (g @ W) * h * (1.0 - h)
    return grads


def _mlp(size):
    params, X, Y = mlp_data(size)
    return Problem("mlp", size, float(sum(p.size for p in params)),
                   {"params": params, "X": X, "Y": Y}, mlp_numpy_grad(params, X, Y), rtol=1e-8)


# 5. many points: one gradient per point -----------------------------------------------------

def _many_points(size):
    rng = _rng()
    if size == "lecture-1e5":
        x = rng.uniform(-1.0, 1.0, 100_000)
        return Problem("many-points", size, 1e5, {"x": x}, lecture_derivative(x))
    if size == "rosenbrock10-1e4":
        X = rng.uniform(-1.0, 1.0, (10_000, 10))
        return Problem("many-points", size, 1e4, {"X": X}, np.stack([rosenbrock_grad(x) for x in X]))
    raise ValueError(size)


def mlp_numpy_per_example(params, X, Y):
    """Hand-written per-example gradients of ``models.mlp_loss`` at one example each: the
    batched backprop of ``mlp_numpy_grad`` without the sums over the batch (``dW`` an
    outer product per example)."""
    hs = [X]
    for W, b in zip(params[0:-2:2], params[1:-2:2]):
        hs.append(1.0 / (1.0 + np.exp(-(hs[-1] @ W.T + b))))
    z = hs[-1] @ params[-2].T + params[-1]
    p = np.exp(z - z.max(axis=1, keepdims=True))
    g = p / p.sum(axis=1, keepdims=True) - Y
    grads = []
    for k in range(len(params) // 2 - 1, -1, -1):
        W, h = params[2 * k], hs[k]
        grads[:0] = [g[:, :, None] * h[:, None, :], g]
        if k:
            g = (g @ W) * h * (1.0 - h)
    return grads


def _per_example(size):
    params, X, Y = mlp_data(size)
    return Problem("per-example", size, float(X.shape[0]), {"params": params, "X": X, "Y": Y},
                   mlp_numpy_per_example(params, X, Y), rtol=1e-8)


# 6. recording a long scalar program: the scalar loop at n = 1e4, 8e4 operations (quick: 1e3)

def _record(size):
    x = _rng().uniform(-1.0, 1.0, int(size))
    return Problem("record", str(size), float(loop_ops(int(size))), {"x": x}, rosenbrock_grad(x))


# 7. contractions: einsum, tensordot and dot of two n x n matrices, weighted and summed; the
# baseline is numpy's own function forward and backward by hand (einsum as users call it)

def einsum_grad(A, B, R):
    C = np.einsum("ij,jk->ik", A, B)
    np.sum(C * R)  # the forward pass the gradient belongs to
    return [np.einsum("ik,jk->ij", R, B), np.einsum("ij,ik->jk", A, R)]


def tensordot_grad(A, B, R):
    C = np.tensordot(A, B, axes=([0], [0]))
    np.sum(C * R)
    return [np.tensordot(B, R, axes=([1], [1])), np.tensordot(A, R, axes=([1], [0]))]


def dot_grad(A, B, R):
    C = np.dot(A, B)
    np.sum(C * R)
    return [np.dot(R, B.T), np.dot(A.T, R)]


CONTRACT_GRADS = {"einsum": einsum_grad, "tensordot": tensordot_grad, "dot": dot_grad}


def _contract(name):
    def make(size):
        n = int(size)
        A, B, R = _rng().normal(size=(3, n, n))
        return Problem(name, str(size), float(n), {"A": A, "B": B, "R": R}, CONTRACT_GRADS[name](A, B, R),
                       rtol=1e-10, atol=1e-10 * n)
    return make


# 8. second order: Hessian-vector products and a Hessian ------------------------------------

def rosenbrock_hessian(x):
    """The Rosenbrock Hessian, a tridiagonal matrix, in closed form."""
    n, i = len(x), np.arange(len(x) - 1)
    H = np.zeros((n, n))
    H[i, i] = 1200.0 * x[:-1] ** 2 - 400.0 * x[1:] + 2.0
    H[i + 1, i + 1] += 200.0
    H[i, i + 1] = H[i + 1, i] = -400.0 * x[:-1]
    return H


def rosenbrock_hvp(x, v):
    """The Rosenbrock Hessian times v in closed form, without forming the matrix."""
    d = 1200.0 * x[:-1] ** 2 - 400.0 * x[1:] + 2.0
    hv = np.zeros_like(x)
    hv[:-1] = d * v[:-1] - 400.0 * x[:-1] * v[1:]
    hv[1:] += 200.0 * v[1:] - 400.0 * x[:-1] * v[:-1]
    return hv


def mlp_numpy_hvp(params, X, Y, V, h=1e-5):
    """H v of ``models.mlp_loss`` by central differences of the hand-written gradient along v:
    what one writes without second-order AD (two gradients)."""
    up = mlp_numpy_grad([p + h * v for p, v in zip(params, V)], X, Y)
    down = mlp_numpy_grad([p - h * v for p, v in zip(params, V)], X, Y)
    return [(a - b) / (2 * h) for a, b in zip(up, down)]


def _hvp(size):
    rng = _rng()
    if size == "rosenbrock-1e4":
        x, v = rng.uniform(-1.0, 1.0, 10_000), rng.normal(size=10_000)
        return Problem("hvp", size, 1e4, {"x": x, "v": v}, rosenbrock_hvp(x, v), rtol=1e-10)
    params, X, Y = mlp_data(size.split("mlp-")[1])
    V = [rng.normal(size=p.shape) for p in params]
    # the reference: Richardson's extrapolation of two central differences, O(h^4) accurate
    coarse, fine = mlp_numpy_hvp(params, X, Y, V, 2e-3), mlp_numpy_hvp(params, X, Y, V, 1e-3)
    reference = [(4.0 * f - c) / 3.0 for c, f in zip(coarse, fine)]
    return Problem("hvp", size, float(sum(p.size for p in params)),
                   {"params": params, "X": X, "Y": Y, "V": V}, reference, rtol=1e-5, atol=1e-7)


def _hessian(size):
    x = _rng().uniform(-1.0, 1.0, int(size.split("-")[1]))
    return Problem("hessian", size, float(x.size), {"x": x}, rosenbrock_hessian(x), rtol=1e-10, atol=1e-9)


# 9. first-gradient latency: measured in a fresh process; the problem is the lecture one -----

WORKLOADS = {w.name: w for w in [
    Workload("lecture", "MML 5.109 at a scalar point: per-call overhead", ("scalar",), ("scalar",), _lecture),
    Workload("rosenbrock", "vectorised Rosenbrock", (100, 10_000, 1_000_000), (100, 10_000), _rosenbrock("rosenbrock")),
    Workload("rosenbrock-loop", "Rosenbrock as a Python loop over scalars", (10, 100, 1000), (10, 100),
             _rosenbrock("rosenbrock-loop")),
    Workload("branch-flip", "gradient of a function whose branch on a traced value flips on "
             "every call (two calls per sample)", (100, 10_000), (100,), _branch("branch-flip")),
    Workload("branch-free", "the same function and calls without the branch", (100, 10_000), (100,),
             _branch("branch-free")),
    Workload("mlp", "MLP as users write it: weights (out, in), h @ W.T + b, sigmoid and "
             "softmax cross-entropy written out; gradient of all weights and biases",
             ("784-256-128-10x64", "64-32-10x16"), ("784-256-128-10x64", "64-32-10x16"), _mlp),
    Workload("many-points", "one gradient per point", ("lecture-1e5", "rosenbrock10-1e4"),
             ("lecture-1e5", "rosenbrock10-1e4"), _many_points, series=False),
    Workload("per-example", "per-example gradients of the user-style MLP's loss, one example "
             "each (in_axes (None, 0, 0)); numpy: batched backprop by hand",
             ("64-32-10x256",), ("64-32-10x256",), _per_example, series=False),
    Workload("record", "recording a long scalar program (the Rosenbrock loop) for later gradients; "
             "baseline: evaluating it once on Python floats", (10_000,), (1000,), _record, series=False),
    *(Workload(name, f"gradient of sum(R * product) with the product of two n x n matrices "
               f"written as {name}; baseline: numpy's {name} forward and backward by hand",
               (16, 64, 256, 512), (16, 256), _contract(name)) for name in CONTRACT_GRADS),
    Workload("hvp", "Hessian-vector product: vectorised Rosenbrock, and the user-style MLP's loss "
             "in all its weights (numpy: closed form; for the MLP two hand-written gradients)",
             ("rosenbrock-1e4", "mlp-64-32-10x16"), ("rosenbrock-1e4", "mlp-64-32-10x16"), _hvp, series=False),
    Workload("hessian", "the full Hessian of the vectorised Rosenbrock (numpy: closed form)",
             ("rosenbrock-100",), ("rosenbrock-100",), _hessian, series=False),
    Workload("first-gradient", "fresh process, warm caches: import and one gradient", ("lecture",), ("lecture",),
             lambda size: _lecture(size, "first-gradient")),
]}
