"""The Tape object: recording, printing, replaying, persistence and thread safety."""
import pickle
import re
import threading

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.numpy as tnp
from tapegrad import pytree
from conftest import assert_grad_matches_fd

# an operand BLAS reads transposed prints as "3.T"
ENTRY_RE = re.compile(r"^(\d+): ([A-Z0-9]+)\((\d+)(?:\.T)?(?:, (\d+)(?:\.T)?)?(?:; [^)]*)?\) -> (\d+) \((\d+(?:,\d+)*)?\)$")


# --- functions to record ------------------------------------------------------------------------

def scalar_fn(x):
    return tnp.exp(tnp.sin(x) * x) / (1.0 + x ** 2)


def vector_fn(x):
    return tnp.sum(tnp.tanh(x) * tnp.log1p(x ** 2)) + tnp.max(x) * tnp.mean(x)


def matrix_fn(A):
    return tnp.logsumexp(tnp.sqrt(A * A + 1.0) @ A.T) + tnp.sum(tnp.softmax(A, axis=0)[0] * A[1])


def mlp(params, x, y):
    (W1, b1), (W2, b2) = params
    h = tnp.sigmoid(x @ W1 + b1)
    logits = h @ W2 + b2
    return tnp.mean(tnp.logsumexp(logits, axis=1) - tnp.sum(logits * y, axis=1))


def make_mlp_args(rng):
    params = [(rng.normal(size=(4, 6)), rng.normal(size=6)), (rng.normal(size=(6, 3)), rng.normal(size=3))]
    x = rng.normal(size=(5, 4))
    y = np.eye(3)[rng.integers(0, 3, size=5)]
    return params, x, y


CASES = {
    "scalar": (scalar_fn, lambda rng: (float(rng.normal()),)),
    "vector": (vector_fn, lambda rng: (rng.normal(size=7),)),
    "matrix": (matrix_fn, lambda rng: (rng.normal(size=(3, 4)),)),
    "mlp": (mlp, make_mlp_args),
}


def assert_trees_close(a, b, rtol=1e-12, atol=0.0):
    la, ta = pytree.flatten(a)
    lb, tb = pytree.flatten(b)
    assert ta == tb
    for u, v in zip(la, lb):
        assert np.shape(u) == np.shape(v)
        np.testing.assert_allclose(u, v, rtol=rtol, atol=atol)


def assert_trees_equal(a, b):
    la, ta = pytree.flatten(a)
    lb, tb = pytree.flatten(b)
    assert ta == tb
    for u, v in zip(la, lb):
        assert type(u) is type(v)
        np.testing.assert_array_equal(u, v)


# --- recording and printing ----------------------------------------------------------------------

def test_record_returns_a_tape():
    tape = tg.record(scalar_fn, 0.3)
    assert isinstance(tape, tg.Tape)
    assert len(tape) > 0
    assert tape.value_dependent is False


def test_tape_length_counts_entries():
    tape = tg.record(lambda x: tnp.exp(x) * x, 1.0)
    assert len(tape) == 2
    tape = tg.record(lambda x: tnp.sin(tnp.cos(tnp.exp(x))), 1.0)
    assert len(tape) == 3


def test_str_has_header_and_one_line_per_entry(rng):
    tape = tg.record(matrix_fn, rng.normal(size=(3, 4)))
    lines = str(tape).splitlines()
    assert lines[0].startswith(f"Tape: {len(tape)} entries")
    assert len(lines) == len(tape) + 2  # two header lines
    for i, line in enumerate(lines[2:]):
        m = ENTRY_RE.match(line)
        assert m, line
        assert int(m.group(1)) == i


def test_str_entry_format():
    tape = tg.record(lambda x: tnp.exp(x) * x, 1.0)
    assert str(tape).splitlines()[2:] == ["0: EXP(0) -> 1 ()", "1: MUL(1, 0) -> 2 ()"]


