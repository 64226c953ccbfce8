"""Reductions built on the reduction rows: min, prod, var, std, cumsum, cumprod, trace,
diff, gradient and linalg.norm, each with numpy's signature, on a traced value.

Compositions are used where they are exact: ``min(x) = -max(-x)`` (ties split evenly, as
MAX's), ``var = mean((x - mean(x)) ** 2) * n / (n - ddof)``, ``prod`` is the last element
of a CUMPROD along the reduced axes (whose backward is exact at zeros), ``diff`` is a
difference of two slices, ``trace`` the sum of a diagonal, and every ``norm`` is written
with sums, maxima, ``maximum(x, -x)`` for ``|x|`` (gradient 0 at 0) and powers.

Invariants
----------
* Arguments are checked, with numpy's exception types and messages naming the function,
  before anything is recorded.
* Results have numpy's shapes (``keepdims`` included); nothing here needs a kernel of its own
  beyond the CUMSUM and CUMPROD rows.
"""
import numpy as np

from tapegrad import shapes as S
from tapegrad.emit.arrays import concatenate, layout
from tapegrad.emit.elementwise import affine, binary, unary
from tapegrad.emit.reductions import reduce
from tapegrad.emit.shape import broadcast_to, getitem, reshape, transpose
from tapegrad.recorder import CONST
from tapegrad.tracer import Traced, _emit


def _const(x, value):
    value = np.asarray(value, dtype=np.float64)
    return Traced(x._rec, x._rec.node(value, CONST), value)


def _out_shape(shape, axes, keepdims):
    return tuple(1 if k in axes else d for k, d in enumerate(shape) if keepdims or k not in axes)


def absolute(x):
    """|x| as maximum(x, -x): the tie at 0 splits into 0.5 - 0.5, the minimum-norm subgradient 0."""
    return binary("MAXIMUM", x, affine(x, -1.0, 0.0))


def amin(x, axis=None, keepdims=False):
    """min over ``axis`` as -max(-x): NaN propagates, ties split the gradient evenly."""
    axes = S.normalize_axes("min", axis, x.ndim)
    if any(x.shape[k] == 0 for k in axes):
        raise ValueError(f"min: zero-size reduction over axis {axis!r} of shape {x.shape} has no identity")
    return affine(reduce("MAX", affine(x, -1.0, 0.0), axis, keepdims), -1.0, 0.0)


def _scan(name, x, axis):
    """CUMSUM / CUMPROD along ``axis`` (None: over the flattened value, numpy's default)."""
    if axis is None or x.ndim == 0:  # numpy scans a 0-d value as a 1-d one
        x, axis = reshape(x, -1), 0 if axis is None else axis
    (ax,) = S.normalize_axes(name.lower(), axis, x.ndim)
    eager = np.cumsum if name == "CUMSUM" else np.cumprod
    with np.errstate(all="ignore"):
        value = eager(x._value, axis=ax)
    return _emit(x._rec, name, (x._node,), value, ints=S.reduce_block(x.shape, (ax,)))


def cumsum(x, axis=None):
    return _scan("CUMSUM", x, axis)


def cumprod(x, axis=None):
    return _scan("CUMPROD", x, axis)


def prod(x, axis=None, keepdims=False):
    """The product over ``axis``: the last element of a CUMPROD over the reduced axes moved
    last, so the gradient is the product of the other elements, exact where some are 0."""
    axes = S.normalize_axes("prod", axis, x.ndim)
    out = _out_shape(x.shape, axes, keepdims)
    m = int(np.prod([x.shape[k] for k in axes], dtype=np.int64))
    if m == 0 or x.size == 0:
        return _const(x, np.ones(out))  # numpy: the empty product is 1
    if not axes:
        return affine(x, 1.0, 0.0)
    rest = [k for k in range(x.ndim) if k not in axes]
    moved = transpose(x, tuple(rest) + axes)
    scanned = cumprod(reshape(moved, tuple(x.shape[k] for k in rest) + (m,)), axis=-1)
    return reshape(getitem(scanned, (Ellipsis, -1)), out)


