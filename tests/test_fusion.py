"""Fused elementwise segments (``tapegrad.fusion``, ``tapegrad.jit.fusion``) give the plain
sweeps' results bit for bit, and the plain results are right.

Each check records the same function twice, once with fusion off and once with it forced
on for small arrays and small chunks (``FUSION``), so that chunk boundaries, the last
partial chunk, shifted views of one input (``x[1:]``, ``x[:-1]``), outputs read outside the
segment and sums that are or are not the output are all exercised.
"""
import contextlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tapegrad as tg
import tapegrad.numpy as tnp
from conftest import numerical_grad
from random_programs import Builder, run
from tapegrad import fusion
from tapegrad.jit.ops_reduce import SUM_BLOCK


@contextlib.contextmanager
def fusing(min_size, chunk=SUM_BLOCK):
    old = dict(fusion.FUSION)
    fusion.FUSION.update(min_size=min_size, min_size_recompute=min_size, chunk=chunk)
    try:
        yield
    finally:
        fusion.FUSION.update(old)


def both(f, *xs, argnums=0):
    """(plain tape, fused tape, plain (value, grad), fused (value, grad)) of f at xs."""
    with fusing(0):
        plain = tg.record(f, *xs, argnums=argnums)
    with fusing(2):
        fused = tg.record(f, *xs, argnums=argnums)
    return plain, fused, plain.value_and_gradient(*xs), fused.value_and_gradient(*xs)


def same(a, b):
    if isinstance(a, tuple):
        return all(same(x, y) for x, y in zip(a, b))
    return np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True) and \
        np.asarray(a).tobytes() == np.asarray(b).tobytes()


def rosenbrock(x):
    return tnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosenbrock_grad(x):
    a, b = x[1:] - x[:-1] ** 2, 1.0 - x[:-1]
    g = np.zeros_like(x)
    g[1:] += 200.0 * a
    g[:-1] += -400.0 * a * x[:-1] - 2.0 * b
    return g


@pytest.mark.parametrize("n", [3, 127, 128, 129, 130, 300, 1025])
def test_rosenbrock_fused_equals_plain_and_hand_backprop(n):
    x = np.random.default_rng(n).normal(size=n)
    plain, fused, (v0, g0), (v1, g1) = both(rosenbrock, x)
    assert plain._fusion is None and fused._fusion is not None
    assert any(isinstance(p, fusion.Segment) for p in fused._fusion.pieces)
    assert same(v0, v1) and same(g0, g1)
    np.testing.assert_allclose(g1, rosenbrock_grad(x), rtol=1e-12, atol=1e-12)


def test_replays_at_new_points_stay_equal():
    rng = np.random.default_rng(0)
    x = rng.normal(size=400)
    with fusing(0):
        plain = tg.record(rosenbrock, x)
    with fusing(2):
        fused = tg.record(rosenbrock, x)
    for _ in range(3):
        y = rng.normal(size=400)
        assert same(plain.value_and_gradient(y), fused.value_and_gradient(y))


def test_sum_that_is_not_the_output_and_outputs_read_outside():
    def f(x, w):
        e = tnp.tanh(x * w) + x[::-1] * 0.5  # a reversed view: not fusable with the rest
        s = tnp.sum(e * e - 2.0 * x)
        return tnp.log(s * s + 1.0) + tnp.max(e) + tnp.sum(e[3:] * x[:-3])
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=300), rng.normal(size=300)
    for argnums in (0, (0, 1)):
        _, fused, r0, r1 = both(f, x, w, argnums=argnums)
        assert fused._fusion is not None
        assert same(r0, r1)
    g = tg.grad(f, argnums=1)(x, w)
    np.testing.assert_allclose(g, numerical_grad(lambda v: f(x, v), w), rtol=1e-6, atol=1e-6)


def test_mean_scalar_operands_and_guards():
    def f(x, c):
        y = tnp.exp(-x * x) * c + tnp.sin(x) / (2.0 + tnp.cos(x))
        if tnp.sum(x) > 0:  # a guard before the segment's sum: replay checks it
            y = y * 2.0
        return tnp.mean(y - c)
    rng = np.random.default_rng(2)
    x = rng.normal(size=260)
    _, fused, r0, r1 = both(f, x, 1.5, argnums=(0, 1))
    assert same(r0, r1)
    gf = tg.value_and_grad(f, argnums=(0, 1))
    with fusing(2):
        for sign in (1.0, -1.0, 1.0):
            x1 = sign * np.abs(rng.normal(size=260))
            value, (gx, gc) = gf(x1, 1.5)
            np.testing.assert_allclose(gx, numerical_grad(lambda v: f(v, 1.5), x1), rtol=1e-6, atol=1e-8)


def test_order_analysis_refuses_what_it_cannot_keep():
    # x[1:] and x[:-1] both add into x's adjoint, and so does a later, unfused use of x:
    # its adjoint does not start at zero, so a swap at a chunk edge would change a sum
    def f(x):
        s = tnp.sum(x[1:] * 3.0 - x[:-1] * x[:-1] + tnp.sin(x[1:]))
        return s * tnp.sum(x[:5])
    x = np.random.default_rng(3).normal(size=500)
    _, fused, r0, r1 = both(f, x)
    assert same(r0, r1)


