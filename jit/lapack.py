"""Dense linear-algebra building blocks for the decomposition kernels (``ops_decomp``,
``ops_spectral``): LAPACK and BLAS on raw addresses, and the packed-output layout.

LAPACK is reached through numba's own helpers (``numba_xxgetrf``, ``numba_ez_gesdd``, ...),
which look the routine up in ``scipy.linalg.cython_lapack`` on their first *call*: a
process that never replays a decomposition never imports scipy's LAPACK.  Their signatures
are the ones the class methods of ``numba.np.linalg._LAPACK`` give, written out (as
``ops_linalg`` does for gemm, and tests/test_startup.py checks they agree): importing
``numba.np.linalg`` would cost a fresh process ~17 ms.  LAPACK's character arguments are
ints made here (``D``, ``U``, ...), never ``ord()`` inside a kernel.  The ``ez`` helpers allocate LAPACK's workspace themselves (C
malloc, not numba's runtime), so kernels stay allocation-free.

Row-major and column-major: LAPACK reads a row-major ``(m, n)`` buffer as the
column-major matrix ``Aᵀ``; each kernel says which of the two it hands over.

A decomposition entry writes one *packed* node: its visible components, each
for the whole batch and C-ordered, one after the other (the front end hands the user free
alias windows on them), then one scratch block shared by the batch steps.  The forward
kernel uses the scratch of the value arena, the backward kernel the same block of the
adjoint arena (nothing else reads or writes either: the front end exposes only the
components).

Invariants
----------
* ``sizes(m, n, r) -> ((c0, c1, c2), scratch)`` per op (``ops_*.SIZES``): a packed node of
  ``batch`` matrices holds ``batch * (c0 + c1 + c2) + scratch`` floats.  The same plain
  function serves the front end, the file validator (``checks.packed``) and, compiled,
  the kernels (``entry``).
* LAPACK failures (a singular or indefinite matrix, no convergence) and non-finite
  inputs give NaN outputs: kernels cannot raise, and numpy raises at record time.
"""
import numpy as np
from numba import types
from numba.extending import intrinsic

from .compile import rule
from .ops_linalg import D, F64P, N, T, float_pointer, xxgemm

_I, _C, _P, _IP = types.intp, types.char, F64P, types.CPointer(types.int32)
getrf = types.ExternalFunction("numba_xxgetrf", types.int32(_C, _I, _I, _P, _I, _IP))
getri = types.ExternalFunction("numba_ez_xxgetri", types.int32(_C, _I, _P, _I, _IP))
gesv = types.ExternalFunction("numba_xgesv", types.int32(_C, _I, _I, _P, _I, _IP, _P, _I))
potrf = types.ExternalFunction("numba_xxpotrf", types.int32(_C, _C, _I, _P, _I))
syevd = types.ExternalFunction("numba_ez_xxxevd", types.int32(_C, _C, _C, _I, _P, _I, _P))
gesdd = types.ExternalFunction("numba_ez_gesdd", types.int32(_C, _C, _I, _I, _P, _I, _P, _P, _I, _P, _I))
U, V, S = ord("U"), ord("V"), ord("S")
_ONE, _MINUS_ONE, _ZERO = np.ones(1), -np.ones(1), np.zeros(1)


@intrinsic
def int_pointer(typingctx, address):
    """The int32 pointer at an integer address (LAPACK's pivot arrays)."""
    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(signature.return_type))
    return types.CPointer(types.int32)(types.int64), codegen


@rule
def at(arr, offset):
    """The address of ``arr[offset]`` (a float64 arena)."""
    return arr.ctypes.data + 8 * offset


@rule
def ptr(arr, offset):
    return float_pointer(arr.ctypes.data + 8 * offset)


@rule
def pivot_sign(arr, offset, n):
    """(-1) ** (the number of row swaps) of getrf's n int32 pivots at ``arr[offset:]``."""
    piv = int_pointer(arr.ctypes.data + 8 * offset)
    sign = 1.0
    for i in range(n):
        if piv[i] != i + 1:
            sign = -sign
    return sign


@rule
def mm(ta, tb, m, n, k, negate, x, y, accumulate, z):
    """Row-major z (m, n) = [z +] (-1 if negate) op(x) @ op(y), on addresses; op transposes
    a stored operand when ``ta``/``tb`` (x stored (k, m), y stored (n, k))."""
    if m == 0 or n == 0:
        return
    if k == 0:
        if not accumulate:
            zs = float_pointer(z)
            for i in range(m * n):
                zs[i] = 0.0
        return
    # row-major Z = X Y is column-major Zᵀ = Yᵀ Xᵀ: BLAS sees the operands swapped
    xxgemm(D, T if tb else N, T if ta else N, n, m, k,
          (_MINUS_ONE if negate else _ONE).ctypes, float_pointer(y), k if tb else n,
          float_pointer(x), m if ta else k, (_ONE if accumulate else _ZERO).ctypes,
          float_pointer(z), n)


@rule
def copy(src, so, dst, do, size):
    for i in range(size):
        dst[do + i] = src[so + i]


@rule
def transpose_copy(src, so, dst, do, rows, cols):
    """dst (cols, rows) = src (rows, cols)ᵀ, both row-major."""
    for i in range(rows):
        for j in range(cols):
            dst[do + j * rows + i] = src[so + i * cols + j]


@rule
def transpose_in_place(arr, o, n):
    for i in range(n):
        for j in range(i + 1, n):
            t = arr[o + i * n + j]
            arr[o + i * n + j] = arr[o + j * n + i]
            arr[o + j * n + i] = t


@rule
def fill_nan(arr, o, size):
    for i in range(size):
        arr[o + i] = np.nan


@rule
def all_finite(arr, o, size):
    for i in range(size):
        if not np.isfinite(arr[o + i]):
            return False
    return True


@rule
def inverse(src, so, dst, do, pv, n):
    """dst[do:] (n, n) = the inverse of the row-major matrix at src[so:], by LU (getrf,
    getri) with its n pivots in dst[pv:]; NaN if the matrix is singular or not finite.
    (A row-major buffer is its column-major transpose, and inverting commutes with
    transposing, so the result is row-major too.)"""
    copy(src, so, dst, do, n * n)
    if n == 0:
        return
    piv = int_pointer(at(dst, pv))
    if not all_finite(dst, do, n * n) or getrf(D, n, n, ptr(dst, do), n, piv) != 0:
        fill_nan(dst, do, n * n)
    elif getri(D, n, ptr(dst, do), n, piv) != 0:
        fill_nan(dst, do, n * n)


@rule
def starts(oo, batch, c0, c1, c2):
    """Where the components and the scratch of a packed output start."""
    o1 = oo + batch * c0
    o2 = o1 + batch * c1
    return o1, o2, o2 + batch * c2


@rule
def entry(ints, ia, oo, sizes):
    """(batch, m, n, r, starts of the components 1 and 2 and of the scratch) of a packed
    entry whose ints are (batch, m, n, r) and whose layout is the compiled ``sizes``."""
    batch, m, n, r = ints[ia], ints[ia + 1], ints[ia + 2], ints[ia + 3]
    (c0, c1, c2), _ = sizes(m, n, r)
    o1, o2, work = starts(oo, batch, c0, c1, c2)
    return batch, m, n, r, o1, o2, work
