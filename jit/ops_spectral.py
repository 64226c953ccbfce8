"""Spectral linear algebra: EIGH, SVD, PINV (family ``decomp``, packed outputs: see ``lapack``).

Invariants
----------
* ints ``(batch, m, n, r)`` with r = 0: ``batch`` matrices A of ``(m, n)``, square for
  EIGH; ``k = min(m, n)``.  PINV's float attribute is numpy's ``rcond``.
* EIGH: components w ``(n,)`` ascending, V ``(n, n)`` (columns the eigenvectors), from
  LAPACK's syevd reading A's *lower* triangle, as numpy.  SVD: U ``(m, k)``, s ``(k,)``
  descending, Vh ``(k, n)`` (gesdd, reduced).  Signs of vectors are LAPACK's.
* Gradients are autograd's, for distinct eigenvalues / singular values (and s > 0 when
  m != n).  When the vector components' adjoints are all zero (only w or s used) the
  vector terms are skipped, so a tie costs nothing; otherwise a tie gives inf/NaN, as
  JAX (``F = 1 / (w_j - w_i)``).  EIGH's gradient is that of numpy's function, which reads
  only the lower triangle: ``M = V (diag(dw) + F ∘ (Vᵀ dV)) Vᵀ`` on the diagonal,
  ``M + Mᵀ`` below it, 0 above (autograd's convention; JAX symmetrizes instead).
* PINV: numpy's algorithm (SVD, singular values at most ``rcond * max(s)`` dropped) and
  autograd's rule, valid where the rank does not change.
* Non-finite inputs and LAPACK failures give NaN components (kernels cannot raise).
"""
import numpy as np

from . import checks as C
from .compile import rule
from .lapack import D, S, U, V, all_finite, at, copy, entry, fill_nan, gesdd, mm, ptr, syevd, transpose_in_place
from .oprow import Op


def eigh_sizes(m, n, r):
    return (n, n * n, 0), 3 * n * n  # w, V; backward products


def svd_sizes(m, n, r):
    k = min(m, n)
    return (m * k, k, k * n), m * n + 3 * k * k + 2 * max(m, n) * k  # U, s, Vh


def pinv_sizes(m, n, r):
    k, w = min(m, n), max(m, n)
    return (n * m, 0, 0), max(m * n + m * k + k + k * n, 5 * w * w)


_eigh, _svd, _pinv = rule(eigh_sizes), rule(svd_sizes), rule(pinv_sizes)


@rule
def lower_finite(vals, a, n):
    for i in range(n):
        for j in range(i + 1):
            if not np.isfinite(vals[a + i * n + j]):
                return False
    return True


@rule
def any_nonzero(arr, o, size):
    for i in range(size):
        if arr[o + i] != 0.0:
            return True
    return False


@rule
def eigh_fwd(vals, ints, oo, oa, ob, size, ia, p, q, ext, xs):
    batch, _, n, _, vo, _, _ = entry(ints, ia, oo, _eigh)
    for t in range(batch):
        w, v, a = oo + t * n, vo + t * n * n, oa + t * n * n
        copy(vals, a, vals, v, n * n)
        # A's lower triangle is the upper one of column-major Aᵀ: syevd 'U'; the eigenvectors
        # come back as columns of a column-major matrix, read row-major as Vᵀ
        if n and (not lower_finite(vals, a, n)
                  or syevd(D, V, U, n, ptr(vals, v), n, ptr(vals, w)) != 0):
            fill_nan(vals, w, n)
            fill_nan(vals, v, n * n)
        else:
            transpose_in_place(vals, v, n)


@rule
def eigh_bwd(vals, adj, ints, oo, oa, ob, size, ia, p, q, need_a, need_b, ext, xs):
    batch, _, n, _, vo, _, inner = entry(ints, ia, oo, _eigh)
    left, full = inner + n * n, inner + 2 * n * n
    for t in range(batch):
        w, v, a = oo + t * n, vo + t * n * n, oa + t * n * n
        if any_nonzero(adj, v, n * n):
            mm(True, False, n, n, n, False, at(vals, v), at(adj, v), False, at(adj, inner))  # Vᵀ dV
            for i in range(n):
                for j in range(n):
                    adj[inner + i * n + j] *= 1.0 / (vals[w + j] - vals[w + i]) if i != j else 0.0
        else:
            for i in range(n * n):
                adj[inner + i] = 0.0
        for i in range(n):
            adj[inner + i * n + i] = adj[w + i]
        mm(False, False, n, n, n, False, at(vals, v), at(adj, inner), False, at(adj, left))
        mm(False, True, n, n, n, False, at(adj, left), at(vals, v), False, at(adj, full))
        for i in range(n):
            adj[a + i * n + i] += adj[full + i * n + i]
            for j in range(i):
                adj[a + i * n + j] += adj[full + i * n + j] + adj[full + j * n + i]


