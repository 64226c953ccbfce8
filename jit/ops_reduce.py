"""Reductions and axis ops: SUM, MAX, LOGSUMEXP, SOFTMAX, CUMSUM, CUMPROD.

Kernels have the array-kernel signatures documented in :mod:`tapegrad.jit.oprow`.

Each sees its operand as a C-ordered (pre, m, post) block (its ints) and works over the
middle axis; the front end computes the three numbers.  SUM's float attribute ``scale``
(``p``) multiplies the sum (a mean is a SUM with scale 1/m).

Invariants
----------
* Never allocate, never read outside the (pre, m, post) block of the operand and the
  (pre, post) or (pre, m, post) block of the output (``checks.reduce``/``along_axis``).
* NaN in, NaN out: MAX and LOGSUMEXP propagate it, ties in MAX split the gradient evenly.
* CUMSUM and CUMPROD keep the operand's shape (``checks.along_axis``) and scan the middle
  axis; CUMPROD's backward is exact at zeros (no division by the operand).
"""
import math

import numpy as np

from . import checks as C
from .compile import rule
from .oprow import Op
from .vmath import vexp


SUM_BLOCK = 128  # a contiguous sum adds blocks of this many, each summed in 8 lanes


@rule
def lanes_block(a, m):
    """a[0] + ... + a[m-1] for m <= SUM_BLOCK, as 8 interleaved partial sums (numpy's
    pairwise inner loop): LLVM vectorises it, and it is more accurate than one running sum."""
    r0 = r1 = r2 = r3 = r4 = r5 = r6 = r7 = 0.0
    top = m - m % 8
    for k in range(0, top, 8):
        r0 += a[k]
        r1 += a[k + 1]
        r2 += a[k + 2]
        r3 += a[k + 3]
        r4 += a[k + 4]
        r5 += a[k + 5]
        r6 += a[k + 6]
        r7 += a[k + 7]
    r = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    for k in range(top, m):
        r += a[k]
    return r


@rule
def lanes_sum(s, vals, start, m):
    """s plus the contiguous vals[start:start + m], one SUM_BLOCK block at a time, blocks
    counted from ``start``.  So a sum taken in pieces whose lengths are multiples of
    SUM_BLOCK, each piece continuing the last one's ``s``, equals the sum taken at once
    bit for bit (the fused segments rely on it)."""
    for b in range(start, start + m, SUM_BLOCK):
        size = min(SUM_BLOCK, start + m - b)
        s += lanes_block(vals[b:b + size], size)
    return s


@rule
def sum_fwd(vals, ints, oo, oa, ob, n, ia, p, q, ext, xs):
    pre, m, post = ints[ia], ints[ia + 1], ints[ia + 2]
    if post == 1:
        for i in range(pre):
            vals[oo + i] = p * lanes_sum(0.0, vals, oa + i * m, m)
        return
    for i in range(pre):  # each output element still a running sum over k, but the loop
        y = vals[oo + i * post:oo + (i + 1) * post]  # over j innermost, so it vectorises
        y[:] = 0.0
        for k in range(m):
            row = oa + (i * m + k) * post
            a = vals[row:row + post]
            for j in range(post):
                y[j] += a[j]
        for j in range(post):
            y[j] = p * y[j]


@rule
def sum_bwd(vals, adj, ints, oo, oa, ob, n, ia, p, q, need_a, need_b, ext, xs):
    pre, m, post = ints[ia], ints[ia + 1], ints[ia + 2]
    if post == 1:
        for i in range(pre):
            g = p * adj[oo + i]
            ga = adj[oa + i * m:oa + (i + 1) * m]
            for k in range(m):
                ga[k] += g
        return
    sum_bwd_inner(adj, oo, oa, pre, m, post, p)


@rule
def sum_bwd_inner(adj, oo, oa, pre, m, post, p):
    """SUM's adjoint over an inner axis: each operand element adds p * g.  Views, not arena
    indices, so the loop over the inner axis vectorises."""
    for i in range(pre):
        g = adj[oo + i * post:oo + (i + 1) * post]
        for k in range(m):
            row = oa + (i * m + k) * post
            ga = adj[row:row + post]
            for j in range(post):
                ga[j] += p * g[j]


@rule
def max_fwd(vals, ints, oo, oa, ob, n, ia, p, q, ext, xs):
    pre, m, post = ints[ia], ints[ia + 1], ints[ia + 2]
    for i in range(pre):
        for j in range(post):
            base = oa + i * m * post + j
            best = vals[base]
            for k in range(1, m):
                v = vals[base + k * post]
                if v > best or math.isnan(v):
                    best = v
                    if math.isnan(v):
                        break
            vals[oo + i * post + j] = best


@rule
def max_bwd(vals, adj, ints, oo, oa, ob, n, ia, p, q, need_a, need_b, ext, xs):
    pre, m, post = ints[ia], ints[ia + 1], ints[ia + 2]
    for i in range(pre):
        for j in range(post):
            base = oa + i * m * post + j
            y = vals[oo + i * post + j]
            ties = 0
            for k in range(m):
                ties += vals[base + k * post] == y
            if ties == 0:  # the max is NaN: NaN in, NaN out
                for k in range(m):
                    adj[base + k * post] += np.nan
                continue
            share = adj[oo + i * post + j] / ties  # ties split the gradient evenly
            for k in range(m):
                if vals[base + k * post] == y:
                    adj[base + k * post] += share


@rule
def shifted_sum(vals, base, m, post):
    """(top, s): the largest of the m values vals[base + k * post] and the sum of
    exp(value - top), the overflow-free pieces of a logsumexp or softmax."""
    top = -np.inf
    for k in range(m):
        top = max(top, vals[base + k * post])
    s = 0.0
    for k in range(m):
        s += vexp(vals[base + k * post] - top)
    return top, s


