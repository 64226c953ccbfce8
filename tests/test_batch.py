"""batch_grad / batch_value_and_grad: JAX vmap(grad) semantics, equal to grad per point.

The reference throughout is ``tg.grad`` (or ``value_and_grad``) called at each point, and
equality is exact (``np.array_equal``): the batched tape must compute the very same
floats.  ``test_batch_random`` does the same for random programs with random branches.
Every test runs twice: with the points-minor layout for the programs it supports, and
with every program points-major (``batchprog.POINTS_MINOR``).
"""
import os
import threading
import warnings

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.batch as batch_module
import tapegrad.batchprog as batchprog
import tapegrad.numpy as tnp
from tapegrad.bench.models import lecture, mlp_loss, rosenbrock


@pytest.fixture(autouse=True, params=[True, False], ids=["points-minor", "points-major"])
def layout(request, monkeypatch):
    monkeypatch.setattr(batchprog, "POINTS_MINOR", request.param)
    return request.param


def per_point(f, argnums, in_axes, args):
    """grad at each point, stacked as batch_grad stacks it (a tuple per argnums tuple)."""
    n = next(np.shape(a)[0 if ax == 0 else ax] for a, ax in zip(args, in_axes) if ax is not None)
    g = tg.grad(f, argnums=argnums)
    rows = [g(*[a if ax is None else np.take(a, i, axis=ax) for a, ax in zip(args, in_axes)])
            for i in range(n)]
    if isinstance(argnums, int):
        return np.stack(rows)
    return tuple(np.stack([r[k] for r in rows]) for k in range(len(argnums)))


def test_lecture_function_at_many_points_equals_grad_bitwise(rng):
    x = rng.normal(size=2000)
    f = lambda x: lecture(x, tnp)  # noqa: E731
    got = tg.batch_grad(f)(x)
    assert got.shape == (2000,) and got.dtype == np.float64
    assert np.array_equal(got, per_point(f, 0, (0,), (x,)))


def test_rosenbrock_rows_equal_grad_bitwise_and_closed_form(rng):
    X = rng.normal(size=(300, 10))
    f = lambda x: rosenbrock(x, tnp)  # noqa: E731
    got = tg.batch_grad(f)(X)
    assert np.array_equal(got, per_point(f, 0, (0,), (X,)))
    x = X[7]  # the closed form of the Rosenbrock gradient
    want = np.zeros(10)
    want[:-1] = -400 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2 * (1 - x[:-1])
    want[1:] += 200 * (x[1:] - x[:-1] ** 2)
    np.testing.assert_allclose(got[7], want, rtol=1e-12, atol=1e-12)


def mlp(rng, sizes=(8, 6, 3)):
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        params += [rng.normal(size=(n_out, n_in)) / np.sqrt(n_in), 0.1 * rng.normal(size=n_out)]
    return params


def test_per_example_gradients_of_a_model_with_shared_parameters(rng):
    params = mlp(rng)
    X, Y = rng.normal(size=(40, 8)), np.eye(3)[rng.integers(0, 3, 40)]
    loss = lambda p, x, y: mlp_loss(p, x[None], y[None], tnp)  # noqa: E731
    grads = tg.batch_grad(loss, in_axes=(None, 0, 0))(params, X, Y)
    assert isinstance(grads, list) and [g.shape for g in grads] == [(40,) + p.shape for p in params]
    g = tg.grad(loss)
    for i in range(40):
        for got, want in zip(grads, g(params, X[i], Y[i])):
            assert np.array_equal(got[i], want)
    # the mean of the per-example gradients is the gradient of the mean loss
    total = tg.grad(lambda p: mlp_loss(p, X, Y, tnp))(params)
    for got, want in zip(grads, total):
        np.testing.assert_allclose(got.mean(axis=0), want, rtol=1e-12, atol=1e-14)


def test_value_and_grad_with_argnums_tuple_and_pytrees(rng):
    def f(p, x):
        return tnp.sum(tnp.tanh(p["w"] * x) + p["b"] * x ** 2)
    p = {"w": rng.normal(size=3), "b": np.float64(0.5)}
    X = rng.normal(size=(25, 3))
    values, (gp, gx) = tg.batch_value_and_grad(f, argnums=(0, 1), in_axes=(None, 0))(p, X)
    vg = tg.value_and_grad(f, argnums=(0, 1))
    assert values.shape == (25,) and gp["w"].shape == (25, 3) and gp["b"].shape == (25,)
    for i in range(25):
        value, (wp, wx) = vg(p, X[i])
        assert values[i] == value and np.array_equal(gx[i], wx)
        assert np.array_equal(gp["w"][i], wp["w"]) and gp["b"][i] == wp["b"]