def test_str_entries_reference_earlier_nodes():
    tape = tg.record(lambda x, W: tnp.sum(tnp.exp(x) * (W @ x)), np.ones(3), np.ones((3, 3)), argnums=(0, 1))
    lines = str(tape).splitlines()
    assert "inputs: 0 (3), 1 (3,3)" in lines[1]
    names, known, last_out = [], {0: "(3)", 1: "(3,3)"}, None
    for line in lines[2:]:
        i, name, a, b, out, shape = ENTRY_RE.match(line).groups()
        names.append(name)
        for operand in (a, b):
            assert operand is None or int(operand) in known  # operands exist already
        known[int(out)] = f"({shape or ''})"
        last_out = int(out)
    assert names == ["EXP", "MATMUL", "MUL", "SUM"]
    assert last_out == tape.output
    assert known[tape.output] == "()"
    assert [known[int(ENTRY_RE.match(ln).group(5))] for ln in lines[2:]] == ["(3)", "(3)", "(3)", "()"]


def test_str_affine_shows_constants():
    tape = tg.record(lambda x: 2.0 * x + 1.0, np.ones((2, 2)))
    lines = str(tape).splitlines()[2:]
    assert len(lines) == 2
    assert all(ENTRY_RE.match(line) for line in lines)
    assert "AFFINE" in lines[0] and "p=2" in lines[0]
    assert lines[1].endswith("(2,2)")


# --- replay at new inputs ------------------------------------------------------------------------

@pytest.mark.parametrize("case", sorted(CASES))
def test_replay_equals_fresh_recording(rng, case):
    f, make = CASES[case]
    args0 = make(rng)
    tape = tg.record(f, *args0)
    for _ in range(3):
        args1 = make(rng)
        fresh = tg.record(f, *args1)
        want_value = fresh.recorded_value(fresh.output)  # computed eagerly by numpy
        assert tape.forward(*args1) == pytest.approx(float(want_value), rel=1e-12)
        assert_trees_close(tape.gradient(*args1), fresh.gradient(*args1), rtol=1e-12, atol=1e-15)
        value, grad = tape.value_and_gradient(*args1)
        assert value == pytest.approx(float(want_value), rel=1e-12)
        assert_trees_close(grad, fresh.gradient(*args1), rtol=1e-12, atol=1e-15)


def test_replay_gradient_vs_finite_differences(rng):
    tape = tg.record(vector_fn, rng.normal(size=7))
    x1 = rng.normal(size=7)
    assert_grad_matches_fd(vector_fn, x1, tape.gradient(x1))


def test_replay_forward_matches_numpy(rng):
    tape = tg.record(mlp, *make_mlp_args(rng))
    args = make_mlp_args(rng)
    # the same function on plain arrays runs through numpy / scipy
    assert tape.forward(*args) == pytest.approx(float(mlp(*args)), rel=1e-12)


def test_replay_argnums_of_the_recording(rng):
    params, x, y = make_mlp_args(rng)
    tape = tg.record(mlp, params, x, y, argnums=(0, 1))
    params1, x1, y1 = make_mlp_args(rng)
    gp, gx = tape.gradient(params1, x1, y1)
    assert isinstance(gp, list) and gx.shape == x.shape
    fresh = tg.grad(mlp, argnums=(0, 1))(params1, x1, y1)
    assert_trees_close((gp, gx), fresh, rtol=1e-12, atol=1e-15)
    assert_grad_matches_fd(lambda v: mlp(params1, v, y1), x1, gx)


def test_replay_jacobian(rng):
    f = lambda x: tnp.sin(x) * tnp.sum(x)  # noqa: E731
    tape = tg.record(f, np.zeros(3))
    x1 = rng.normal(size=3)
    want = np.diag(np.cos(x1) * x1.sum()) + np.sin(x1)[:, None]
    np.testing.assert_allclose(tape.jacobian(x1), want, rtol=1e-13)