def var(x, axis=None, ddof=0, keepdims=False, name="var"):
    """mean((x - mean(x)) ** 2) over ``axis``, times n / (n - ddof) (inf or NaN when
    n <= ddof, as numpy)."""
    if not isinstance(ddof, (int, float, np.integer, np.floating)) or isinstance(ddof, bool):
        raise TypeError(f"{name}: ddof must be a number, got {ddof!r}")
    axes = S.normalize_axes(name, axis, x.ndim)
    n = int(np.prod([x.shape[k] for k in axes], dtype=np.int64))
    centred = x - reduce("SUM", x, axes, True, mean=True)
    squares = unary("POWC", lambda v: v * v, centred, (2.0,))
    total = reduce("SUM", squares, axes, keepdims)
    scale = 1.0 / (n - ddof) if n - ddof > 0 else (np.inf if n else np.nan)
    return affine(total, scale, 0.0)


def std(x, axis=None, ddof=0, keepdims=False):
    """sqrt(var): at a constant x the gradient is NaN (sqrt's inf times 0), as in JAX."""
    return unary("SQRT", np.sqrt, var(x, axis, ddof, keepdims, name="std"))


def diagonal(x, offset=0, axis1=0, axis2=1):
    return layout("diagonal", x, np.diagonal, offset=offset, axis1=axis1, axis2=axis2)


def trace(x, offset=0, axis1=0, axis2=1):
    return reduce("SUM", diagonal(x, offset, axis1, axis2), -1, False)


def diff(x, n=1, axis=-1, prepend=None, append=None):
    """numpy.diff: ``n`` times the difference of neighbours along ``axis``, after joining
    ``prepend`` and ``append`` (traced or not; a scalar is broadcast) on that axis."""
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
        raise TypeError(f"diff: order n must be an integer, got {n!r}")
    if n < 0:
        raise ValueError(f"diff: order must be non-negative but got {n}")
    if not isinstance(x, Traced):  # only prepend or append is traced
        x = _const(next(p for p in (prepend, append) if isinstance(p, Traced)), x)
    if x.ndim == 0:
        raise ValueError("diff: diff requires input that is at least one dimensional")
    (ax,) = S.normalize_axes("diff", axis, x.ndim)
    if n and (prepend is not None or append is not None):
        edge = x.shape[:ax] + (1,) + x.shape[ax + 1:]
        parts = [broadcast_to(p, edge) if isinstance(p, Traced) and p.ndim == 0 else
                 (np.broadcast_to(p, edge) if np.ndim(p) == 0 else p)
                 for p in (prepend, x, append) if p is not None]
        x = concatenate(parts, ax, name="diff")
    lead = (slice(None),) * ax
    for _ in range(n):
        if x.shape[ax] == 0:
            break
        x = getitem(x, lead + (slice(1, None),)) - getitem(x, lead + (slice(None, -1),))
    return x


def _vector_norm(x, ord, axes, keepdims):
    if ord is None or ord == 2:
        return unary("SQRT", np.sqrt, reduce("SUM", unary("POWC", lambda v: v * v, x, (2.0,)), axes, keepdims))
    if ord == np.inf:
        return reduce("MAX", absolute(x), axes, keepdims)
    if ord == -np.inf:
        return amin(absolute(x), axes, keepdims)
    if ord == 0:  # the count of nonzeros: piecewise constant, gradient 0
        return _const(x, np.sum(x._value != 0, axis=axes, keepdims=keepdims))
    if ord == 1:
        return reduce("SUM", absolute(x), axes, keepdims)
    p = float(ord)
    powered = unary("POWC", lambda v: np.power(v, p), absolute(x), (p,))
    return unary("POWC", lambda v: np.power(v, 1.0 / p), reduce("SUM", powered, axes, keepdims), (1.0 / p,))


def _matrix_norm(x, ord, axes, keepdims):
    row, col = axes
    if ord in (None, "fro"):
        return _vector_norm(x, 2, tuple(sorted(axes)), keepdims)
    if ord in (1, -1, np.inf, -np.inf):
        inner, outer = (row, col) if ord in (1, -1) else (col, row)
        sums = reduce("SUM", absolute(x), inner, True)
        out = reduce("MAX", sums, outer, True) if ord > 0 else amin(sums, outer, True)
        return out if keepdims else reshape(out, _out_shape(x.shape, axes, False))
    if ord in (2, -2, "nuc"):
        raise NotImplementedError(f"linalg.norm: ord={ord!r} needs singular values, which tapegrad "
                                  "does not differentiate yet")
    raise ValueError(f"linalg.norm: invalid norm order {ord!r} for matrices")