@rule
def logsumexp_fwd(vals, ints, oo, oa, ob, n, ia, p, q, ext, xs):
    pre, m, post = ints[ia], ints[ia + 1], ints[ia + 2]
    for i in range(pre):
        for j in range(post):
            top, s = shifted_sum(vals, oa + i * m * post + j, m, post)
            # all -inf, any +inf, or NaN: the answer is top
            vals[oo + i * post + j] = top + math.log(s) if math.isfinite(top) else top


@rule
def logsumexp_bwd(vals, adj, ints, oo, oa, ob, n, ia, p, q, need_a, need_b, ext, xs):
    pre, m, post = ints[ia], ints[ia + 1], ints[ia + 2]
    for i in range(pre):
        for j in range(post):
            base = oa + i * m * post + j
            # softmax weights from the max shift, not exp(x - y): y = top + log(s) is rounded,
            # and at |x| ~ 1e15 that rounding alone moves exp(x - y) by several percent
            top, s = shifted_sum(vals, base, m, post)
            g = adj[oo + i * post + j] / s
            for k in range(m):
                adj[base + k * post] += g * vexp(vals[base + k * post] - top)


@rule
def softmax_fwd(vals, ints, oo, oa, ob, n, ia, p, q, ext, xs):
    pre, m, post = ints[ia], ints[ia + 1], ints[ia + 2]
    for i in range(pre):
        for j in range(post):
            base = i * m * post + j
            top = -np.inf
            for k in range(m):
                top = max(top, vals[oa + base + k * post])
            s = 0.0
            for k in range(m):
                e = vexp(vals[oa + base + k * post] - top)
                vals[oo + base + k * post] = e
                s += e
            for k in range(m):
                vals[oo + base + k * post] /= s


@rule
def softmax_bwd(vals, adj, ints, oo, oa, ob, n, ia, p, q, need_a, need_b, ext, xs):
    pre, m, post = ints[ia], ints[ia + 1], ints[ia + 2]
    for i in range(pre):
        for j in range(post):
            base = i * m * post + j
            dot = 0.0
            for k in range(m):
                dot += adj[oo + base + k * post] * vals[oo + base + k * post]
            for k in range(m):
                y = vals[oo + base + k * post]
                adj[oa + base + k * post] += y * (adj[oo + base + k * post] - dot)


@rule
def cumsum_fwd(vals, ints, oo, oa, ob, n, ia, p, q, ext, xs):
    pre, m, post = ints[ia], ints[ia + 1], ints[ia + 2]
    for i in range(pre):
        for j in range(post):
            base = i * m * post + j
            s = 0.0
            for k in range(m):
                s += vals[oa + base + k * post]
                vals[oo + base + k * post] = s


@rule
def cumsum_bwd(vals, adj, ints, oo, oa, ob, n, ia, p, q, need_a, need_b, ext, xs):
    pre, m, post = ints[ia], ints[ia + 1], ints[ia + 2]
    for i in range(pre):
        for j in range(post):
            base = i * m * post + j
            s = 0.0
            for k in range(m - 1, -1, -1):  # da_k = sum of g_l for l >= k
                s += adj[oo + base + k * post]
                adj[oa + base + k * post] += s


@rule
def cumprod_fwd(vals, ints, oo, oa, ob, n, ia, p, q, ext, xs):
    pre, m, post = ints[ia], ints[ia + 1], ints[ia + 2]
    for i in range(pre):
        for j in range(post):
            base = i * m * post + j
            s = 1.0
            for k in range(m):
                s *= vals[oa + base + k * post]
                vals[oo + base + k * post] = s


@rule
def cumprod_bwd(vals, adj, ints, oo, oa, ob, n, ia, p, q, need_a, need_b, ext, xs):
    # da_k = y_{k-1} * S_k with S_k = sum_{l >= k} g_l * a_{k+1} ... a_l, so that
    # S_k = g_k + a_{k+1} * S_{k+1}: no division, exact where some a is 0
    pre, m, post = ints[ia], ints[ia + 1], ints[ia + 2]
    for i in range(pre):
        for j in range(post):
            base = i * m * post + j
            s = 0.0
            for k in range(m - 1, -1, -1):
                if k < m - 1:
                    s *= vals[oa + base + (k + 1) * post]
                s += adj[oo + base + k * post]
                before = vals[oo + base + (k - 1) * post] if k > 0 else 1.0
                adj[oa + base + k * post] += before * s


ROWS = (
    Op("SUM",       "reduce", 1, sum_fwd,       sum_bwd,       "scale * sum over the middle axis of (pre, m, post)", C.reduce, floats=("scale",)),
    Op("MAX",       "reduce", 1, max_fwd,       max_bwd,       "max over the middle axis of (pre, m, post)", C.reduce_nonempty),
    Op("LOGSUMEXP", "reduce", 1, logsumexp_fwd, logsumexp_bwd, "log(sum(exp(a))) over one axis, shifted by the max", C.reduce),
    Op("SOFTMAX",   "reduce", 1, softmax_fwd,   softmax_bwd,   "exp(a - logsumexp(a)) along one axis", C.along_axis),
    Op("CUMSUM",    "reduce", 1, cumsum_fwd,    cumsum_bwd,    "running sum along the middle axis of (pre, m, post)", C.along_axis),
    Op("CUMPROD",   "reduce", 1, cumprod_fwd,   cumprod_bwd,   "running product along the middle axis, exact gradient at zeros", C.along_axis),
)
