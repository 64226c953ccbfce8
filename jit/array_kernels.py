"""Forward and backward kernels of the ops that are not elementwise.

Every kernel here has one of two signatures, so the interpreter can call them uniformly:

    forward(vals, ints, oo, oa, ob, n, ia, p, q, ext, xs)
    backward(vals, adj, ints, oo, oa, ob, n, ia, p, q, need_a, need_b, ext, xs)

``vals``/``adj`` are the value and adjoint arenas, ``oo``/``oa``/``ob`` the arena offsets of
the output and operands, ``n`` the output size, ``ia`` the offset of this entry's integer
attributes in ``ints``, ``p``/``q`` its float attributes.  Backward kernels *add* into ``adj``
(the adjoint of a node is the sum over the entries that use it) and touch an operand's
adjoint only when ``need_a``/``need_b`` are nonzero (it leads back to a differentiated
input).  A value of 2 (``interpreter.SET``) lets a kernel whose row has ``overwrites`` set
assign that adjoint instead: the interpreter did not zero it.

``ext`` holds the addresses of inputs that are read where the caller keeps them instead of
being copied into the arena; ``xs`` packs which operands those are (matmul only: a large
weight or data matrix is read by BLAS straight from the user's array).

Axis ops see their operand as a C-ordered (pre, m, post) block reduced over the middle
axis; the front end computes the three numbers.  Matmul is a batch of row-major GEMMs done
by BLAS (``numba_xxgemm``, numba's own wrapper of scipy's dgemm) so that the backward products
accumulate into the adjoint arena with beta = 1 and no temporaries.
"""
import math

import numba
import numpy as np
from numba.core import types
from numba.extending import intrinsic
from numba.np.linalg import _BLAS

from .compile import rule
from .vmath import vexp

# The class method, not an instance: instantiating would import scipy.linalg (0.1 s) now
# instead of at the first matrix product, when numba's helper looks dgemm up.
_xxgemm = _BLAS.numba_xxgemm(numba.float64)
_ONE = np.ones(1)
_ZERO = np.zeros(1)
SLOT_BITS = 20  # a program row's last column packs the by-reference slots of a and b
SLOT_MASK = (1 << SLOT_BITS) - 1


@intrinsic
def float_pointer(typingctx, address):
    """The float64 pointer at an integer address (LLVM inttoptr)."""
    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(signature.return_type))
    return types.CPointer(types.float64)(types.int64), codegen


@rule
def address(arr, offset, ext, slot):
    """Where an operand's values start: in the arena, or in the caller's own array for an
    input passed by reference (``slot`` > 0: its address is ``ext[slot - 1]``)."""
    return ext[slot - 1] if slot > 0 else arr.ctypes.data + 8 * offset


@rule
def gemm(ta, tb, m, n, k, x, y, beta, z, oz):
    """z[oz:] (m, n) = beta * z + op(x) @ op(y), row-major; ``x``, ``y`` are addresses and
    op transposes when ``ta``/``tb``."""
    if m == 0 or n == 0:
        return
    if k == 0:
        if beta == 0.0:
            z[oz:oz + m * n] = 0.0
        return
    # Row-major Z = X Y is column-major Z^T = Y^T X^T, so BLAS sees the operands swapped.
    _xxgemm(ord("d"), ord("T") if tb else ord("N"), ord("T") if ta else ord("N"),
            n, m, k, _ONE.ctypes, float_pointer(y), k if tb else n,
            float_pointer(x), m if ta else k, (_ONE if beta != 0.0 else _ZERO).ctypes,
            z[oz:].ctypes, n)


@rule
def matmul_fwd(vals, ints, oo, oa, ob, n, ia, p, q, ext, xs):
    m, k, nn, batch, sa, sb = ints[ia], ints[ia + 1], ints[ia + 2], ints[ia + 3], ints[ia + 4], ints[ia + 5]
    ta, tb = ints[ia + 6] != 0, ints[ia + 7] != 0
    pa, pb = address(vals, oa, ext, xs & SLOT_MASK), address(vals, ob, ext, xs >> SLOT_BITS)
    for t in range(batch):
        gemm(ta, tb, m, nn, k, pa + 8 * t * sa, pb + 8 * t * sb, 0.0, vals, oo + t * m * nn)


