"""Linear algebra by LU and Cholesky: SOLVE, INV, DET, SLOGDET, CHOLESKY (family ``decomp``).

Each entry writes one packed node (see ``lapack``): its components for the whole batch,
then a scratch block.  Kernels have the array-kernel signatures of :mod:`tapegrad.jit.oprow`
and loop over a batch of C-ordered matrices.  Backward kernels only ever add (no row
``overwrites``).

Invariants
----------
* ints ``(batch, m, n, r)``: ``batch`` matrices A of ``(m, n)`` (square here: m = n); r the
  right-hand sides of SOLVE (B is ``(n, r)``), 0 for the others (``checks.packed``).
* Rules are autograd's, written as products of matrices: SOLVE ``dB = A⁻ᵀ G, dA = -dB Xᵀ``;
  INV ``dA = -Yᵀ G Yᵀ``; DET ``dA = g det A⁻ᵀ``; SLOGDET ``dA = g A⁻ᵀ`` (the sign is flat).
  CHOLESKY differentiates numpy's function, which reads only the lower triangle: with
  ``S = L⁻ᵀ Φ(Lᵀ G) L⁻¹`` (Φ: lower triangle, halved diagonal; Murray 2016), the gradient
  is ``S + Sᵀ`` below the diagonal, ``S`` on it and 0 above.
* A singular (INV, SOLVE), indefinite (CHOLESKY) or non-finite matrix gives NaN, not an
  error (numpy raises when recording); DET/SLOGDET of a singular matrix are 0 / (0, -inf)
  as numpy's, with a NaN gradient.
"""
import numpy as np

from . import checks as C
from .compile import rule
from .lapack import (D, U, all_finite, at, copy, entry, fill_nan, gesv, getrf, int_pointer, inverse, mm,
                     pivot_sign, potrf, ptr, transpose_copy)
from .oprow import Op


def solve_sizes(m, n, r):
    return (n * r, 0, 0), n * n + n * r + n  # scratch: LU, right-hand sides, pivots


def inv_sizes(m, n, r):
    return (n * n, 0, 0), n * n + n


def det_sizes(m, n, r):
    return (1, 0, 0), n * n + n


def slogdet_sizes(m, n, r):
    return (1, 1, 0), n * n + n  # sign, log|det|


def cholesky_sizes(m, n, r):
    return (n * n, 0, 0), 3 * n * n + n


_solve, _inv, _det, _slogdet, _cholesky = (rule(f) for f in (solve_sizes, inv_sizes, det_sizes,
                                                               slogdet_sizes, cholesky_sizes))


@rule
def solve_fwd(vals, ints, oo, oa, ob, size, ia, p, q, ext, xs):
    batch, _, n, r, _, _, lu = entry(ints, ia, oo, _solve)
    rhs, pv = lu + n * n, lu + n * n + n * r
    for t in range(batch):
        a, b, x = oa + t * n * n, ob + t * n * r, oo + t * n * r
        if n * r == 0:
            continue
        transpose_copy(vals, a, vals, lu, n, n)   # column-major A
        transpose_copy(vals, b, vals, rhs, n, r)  # column-major B
        if not all_finite(vals, lu, n * n) or gesv(D, n, r, ptr(vals, lu), n, int_pointer(at(vals, pv)),
                                                   ptr(vals, rhs), n) != 0:
            fill_nan(vals, x, n * r)
        else:
            transpose_copy(vals, rhs, vals, x, r, n)


