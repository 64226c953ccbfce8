"""The two layouts of a batched program (``tapegrad.batchprog``): which programs get the
points-minor one, and the points-minor loops that must keep each point's exact order of
float operations (``jit/soa_rules.py``): broadcast zips, sums over rows of every length
and over other axes, gathers, concatenation, where, guards.  Equality is bitwise here
(the sign of zero included), against ``value_and_grad`` at each point."""
import numpy as np
import pytest

import tapegrad as tg
import tapegrad.batch as batch_module
import tapegrad.batchprog as batchprog
import tapegrad.numpy as tnp
import test_ops
from tapegrad import pytree
from tapegrad.bench.models import mlp_loss, rosenbrock


def bits(a):
    return np.ascontiguousarray(a, np.float64).view(np.int64)


def check_bitwise(f, *args, in_axes=0, argnums=0):
    """batch_value_and_grad of f equals value_and_grad at each point, bit for bit, in both
    layouts; returns the batched gradients."""
    nums = argnums if isinstance(argnums, tuple) else (argnums,)
    n = next(np.shape(a)[0] for a, ax in zip(args, in_axes if isinstance(in_axes, tuple)
                                              else (in_axes,) * len(args)) if ax is not None)
    axes = in_axes if isinstance(in_axes, tuple) else (in_axes,) * len(args)
    vg = tg.value_and_grad(f, argnums=nums)
    want = [vg(*[a if ax is None else a[i] for a, ax in zip(args, axes)]) for i in range(n)]
    for minor in (True, False):
        batchprog.POINTS_MINOR = minor
        try:
            values, grads = tg.batch_value_and_grad(f, argnums=nums, in_axes=in_axes)(*args)
        finally:
            batchprog.POINTS_MINOR = True
        for i, (value, grad) in enumerate(want):
            assert bits(values[i]) == bits(value), (minor, i)
            for g, h in zip(pytree.flatten(grads)[0], pytree.flatten(grad)[0]):
                assert np.array_equal(bits(g[i]), bits(h)), (minor, i, g[i], h)
    return grads


def plan_of(f, *args):
    tg.batch_grad(f)(*args)
    tape = tg.record(f, args[0][0])
    return batchprog.plan_for(tape, 64, 64)


def test_elementwise_programs_and_reductions_are_points_minor_matmuls_are_not(rng):
    assert plan_of(lambda x: rosenbrock(x, tnp), rng.normal(size=(5, 10))).minor
    assert plan_of(lambda x: tnp.sum(tnp.cumsum(x) * tnp.max(x)), rng.normal(size=(5, 4))).minor
    assert not plan_of(lambda x: tnp.sum(x @ x), rng.normal(size=(5, 3))).minor
    batchprog.POINTS_MINOR = False
    try:
        assert not plan_of(lambda x: rosenbrock(x, tnp), rng.normal(size=(5, 10))).minor
    finally:
        batchprog.POINTS_MINOR = True


@pytest.mark.parametrize("m", [1, 7, 8, 9, 16, 127, 128, 129, 300])
def test_sums_of_rows_of_every_length_add_in_the_one_point_order(rng, m):
    """SUM over contiguous rows: 128-element blocks of 8 lanes and a remainder, per point."""
    X = rng.normal(size=(37, m)) * np.exp(rng.normal(size=(37, m)) * 8)  # wide magnitudes
    X[3, 0] = -0.0
    check_bitwise(lambda x: tnp.sum(tnp.sin(x) * x) * 0.5, X)
    check_bitwise(lambda x: tnp.sum(tnp.sum(x.reshape(1, m) * 0.25, axis=1) ** 2), X)


def test_sums_over_other_axes_and_means(rng):
    X = rng.normal(size=(21, 3, 5, 4))
    check_bitwise(lambda x: tnp.sum(tnp.sum(x, axis=1) ** 2) + tnp.sum(tnp.mean(x, axis=(0, 2)) ** 3), X)
    check_bitwise(lambda x: tnp.sum(tnp.sum(x * x, axis=-1) * tnp.max(x, axis=0).sum()), X)


def test_broadcast_zips_sum_their_adjoints_per_point(rng):
    X, c = rng.normal(size=(19, 3, 4)), rng.normal(size=4)
    check_bitwise(lambda x, c: tnp.sum(tnp.tanh(x * c - x[:, :1]) * x[0]), X, c, in_axes=(0, None),
                  argnums=(0, 1))
    check_bitwise(lambda x: tnp.sum(x[:, None, :] * x[None, :, 1:2] + x.sum()), X)
    check_bitwise(lambda x: tnp.sum(tnp.maximum(x, x[1]) ** 2 - 0.0 * x[0, 0]), X)  # ties, -0.0


def test_views_gathers_concatenation_where_and_guards(rng):
    X = rng.normal(size=(41, 6))

    def f(x):
        y = tnp.concatenate([x[::2] * 2.0, tnp.exp(x[1:3]), x.T[::-1]])
        z = tnp.where(np.arange(10) % 3 == 0, y[:10], y[1:11] ** 2)
        if z[0] > 0.0:
            z = z * tnp.logsumexp(x)
        return tnp.sum(tnp.softmax(z) * tnp.cumprod(x[:4] + 1.0)[0] + tnp.cumsum(z)[-1])
    check_bitwise(f, X)


def test_scalar_programs_in_chunks_of_every_size(rng, monkeypatch):
    def f(x):
        s = 0.0
        for i in range(len(x) - 1):
            s = s + 100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2
        return s
    X = rng.normal(size=(203, 5))
    for cap in (1, 3, 8, 4096):
        monkeypatch.setattr(batch_module, "_MAX_CAP", cap)
        check_bitwise(f, X)


def test_shared_arguments_are_transposed_into_points_minor_blocks(rng):
    W, b, X = rng.normal(size=(3, 4)), rng.normal(size=3), rng.normal(size=(50, 4))
    f = lambda w, b, x: tnp.sum(tnp.tanh((w * x).sum(axis=1) + b) ** 2)  # noqa: E731
    check_bitwise(f, W, b, X, in_axes=(None, None, 0), argnums=(0, 1, 2))


def test_per_example_mlp_stays_points_major_and_exact(rng):
    params = [rng.normal(size=(4, 3)), rng.normal(size=4), rng.normal(size=(2, 4)), rng.normal(size=2)]
    X, Y = rng.normal(size=(9, 3)), np.eye(2)[rng.integers(0, 2, 9)]
    loss = lambda p, x, y: mlp_loss(p, x[None], y[None], tnp)  # noqa: E731
    check_bitwise(loss, params, X, Y, in_axes=(None, 0, 0))


@pytest.mark.parametrize("name, fn, shapes, domain", test_ops.PARAMS)
def test_op_batched_points_major(name, fn, shapes, domain):
    """Every op through the points-major sweeps (``test_ops.test_op_batched`` runs each in
    the layout it gets by default: points-minor where supported)."""
    batchprog.POINTS_MINOR = False
    try:
        test_ops.test_op_batched(name, fn, shapes, domain)
    finally:
        batchprog.POINTS_MINOR = True
