"""Functions and oracles for the Dask tests (not collected by pytest).

The oracle of ``value_and_grad_sum`` is in-memory ``tg.value_and_grad`` of each block,
added in the same tree as the Dask reduction (groups of ``split_every`` consecutive
results, left to right), so the two agree bit for bit; the whole-data ``value_and_grad``
agrees up to the order of the float additions.
"""
import numpy as np

import tapegrad as tg
import tapegrad.numpy as tnp


def mlp_sum(params, X, Y):
    """A one-hidden-layer MLP's softmax cross-entropy summed (not averaged) over the rows,
    written as users write it: weights (out, in), sigmoid and log-sum-exp written out."""
    W1, b1, W2, b2 = params
    h = 1 / (1 + tnp.exp(-(X @ W1.T + b1)))
    z = h @ W2.T + b2
    m = tnp.max(z, axis=1, keepdims=True)
    lse = m + tnp.log(tnp.sum(tnp.exp(z - m), axis=1, keepdims=True))
    return -tnp.sum(Y * (z - lse))


def branchy_sum(w, X):
    """A branch per block on a traced value: the tape recorded at the first block does not
    hold where the block's first column sums to a negative number."""
    s = tnp.sum(X[:, 0])
    if s > 0:
        return tnp.sum(tnp.sin(X @ w)) + s
    return tnp.sum(tnp.cos(X @ w)) - s


def raises_on_large(w, X):
    """Raises on any block holding a value above 100 (a guard on the first block's tape)."""
    if tnp.max(X) > 100.0:
        raise ValueError("a row holds a value above 100")
    return tnp.sum((X @ w) ** 2)


def masked_sum(w, X):
    """Uses a comparison of traced values as a mask: a value-dependent recording."""
    return tnp.sum(tnp.where(X @ w > 0, X @ w, 0.0))


SCALE = 1.0


def scaled_sum(w, X):
    """Reads the module global SCALE: a payload recorded before SCALE changes is stale."""
    return SCALE * tnp.sum(tnp.tanh(X @ w))


def mlp_problem(rng, n=1000, d=8, hidden=6, k=3):
    params = [rng.normal(size=(hidden, d)), rng.normal(size=hidden), rng.normal(size=(k, hidden)),
              rng.normal(size=k)]
    X = rng.normal(size=(n, d))
    Y = np.eye(k)[rng.integers(0, k, size=n)]
    return params, X, Y


def _add(parts):
    value, grads = parts[0]
    grads = list(grads) if isinstance(grads, list) else grads
    for v, g in parts[1:]:
        value = value + v
        grads = [a + b for a, b in zip(grads, g)] if isinstance(grads, list) else grads + g
    return value, grads


def blockwise(f, params, data, block_rows, split_every=8, argnums=0):
    """The in-memory oracle: value_and_grad of each block of rows, added as the Dask tree adds."""
    vg = tg.value_and_grad(f, argnums)
    n = data[0].shape[0]
    parts = [vg(params, *(np.asarray(d[s:s + block_rows]) for d in data))
             for s in range(0, n, block_rows)]
    while len(parts) > 1:
        parts = [_add(parts[i:i + split_every]) for i in range(0, len(parts), split_every)]
    return parts[0]


def assert_same(result, expected):
    """Bit for bit (NaN where NaN): the value and every gradient leaf."""
    value, grads = result
    np.testing.assert_array_equal(value, expected[0])
    grads = grads if isinstance(grads, list) else [grads]
    ref = expected[1] if isinstance(expected[1], list) else [expected[1]]
    assert len(grads) == len(ref)
    for g, r in zip(grads, ref):
        assert isinstance(g, np.ndarray) and g.shape == r.shape and g.dtype == r.dtype
        np.testing.assert_array_equal(g, r)


def assert_close(result, expected, rtol=1e-12):
    value, grads = result
    np.testing.assert_allclose(value, expected[0], rtol=rtol)
    grads = grads if isinstance(grads, list) else [grads]
    ref = expected[1] if isinstance(expected[1], list) else [expected[1]]
    for g, r in zip(grads, ref):
        np.testing.assert_allclose(g, r, rtol=rtol, atol=rtol * float(np.max(np.abs(r))))
