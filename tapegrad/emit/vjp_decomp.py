"""Traced vector-Jacobian products of the decomposition rows (``jit/ops_decomp.py``,
``jit/ops_spectral.py``): SOLVE, INV, DET, SLOGDET, CHOLESKY, EIGH, SVD, PINV.

A decomposition entry writes one *packed* node (its components for the whole stack, then
scratch; see ``jit/lapack.py``).  Its rule receives ``g`` as a list with one traced adjoint
per component, shaped ``(batch, ...)``, or None for a component nothing used
(``tapegrad.inline`` splits the packed node's adjoint with :func:`components`); ``y`` is the
packed node itself, whose component windows :func:`parts` cuts out for free (aliases).
Each rule is the backward kernel's formula (stated in the kernels' module docstrings,
autograd's ``numpy/linalg.py``) written with traced products, so it can be differentiated
again: the inverse a rule needs is an INV entry, a solve a SOLVE entry.

Invariants
----------
* A rule computes what its kernel adds, reading only the lower triangle for CHOLESKY and
  EIGH as numpy's functions do (tests/test_second_order_ops.py compares them on every
  case of the op table).
* The kernels skip the eigen-/singular-vector terms when the vectors' adjoint is zero *at
  run time*, so a tie in w or s costs nothing when only they are used; the rules decide
  the same thing *structurally*: a component nothing read has a None adjoint and its terms
  are not emitted.  (A vector adjoint that is present but numerically zero at a tie gives
  NaN here where the kernel gives a number: the choice is never baked in silently.)
* Divisions by eigenvalue gaps are guarded on the diagonal by a constant-mask double
  WHERE (the diagonal is structural, not value dependent), so differentiating a rule
  never meets 0 * inf there.
"""
import numpy as np

import tapegrad.numpy as tnp
from tapegrad.emit.decomp import SIZES
from tapegrad.emit.shape import getitem, reshape
from tapegrad.emit.vjp_arrays import gemm

# per-matrix component shapes (m, n, r) -> [shape of each component]
SHAPES = {
    "SOLVE": lambda m, n, r: [(n, r)],
    "INV": lambda m, n, r: [(n, n)],
    "DET": lambda m, n, r: [()],
    "SLOGDET": lambda m, n, r: [(), ()],
    "CHOLESKY": lambda m, n, r: [(n, n)],
    "EIGH": lambda m, n, r: [(n,), (n, n)],
    "SVD": lambda m, n, r: [(m, min(m, n)), (min(m, n),), (min(m, n), n)],
    "PINV": lambda m, n, r: [(n, m)],
}


def components(name, ints):
    """``[(start, size, shape)]`` of each component of a ``name`` entry's packed node with
    integer attributes ``ints``: where it starts in the node, and its ``(batch, ...)`` shape."""
    batch, m, n, r = (int(v) for v in ints[:4])
    shapes = SHAPES[name](m, n, r)
    sizes = SIZES[name](m, n, r)[0]
    assert [int(np.prod(s, dtype=np.int64)) for s in shapes] == list(sizes[:len(shapes)]), name
    out, start = [], 0
    for shape in shapes:
        size = batch * int(np.prod(shape, dtype=np.int64))
        out.append((start, size, (batch,) + shape))
        start += size
    return out


def parts(name, y, e):
    """The components of the packed traced node ``y``, each a free window shaped ``(batch, ...)``."""
    return [reshape(getitem(y, slice(start, start + size)), shape)
            for start, size, shape in components(name, e.ints)]


def mm(x, y, tx=0, ty=0):
    """op(x) @ op(y) on (batch, ., .) stacks, op transposing by a BLAS flag (no copy)."""
    batch, xr, xc = x.shape
    _, yr, yc = y.shape
    m, k = (xc, xr) if tx else (xr, xc)
    n = yr if ty else yc
    return gemm(x, y, m, k, n, batch, xr * xc, yr * yc, int(tx), int(ty))


def _t(x):
    return tnp.swapaxes(x, -1, -2)


def _dims(e):
    return tuple(int(v) for v in e.ints[:4])


def _eye(n):
    return np.eye(n, dtype=bool)


def _lower_symmetric(full):
    """The gradient of a function that reads only the lower triangle, from the gradient
    ``full`` of its symmetric extension: full's diagonal, ``full + fullᵀ`` below it, 0 above."""
    n = full.shape[-1]
    strict = np.tril(np.ones((n, n)), -1)
    return full * (strict + np.eye(n)) + _t(full) * strict


def _off_diagonal_inverse(d):
    """1 / d off the diagonal and 0 on it, d a (batch, k, k) stack; the diagonal never
    divides (constant-mask double WHERE)."""
    eye = _eye(d.shape[-1])
    return tnp.where(eye, 0.0, 1.0 / tnp.where(eye, 1.0, d))