def norm(x, ord=None, axis=None, keepdims=False):
    """numpy.linalg.norm on a traced value: vector orders (None/2, 1, inf, -inf, 0, any p),
    matrix orders (None/'fro', 1, -1, inf, -inf) over ``axis`` (None, an int or two ints).

    At 0 the 2-norm (and Frobenius) gradient is NaN (sqrt's inf times 0, as JAX and autograd
    give); the 1-norm and inf-norm give 0 there (the minimum-norm subgradient)."""
    if axis is None:
        if ord is None:
            return _vector_norm(reshape(x, -1), None, (0,), False) if not keepdims else \
                reshape(_vector_norm(reshape(x, -1), None, (0,), False), (1,) * x.ndim)
        if x.ndim not in (1, 2):
            raise ValueError("linalg.norm: improper number of dimensions to norm")
        axis = tuple(range(x.ndim))
    axes = axis if isinstance(axis, tuple) else (axis,)
    if len(axes) == 1:
        if isinstance(ord, str):
            raise ValueError(f"linalg.norm: invalid norm order {ord!r} for vectors")
        return _vector_norm(x, ord, S.normalize_axes("linalg.norm", axes, x.ndim), keepdims)
    if len(axes) == 2:
        normal = [int(a) % x.ndim if -x.ndim <= a < x.ndim else None for a in axes]
        S.normalize_axes("linalg.norm", axes, x.ndim)  # raises for bad or repeated axes
        return _matrix_norm(x, ord, tuple(normal), keepdims)
    raise ValueError("linalg.norm: improper number of dimensions to norm")


def _stencil(n, spacing, edge_order):
    """numpy.gradient along one axis of length n as out[i] = sum_r coef[r][i] * f[idx[r][i]]
    (r = 0, 1, 2): each output reads a window of at most 3 neighbours, whose members have
    distinct residues mod 3, so numpy's own gradient of the comb ``(arange(n) % 3 == r)``
    is exactly the coefficient of the window's member of residue r."""
    width = min(3, n)
    start = np.clip(np.arange(n) - 1, 0, n - width)
    coef, idx = [], []
    for r in range(width):
        comb = (np.arange(n) % 3 == r).astype(np.float64)
        coef.append(np.gradient(comb, *spacing, edge_order=edge_order))
        members = start[:, None] + np.arange(width)
        hit = members % 3 == r
        idx.append(np.where(hit.any(axis=1), members[np.arange(n), hit.argmax(axis=1)], 0))
    return coef, idx


def gradient(x, *varargs, axis=None, edge_order=1):
    """numpy.gradient (uniform or coordinate spacings, edge_order 1 or 2): per axis, a sum of
    three GATHERs of neighbours times numpy's own stencil coefficients (linear in x)."""
    for v in varargs:
        if isinstance(v, Traced):
            raise TypeError("gradient: spacings must be known when recording, not traced values")
    try:
        value = np.gradient(x._value, *varargs, axis=axis, edge_order=edge_order)
    except (ValueError, TypeError, IndexError) as err:
        raise type(err)(f"gradient: {err}") from None
    axes = tuple(range(x.ndim)) if axis is None else tuple(
        int(a) % x.ndim for a in (axis if isinstance(axis, tuple) else (axis,)))
    spacings = [()] * len(axes) if not varargs else (
        [varargs] * len(axes) if len(varargs) == 1 else [(v,) for v in varargs])
    outs = []
    for ax, spacing in zip(axes, spacings):
        coef, idx = _stencil(x.shape[ax], spacing, edge_order)
        shape = [1] * x.ndim
        shape[ax] = x.shape[ax]
        terms = [binary("MUL", layout("gradient", x, np.take, i, axis=ax), c.reshape(shape))
                 for c, i in zip(coef, idx)]
        total = terms[0]
        for t in terms[1:]:
            total = total + t
        outs.append(total)
    return outs[0] if isinstance(value, np.ndarray) else type(value)(outs)
