"""The workloads' functions, written once, the way users write them.

Each function takes the array namespace it computes with as its last argument ``np``:
``numpy``, ``tapegrad.numpy``, ``autograd.numpy``, ``jax.numpy`` or :data:`torch_namespace`
(torch's own functions under numpy's names).  Every system runs these same lines; only
CasADi, which has no broadcasting, has its own MLP (``peers.Casadi.mlp``).

The headline rows use only what users write in models: weights stored ``(out, in)`` and
used as ``h @ W.T + b``, ``sigmoid`` written as ``1 / (1 + exp(-a))``, the cross-entropy
written out through a max-shifted log-sum-exp.  :func:`mlp_loss_fused` is the same model in
tapegrad's favourite form (weights ``(in, out)``, ``tnp.sigmoid``, ``tnp.logsumexp``); it
is an extra row, never the headline.

Invariants
----------
* No imports beyond the standard library: ``lecture`` is pasted into fresh processes for
  the first-gradient workload (``inspect.getsource``), so it must stand alone.
* The numpy references (``workloads``) are closed forms or hand-written backprop of exactly
  these functions, checked against finite differences of them run on numpy in the tests.
"""
from types import SimpleNamespace


def lecture(x, np):
    """MML eq. 5.109: f(x) = sqrt(x^2 + exp(x^2)) + cos(x^2 + exp(x^2))."""
    a = x ** 2 + np.exp(x ** 2)
    return np.sqrt(a) + np.cos(a)


def rosenbrock(x, np):
    """The Rosenbrock function of a 1-d array, vectorised."""
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosenbrock_rows(X, np):
    """The sum of the Rosenbrock functions of the rows of a 2-d array (separable by row)."""
    return np.sum(100.0 * (X[:, 1:] - X[:, :-1] ** 2) ** 2 + (1.0 - X[:, :-1]) ** 2)


def einsum_loss(A, B, R, np):
    """sum(R * (A B)), the product written as einsum (the contraction workloads)."""
    return np.sum(np.einsum("ij,jk->ik", A, B) * R)


def tensordot_loss(A, B, R, np):
    """sum(R * (Aᵀ B)), the product written as tensordot over the first axes."""
    return np.sum(np.tensordot(A, B, axes=([0], [0])) * R)


def dot_loss(A, B, R, np):
    """sum(R * (A B)), the product written as dot."""
    return np.sum(np.dot(A, B) * R)


def rosenbrock_loop(x):
    """The Rosenbrock function as a Python loop over scalars: a long tape of scalar entries
    (8 operations per element)."""
    s = 0.0
    for i in range(len(x) - 1):
        s = s + 100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2
    return s


def branchy(x, np):
    """Rosenbrock plus a term whose sign a Python branch on the traced x[0] chooses (a
    guard in tapegrad); the branch comes first, as when code picks a formula."""
    if x[0] > 0:
        return rosenbrock(x, np) + x[0] ** 2
    return rosenbrock(x, np) - x[0] ** 2


def branch_free(x, np):
    """``branchy``'s work without the branch."""
    return rosenbrock(x, np) + x[0] ** 2


def loop_ops(n):
    """The number of arithmetic operations ``rosenbrock_loop`` performs on n elements."""
    return 8 * (n - 1)


def mlp_loss(params, X, Y, np):
    """Sigmoid hidden layers, softmax cross-entropy averaged over the batch.

    ``params`` is ``[W1, b1, W2, b2, ...]`` with each ``W`` of shape ``(out, in)``."""
    h = X
    for W, b in zip(params[0:-2:2], params[1:-2:2]):
        h = 1 / (1 + np.exp(-(h @ W.T + b)))
    z = h @ params[-2].T + params[-1]
    m = np.max(z, axis=1, keepdims=True)
    lse = m + np.log(np.sum(np.exp(z - m), axis=1, keepdims=True))
    return -np.sum(Y * (z - lse)) / X.shape[0]


def mlp_loss_fused(params, X, Y, tnp):
    """The same model in tapegrad's favourite form: each ``W`` stored ``(in, out)``, used as
    ``h @ W``, with the fused ``tnp.sigmoid`` and ``tnp.logsumexp`` entries."""
    h = X
    for W, b in zip(params[0:-2:2], params[1:-2:2]):
        h = tnp.sigmoid(h @ W + b)
    z = h @ params[-2] + params[-1]
    return -tnp.sum(Y * (z - tnp.logsumexp(z, axis=1, keepdims=True))) / X.shape[0]


def torch_namespace():
    """torch's functions under numpy's names (``torch.max`` with an axis returns indices
    too, so ``max`` is ``torch.amax``)."""
    import torch
    return SimpleNamespace(exp=torch.exp, log=torch.log, sqrt=torch.sqrt, cos=torch.cos,
                           sum=torch.sum, max=torch.amax)