def _solve(g, y, a, b, e):
    if g[0] is None:
        return None, None
    batch, _, n, _ = _dims(e)
    x, = parts("SOLVE", y, e)
    db = tnp.linalg.solve(_t(reshape(a, (batch, n, n))), g[0])  # A⁻ᵀ G
    return reshape(-mm(db, x, ty=1), a.shape), reshape(db, b.shape)


_solve.pair = True


def _inv(g, y, a, e):
    inv, = parts("INV", y, e)
    return reshape(-mm(mm(inv, g[0], tx=1), inv, ty=1), a.shape)  # -Yᵀ G Yᵀ


def _inverse_transposed(a, e, scale):
    """``scale`` (one number per matrix) times A⁻ᵀ, shaped like ``a``; None for empty A."""
    batch, _, n, _ = _dims(e)
    if n == 0:
        return None
    return reshape(reshape(scale, (batch, 1, 1)) * _t(tnp.linalg.inv(reshape(a, (batch, n, n)))), a.shape)


def _det(g, y, a, e):
    det, = parts("DET", y, e)
    return _inverse_transposed(a, e, g[0] * det)


def _slogdet(g, y, a, e):
    return None if g[1] is None else _inverse_transposed(a, e, g[1])


def _cholesky(g, y, a, e):
    n = _dims(e)[2]
    el, = parts("CHOLESKY", y, e)
    phi = mm(el, g[0], tx=1) * (np.tril(np.ones((n, n)), -1) + 0.5 * np.eye(n))  # Φ(Lᵀ G)
    linv = tnp.linalg.inv(el)
    return reshape(_lower_symmetric(mm(mm(linv, phi, tx=1), linv)), a.shape)  # S = L⁻ᵀ Φ L⁻¹


def _eigh(g, y, a, e):
    batch, _, n, _ = _dims(e)
    w, v = parts("EIGH", y, e)
    gw, gv = g
    inner = None
    if gv is not None:  # F ∘ (Vᵀ dV), F_ij = 1 / (w_j - w_i)
        gap = reshape(w, (batch, 1, n)) - reshape(w, (batch, n, 1))
        inner = _off_diagonal_inverse(gap) * mm(v, gv, tx=1)
    if gw is not None:
        diag = reshape(gw, (batch, 1, n)) * np.eye(n)
        inner = diag if inner is None else inner + diag
    return reshape(_lower_symmetric(mm(mm(v, inner), v, ty=1)), a.shape)


def _svd(g, y, a, e):
    batch, m, n, _ = _dims(e)
    k = min(m, n)
    u, s, vh = parts("SVD", y, e)
    gu, gs, gvh = g
    terms = [] if gs is None else [reshape(gs, (batch, 1, k)) * np.eye(k)]
    si, sj = reshape(s, (batch, k, 1)), reshape(s, (batch, 1, k))
    if gu is not None or gvh is not None:
        f = _off_diagonal_inverse((sj + si) * (sj - si))
    if gu is not None:
        utgu = mm(u, gu, tx=1)
        terms.append(f * (utgu - _t(utgu)) * sj)
    if gvh is not None:
        vtgv = mm(vh, gvh, ty=1)
        terms.append(si * f * (vtgv - _t(vtgv)))
    core = terms[0]
    for term in terms[1:]:
        core = core + term
    da = mm(mm(u, core), vh)
    if gu is not None and m > n:  # (I - U Uᵀ) dU diag(1/s) Vh
        da = da + mm((gu - mm(u, utgu)) / sj, vh)
    if gvh is not None and m < n:  # U diag(1/s) dVh (I - Vhᵀ Vh)
        da = da + mm(u, (gvh - mm(vtgv, vh, tx=1)) / si)
    return reshape(da, a.shape)


def _pinv(g, y, a, e):
    batch, m, n, _ = _dims(e)
    p, = parts("PINV", y, e)
    gp, a3 = g[0], reshape(a, (batch, m, n))
    # G_total = -P Gᵀ P + P Pᵀ G (I - A P) + (I - P A) G Pᵀ P, (n, m); dA = G_totalᵀ
    ppg = mm(mm(p, p, ty=1), gp)
    gpp = mm(mm(gp, p, ty=1), p)
    total = (ppg - mm(mm(ppg, a3), p)) + (gpp - mm(p, mm(a3, gpp))) - mm(mm(p, gp, ty=1), p)
    return reshape(_t(total), a.shape)


DECOMP = {"SOLVE": _solve, "INV": (_inv,), "DET": (_det,), "SLOGDET": (_slogdet,),
          "CHOLESKY": (_cholesky,), "EIGH": (_eigh,), "SVD": (_svd,), "PINV": (_pinv,)}
