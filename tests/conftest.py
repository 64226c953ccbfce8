"""Shared helpers for the tapegrad test suite.

* :func:`numerical_grad` - central finite differences in float64, step ~1e-6 relative.
* :func:`assert_grad_matches_fd` - compare an analytic gradient with :func:`numerical_grad`.
* ``rng`` - a numpy Generator with a fixed seed, fresh for every test.
* ``no_replay_kernels`` - makes any call of the numba replay kernels fail the test, so an
  error test can check that the error was raised in Python before a kernel ran.
"""
import numpy as np
import pytest

import tapegrad.jit as J

FD_REL_STEP = 1e-6
FD_RTOL = 1e-6


def numerical_grad(f, x, rel_step=FD_REL_STEP):
    """Central-difference gradient of scalar ``f`` at ``x`` (a float or a float array).

    Component i is perturbed by ``h_i = rel_step * max(1, |x_i|)``; the truncation error is
    O(h^2) and the rounding error O(eps * |f| / h), both far below 1e-6 relative for the
    smooth functions used here.  Returns a float for a scalar ``x``, else an array of
    ``x``'s shape (always float64).
    """
    scalar = np.ndim(x) == 0
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        h = rel_step * max(1.0, abs(x[i]))
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        g[i] = (float(f(xp)) - float(f(xm))) / (2.0 * h)
    return float(g) if scalar else g


def numerical_jacobian(f, x, rel_step=FD_REL_STEP):
    """Central-difference Jacobian of array-valued ``f``: shape f(x).shape + x.shape."""
    x = np.array(x, dtype=np.float64)
    out_shape = np.shape(f(x))
    jac = np.zeros(out_shape + x.shape)
    for i in np.ndindex(x.shape):
        h = rel_step * max(1.0, abs(x[i]))
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        col = (np.asarray(f(xp), dtype=np.float64) - np.asarray(f(xm), dtype=np.float64)) / (2.0 * h)
        jac[(Ellipsis,) + i] = col
    return jac


def assert_grad_matches_fd(f, x, g, rtol=FD_RTOL, atol=None):
    """Assert that ``g`` is the gradient of ``f`` at ``x`` up to finite-difference error.

    ``atol`` defaults to ``rtol`` times the largest gradient component (so components that
    are nearly zero compared with the rest are not held to a relative tolerance that the
    finite differences themselves cannot meet).
    """
    ref = numerical_grad(f, x)
    g = np.asarray(g, dtype=np.float64)
    assert g.shape == np.shape(ref)
    if atol is None:
        atol = rtol * max(1e-8, float(np.max(np.abs(ref), initial=0.0)))
    np.testing.assert_allclose(g, ref, rtol=rtol, atol=atol)


@pytest.fixture
def rng():
    """A numpy random Generator with a fixed seed (fresh per test, so tests are independent)."""
    return np.random.default_rng(20240607)


@pytest.fixture
def no_replay_kernels(monkeypatch):
    """Replace the numba replay kernels by functions that fail the test if called."""
    def boom(*args, **kwargs):
        raise AssertionError("a numba kernel ran; the error should have been raised before")

    for name in ("forward_sweep", "backward_sweep"):
        monkeypatch.setattr(J, name, boom)