@rule
def solve_bwd(vals, adj, ints, oo, oa, ob, size, ia, p, q, need_a, need_b, ext, xs):
    batch, _, n, r, _, _, lu = entry(ints, ia, oo, _solve)
    rhs, pv = lu + n * n, lu + n * n + n * r
    for t in range(batch):
        a, b, x = oa + t * n * n, ob + t * n * r, oo + t * n * r
        if n * r == 0:
            continue
        copy(vals, a, adj, lu, n * n)            # row-major A is column-major Aᵀ
        transpose_copy(adj, x, adj, rhs, n, r)   # column-major G
        if not all_finite(adj, lu, n * n) or gesv(D, n, r, ptr(adj, lu), n, int_pointer(at(adj, pv)),
                                                  ptr(adj, rhs), n) != 0:
            fill_nan(adj, rhs, n * r)
        # rhs holds dB = A⁻ᵀ G column-major, that is dBᵀ row-major (r, n)
        if need_b:
            for i in range(n):
                for j in range(r):
                    adj[b + i * r + j] += adj[rhs + j * n + i]
        if need_a:  # dA -= dB Xᵀ
            mm(True, True, n, n, r, True, at(adj, rhs), at(vals, x), True, at(adj, a))


@rule
def inv_fwd(vals, ints, oo, oa, ob, size, ia, p, q, ext, xs):
    batch, _, n, _, _, _, pv = entry(ints, ia, oo, _inv)
    for t in range(batch):
        inverse(vals, oa + t * n * n, vals, oo + t * n * n, pv, n)


@rule
def inv_bwd(vals, adj, ints, oo, oa, ob, size, ia, p, q, need_a, need_b, ext, xs):
    batch, _, n, _, _, _, work = entry(ints, ia, oo, _inv)
    for t in range(batch):
        y, a = oo + t * n * n, oa + t * n * n
        mm(False, True, n, n, n, False, at(adj, y), at(vals, y), False, at(adj, work))  # G Yᵀ
        mm(True, False, n, n, n, True, at(vals, y), at(adj, work), True, at(adj, a))    # -Yᵀ G Yᵀ


@rule
def log_det(vals, a, work, wo, n):
    """(sign, log|det|) of the row-major (n, n) matrix at vals[a:], by LU in work[wo:]
    (n * n floats, then n pivots); numpy's (0, -inf) for a singular matrix."""
    if n == 0:
        return 1.0, 0.0
    copy(vals, a, work, wo, n * n)
    if not all_finite(work, wo, n * n):
        return np.nan, np.nan
    getrf(D, n, n, ptr(work, wo), n, int_pointer(at(work, wo + n * n)))
    sign, logabs = pivot_sign(work, wo + n * n, n), 0.0
    for i in range(n):
        u = work[wo + i * n + i]
        if u < 0.0:
            sign = -sign
        elif u == 0.0:
            return 0.0, -np.inf
        logabs += np.log(abs(u))
    return sign, logabs


@rule
def add_inverse_transposed(vals, a, adj, work, n, scale):
    """adj[a:] (n, n) += scale * A⁻ᵀ, with A⁻¹ computed in adj[work:] (NaN if singular)."""
    inverse(vals, a, adj, work, work + n * n, n)
    for i in range(n):
        for j in range(n):
            adj[a + i * n + j] += scale * adj[work + j * n + i]


@rule
def det_fwd(vals, ints, oo, oa, ob, size, ia, p, q, ext, xs):
    batch, _, n, _, _, _, work = entry(ints, ia, oo, _det)
    for t in range(batch):
        sign, logabs = log_det(vals, oa + t * n * n, vals, work, n)
        vals[oo + t] = sign * np.exp(logabs)  # numpy's det, from its slogdet


@rule
def det_bwd(vals, adj, ints, oo, oa, ob, size, ia, p, q, need_a, need_b, ext, xs):
    batch, _, n, _, _, _, work = entry(ints, ia, oo, _det)
    for t in range(batch):
        add_inverse_transposed(vals, oa + t * n * n, adj, work, n, adj[oo + t] * vals[oo + t])


@rule
def slogdet_fwd(vals, ints, oo, oa, ob, size, ia, p, q, ext, xs):
    batch, _, n, _, logs, _, work = entry(ints, ia, oo, _slogdet)
    for t in range(batch):
        vals[oo + t], vals[logs + t] = log_det(vals, oa + t * n * n, vals, work, n)


