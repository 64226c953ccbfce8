"""An entry that reads a storage and a window of it (issue 7, section 1).

``x[0]``, ``x[1:]`` and ``X[-1]`` are free windows on ``x``'s storage, so ``x * x[1]``
reads one storage twice.  The backward sweep may *assign* an operand's adjoint instead of
adding to it (SET, see ``tapegrad.program.assignable``); these gradients came out wrong
when it assigned one operand's adjoint after the other operand had already written to
the same storage.  Every case is checked against a closed form or hand backprop, for
inputs in C order, Fortran order and as strided views, whichever layout comes first
(the first call records, later ones replay).
"""
import numpy as np
import pytest

import tapegrad as tg
import tapegrad.jit as J
import tapegrad.numpy as tnp

_R = np.random.default_rng(11)
X2 = np.array([[1.0, 2.0], [3.0, 4.0]])
X3 = _R.normal(size=(3, 3))
R32 = np.arange(1.0, 7.0).reshape(3, 2)
A = _R.normal(size=(3, 2, 2))
V = _R.normal(size=4)


def _row_plus(g_full, row, extra):
    g = np.array(g_full, dtype=float)
    g[row] += extra
    return g


def _window_matmul(x):  # sum(x[0] @ x): d/dx[k, l] = x[0, k] + [k == 0] * rowsum(x)[l]
    return _row_plus(np.repeat(x[0][:, None], x.shape[1], 1), 0, x.sum(1))


def _rows_at_x(x):  # sum(sin(X[1:] @ X))
    G = np.cos(x[1:] @ x)
    return _row_plus(x[1:].T @ G, slice(1, None), G @ x.T)


def _batched(a, k=1):  # sum(sin(A @ A[k]))
    G = np.cos(a @ a[k])
    g = G @ a[k].T
    g[k] += np.einsum("tij,tik->jk", a, G)
    return g


def _tanh_rows(x):  # t = tanh(X); sum(t * t[1])
    t = np.tanh(x)
    return _row_plus(np.broadcast_to(t[1], t.shape), 1, t.sum(0)) * (1 - t * t)


def _sub_last(x):  # sum((X - X[-1]) ** 2)
    d = x - x[-1]
    return _row_plus(2 * d, -1, -2 * d.sum(0))


def _sin_plus_window(x):  # sum(sin(x + x[1:])) for x with two rows
    c = np.cos(x + x[1:])
    return _row_plus(c, 1, c.sum(0))


# name: (function, argument, gradient there)
CASES = {
    "x[0] @ x": (lambda x: tnp.sum(x[0] @ x), X2, np.array([[4.0, 8.0], [2.0, 2.0]])),
    "x * x[1]": (lambda x: tnp.sum(x * x[1]), X2, np.array([[3.0, 4.0], [7.0, 10.0]])),
    "(X - X[-1]) ** 2": (lambda X: tnp.sum((X - X[-1]) ** 2), R32,
                         np.array([[-8.0, -8.0], [-4.0, -4.0], [12.0, 12.0]])),
    "x[0] * x": (lambda x: tnp.sum(x[0] * x), X3, _row_plus(np.broadcast_to(X3[0], (3, 3)), 0, X3.sum(0))),
    "x + x[1:]": (lambda x: tnp.sum(tnp.sin(x + x[1:])), X2, _sin_plus_window(X2)),
    "X[1:] @ X": (lambda X: tnp.sum(tnp.sin(X[1:] @ X)), X3, _rows_at_x(X3)),
    "A @ A[k]": (lambda a: tnp.sum(tnp.sin(a @ a[1])), A, _batched(A)),
    "t * t[1], t = tanh(X)": (lambda x: tnp.sum((lambda t: t * t[1])(tnp.tanh(x))), X3, _tanh_rows(X3)),
    "x[0] @ x, 3x3": (lambda x: tnp.sum(x[0] @ x), X3, _window_matmul(X3)),
    "(X - X[-1]) ** 2, 3x3": (lambda X: tnp.sum((X - X[-1]) ** 2), X3, _sub_last(X3)),
    # x[i] of a 1-d x is a one-element window
    "v * v[2], 1-d": (lambda v: tnp.sum(tnp.sin(v) * v[2]),
                      V, _row_plus(np.cos(V) * V[2], 2, np.sin(V).sum())),
    # windows of windows, and a reshape of a window, meeting the storage they came from
    "alias of an alias": (lambda x: tnp.sum(x.reshape(9)[1:].reshape(2, 4)[1] * x.reshape(9)[5:]),
                          X3, np.concatenate([[0.0] * 5, 2 * X3.ravel()[5:]]).reshape(3, 3)),
    "reshape of a window": (lambda x: tnp.sum(x[1:].reshape(6) * x.reshape(9)[3:]),
                            X3, np.concatenate([[0.0] * 3, 2 * X3.ravel()[3:]]).reshape(3, 3)),
}


