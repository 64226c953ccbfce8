"""``tapegrad.numpy.linalg``'s decompositions: ``solve inv det slogdet pinv cholesky eigh
eigvalsh svd svdvals`` (real inputs, stacks of matrices), recorded by
:mod:`tapegrad.emit.decomp`; on plain arrays each calls numpy.

``FUNCTIONS`` maps the ``numpy.linalg`` functions to these for numpy's dispatch, so
``np.linalg.det(x)`` on a traced ``x`` records like ``tnp.linalg.det(x)``; ``PUBLIC`` names
them for the ``tnp.linalg`` namespace.

Invariants
----------
* Arguments that select the algorithm (``UPLO``, ``upper``, ``full_matrices``,
  ``compute_uv``, ``rcond``) are plain Python values, known when recording.
"""
import numpy as _np

from tapegrad.emit import decomp as _dc
from tapegrad.numpy_arrays import _both, swapaxes as _swapaxes
from tapegrad.tracer import Traced as _Traced

_NO_VALUE = getattr(_np, "_NoValue", object())


def _uplo(UPLO):  # noqa: N803 - numpy's name
    if UPLO not in ("L", "U"):
        raise ValueError("UPLO argument must be 'L' or 'U'")
    return UPLO == "U"


def _upper_view(a, upper):
    """``a`` itself, or its transpose when the upper triangle is the one to read."""
    return _swapaxes(a, -1, -2) if upper else a


def _cholesky(a, /, *, upper=False):
    if not upper:
        return _dc.cholesky_lower(a)
    return _swapaxes(_dc.cholesky_lower(_swapaxes(a, -1, -2)), -1, -2)


def _eigh(a, UPLO="L"):  # noqa: N803
    return _dc.eigh_lower(_upper_view(a, _uplo(UPLO)))


def _eigvalsh(a, UPLO="L"):  # noqa: N803
    return _dc.eigh_lower(_upper_view(a, _uplo(UPLO)))[0]


def _svdvals(x, /):
    return _dc.svd(x, compute_uv=False)


def _pinv(a, rcond=None, hermitian=False, *, rtol=_NO_VALUE):
    if hermitian:
        raise TypeError("pinv: hermitian=True is not supported on traced values")
    if rcond is not None and rtol is not _NO_VALUE:
        raise ValueError("`rtol` and `rcond` can't be both set.")
    if rcond is None:  # numpy's defaults
        rcond = 1e-15 if rtol is _NO_VALUE else (max(_np.shape(a)[-2:]) * _np.finfo(_np.float64).eps
                                                 if rtol is None else rtol)
    if isinstance(rcond, _Traced) or _np.ndim(rcond) != 0:
        raise TypeError("pinv: on a traced value rcond (rtol) must be one plain number")
    return _dc.pinv(a, float(rcond))


_TRACED = {"solve": _dc.solve, "inv": _dc.inv, "det": _dc.det, "slogdet": _dc.slogdet,
           "cholesky": _cholesky, "eigh": _eigh, "eigvalsh": _eigvalsh, "svd": _dc.svd,
           "svdvals": _svdvals, "pinv": _pinv}
# the op row each function records (one entry per call; cholesky(upper=True) and
# eigh(UPLO="U") add the GATHERs of a transpose)
ROWS = {"solve": "SOLVE", "inv": "INV", "det": "DET", "slogdet": "SLOGDET", "cholesky": "CHOLESKY",
        "eigh": "EIGH", "eigvalsh": "EIGH", "svd": "SVD", "svdvals": "SVD", "pinv": "PINV"}
PUBLIC = {name: _both(getattr(_np.linalg, name), fn, name) for name, fn in _TRACED.items()
          if hasattr(_np.linalg, name)}
FUNCTIONS = {getattr(_np.linalg, name): fn for name, fn in PUBLIC.items()}