def test_a_reordering_chunk_edge_is_refused():
    # x's adjoint gets x[0:n], x[1:] and x[0:n] terms in that order; at a chunk edge the
    # x[1:] term would come first, changing (a + b) + c into (c + a) + b
    x = np.random.default_rng(5).normal(size=300)
    _, fused, r0, r1 = both(lambda x: tnp.sum(x[:-1] + x[1:] + x[:-1]), x)
    assert fused._fusion is None and same(r0, r1)


def test_pairs_in_order_rule():
    C = fusion._pairs_in_order
    # the plain walk: x[:-1] (offset 0), then x[1:] (offset 1), then x[:-1] again
    assert C([(0, 1), (1, 1), (0, 1)], 1000, 128, zero_start=True)       # swaps the first two only
    assert not C([(0, 1), (1, 1), (0, 1)], 1000, 128, zero_start=False)
    assert C([(1, 1), (0, 1)], 1000, 128, zero_start=False)             # chunk numbers never decrease
    assert not C([(0, 1), (1, 1), (1, 1)], 1000, 128, zero_start=True)  # third term moves ahead


def test_fusion_is_off_for_small_arrays_by_default():
    tape = tg.record(rosenbrock, np.ones(100))
    assert tape._fusion is None
    assert tg.record(rosenbrock, np.ones(fusion.FUSION["min_size"] + 1))._fusion is not None
    # a segment that is not a one-pass closing sum is fused only from min_size_recompute
    def logged(x):
        return tnp.log(tnp.sum(tnp.exp(-x * x)))
    assert tg.record(logged, np.ones(fusion.FUSION["min_size"] + 1))._fusion is None
    assert tg.record(logged, np.ones(fusion.FUSION["min_size_recompute"] + 1))._fusion is not None


def test_bad_chunk_is_refused():
    with fusing(2, chunk=100):
        with pytest.raises(ValueError, match="multiple of"):
            tg.record(rosenbrock, np.ones(10))


def test_debug_nans_and_threads_use_their_own_buffers():
    from concurrent.futures import ThreadPoolExecutor
    rng = np.random.default_rng(4)
    xs = [rng.normal(size=700) for _ in range(8)]
    with fusing(2):
        g = tg.grad(rosenbrock)
        g(xs[0])
        with ThreadPoolExecutor(4) as pool:
            got = list(pool.map(g, xs * 3))
    for x, gx in zip(xs * 3, got):
        assert same(gx, rosenbrock_grad(x)) or np.allclose(gx, rosenbrock_grad(x), rtol=1e-12, atol=1e-12)
    tg.config.update("debug_nans", True)
    try:
        with fusing(2):
            assert np.allclose(tg.grad(rosenbrock)(xs[1]), rosenbrock_grad(xs[1]), rtol=1e-12, atol=1e-12)
    finally:
        tg.config.update("debug_nans", False)


SETTINGS = settings(derandomize=True, max_examples=80, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


@pytest.mark.filterwarnings("ignore:.*does not depend on the differentiated")
@SETTINGS
@given(st.data())
def test_random_programs_fused_equal_plain(data):
    seed = data.draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    n_in = data.draw(st.integers(1, 3))
    shapes = [tuple(data.draw(st.lists(st.sampled_from([1, 2, 3, 5]), max_size=2))) for _ in range(n_in)]
    xs = [np.round(rng.normal(size=s), 4) for s in shapes]
    program = Builder(data, xs).program(rng)
    argnums = tuple(sorted(data.draw(st.sets(st.integers(0, n_in - 1), min_size=1))))
    plain, fused, r0, r1 = both(lambda *a: run(program, a), *xs, argnums=argnums)
    assert same(r0, r1), f"program {program}"


@SETTINGS
@given(st.data())
def test_random_elementwise_chains_fused_equal_plain(data):
    """Long arrays (several chunks), shifted views of one input, closing sums."""
    n = data.draw(st.sampled_from([129, 256, 300, 700]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    x = rng.uniform(0.5, 1.5, size=n + 2)
    ops = data.draw(st.lists(st.sampled_from(["add", "mul", "sub", "div", "exp", "sin", "sq", "aff"]),
                             min_size=1, max_size=8))
    views = data.draw(st.lists(st.sampled_from([0, 1, 2]), min_size=len(ops) + 1, max_size=len(ops) + 1))
    tail = data.draw(st.sampled_from(["sum", "mean", "log", "reuse"]))

    def f(x):
        def view(k):
            return x[k:k + n]
        y = view(views[0])
        for op, k in zip(ops, views[1:]):
            v = view(k)
            y = {"add": lambda: y + v, "mul": lambda: y * v, "sub": lambda: y - v,
                 "div": lambda: y / (v + 1.0), "exp": lambda: tnp.exp(0.1 * y),
                 "sin": lambda: tnp.sin(y), "sq": lambda: y ** 2, "aff": lambda: 0.5 * y + 0.25}[op]()
        s = tnp.sum(y) if tail != "mean" else tnp.mean(y)
        if tail == "log":
            return tnp.log(s * s + 1.0)
        if tail == "reuse":
            return s + tnp.sum(y[:3] * x[:3])
        return s
    _, fused, r0, r1 = both(f, x)
    assert same(r0, r1), f"ops {ops} views {views} tail {tail}"