def _layouts(x):
    yield "C", np.ascontiguousarray(x)
    yield "F", np.asfortranarray(x) if x.ndim > 1 else x.copy()
    yield "strided", np.stack([x, -x], axis=-1)[..., 0]


@pytest.mark.parametrize("name", CASES)
def test_a_storage_and_its_window_in_one_entry(name):
    f, x, expected = CASES[name]
    for first, x_first in _layouts(x):
        grad = tg.grad(f)
        np.testing.assert_allclose(grad(x_first), expected, rtol=1e-12, atol=1e-12,
                                   err_msg=f"first call in {first} order")
        for later, x_later in _layouts(x):
            np.testing.assert_allclose(grad(x_later), expected, rtol=1e-12, atol=1e-12,
                                       err_msg=f"first call in {first} order, then {later}")
            np.testing.assert_allclose(tg.record(f, x_first).gradient(x_later), expected,
                                       rtol=1e-12, atol=1e-12,
                                       err_msg=f"recorded in {first} order, replayed in {later}")


@pytest.mark.parametrize("name", CASES)
def test_recording_does_not_depend_on_the_callers_layout(name):
    f, x, _ = CASES[name]
    tapes = [tg.record(f, arr) for _, arr in _layouts(x)]
    assert len({str(t) for t in tapes}) == 1
    assert len({t._prog.tobytes() for t in tapes}) == 1


def test_each_node_is_recorded_in_c_order():
    """Eager values (inputs and op results) are C-ordered, so a row of a Fortran-ordered
    argument is a window (no copy), just as for a C-ordered one."""
    seen = []

    def f(x):
        seen.append(x)
        y = tnp.exp(x)
        z = x[0, 0] * np.asfortranarray(np.ones((3, 3)))  # numpy's own result is Fortran-ordered
        seen.extend([y, z])
        return tnp.sum(x[1] * y[2] * z[1])

    tape = tg.record(f, np.asfortranarray(X3))
    assert all(t._value.flags.c_contiguous for t in seen)
    assert J.NAMES.index("GATHER") not in tape.op.tolist()


def test_window_matmul_with_the_matrix_read_by_reference():
    """``x[0] @ x``: only the matmul reads x, so BLAS reads it where the caller keeps it;
    its adjoint gets a term from each operand, and neither may assign over the other."""
    tape = tg.record(lambda x: tnp.sum(x[0] @ x), X3)
    assert list(tape._slots) == [int(tape.inputs[0])]
    for x in (X3, 2.0 * X3, np.asfortranarray(X3 - 1.0)):
        np.testing.assert_allclose(tape.gradient(x), _window_matmul(np.asarray(x)), rtol=1e-12)


def test_one_matrix_on_both_sides_read_by_reference():
    """``W @ W`` and ``W @ W.T``: both operands are W itself, read by BLAS from the
    caller's array; a's product assigns W's adjoint, then b's adds to it."""
    W = X3.copy()
    square = tg.record(lambda w: tnp.sum(tnp.sin(w @ w)), W)
    gram = tg.record(lambda w: tnp.sum(tnp.sin(w @ w.T)), W)
    for tape in (square, gram):
        assert list(tape._slots) == [int(tape.inputs[0])]
    for w in (W, np.asfortranarray(W + 0.5)):
        G = np.cos(w @ w)
        np.testing.assert_allclose(square.gradient(w), G @ w.T + w.T @ G, rtol=1e-12)
        G = np.cos(w @ w.T)
        np.testing.assert_allclose(gram.gradient(w), (G + G.T) @ w, rtol=1e-12)


