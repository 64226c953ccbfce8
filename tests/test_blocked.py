"""Blocked execution of elementwise segments (``tapegrad.program.mark_segments``).

The claim: running a segment chunk by chunk computes every element by the same scalar rule,
from the same operand elements, in the same order of writes per element as the whole-entry
sweeps, so values and gradients are equal *bit for bit* (``np.array_equal``), not merely
close.  Checked on random programs (``random_programs.Builder``) with tiny chunks (1, 2, 4
elements, so that chunk borders fall everywhere, windows such as ``t[1:]`` and ``t[:-1]``
straddle them and SET/ADD adjoints meet across them), on the benchmark models at their own
settings, and on hand-picked aliasing cases.  The oracle is the same tape with its segment
marks cleared, and a recording made with blocking off.
"""
import contextlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tapegrad as tg
import tapegrad.numpy as tnp
from tapegrad import program as P
from tapegrad.bench import models as M
from tapegrad.bench import workloads as W
from random_programs import LAYOUTS, Builder, in_layout, run


@contextlib.contextmanager
def blocking(min_size, chunk_log2):
    saved = dict(P.BLOCKING)
    P.BLOCKING.update(min_size=min_size, chunk_log2=chunk_log2)
    try:
        yield
    finally:
        P.BLOCKING.update(saved)


def segments_of(tape):
    return P.segment_table(tape._prog)


@contextlib.contextmanager
def unblocked(tape):
    """The same tape with its segment marks cleared: the whole-entry sweeps."""
    saved = tape._prog
    prog = saved.copy()
    prog[prog[:, 7] < 0, 7] = 0
    tape._prog = prog
    try:
        yield tape
    finally:
        tape._prog = saved


def leaves(tree):
    if isinstance(tree, (list, tuple)):
        return [leaf for item in tree for leaf in leaves(item)]
    return [np.array(tree, copy=True)]


def value_and_grads(tape, *args):
    """[value, every gradient leaf], copied (a gradient may be a view of a reused buffer)."""
    value, grads = tape.value_and_gradient(*args)
    return leaves(value) + leaves(grads)


def assert_bitwise(tape, *args):
    """Blocked and unblocked sweeps of ``tape`` give identical value and gradients."""
    got = value_and_grads(tape, *args)
    with unblocked(tape):
        want = value_and_grads(tape, *args)
    for k, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape and np.array_equal(g, w), \
            f"item {k} (0: value): blocked {g} != unblocked {w}, segments {segments_of(tape)}"
    return got


# --- the benchmark models ----------------------------------------------------------------------

