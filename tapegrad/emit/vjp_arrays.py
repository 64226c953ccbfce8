"""Traced vector-Jacobian products of the array rows: reductions and scans, MATMUL,
GATHER and CONCAT.

As in :mod:`tapegrad.emit.vjp_elementwise`, each rule is its kernel's backward written with
traced operations: ``rule(g, y, a, e)`` returns the adjoint of operand ``a`` shaped like
``a``.  ``e.ints`` holds the entry's integer attributes: a reduction's ``(pre, m, post)``
block, MATMUL's ``(m, k, n, batch, sa, sb, ta, tb)``, GATHER's flat indices, CONCAT's
``(k, pre, w_0, ...)``.

Invariants
----------
* Every rule emits entries of existing rows only, reading its operands as C-ordered blocks
  exactly as the kernel does (so a rule needs no shape other than the operand's).
* GATHER's adjoint is a scatter-add, which the table has no row for: it is written as one
  GATHER of the output adjoint into a ``(size(a), K)`` block (K: the most times any element
  was read; empty slots read an appended zero) and a SUM over K.  For a broadcast every
  element is read equally often, so the block is exactly as large as the adjoint.
* CUMPROD's kernel is exact at zeros (no division by the operand); so is its rule, which
  pays for that with an ``(m, m)`` block per scan: fine for the short scans ``prod`` makes.
"""
import numpy as np

import tapegrad.numpy as tnp
from tapegrad.emit.arrays import concatenate, const, take_flat
from tapegrad.emit.reductions import reduce, softmax
from tapegrad.emit.shape import broadcast_to, getitem, reshape
from tapegrad.emit.vjp_elementwise import equal_weight
from tapegrad.tracer import _emit


def _block(x, e):
    pre, m, post = (int(v) for v in e.ints[:3])
    return reshape(x, (pre, m, post)), pre, m, post


def _per_row(g, e):
    """The output adjoint of a reduction as a (pre, 1, post) block."""
    pre, _, post = (int(v) for v in e.ints[:3])
    return reshape(g, (pre, 1, post))


def _sum(g, y, a, e):
    pre, m, post = (int(v) for v in e.ints[:3])
    spread = broadcast_to(_per_row(g, e), (pre, m, post))
    return reshape(spread if e.p == 1.0 else e.p * spread, a.shape)


def _max(g, y, a, e):
    a3 = _block(a, e)[0]
    hit = equal_weight(a3, _per_row(y, e))  # ties split evenly; a NaN max: count 0, NaN
    count = reduce("SUM", hit, 1, keepdims=True)
    return reshape(hit * (_per_row(g, e) / count), a.shape)


def _logsumexp(g, y, a, e):
    return reshape(_per_row(g, e) * softmax(_block(a, e)[0], 1), a.shape)


def _softmax(g, y, a, e):
    g3, y3 = _block(g, e)[0], _block(y, e)[0]
    return reshape(y3 * (g3 - reduce("SUM", g3 * y3, 1, keepdims=True)), a.shape)


def _cumsum(g, y, a, e):
    g3 = _block(g, e)[0]
    back = slice(None, None, -1)
    return reshape(getitem(getitem(g3, (slice(None), back)).cumsum(axis=1), (slice(None), back)), a.shape)


def _cumprod(g, y, a, e):
    # da_k = y_{k-1} * sum_{l >= k} g_l * P[k, l], P[k, l] = a_{k+1} ... a_l (1 for l = k)
    a3, pre, m, post = _block(a, e)
    if m == 0 or pre * post == 0:
        return None
    k, j = np.arange(m)[:, None], np.arange(m)[None, :]
    a4 = broadcast_to(reshape(a3, (pre, 1, m, post)), (pre, m, m, post))
    after = np.broadcast_to((j > k)[None, :, :, None], (pre, m, m, post))
    P = tnp.where(after, a4, 1.0).cumprod(axis=2)
    g4 = reshape(_block(g, e)[0], (pre, 1, m, post))
    upper = np.broadcast_to((j >= k)[None, :, :, None], (pre, m, m, post))
    S = reduce("SUM", tnp.where(upper, g4 * P, 0.0), 2)
    y3 = _block(y, e)[0]
    before = concatenate([const(y._rec, np.ones((pre, 1, post))), getitem(y3, (slice(None), slice(0, m - 1)))], axis=1)
    return reshape(before * S, a.shape)