@rule
def svd_into(vals, a, work, m, n, u, s, vh):
    """U, s, Vh of the row-major (m, n) matrix at vals[a:] (reduced), by gesdd on a copy
    in vals[work:]; NaN if it is not finite or gesdd fails.  Row-major A is column-major
    Aᵀ = Vh' s U'ᵀ, so gesdd's U' is our Vhᵀ and its V'ᵀ our Uᵀ, each read row-major."""
    k = min(m, n)
    if k == 0:
        return
    copy(vals, a, vals, work, m * n)
    if not all_finite(vals, work, m * n) or gesdd(D, S, n, m, ptr(vals, work), n, ptr(vals, s),
                                                   ptr(vals, vh), n, ptr(vals, u), k) != 0:
        fill_nan(vals, u, m * k)
        fill_nan(vals, s, k)
        fill_nan(vals, vh, k * n)


@rule
def svd_fwd(vals, ints, oo, oa, ob, size, ia, p, q, ext, xs):
    batch, m, n, _, so, vo, work = entry(ints, ia, oo, _svd)
    k = min(m, n)
    for t in range(batch):
        svd_into(vals, oa + t * m * n, work, m, n, oo + t * m * k, so + t * k, vo + t * k * n)


@rule
def svd_bwd(vals, adj, ints, oo, oa, ob, size, ia, p, q, need_a, need_b, ext, xs):
    batch, m, n, _, so, vo, work = entry(ints, ia, oo, _svd)
    k = min(m, n)
    utgu, vtgv, core = work + m * n, work + m * n + k * k, work + m * n + 2 * k * k
    w1 = core + k * k
    w2 = w1 + max(m, n) * k
    for t in range(batch):
        u, s, vh, a = oo + t * m * k, so + t * k, vo + t * k * n, oa + t * m * n
        vectors = any_nonzero(adj, u, m * k) or any_nonzero(adj, vh, k * n)
        if vectors:
            mm(True, False, k, k, m, False, at(vals, u), at(adj, u), False, at(adj, utgu))    # Uᵀ dU
            mm(False, True, k, k, n, False, at(vals, vh), at(adj, vh), False, at(adj, vtgv))  # Vᵀ dV
        for i in range(k):
            si = vals[s + i]
            for j in range(k):
                c = adj[s + i] if i == j else 0.0
                if vectors and i != j:
                    sj = vals[s + j]
                    f = 1.0 / ((sj + si) * (sj - si))
                    c += f * (adj[utgu + i * k + j] - adj[utgu + j * k + i]) * sj
                    c += si * f * (adj[vtgv + i * k + j] - adj[vtgv + j * k + i])
                adj[core + i * k + j] = c
        mm(False, False, m, k, k, False, at(vals, u), at(adj, core), False, at(adj, w1))   # U core
        mm(False, False, m, n, k, False, at(adj, w1), at(vals, vh), True, at(adj, a))     # ... Vh
        if vectors and m > n:  # (I - U Uᵀ) dU diag(1/s) Vh
            copy(adj, u, adj, w1, m * k)
            mm(False, False, m, k, k, True, at(vals, u), at(adj, utgu), True, at(adj, w1))
            for i in range(m):
                for j in range(k):
                    adj[w1 + i * k + j] /= vals[s + j]
            mm(False, False, m, n, k, False, at(adj, w1), at(vals, vh), True, at(adj, a))
        if vectors and m < n:  # U diag(1/s) dVh (I - Vhᵀ Vh)
            copy(adj, vh, adj, w2, k * n)
            mm(True, False, k, n, k, True, at(adj, vtgv), at(vals, vh), True, at(adj, w2))
            for i in range(k):
                for j in range(n):
                    adj[w2 + i * n + j] /= vals[s + i]
            mm(False, False, m, n, k, False, at(vals, u), at(adj, w2), True, at(adj, a))


