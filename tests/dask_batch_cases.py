"""Functions and oracles for the tests of batch_grad on dask arrays (not collected).

The oracle is the in-memory ``tg.batch_grad`` / ``batch_value_and_grad`` of the same
function at the computed arrays (itself equal to ``tg.grad`` per point, bit for bit:
tests/test_batch.py); equality is exact, NaN where NaN.
"""
import numpy as np

import tapegrad.numpy as tnp
from tapegrad import pytree
from tapegrad.bench.models import lecture, mlp_loss


def lecture_point(x):
    """The lecture function (MML eq. 5.109) of a scalar point."""
    return lecture(x, tnp)


def example_loss(params, x, y):
    """One example's softmax cross-entropy under the bench's user-style MLP."""
    return mlp_loss(params, x[None], y[None], tnp)


def branchy_point(x):
    """A branch on a traced value: points with x[0] > 0 take the first branch."""
    if x[0] > 0:
        return tnp.sum(tnp.sin(x) * x[1])
    return tnp.sum(tnp.cos(x)) - x[1] ** 3


def raises_on_large_point(x):
    """Raises at a point holding a value above 100 (a guard of the first point's tape)."""
    if tnp.max(x) > 100.0:
        raise ValueError("a point holds a value above 100")
    return tnp.sum(tnp.tanh(x) ** 2)


def masked_point(x):
    """A comparison of traced values used as a mask: evaluated point by point."""
    return tnp.sum(tnp.where(x > 0, x ** 2, -x))


def mlp_params(rng, sizes=(8, 6, 3)):
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        params += [rng.normal(size=(n_out, n_in)) / np.sqrt(n_in), 0.1 * rng.normal(size=n_out)]
    return params


def assert_same_tree(got, want):
    """Computed dask results against numpy ones: same structure, shapes, dtypes and bits."""
    got_leaves, got_tree = pytree.flatten(got)
    want_leaves, want_tree = pytree.flatten(want)
    assert got_tree == want_tree
    for g, w in zip(got_leaves, want_leaves):
        assert isinstance(g, np.ndarray), type(g)
        assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, w.shape, g.dtype, w.dtype)
        assert np.array_equal(g, w, equal_nan=True)



SCALE = 1.0


def scaled_point(x):
    """Reads the module global SCALE: a payload shipped before SCALE changes is stale."""
    return SCALE * tnp.sum(tnp.tanh(x) ** 2)