def test_replay_does_not_change_the_tape(rng):
    x0 = rng.normal(size=7)
    tape = tg.record(vector_fn, x0)
    before = tape.values.copy()
    tape.gradient(rng.normal(size=7))
    np.testing.assert_array_equal(tape.values, before)
    np.testing.assert_array_equal(tape.recorded_value(tape.inputs[0]), x0)


# --- persistence -----------------------------------------------------------------------------------

@pytest.mark.parametrize("case", sorted(CASES))
def test_pickle_round_trip_replays_bitwise(rng, case):
    f, make = CASES[case]
    tape = tg.record(f, *make(rng))
    clone = pickle.loads(pickle.dumps(tape))
    assert isinstance(clone, tg.Tape)
    assert str(clone) == str(tape)
    for _ in range(2):
        args = make(rng)
        assert clone.forward(*args) == tape.forward(*args)
        assert_trees_equal(clone.gradient(*args), tape.gradient(*args))


@pytest.mark.parametrize("case", sorted(CASES))
def test_save_load_round_trip(tmp_path, rng, case):
    f, make = CASES[case]
    tape = tg.record(f, *make(rng))
    path = tmp_path / "tape.npz"
    tape.save(path)
    loaded = tg.Tape.load(path)
    assert isinstance(loaded, tg.Tape)
    assert str(loaded) == str(tape)
    args = make(rng)
    assert loaded.forward(*args) == tape.forward(*args)
    assert_trees_equal(loaded.gradient(*args), tape.gradient(*args))


def test_save_load_keeps_argnums_and_structure(tmp_path):
    def f(x, cfg):
        return x["a"] * cfg[0] + tnp.sum(x["b"])

    tape = tg.record(f, {"a": 1.0, "b": np.ones(2)}, (2.0,))
    tape.save(tmp_path / "t.npz")
    loaded = tg.Tape.load(tmp_path / "t.npz")
    g = loaded.gradient({"a": 5.0, "b": np.zeros(2)}, (3.0,))
    assert isinstance(g, dict)
    assert g["a"] == 3.0
    np.testing.assert_array_equal(g["b"], [1.0, 1.0])


def test_save_load_round_trip_without_npz_suffix(tmp_path):
    tape = tg.record(lambda x: tnp.sum(x ** 2), np.ones(3))
    path = tmp_path / "tape"
    tape.save(path)
    loaded = tg.Tape.load(path)
    assert loaded.forward(np.arange(3.0)) == 5.0


# --- threads ---------------------------------------------------------------------------------------

def test_concurrent_replay_from_threads(rng):
    params, x, y = make_mlp_args(rng)
    tape = tg.record(mlp, params, x, y)
    n_threads, n_iter = 8, 40
    inputs = [make_mlp_args(rng) for _ in range(n_threads)]
    expected = [(tg.record(mlp, *a).forward(*a), tg.record(mlp, *a).gradient(*a)) for a in inputs]
    barrier = threading.Barrier(n_threads)
    failures = []

    def work(k):
        try:
            barrier.wait()
            for _ in range(n_iter):
                value, grad = tape.value_and_gradient(*inputs[k])
                assert value == pytest.approx(expected[k][0], rel=1e-12)
                assert_trees_close(grad, expected[k][1], rtol=1e-12, atol=1e-15)
        except BaseException as err:  # noqa: BLE001 - reported in the main thread
            failures.append((k, err))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures


def test_concurrent_grad_calls_from_threads(rng):
    g = tg.grad(vector_fn)
    g(np.zeros(7))  # record once, then replay from all threads
    inputs = [rng.normal(size=7) for _ in range(6)]
    expected = [tg.record(vector_fn, x).gradient(x) for x in inputs]
    barrier = threading.Barrier(len(inputs))
    failures = []

    def work(k):
        try:
            barrier.wait()
            for _ in range(50):
                np.testing.assert_allclose(g(inputs[k]), expected[k], rtol=1e-12)
        except BaseException as err:  # noqa: BLE001
            failures.append((k, err))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures
    assert len(g._tapes) == 1