def gemm(x, y, m, k, n, batch, sx, sy, tx, ty):
    """A MATMUL entry reading ``x`` and ``y`` as stored (flat): per batch step op(x) (m, k)
    @ op(y) (k, n), op transposing when ``tx``/``ty``; the result is (batch, m, n)."""
    xv, yv = x._value.ravel(), y._value.ravel()
    xs = np.stack([xv[t * sx:t * sx + m * k].reshape((k, m) if tx else (m, k)) for t in range(batch)])
    ys = np.stack([yv[t * sy:t * sy + k * n].reshape((n, k) if ty else (k, n)) for t in range(batch)])
    value = np.matmul(xs.transpose(0, 2, 1) if tx else xs, ys.transpose(0, 2, 1) if ty else ys)
    return _emit(x._rec, "MATMUL", (x._node, y._node), value, ints=(m, k, n, batch, sx, sy, tx, ty))


def _batched(prod, stride, shape):
    """A (batch, ...) stack of per-step adjoints as the operand's adjoint: summed over the
    batch when one matrix served every step (batch stride 0)."""
    return reshape(reduce("SUM", prod, 0) if stride == 0 else prod, shape)


def _matmul_a(g, y, a, b, e):
    m, k, n, batch, sa, sb, ta, tb = (int(v) for v in e.ints[:8])
    if batch == 0:
        return None
    if ta:   # dA (k, m) = op(B) dC^T
        prod = gemm(b, g, k, n, m, batch, sb, m * n, tb, 1)
    else:    # dA (m, k) = dC op(B)^T
        prod = gemm(g, b, m, n, k, batch, m * n, sb, 0, 1 - tb)
    return _batched(prod, sa, a.shape)


def _matmul_b(g, y, a, b, e):
    m, k, n, batch, sa, sb, ta, tb = (int(v) for v in e.ints[:8])
    if batch == 0:
        return None
    if tb:   # dB (n, k) = dC^T op(A)
        prod = gemm(g, a, n, m, k, batch, m * n, sa, 1, ta)
    else:    # dB (k, n) = op(A)^T dC
        prod = gemm(a, g, k, m, n, batch, sa, m * n, 1 - ta, 0)
    return _batched(prod, sb, b.shape)


def scatter_add(g, idx, size):
    """The flat array of ``size`` whose element i is the sum of ``g.flat[j]`` over the j
    with ``idx[j] == i``: GATHER's adjoint, from a GATHER and a SUM (module docstring)."""
    idx = np.asarray(idx, np.int64)
    counts = np.bincount(idx, minlength=size)
    K = int(counts.max()) if size and idx.size else 0
    if K == 0:
        return None
    order = np.argsort(idx, kind="stable")
    rank = np.arange(idx.size) - np.searchsorted(idx[order], idx[order], side="left")
    slots = np.full((size, K), idx.size, np.int64)  # idx.size: the appended zero
    slots[idx[order], rank] = order
    flat = reshape(g, -1)
    if not (slots < idx.size).all():
        flat = concatenate([flat, const(g._rec, np.zeros(1))])
    picked = take_flat(flat, slots)
    return reshape(picked, -1) if K == 1 else reduce("SUM", picked, 1)


def _gather(g, y, a, e):
    flat = scatter_add(g, e.ints[:y.size], a.size)
    return None if flat is None else reshape(flat, a.shape)


def _concat(t, g, y, args, e):
    """Operand ``t``'s columns of the output's (pre, W) block."""
    k, pre = int(e.ints[0]), int(e.ints[1])
    widths = [int(w) for w in e.ints[2:2 + k]]
    start = sum(widths[:t])
    g2 = reshape(g, (pre, sum(widths)))
    return reshape(getitem(g2, (slice(None), slice(start, start + widths[t]))), args[t].shape)


REDUCE = {"SUM": (_sum,), "MAX": (_max,), "LOGSUMEXP": (_logsumexp,), "SOFTMAX": (_softmax,),
          "CUMSUM": (_cumsum,), "CUMPROD": (_cumprod,)}
LINALG = {"MATMUL": (_matmul_a, _matmul_b)}
INDEX = {"GATHER": (_gather,)}
VARIADIC = {"CONCAT": _concat}