def test_rosenbrock_segments_and_gradient_at_default_settings():
    x = np.random.default_rng(0).uniform(-1.0, 1.0, 20_000)
    tape = tg.record(lambda x: M.rosenbrock(x, tnp), x)
    fwd, bwd, chunks = segments_of(tape)
    # seven elementwise rows, then SUM.  Forward they are one segment; backward, x's adjoint
    # is written through x[:-1] (rows 0 and 4) and x[1:] (row 1): chunking rows 1 and 4
    # together would add x[1:]'s term ahead of a later row's at each chunk border, so the
    # backward segments are cut between them
    assert fwd == [(0, 7)] and bwd == [(0, 4), (4, 7)] and chunks == {1 << P.BLOCKING["chunk_log2"]}
    _, g = assert_bitwise(tape, x)
    np.testing.assert_allclose(g, W.rosenbrock_grad(x), rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("chunk_log2", [0, 1, 3])
def test_rosenbrock_with_tiny_chunks(chunk_log2):
    x = np.random.default_rng(1).uniform(-1.0, 1.0, 37)
    with blocking(2, chunk_log2):
        tape = tg.record(lambda x: M.rosenbrock(x, tnp), x)
        grad = tg.grad(lambda x: M.rosenbrock(x, tnp))
        g_grad = grad(x)
    assert segments_of(tape)[0] == [(0, 7)]
    _, g = assert_bitwise(tape, x)
    assert np.array_equal(g, g_grad)
    with blocking(0, chunk_log2):  # a recording with blocking off: no marks at all
        plain = tg.record(lambda x: M.rosenbrock(x, tnp), x)
    assert segments_of(plain) == ([], [], set())
    assert np.array_equal(plain.gradient(x), g)


def test_mlp_segments_bitwise():
    params, X, Y = W.mlp_data("784-256-128-10x64")
    f = lambda p, X, Y: M.mlp_loss(p, X, Y, tnp)  # noqa: E731
    tape = tg.record(f, params, X, Y)
    fwd, _, _ = segments_of(tape)
    # -(a), exp, 1 + ., 1 / . of each hidden layer (the bias add broadcasts a row: not flat)
    assert len(fwd) == 2 and all(stop - start == 4 for start, stop in fwd)
    got = assert_bitwise(tape, params, X, Y)
    for g, w in zip(got[1:], W.mlp_numpy_grad(params, X, Y), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12)


def test_scalar_code_forms_no_segment():
    """One-element rows are never marked (the sweeps skip the mark test for them)."""
    x = np.random.default_rng(2).uniform(-1.0, 1.0, 50)
    assert segments_of(tg.record(M.rosenbrock_loop, x)) == ([], [], set())
    with blocking(1, 0):
        tape = tg.record(M.rosenbrock_loop, x)
    assert segments_of(tape) == ([], [], set())


# --- aliasing cases ---------------------------------------------------------------------------

CASES = {
    "shifted windows, one entry": lambda x: tnp.sum(tnp.sin(x[1:] * x[:-1])),
    "a node meets its own windows": lambda x: tnp.sum(tnp.exp(tnp.sin(x)[1:] - tnp.cos(x)[:-1]) * x[1:]),
    "square by itself": lambda x: tnp.sum(tnp.tanh(x * x) * x + x),
    "a traced scalar broadcast": lambda x: tnp.sum(tnp.exp(x * x[3]) + x[0] * tnp.sin(x)),
    "a constant scalar broadcast": lambda x: tnp.sum(1.0 / (1.0 + tnp.exp(-x)) - np.float64(2.0) / (x * x + 1.0)),
    "a 2-d window": lambda x: tnp.sum(tnp.sin(x.reshape(4, 10)[1:] * x.reshape(4, 10)[:-1]) ** 2),
    "reversed windows": lambda x: tnp.sum(tnp.cos(x[:-2]) * tnp.sin(x[2:]) + tnp.exp(x[1:-1])),
    "a row broadcast": lambda x: tnp.sum(tnp.tanh(x.reshape(4, 10) * x[:10]) * x.reshape(4, 10)),
}


@pytest.mark.parametrize("chunk_log2", [0, 2, 3])
@pytest.mark.parametrize("name", sorted(CASES))
def test_aliasing_cases(name, chunk_log2):
    x = np.random.default_rng(3).uniform(-1.0, 1.0, 40)
    with blocking(2, chunk_log2):
        tape = tg.record(CASES[name], x)
    _, g = assert_bitwise(tape, x)
    np.testing.assert_allclose(g, _fd(CASES[name], x), rtol=1e-6, atol=1e-6)


def _fd(f, x, h=1e-6):
    out = np.zeros_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        out[i] = (float(f(x + e)) - float(f(x - e))) / (2 * h)
    return out


def test_grad_table_and_debug_sweeps_on_a_blocked_tape(monkeypatch):
    """Tools that run single program rows (a slice of the program) cut a marked segment to
    the slice instead of reading past it: the grad_table trace's terms and the debug_nans
    re-sweep, row by row."""
    x = np.random.default_rng(4).uniform(-1.0, 1.0, 12)
    with blocking(2, 1):
        tape = tg.record(lambda x: M.rosenbrock(x, tnp), x)
    assert segments_of(tape)[1]
    table = tg.trace_grad_table(tape, x, show=False)
    np.testing.assert_allclose(np.asarray(table.gradient), W.rosenbrock_grad(x), rtol=1e-12)
    for step in table:  # the terms, each from one row run alone, add up to the sweep's adjoint
        np.testing.assert_allclose(np.asarray(step.total), np.asarray(step.adjoint), rtol=1e-12, atol=1e-12)
    # debug_nans re-runs the backward sweep one program row at a time to name the row that
    # made a NaN: here POWC, from sqrt's infinite adjoint at 0 times 2 * 0
    with blocking(2, 1):
        tape = tg.record(lambda x: tnp.sum(tnp.sqrt(x ** 2) * 3.0), x)
    assert segments_of(tape)[1]
    monkeypatch.setattr(tg.config, "debug_nans", True)
    x[3] = 0.0
    with pytest.raises(FloatingPointError, match="backward sweep made a NaN at entry 0: POWC"):
        tape.gradient(x)


# --- random programs ----------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:.*does not depend on the differentiated")
@settings(derandomize=True, max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.filter_too_much])
@given(st.data())
def test_random_programs_blocked_equal_unblocked(data):
    seed = data.draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    n_in = data.draw(st.integers(1, 3))
    shapes = [tuple(data.draw(st.lists(st.sampled_from([2, 3, 5, 1]), max_size=3))) for _ in range(n_in)]
    x0 = [np.array(np.round(rng.normal(size=s), 4)) for s in shapes]
    program = Builder(data, x0).program(rng)
    f = lambda *xs: run(program, xs)  # noqa: E731
    xs = [in_layout(x, data.draw(st.sampled_from(LAYOUTS))) for x in x0]
    argnums = tuple(range(n_in))
    with blocking(data.draw(st.sampled_from([1, 2, 4])), data.draw(st.sampled_from([0, 1, 2]))):
        tape = tg.record(f, *xs, argnums=argnums)
    got = assert_bitwise(tape, *xs)
    with blocking(0, 0):
        plain = tg.record(f, *xs, argnums=argnums)
    for g, w in zip(got, value_and_grads(plain, *xs)):
        assert np.array_equal(g, w), f"blocked against a recording without blocking, program {program}"