def test_in_axes_picks_the_batch_axis_and_results_stack_first(rng):
    X = rng.normal(size=(3, 50))  # points along axis 1
    f = lambda x, c: tnp.sum(tnp.sin(x) * c)  # noqa: E731
    c = rng.normal(size=3)
    got = tg.batch_grad(f, in_axes=(1, None))(X, c)
    assert got.shape == (50, 3)
    assert np.array_equal(got, per_point(f, 0, (1, None), (X, c)))
    neg = tg.batch_grad(f, in_axes=(-1, None))(X, c)
    assert np.array_equal(neg, got)


def test_batched_and_shared_arguments_together(rng):
    f = lambda w, x, y: tnp.sum((x @ w.T - y) ** 2)  # noqa: E731
    W, X, Y = rng.normal(size=(2, 4)), rng.normal(size=(30, 4)), rng.normal(size=(30, 2))
    got = tg.batch_grad(f, argnums=(0, 1), in_axes=(None, 0, 0))(W, X, Y)
    want = per_point(f, (0, 1), (None, 0, 0), (W, X, Y))
    assert all(np.array_equal(a, b) for a, b in zip(got, want))


def test_mixed_branches_and_input_dependent_trip_counts(rng):
    def f(x):
        s = x[0] * x[1]
        if s > 0:
            s = s + tnp.sin(x[0])
        else:
            s = tnp.exp(s) - x[1] ** 3
        s = s * s  # >= 0, so the loop below ends
        while s < 4.0:  # 0 to many trips, depending on the point
            s = 1.3 * s + tnp.cos(x[1]) ** 2 + 0.1
        return s
    X = rng.uniform(-2, 2, size=(400, 2))
    values, grads = tg.batch_value_and_grad(f)(X)
    vg = tg.value_and_grad(f)
    for i in range(400):
        value, grad = vg(X[i])
        assert values[i] == value and np.array_equal(grads[i], grad)


def test_chunks_and_threads_do_not_change_results(rng, monkeypatch):
    X = rng.normal(size=(1001, 3))
    f = lambda x: tnp.sum(tnp.logaddexp(x, x[::-1]) * tnp.cumsum(x))  # noqa: E731
    want = tg.batch_grad(f)(X)
    for cap, threads in ((1, 1), (7, 2), (64, 3)):
        monkeypatch.setattr(batch_module, "_MAX_CAP", cap)
        monkeypatch.setattr(batch_module, "num_threads", lambda threads=threads: threads)
        assert np.array_equal(tg.batch_grad(f)(X), want), (cap, threads)
    assert np.array_equal(want, per_point(f, 0, (0,), (X,)))


def test_eight_python_threads_share_one_batched_function(rng):
    g = tg.batch_grad(lambda x, c: tnp.sum(tnp.exp(-x * x) * c), in_axes=(0, None))
    data = [(rng.normal(size=(300, 4)), rng.normal(size=4)) for _ in range(8)]
    want = [g(X, c) for X, c in data]
    results, errors = [None] * 8, []

    def worker(k):
        try:
            for _ in range(20):
                results[k] = g(*data[k])
                assert np.array_equal(results[k], want[k])
        except Exception as err:  # reported below: a thread's exception is not the test's
            errors.append(err)
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert all(np.array_equal(r, w) for r, w in zip(results, want))


def test_empty_batch_gives_empty_results_of_the_right_shapes(rng):
    params = mlp(rng)
    loss = lambda p, x, y: mlp_loss(p, x[None], y[None], tnp)  # noqa: E731
    values, (gp, gx) = tg.batch_value_and_grad(loss, argnums=(0, 1), in_axes=(None, 0, 0))(
        params, np.zeros((0, 8)), np.zeros((0, 3)))
    assert values.shape == (0,) and gx.shape == (0, 8)
    assert [g.shape for g in gp] == [(0,) + p.shape for p in params]
    assert tg.batch_grad(lambda x: tnp.sum(x))(np.zeros((0, 5))).shape == (0, 5)