@rule
def pinv_fwd(vals, ints, oo, oa, ob, size, ia, p, q, ext, xs):
    batch, m, n, _, _, _, work = entry(ints, ia, oo, _pinv)
    k = min(m, n)
    u = work + m * n
    s = u + m * k
    vh = s + k
    for t in range(batch):
        out = oo + t * n * m
        svd_into(vals, oa + t * m * n, work, m, n, u, s, vh)
        cutoff = p * vals[s] if k else 0.0  # s is descending (NaN if the SVD failed: so is U)
        for j in range(k):  # numpy: 1/s where s > cutoff, else 0
            inv = 1.0 / vals[s + j] if vals[s + j] > cutoff else 0.0
            for i in range(m):
                vals[u + i * k + j] *= inv
        mm(True, True, n, m, k, False, at(vals, vh), at(vals, u), False, at(vals, out))  # Vhᵀ (U/s)ᵀ


@rule
def pinv_bwd(vals, adj, ints, oo, oa, ob, size, ia, p, q, need_a, need_b, ext, xs):
    batch, m, n, _, _, _, work = entry(ints, ia, oo, _pinv)
    w = max(m, n)
    b1, b2, b3, b4, total = work, work + w * w, work + 2 * w * w, work + 3 * w * w, work + 4 * w * w
    for t in range(batch):
        pp, a, g = at(vals, oo + t * n * m), at(vals, oa + t * m * n), at(adj, oo + t * n * m)
        # G_total = -P Gᵀ P + P Pᵀ G (I - A P) + (I - P A) G Pᵀ P, all (n, m); dA += G_totalᵀ
        mm(False, True, n, n, m, False, pp, g, False, at(adj, b1))                  # P Gᵀ
        mm(False, False, n, m, n, True, at(adj, b1), pp, False, at(adj, total))     # -P Gᵀ P
        mm(False, True, n, n, m, False, pp, pp, False, at(adj, b1))                 # P Pᵀ
        mm(False, False, n, m, n, False, at(adj, b1), g, False, at(adj, b2))        # P Pᵀ G
        mm(False, False, n, n, m, False, at(adj, b2), a, False, at(adj, b3))        # P Pᵀ G A
        mm(False, False, n, m, n, True, at(adj, b3), pp, True, at(adj, total))      # - P Pᵀ G A P
        for i in range(n * m):
            adj[total + i] += adj[b2 + i]
        mm(False, True, n, n, m, False, g, pp, False, at(adj, b1))                  # G Pᵀ
        mm(False, False, n, m, n, False, at(adj, b1), pp, False, at(adj, b2))       # G Pᵀ P
        mm(False, False, m, m, n, False, a, at(adj, b2), False, at(adj, b4))        # A G Pᵀ P
        mm(False, False, n, m, m, True, pp, at(adj, b4), True, at(adj, total))      # - P A G Pᵀ P
        for i in range(n * m):
            adj[total + i] += adj[b2 + i]
        da = oa + t * m * n
        for i in range(m):
            for j in range(n):
                adj[da + i * n + j] += adj[total + j * m + i]


SIZES = {"EIGH": eigh_sizes, "SVD": svd_sizes, "PINV": pinv_sizes}
_INTS = "ints (batch, m, n, 0)"
ROWS = (
    Op("EIGH", "decomp", 1, eigh_fwd, eigh_bwd,
       f"w ascending and V of a symmetric A (n, n) read from its lower triangle (syevd); {_INTS}, m = n",
       C.packed(eigh_sizes, square=True)),
    Op("SVD", "decomp", 1, svd_fwd, svd_bwd,
       f"reduced U (m, k), s (k) descending, Vh (k, n) of A (m, n), k = min(m, n) (gesdd); {_INTS}",
       C.packed(svd_sizes)),
    Op("PINV", "decomp", 1, pinv_fwd, pinv_bwd,
       f"pseudo-inverse (n, m) of A (m, n) by SVD, dropping s <= rcond * max(s) as numpy; {_INTS}",
       C.packed(pinv_sizes), floats=("rcond",)),
)