# --- value-dependent tapes -------------------------------------------------------------------------

def branchy(x):
    # a mask: a comparison used other than as a Python bool, which no guard can check
    return tnp.where(x > 0, x ** 2, -x)


@pytest.mark.parametrize("method", ["forward", "gradient", "value_and_gradient", "jacobian"])
def test_value_dependent_tape_refuses_replay(method, no_replay_kernels):
    tape = tg.record(branchy, 1.0)
    assert tape.value_dependent is True
    with pytest.raises(ValueError, match="branched on a traced value"):
        getattr(tape, method)(-1.0)


def test_value_dependent_via_bool():
    tape = tg.record(lambda x: x * 2.0 if bool((x > 0) | (x < -1)) else x, np.ones(()))
    assert tape.value_dependent is True
    with pytest.raises(ValueError, match="branched"):
        tape.gradient(np.ones(()))


def test_value_dependent_flag_survives_pickle():
    tape = pickle.loads(pickle.dumps(tg.record(branchy, 1.0)))
    assert tape.value_dependent is True
    with pytest.raises(ValueError, match="branched"):
        tape.forward(2.0)


# --- inputs read by reference ---------------------------------------------------------------

def _mlp_like(W, X):
    return tnp.sum(tnp.tanh(X @ W))


def test_matmul_only_inputs_are_read_by_reference_and_differentiate_correctly(rng):
    W, X = rng.normal(size=(4, 3)), rng.normal(size=(5, 4))
    tape = tg.record(_mlp_like, W, X)
    assert sorted(tape._slots.values()) == [1, 2]  # both inputs only feed the matmul
    for W1, X1 in [(rng.normal(size=(4, 3)), rng.normal(size=(5, 4))),
                   (rng.normal(size=(3, 4)).T, rng.normal(size=(4, 5)).T),      # not C-ordered
                   (rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(5, 4)))]:
        expected = (1 - np.tanh(X1 @ W1) ** 2).sum(0)
        np.testing.assert_allclose(tape.gradient(W1, X1), np.asarray(X1, float).T @
                                   (1 - np.tanh(X1 @ W1) ** 2), rtol=1e-12)
        assert expected.shape == (3,)
        np.testing.assert_allclose(tape.forward(W1, X1), np.tanh(X1 @ W1).sum(), rtol=1e-12)


def test_an_input_used_outside_matmul_is_copied(rng):
    W, X = rng.normal(size=(4, 3)), rng.normal(size=(5, 4))
    tape = tg.record(lambda W, X: tnp.sum(X @ W) + tnp.sum(W * W), W, X)
    assert list(tape._slots) == [int(tape.inputs[1])]  # X only; W is also squared
    g = tape.gradient(W, X)
    np.testing.assert_allclose(g, X.sum(0)[:, None] * np.ones((1, 3)) + 2 * W, rtol=1e-12)


def test_adjoint_overwrite_never_skips_zeroing_part_of_a_storage(rng):
    """A window of an input (its first six values, as a matrix) is last used by a matmul,
    and the rest of the input by an elementwise op: neither may assign the whole adjoint."""
    x, v = rng.normal(size=8), rng.normal(size=3)

    def f(x):
        return tnp.sum(tnp.sin(x[6:])) + tnp.sum(x[:6].reshape(2, 3) @ v) + tnp.sum(x * x)

    expected = np.concatenate([np.tile(v, 2), np.cos(x[6:])]) + 2 * x
    for _ in range(3):  # reused adjoint buffers hold the previous call's values
        np.testing.assert_allclose(tg.grad(f)(x), expected, rtol=1e-12)
        x = x + 0.5
        expected = np.concatenate([np.tile(v, 2), np.cos(x[6:])]) + 2 * x
