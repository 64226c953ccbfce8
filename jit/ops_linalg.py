"""Linear algebra: MATMUL, a batch of row-major GEMMs done by BLAS.

Kernels have the array-kernel signatures documented in :mod:`tapegrad.jit.oprow`.

``ext`` holds the addresses of inputs read where the caller keeps them instead of being
copied into the arena; ``xs`` packs which operands those are (``SLOT_BITS`` each): a large
weight or data matrix is read by BLAS straight from the user's array.

BLAS is reached through ``numba_xxgemm`` (numba's own wrapper of scipy's dgemm), so the
backward products accumulate into the adjoint arena with beta = 1 and no temporaries.

Invariants
----------
* ints (m, k, n, batch, sa, sb, ta, tb): op(A) (m, k) @ op(B) (k, n) per batch step, batch
  strides 0 or the matrix size, ta/tb flag an operand stored transposed (``checks.matmul``).
* Told SET, the first product of each adjoint block assigns (beta = 0): ``overwrites``.
"""
import numpy as np
from numba.core import types
from numba.extending import intrinsic

from . import checks as C
from .compile import rule
from .oprow import SLOT_BITS, SLOT_MASK, Op

# numba's C helper for BLAS gemm, which looks dgemm up in scipy on its first call (so scipy's
# BLAS is imported at the first matrix product, not now).  Its signature is the one
# numba.np.linalg._BLAS.numba_xxgemm gives (tests/test_startup.py checks), written out: importing
# numba.np.linalg loads numba's array and string implementations, ~17 ms of a fresh process
# that only loads cached kernels.  BLAS's character arguments are ints made here: ord() in a
# kernel would make every load of its cached code import numba's unicode support.
F64P = types.CPointer(types.float64)
xxgemm = types.ExternalFunction("numba_xxgemm", types.int32(
    types.char, types.char, types.char, types.intp, types.intp, types.intp, F64P, F64P, types.intp, F64P,
    types.intp, F64P, F64P, types.intp))
D, T, N = ord("d"), ord("T"), ord("N")
_ONE = np.ones(1)
_ZERO = np.zeros(1)


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
    if m == 1 and n == 1:  # a dot product: BLAS gemm takes 4-6x as long (it packs)
        px, py = float_pointer(x), float_pointer(y)
        r0 = r1 = r2 = r3 = r4 = r5 = r6 = r7 = 0.0  # 8 chains: LLVM packs them in vectors
        top = k - k % 8
        for i in range(0, top, 8):
            r0 += px[i] * py[i]
            r1 += px[i + 1] * py[i + 1]
            r2 += px[i + 2] * py[i + 2]
            r3 += px[i + 3] * py[i + 3]
            r4 += px[i + 4] * py[i + 4]
            r5 += px[i + 5] * py[i + 5]
            r6 += px[i + 6] * py[i + 6]
            r7 += px[i + 7] * py[i + 7]
        s = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        for i in range(top, k):
            s += px[i] * py[i]
        z[oz] = s if beta == 0.0 else z[oz] + s
        return
    if k == 1:  # an outer product (a dot product's backward): likewise
        px, py = float_pointer(x), float_pointer(y)
        for i in range(m):
            row, xi = z[oz + i * n:oz + (i + 1) * n], px[i]
            if beta == 0.0:
                for j in range(n):
                    row[j] = xi * py[j]
            else:
                for j in range(n):
                    row[j] += xi * py[j]
        return
    # Row-major Z = X Y is column-major Z^T = Y^T X^T, so BLAS sees the operands swapped.
    xxgemm(D, T if tb else N, T if ta else N,
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


ROWS = (
    Op("MATMUL", "linalg", 2, matmul_fwd, matmul_bwd,
       "batched row-major op(A) (m, k) @ op(B) (k, n) by BLAS; ints (m, k, n, batch, sa, sb, ta, tb), "
       "op transposes a stored operand when ta/tb", C.matmul, overwrites=True),
)
