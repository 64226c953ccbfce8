"""The ``tapegrad.numpy`` functions for reductions, array building, layouts and indexing
(``min prod var std cumsum cumprod trace diff gradient linalg.norm``,
``tensordot inner outer vdot kron cross einsum`` and ``linalg.matmul/tensordot/outer/cross``, ``concatenate stack split ...``,
``take take_along_axis``, ``array``/``asarray`` of lists of traced values).

Each takes its numpy namesake's arguments; on traced values it records (see
``tapegrad.emit.stats``, ``.arrays``, ``.indexing``), on plain values it calls numpy, so the
same code runs with and without tapegrad.  ``FUNCTIONS`` maps the numpy functions to these,
for numpy's ``__array_function__`` dispatch (``np.stack([x, y])``, ``np.flip(x)``).

``numpy.array([...])`` itself cannot be intercepted (numpy does not dispatch it), so it
still raises on traced values; ``tnp.array`` / ``tnp.asarray`` build one array from a
(nested) list of traced and plain values, with one CONCAT entry per nesting level.

Invariants
----------
* A traced value anywhere in the arguments (also inside a list) selects the traced path;
  arguments that must be known when recording (axes, counts, indices) are never traced.
"""
import types

import numpy as _np

from tapegrad.emit import arrays as _ar, contract as _ct, indexing as _ix, stats as _st
from tapegrad.tracer import Traced as _Traced


def _has_traced(args):
    for a in args:
        if isinstance(a, _Traced) or (isinstance(a, (list, tuple)) and _has_traced(a)):
            return True
    return False


def _both(npfn, traced, name=None):
    def fn(*args, **kwargs):
        if _has_traced(args) or _has_traced(tuple(kwargs.values())):
            return traced(*args, **kwargs)
        return npfn(*args, **kwargs)
    fn.__name__ = fn.__qualname__ = name or npfn.__name__
    fn.__doc__ = f"numpy.{name or npfn.__name__}; records onto the tape when given traced values."
    return fn


def _moves(npfn, name=None):
    """A numpy layout function (first argument the array) as a GATHER or alias."""
    name = name or npfn.__name__
    return _both(npfn, lambda x, *a, **k: _ar.layout(name, x, npfn, *a, **k), name)


def _min(x, axis=None, out=None, keepdims=False):
    if out is not None:
        raise TypeError("min: out= is not supported on traced values")
    return _st.amin(x, axis, keepdims)


def _prod(x, axis=None, dtype=None, out=None, keepdims=False):
    if out is not None or dtype is not None:
        raise TypeError("prod: dtype= and out= are not supported on traced values")
    return _st.prod(x, axis, keepdims)