@rule
def matmul_bwd(vals, adj, ints, oo, oa, ob, n, ia, p, q, need_a, need_b, ext, xs):
    m, k, nn, batch, sa, sb = ints[ia], ints[ia + 1], ints[ia + 2], ints[ia + 3], ints[ia + 4], ints[ia + 5]
    ta, tb = ints[ia + 6] != 0, ints[ia + 7] != 0
    pa, pb = address(vals, oa, ext, xs & SLOT_MASK), address(vals, ob, ext, xs >> SLOT_BITS)
    pg = adj.ctypes.data + 8 * oo
    for t in range(batch):
        og, xa, xb = pg + 8 * t * m * nn, pa + 8 * t * sa, pb + 8 * t * sb
        # C = op(A) op(B): d op(A) = dC op(B)^T and d op(B) = op(A)^T dC.  An operand stored
        # transposed (ta, tb) gets the transpose of its product, again by BLAS flags.  Told
        # to overwrite, the first product of each adjoint block assigns (beta = 0).
        if need_a:
            beta = 0.0 if need_a == 2 and (t == 0 or sa != 0) else 1.0
            if ta:  # dA (k, m) = op(B) dC^T
                gemm(tb, True, k, m, nn, xb, og, beta, adj, oa + t * sa)
            else:   # dA (m, k) = dC op(B)^T
                gemm(False, not tb, m, k, nn, og, xb, beta, adj, oa + t * sa)
        if need_b:
            beta = 0.0 if need_b == 2 and (t == 0 or sb != 0) else 1.0
            if tb:  # dB (n, k) = dC^T op(A)
                gemm(True, ta, nn, k, m, og, xa, beta, adj, ob + t * sb)
            else:   # dB (k, n) = op(A)^T dC
                gemm(not ta, False, k, nn, m, xa, og, beta, adj, ob + t * sb)


@rule
def gather_fwd(vals, ints, oo, oa, ob, n, ia, p, q, ext, xs):
    for j in range(n):
        vals[oo + j] = vals[oa + ints[ia + j]]


@rule
def gather_bwd(vals, adj, ints, oo, oa, ob, n, ia, p, q, need_a, need_b, ext, xs):
    for j in range(n):  # a scatter-add: repeated indices (broadcasts) sum their adjoints
        adj[oa + ints[ia + j]] += adj[oo + j]


@rule
def sum_fwd(vals, ints, oo, oa, ob, n, ia, p, q, ext, xs):
    pre, m, post = ints[ia], ints[ia + 1], ints[ia + 2]
    for i in range(pre):
        for j in range(post):
            s = 0.0
            base = oa + i * m * post + j
            for k in range(m):
                s += vals[base + k * post]
            vals[oo + i * post + j] = q * s


@rule
def sum_bwd(vals, adj, ints, oo, oa, ob, n, ia, p, q, need_a, need_b, ext, xs):
    pre, m, post = ints[ia], ints[ia + 1], ints[ia + 2]
    if post == 1:
        for i in range(pre):
            g = q * adj[oo + i]
            ga = adj[oa + i * m:oa + (i + 1) * m]
            for k in range(m):
                ga[k] += g
        return
    for i in range(pre):
        for k in range(m):
            base = oa + (i * m + k) * post
            for j in range(post):
                adj[base + j] += q * adj[oo + i * post + j]


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
def logsumexp_fwd(vals, ints, oo, oa, ob, n, ia, p, q, ext, xs):
    pre, m, post = ints[ia], ints[ia + 1], ints[ia + 2]
    for i in range(pre):
        for j in range(post):
            base = oa + i * m * post + j
            top = -np.inf
            for k in range(m):
                top = max(top, vals[base + k * post])
            if not math.isfinite(top):  # all -inf, any +inf, or NaN: the answer is top
                vals[oo + i * post + j] = top
                continue
            s = 0.0
            for k in range(m):
                s += vexp(vals[base + k * post] - top)
            vals[oo + i * post + j] = top + math.log(s)


@rule
def logsumexp_bwd(vals, adj, ints, oo, oa, ob, n, ia, p, q, need_a, need_b, ext, xs):
    pre, m, post = ints[ia], ints[ia + 1], ints[ia + 2]
    for i in range(pre):
        for j in range(post):
            base = oa + i * m * post + j
            y, g = vals[oo + i * post + j], adj[oo + i * post + j]
            for k in range(m):
                adj[base + k * post] += g * vexp(vals[base + k * post] - y)


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