def test_jacobian_of_a_storage_times_its_row():
    """Every sweep of a Jacobian seeds one output element; x * x[1] again reads x twice."""
    x = X2.copy()
    jac = tg.jacobian(lambda x: x * x[1])(x)
    expected = np.zeros((2, 2, 2, 2))
    for i in range(2):
        for j in range(2):
            expected[i, j, i, j] += x[1, j]
            expected[i, j, 1, j] += x[i, j]
    np.testing.assert_allclose(jac, expected, rtol=1e-12)


def _modes(tape):
    need = tape._prog[:, 6]
    return [((int(n) >> J.A_SHIFT) & 3, (int(n) >> J.B_SHIFT) & 3) for n in need]


def test_the_shortcut_still_applies_where_it_is_safe():
    """The same node, or the same view of a storage, on both sides: a assigns, b adds
    (the kernels write a's term of an element before b's)."""
    x = V.copy()
    square = tg.record(lambda x: tnp.sum(tnp.sin(x * x)), x)
    assert _modes(square)[0] == (J.SET, J.ADD)
    np.testing.assert_allclose(square.gradient(x), np.cos(x * x) * 2 * x, rtol=1e-12)
    views = tg.record(lambda x: tnp.sum(tnp.sin(x.reshape(2, 2) @ x.reshape(2, 2))), x)
    assert _modes(views)[0] == (J.SET, J.ADD)
    M = x.reshape(2, 2)
    G = np.cos(M @ M)
    np.testing.assert_allclose(views.gradient(x), (G @ M.T + M.T @ G).ravel(), rtol=1e-12)


def test_the_shortcut_never_applies_to_a_shared_storage_otherwise():
    for f, x in [(lambda x: tnp.sum(x * x[1]), X2), (lambda x: tnp.sum(x[0] @ x), X2),
                 (lambda a: tnp.sum(a @ a[1]), A), (lambda x: tnp.sum(x.reshape(2, 2) * x[2:]), V)]:
        tape = tg.record(f, x)
        for row, (ma, mb) in zip(tape._prog, _modes(tape)):
            if J.NAMES[row[0]] in ("MUL", "MATMUL"):
                assert (ma, mb) == (J.ADD, J.ADD)


def test_an_n_ary_entry_later_on_the_tape_keeps_an_earlier_entry_from_assigning():
    """WHERE (three operands, read from the program's operand table) adds into x's adjoint
    and comes after ``x * w`` on the tape, so the backward sweep visits it first: MUL must
    add to x's adjoint, not assign it (the first-contributor condition counts every
    operand of every entry, not only the a and b of unary and binary ones)."""
    mask, w = np.array([True, False, True, False]), np.arange(1.0, 5.0)
    f = lambda x: tnp.sum(tnp.sin(tnp.where(mask, x, x * w)))  # noqa: E731
    x = V.copy()
    tape = tg.record(f, x)
    mul = [m for row, m in zip(tape._prog, _modes(tape)) if J.NAMES[row[0]] == "MUL"]
    assert mul == [(J.ADD, 0)]
    inner = np.where(mask, x, x * w)
    expected = np.cos(inner) * np.where(mask, 1.0, w)
    np.testing.assert_allclose(tape.gradient(x), expected, rtol=1e-13)
    np.testing.assert_allclose(tg.grad(f)(np.asfortranarray(x)), expected, rtol=1e-13)
    where = int(np.flatnonzero(tape._prog[:, 0] == J.CODES["WHERE"])[0])
    start = tape._prog[where, 5]  # the (offset, mode) pairs of its operands
    assert tape._ints[start + 1:start + 6:2].tolist() == [0, J.ADD, J.ADD]  # the condition: none
