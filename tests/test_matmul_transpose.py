"""A transposed matrix operand of a matmul (``X @ W.T``) reaches BLAS as a transpose flag.

The GATHER that ``.T`` records is left without live users, so it is never replayed, and
the matmul reads the untransposed source (by reference when it is an input).  Every
combination of flags is checked against central finite differences, in both directions,
with windows and reused transposes, and the replayed program is checked for the copy.
"""
import numpy as np
import pytest

import tapegrad as tg
import tapegrad.jit as J
import tapegrad.numpy as tnp
from conftest import numerical_grad

_R = np.random.default_rng(7)
A, B, C = _R.normal(size=(3, 4)), _R.normal(size=(5, 4)), _R.normal(size=(5, 3))

CASES = {
    "a @ b.T": (lambda a, b: tnp.sum(tnp.sin(a @ b.T)), (A, B)),
    "b @ a.T": (lambda a, b: tnp.sum(tnp.sin(b @ a.T)), (A, B)),
    "a.T @ a": (lambda a, b: tnp.sum(tnp.sin(a.T @ a)) + tnp.sum(b), (A, B)),
    "a.T @ c.T": (lambda a, c: tnp.sum(tnp.sin(a.T @ c.T)), (A, C)),
    "(a @ b.T).T @ a": (lambda a, b: tnp.sum(tnp.sin((a @ b.T).T @ a)), (A, B)),
    "a @ a.T": (lambda a, b: tnp.sum(tnp.sin(a @ a.T)) + tnp.sum(b), (A, B)),
    "vector @ b.T": (lambda a, b: tnp.sum(tnp.sin(a[0] @ b.T)) + tnp.sum(a.T @ a[:, 0]), (A, B)),
    "window @ b.T": (lambda a, b: tnp.sum(tnp.sin(a[1:] @ b.T)), (A, B)),
    "b.T also used elsewhere": (lambda a, b: tnp.sum(tnp.sin(a @ b.T)) + tnp.sum(b.T * 2.0), (A, B)),
    "batched @ b.T": (lambda a, b: tnp.sum(tnp.sin(tnp.reshape(a, (3, 1, 4)) @ b.T)), (A, B)),
}


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("argnum", [0, 1])
def test_transposed_operands_differentiate_correctly(name, argnum):
    f, args = CASES[name]
    grad = tg.grad(f, argnums=argnum)
    for scale in (1.0, 0.5):  # the second call replays the recorded tape
        at = [a * scale for a in args]
        g = grad(*at)
        fd = numerical_grad(lambda v: f(*[v if i == argnum else a for i, a in enumerate(at)]), at[argnum])
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(tg.record(f, *at).forward(*at), f(*at), rtol=1e-12)


def test_x_at_w_transposed_replays_no_copy():
    """The MLP layer as users write it: weights (out, in), ``X @ W.T``."""
    X, W = _R.normal(size=(6, 4)), _R.normal(size=(3, 4))
    tape = tg.record(lambda W, X: tnp.sum(tnp.tanh(X @ W.T)), W, X)
    replayed = [J.NAMES[op] for op in tape._prog[:, 0]]
    assert "GATHER" not in replayed and "MATMUL" in replayed
    assert sorted(tape._slots) == sorted(int(n) for n in tape.inputs)  # W and X by reference
    assert ".T" in str(tape)
    g = tape.gradient(W, X)
    np.testing.assert_allclose(g, (X.T @ (1.0 - np.tanh(X @ W.T) ** 2)).T, rtol=1e-12)
