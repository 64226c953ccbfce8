"""Random programs with random branches, batched: ``batch_grad`` against ``grad`` per point,
in memory and on dask arrays.

Each example draws a random program over 1-3 inputs (``random_programs.Builder``), wraps it
in Python control flow on traced values: an ``if`` on the sum of the first input against a
threshold drawn between the points' sums (so both branches occur in one batch), and a
``while`` loop whose trip count depends on the value (0 to 3 trips).  It then evaluates
the gradient at N points (N from 1 to 24; each argument batched or shared, by a random
``in_axes``; random ``argnums``) three ways:

1. ``batch_value_and_grad`` (batched tape, variants for the points whose branches differ),
   in each layout (``batchprog.POINTS_MINOR`` on and off),
2. ``value_and_grad`` at each point,
3. central finite differences at the first point, when it is not within reach of a branch
   decision (the branches are where the function is not smooth).

(1) must equal (2) bit for bit, values and gradients, and (2) must agree with (3).
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tapegrad as tg
import tapegrad.batch as batch_module
import tapegrad.batchprog as batchprog
import tapegrad.numpy as tnp
from conftest import numerical_grad
from random_programs import Builder, run


def branchy(program, threshold, limit):
    """The program with an if and a while on traced values (plain numpy works too)."""
    def f(*xs):
        out = run(program, xs)
        if tnp.sum(xs[0]) > threshold:
            out = out * 1.5 + tnp.sum(tnp.sin(xs[0]))
        else:
            out = out - tnp.sum(xs[0] * xs[0])
        trips = 0
        while out < limit and trips < 3:
            out = out * 0.5 + 1.0
            trips += 1
        return out
    return f


def margins(f_plain, program, threshold, limit, xs):
    """How far the point is from each branch decision it took (in the decided values)."""
    out = run(program, xs)
    first = abs(float(np.sum(xs[0])) - threshold)
    out = out * 1.5 + np.sum(np.sin(xs[0])) if np.sum(xs[0]) > threshold else out - np.sum(xs[0] * xs[0])
    gaps = [first]
    for _ in range(3):
        gaps.append(abs(float(out) - limit))
        if not out < limit:
            break
        out = out * 0.5 + 1.0
    return min(gaps)


def same(a, b):
    return np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)


def check(data, cap, dask_chunks=None):
    seed = data.draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    n_in = data.draw(st.integers(1, 3))
    shapes = [tuple(data.draw(st.lists(st.sampled_from([1, 2, 3]), max_size=2))) for _ in range(n_in)]
    x0 = [np.round(rng.normal(size=s), 4) for s in shapes]
    program = Builder(data, x0).program(rng)
    n = data.draw(st.integers(1, 24))
    in_axes = tuple(data.draw(st.sampled_from([0, 0, None])) for _ in range(n_in))
    if all(a is None for a in in_axes):
        in_axes = (0,) + in_axes[1:]
    argnums = tuple(sorted(data.draw(st.sets(st.integers(0, n_in - 1), min_size=1))))
    points = [[x + (0.05 * rng.normal(size=x.shape) if a is not None else 0.0) for x, a in zip(x0, in_axes)]
              for _ in range(n)]
    sums = sorted(float(np.sum(p[0])) for p in points)
    threshold = float(np.round(sums[len(sums) // 2] - 1e-7, 9))  # between two points' sums
    outs = sorted(float(run(program, p)) for p in points)
    limit = outs[len(outs) // 2] + data.draw(st.sampled_from([-0.5, 0.0, 0.5, 2.0]))
    f = branchy(program, threshold, limit)
    args = [np.stack([p[k] for p in points]) if a is not None else x0[k] for k, a in enumerate(in_axes)]

    batch_module._MAX_CAP = cap
    if dask_chunks is not None:  # the batched arguments as dask arrays, in blocks of points
        import dask
        import dask.array as da
        args = [da.from_array(a, chunks=(dask_chunks,) + a.shape[1:]) if ax is not None else a
                for a, ax in zip(args, in_axes)]
    per_point = tg.value_and_grad(f, argnums=argnums)
    want = [per_point(*[p[k] if a is not None else x0[k] for k, a in enumerate(in_axes)]) for p in points]
    for minor in (True, False):  # each layout (a program points-minor can't be stays points-major)
        batchprog.POINTS_MINOR = minor
        try:
            if dask_chunks is not None:
                # first called on the points in reverse, so that this call ships the tape
                # cached there (recorded at the last point) without computing a point
                g = tg.batch_value_and_grad(f, argnums=argnums, in_axes=in_axes)
                g(*[a[::-1] if ax is not None else a for a, ax in zip(args, in_axes)])
                with dask.config.set(scheduler="threads"):
                    values, grads = dask.compute(*g(*args))
            else:
                values, grads = tg.batch_value_and_grad(f, argnums=argnums, in_axes=in_axes)(*args)
        finally:
            batchprog.POINTS_MINOR = True
        for i, (value, grad) in enumerate(want):
            assert same(values[i], value), (f"value at point {i} (points-minor {minor}): "
                                            f"batched {values[i]!r}, per point {value!r}")
            for k, (g_batch, g_point) in enumerate(zip(grads, grad)):
                assert same(g_batch[i], g_point), (
                    f"gradient {k} at point {i} of {n} (points-minor {minor}): batched "
                    f"{g_batch[i]!r}, per point {g_point!r}; program {program}")

    p0 = [p if a is not None else x for p, x, a in zip(points[0], x0, in_axes)]
    if margins(f, program, threshold, limit, p0) > 1e-3:
        _, g0 = per_point(*p0)
        for k, g in zip(argnums, g0):
            fd = numerical_grad(lambda v: f(*(p0[:k] + [v] + p0[k + 1:])), p0[k])
            scale = max(1.0, float(np.max(np.abs(fd))))
            np.testing.assert_allclose(g, fd, rtol=2e-5, atol=2e-5 * scale)


SETTINGS = settings(derandomize=True, max_examples=120, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


DEFAULT_CAP = batch_module._MAX_CAP


@pytest.mark.filterwarnings("ignore:.*does not depend on the differentiated")
@pytest.mark.filterwarnings("ignore:.*recorded again on")
@SETTINGS
@given(st.data())
def test_batch_equals_grad_per_point(data):
    # chunks of 1, 3 and the default: a point's result must not depend on its chunk
    try:
        check(data, data.draw(st.sampled_from([1, 3, DEFAULT_CAP])))
    finally:
        batch_module._MAX_CAP = DEFAULT_CAP


@pytest.mark.filterwarnings("ignore:.*does not depend on the differentiated")
@pytest.mark.filterwarnings("ignore:.*recorded again on")
@settings(SETTINGS, max_examples=30)
@given(st.data())
def test_batch_on_dask_arrays_equals_grad_per_point(data):
    """The same programs with the batched arguments as dask arrays in random blocks (threaded
    scheduler): each block runs the shipped tape, so a block's points may take other branches."""
    pytest.importorskip("dask.array")
    try:
        check(data, DEFAULT_CAP, dask_chunks=data.draw(st.integers(1, 9)))
    finally:
        batch_module._MAX_CAP = DEFAULT_CAP