def test_nan_at_one_point_stays_at_that_point(rng):
    X = rng.normal(size=(6, 3))
    X[2, 1] = np.nan
    f = lambda x: tnp.sum(tnp.sin(x) * x[0]) + tnp.sum(x @ x)  # noqa: E731
    got = tg.batch_grad(f)(X)
    assert np.isnan(got[2]).any() and not np.isnan(np.delete(got, 2, axis=0)).any()
    assert np.array_equal(got, per_point(f, 0, (0,), (X,)), equal_nan=True)


@pytest.mark.parametrize("in_axes, args, match", [
    (0, (np.ones((5, 2)), np.ones((4, 2))), "argument 0 has 5 .* argument 1 has 4"),
    ((0,), (np.ones((5, 2)), np.ones((5, 2))), "in_axes has 1 entries but .* 2 positional"),
    ((None, None), (np.ones((5, 2)), np.ones((5, 2))), "batches no argument"),
    ((0, 2), (np.ones((5, 2)), np.ones((5, 2))), "in_axes 2 is out of range for argument 1"),
    (0, (1.0, np.ones((5, 2))), "argument 0 is batched .* not an array"),
])
def test_bad_batches_are_refused_before_anything_runs(in_axes, args, match):
    with pytest.raises(ValueError, match=match):
        tg.batch_grad(lambda a, b: tnp.sum(a * b), in_axes=in_axes)(*args)


def test_bad_in_axes_and_functions_are_refused_when_wrapping():
    with pytest.raises(TypeError, match="in_axes"):
        tg.batch_grad(lambda x: x, in_axes="rows")
    with pytest.raises(TypeError, match="each entry of in_axes"):
        tg.batch_grad(lambda x: x, in_axes=(0.5,))
    with pytest.raises(TypeError, match="callable"):
        tg.batch_grad(3)


def test_value_dependent_functions_are_evaluated_point_by_point(rng):
    f = lambda x: tnp.sum(tnp.where(x > 0, x ** 2, -x))  # a mask: not replayable elsewhere  # noqa: E731
    X = rng.normal(size=(20, 3))
    with pytest.warns(tg.TapegradWarning, match="each point is evaluated on its own"):
        got = tg.batch_grad(f)(X)
    assert np.array_equal(got, np.where(X > 0, 2 * X, -1.0))


def test_batched_integer_leaves_are_evaluated_point_by_point(rng):
    f = lambda x, k: tnp.sum(x[k] ** 2)  # noqa: E731  (k indexes: baked into each tape)
    X, K = rng.normal(size=(10, 4)), rng.integers(0, 4, size=10)
    with pytest.warns(tg.TapegradWarning, match="non-float leaves"):
        got = tg.batch_grad(f)(X, K)
    want = np.zeros((10, 4))
    want[np.arange(10), K] = 2 * X[np.arange(10), K]
    assert np.array_equal(got, want)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_fork_after_batched_gradients_is_safe(rng):
    """tapegrad's threads are plain Python threads, never numba's OpenMP layer, so a forked
    child can compute batched gradients (GNU OpenMP would abort it)."""
    f = tg.batch_grad(lambda x: tnp.sum(tnp.sin(x) ** 2))
    X = rng.normal(size=(5000, 3))
    want = f(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads running
        pid = os.fork()
    if pid == 0:  # the child: exit code says whether it got the same gradients
        try:
            os._exit(0 if np.array_equal(f(X), want) else 3)
        except BaseException:
            os._exit(4)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status


def test_batch_grad_of_a_function_that_takes_gradients(rng):
    """grad inside f is inlined into f's tape (second order), which batches like any tape."""
    g = lambda x: tnp.sum(tnp.sin(x) * x ** 2)  # noqa: E731
    f = lambda x: tnp.sum(tg.grad(g)(x) ** 2)  # noqa: E731
    X = rng.normal(size=(30, 3))
    assert np.array_equal(tg.batch_grad(f)(X), per_point(f, 0, (0,), (X,)))


def test_cache_false_records_every_point_without_a_warning(rng):
    calls = []

    def f(x):
        calls.append(1)  # a side effect tapegrad cannot see: the reason for cache=False
        return tnp.sum(x ** 3)
    X = rng.normal(size=(6, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = tg.batch_grad(f, cache=False)(X)
    assert np.array_equal(got, 3 * X ** 2) and len(calls) == 6  # once per point