def _var_like(fn, name):
    def traced(x, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
        if out is not None or dtype is not None:
            raise TypeError(f"{name}: dtype= and out= are not supported on traced values")
        return fn(x, axis, ddof, keepdims)
    return traced


min = amin = _both(_np.min, _min, "min")  # noqa: A001 - mirrors numpy
prod = _both(_np.prod, _prod)
var = _both(_np.var, _var_like(_st.var, "var"))
std = _both(_np.std, _var_like(_st.std, "std"))
cumsum = _both(_np.cumsum, lambda x, axis=None: _st.cumsum(x, axis))
cumprod = _both(_np.cumprod, lambda x, axis=None: _st.cumprod(x, axis))
trace = _both(_np.trace, _st.trace)
diff = _both(_np.diff, _st.diff)
gradient = _both(_np.gradient, _st.gradient)
tensordot = _both(_np.tensordot, _ct.tensordot)
inner = _both(_np.inner, _ct.inner)
outer = _both(_np.outer, _ct.outer)
vdot = _both(_np.vdot, _ct.vdot)
kron = _both(_np.kron, _ct.kron)
cross = _both(_np.cross, _ct.cross)
einsum = _both(_np.einsum, _ct.einsum)


def _linalg_outer(x1, x2):
    if _np.ndim(x1) != 1 or _np.ndim(x2) != 1:
        raise ValueError(f"linalg.outer: Input arrays must be one-dimensional, got shapes "
                         f"{_np.shape(x1)} and {_np.shape(x2)}")
    return _ct.outer(x1, x2)


def _linalg_cross(x1, x2, /, *, axis=-1):
    for x in (x1, x2):
        if _np.shape(x)[axis:][:1] != (3,):
            raise ValueError(f"linalg.cross: both input arrays must be (arrays of) 3-dimensional "
                             f"vectors, got shapes {_np.shape(x1)} and {_np.shape(x2)} (axis {axis})")
    return _ct.cross(x1, x2, axis=axis)


def _linalg_matmul(x1, x2, /):
    from tapegrad.emit.linalg import matmul as _mm  # the emitter; tnp.matmul is in tapegrad.numpy
    return _mm(x1, x2)


def _linalg_tensordot(x1, x2, /, *, axes=2):
    return _ct.tensordot(x1, x2, axes)


# numpy >= 2's array-API names in numpy.linalg, where numpy has them
_LINALG = {"outer": _linalg_outer, "cross": _linalg_cross, "matmul": _linalg_matmul,
           "tensordot": _linalg_tensordot}
linalg = types.SimpleNamespace(norm=_both(_np.linalg.norm, _st.norm, "norm"), **{
    k: _both(getattr(_np.linalg, k), f, k) for k, f in _LINALG.items() if hasattr(_np.linalg, k)})

def _concatenate(arrays, axis=0, out=None, dtype=None, casting="same_kind"):
    if out is not None or dtype not in (None, float, _np.float64):
        raise TypeError("concatenate: out= and a dtype other than float64 are not supported "
                        "on traced values")
    return _ar.concatenate(arrays, axis)


concatenate = _both(_np.concatenate, _concatenate)
stack = _both(_np.stack, _ar.stack)
hstack = _both(_np.hstack, _ar.hstack)
vstack = row_stack = _both(_np.vstack, _ar.vstack)
dstack = _both(_np.dstack, _ar.dstack)
column_stack = _both(_np.column_stack, _ar.column_stack)
split = _both(_np.split, lambda x, ios, axis=0: _ar.split(x, ios, axis, "split"))
array_split = _both(_np.array_split, lambda x, ios, axis=0: _ar.split(x, ios, axis, "array_split"))
tril = _both(_np.tril, lambda x, k=0: _ar.tri("tril", x, k))
triu = _both(_np.triu, lambda x, k=0: _ar.tri("triu", x, k))
diag = _both(_np.diag, _ar.diag)
pad = _both(_np.pad, _ar.pad)
r_, c_ = _ar.r_, _ar.c_
ndim = _both(_np.ndim, lambda x: x.ndim)
size = _both(_np.size, lambda x, axis=None: x.size if axis is None else x.shape[axis])

repeat, tile, roll, flip, fliplr, flipud, rot90, moveaxis, swapaxes, rollaxis, expand_dims, \
    squeeze, diagonal, ravel, take, take_along_axis = (
        _moves(f) for f in (_np.repeat, _np.tile, _np.roll, _np.flip, _np.fliplr, _np.flipud,
                            _np.rot90, _np.moveaxis, _np.swapaxes, _np.rollaxis, _np.expand_dims,
                            _np.squeeze, _np.diagonal, _np.ravel, _np.take, _np.take_along_axis))


def _atleast(nd, npfn):
    def traced(*arys):
        out = [_ar.atleast(nd, a) for a in arys]
        return out[0] if len(out) == 1 else out
    return _both(npfn, traced)


atleast_1d, atleast_2d, atleast_3d = (_atleast(k, f) for k, f in
                                      ((1, _np.atleast_1d), (2, _np.atleast_2d), (3, _np.atleast_3d)))


def _build(obj, name):
    if isinstance(obj, (list, tuple)):
        if _has_traced(obj):
            return _ar.stack([_build(o, name) for o in obj]) if obj else _np.zeros(0)
        return _np.asarray(obj, dtype=_np.float64)
    return obj


def array(obj, dtype=None, copy=True):
    """numpy.array; a (nested) list holding traced values becomes one traced array (stacked
    level by level: one CONCAT entry per list).  ``dtype`` must be float on that path."""
    if _has_traced((obj,)):
        if dtype is not None and _np.dtype(dtype) != _np.float64:
            raise TypeError(f"array: a traced value cannot be converted to dtype {dtype}")
        return _build(obj, "array")
    return _np.array(obj, dtype=dtype, copy=copy)


def asarray(obj, dtype=None):
    return obj if isinstance(obj, _Traced) else array(obj, dtype) if _has_traced((obj,)) \
        else _np.asarray(obj, dtype=dtype)


def at(x):
    """``tnp.at(x)[key].set(v)`` / ``.add(v)``, also ``tapegrad.at``: see ``emit.indexing``."""
    return _ix.at(x)


FUNCTIONS = {
    _np.min: min, _np.amin: min, _np.prod: prod, _np.var: var, _np.std: std,
    _np.cumsum: cumsum, _np.cumprod: cumprod, _np.trace: trace, _np.diff: diff, _np.gradient: gradient,
    _np.linalg.norm: linalg.norm, _np.concatenate: concatenate, _np.stack: stack,
    _np.hstack: hstack, _np.vstack: vstack, _np.dstack: dstack, _np.column_stack: column_stack,
    _np.split: split, _np.array_split: array_split, _np.tril: tril, _np.triu: triu,
    _np.diag: diag, _np.pad: pad, _np.repeat: repeat, _np.tile: tile, _np.roll: roll,
    _np.flip: flip, _np.fliplr: fliplr, _np.flipud: flipud, _np.rot90: rot90,
    _np.moveaxis: moveaxis, _np.swapaxes: swapaxes, _np.rollaxis: rollaxis,
    _np.expand_dims: expand_dims, _np.squeeze: squeeze, _np.diagonal: diagonal,
    _np.ravel: ravel, _np.take: take, _np.take_along_axis: take_along_axis,
    _np.tensordot: tensordot, _np.inner: inner, _np.outer: outer, _np.vdot: vdot, _np.kron: kron,
    _np.cross: cross, _np.einsum: einsum,
    **{getattr(_np.linalg, k): getattr(linalg, k) for k in _LINALG if hasattr(_np.linalg, k)},
    _np.ndim: ndim, _np.size: size, _np.atleast_1d: atleast_1d, _np.atleast_2d: atleast_2d, _np.atleast_3d: atleast_3d,
}
__all__ = sorted(n for n in dir() if not n.startswith("_") and n not in ("types", "FUNCTIONS"))