@rule
def slogdet_bwd(vals, adj, ints, oo, oa, ob, size, ia, p, q, need_a, need_b, ext, xs):
    batch, _, n, _, logs, _, work = entry(ints, ia, oo, _slogdet)
    for t in range(batch):
        add_inverse_transposed(vals, oa + t * n * n, adj, work, n, adj[logs + t])


@rule
def cholesky_fwd(vals, ints, oo, oa, ob, size, ia, p, q, ext, xs):
    batch, _, n, _, _, _, _ = entry(ints, ia, oo, _cholesky)
    for t in range(batch):
        el = oo + t * n * n
        copy(vals, oa + t * n * n, vals, el, n * n)
        # the lower triangle of row-major A is the upper one of column-major Aᵀ: potrf 'U'
        # leaves U with Uᵀ U = A there, which read row-major is L
        if n and potrf(D, U, n, ptr(vals, el), n) != 0:
            fill_nan(vals, el, n * n)
            continue
        for i in range(n):
            for j in range(i + 1, n):
                vals[el + i * n + j] = 0.0


@rule
def cholesky_bwd(vals, adj, ints, oo, oa, ob, size, ia, p, q, need_a, need_b, ext, xs):
    batch, _, n, _, _, _, linv = entry(ints, ia, oo, _cholesky)
    phi, s = linv + n * n, linv + 2 * n * n
    for t in range(batch):
        el, a = oo + t * n * n, oa + t * n * n
        mm(True, False, n, n, n, False, at(vals, el), at(adj, el), False, at(adj, phi))  # Lᵀ G
        for i in range(n):
            adj[phi + i * n + i] *= 0.5
            for j in range(i + 1, n):
                adj[phi + i * n + j] = 0.0
        inverse(vals, el, adj, linv, linv + 3 * n * n, n)
        mm(True, False, n, n, n, False, at(adj, linv), at(adj, phi), False, at(adj, s))  # L⁻ᵀ Φ
        mm(False, False, n, n, n, False, at(adj, s), at(adj, linv), False, at(adj, phi))  # ... L⁻¹
        for i in range(n):
            adj[a + i * n + i] += adj[phi + i * n + i]
            for j in range(i):
                adj[a + i * n + j] += adj[phi + i * n + j] + adj[phi + j * n + i]


SIZES = {"SOLVE": solve_sizes, "INV": inv_sizes, "DET": det_sizes, "SLOGDET": slogdet_sizes,
         "CHOLESKY": cholesky_sizes}
_INTS = "ints (batch, m, n, r) with m = n"
ROWS = (
    Op("SOLVE", "decomp", 2, solve_fwd, solve_bwd,
       f"X = A⁻¹ B for a batch of A (n, n), B (n, r), by LU (gesv); {_INTS}, r columns of B",
       C.packed(solve_sizes, square=True, rhs=True)),
    Op("INV", "decomp", 1, inv_fwd, inv_bwd, f"A⁻¹ by LU (getrf, getri); {_INTS}, r = 0",
       C.packed(inv_sizes, square=True)),
    Op("DET", "decomp", 1, det_fwd, det_bwd, f"det A by LU, as numpy (sign * exp(log|det|)); {_INTS}, r = 0",
       C.packed(det_sizes, square=True)),
    Op("SLOGDET", "decomp", 1, slogdet_fwd, slogdet_bwd,
       f"(sign, log|det A|) by LU, two components; {_INTS}, r = 0", C.packed(slogdet_sizes, square=True)),
    Op("CHOLESKY", "decomp", 1, cholesky_fwd, cholesky_bwd,
       f"lower L with L Lᵀ = A, reading A's lower triangle (potrf); {_INTS}, r = 0",
       C.packed(cholesky_sizes, square=True)),
)
