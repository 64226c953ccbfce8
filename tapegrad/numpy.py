"""numpy-mirroring functions that record onto the tape: ``import tapegrad.numpy as tnp``.

Each function takes the arguments of its numpy namesake.  Given a traced value it records
one entry (a few for multi-axis reductions); given only plain arrays it simply calls numpy,
so code written with ``tnp`` runs with or without tapegrad.  The plain numpy functions and
operators also work on traced values (``np.exp(x)``, ``x @ W``) through numpy's dispatch
protocols; anything tapegrad does not support raises a TypeError naming it.
"""
import types as _types

import numpy as _np

from tapegrad import tracer as _tracer
from tapegrad.emit import contract as _ct, elementwise as _ew, linalg as _la, reductions as _red, shape as _sh
from tapegrad.tracer import Traced as _Traced
from tapegrad.jit.optable import OPS as _OPS
from tapegrad.jit.ops_elementwise import NUMPY as _ROW_NUMPY

pi, e, inf, nan, newaxis = _np.pi, _np.e, _np.inf, _np.nan, _np.newaxis


def _traced(*xs):
    return any(isinstance(x, _Traced) for x in xs)


def _map(name, eager, public=None):
    public = public or name.lower()

    def fn(x):
        return _ew.unary(name, eager, x) if isinstance(x, _Traced) else eager(x)
    fn.__name__ = fn.__qualname__ = public
    fn.__doc__ = f"numpy.{public}, elementwise; records one {name} entry on a traced value."
    return fn


def _zip(name, eager, public=None):
    public = public or eager.__name__

    def fn(x, y):
        return _ew.binary(name, x, y) if _traced(x, y) else eager(x, y)
    fn.__name__ = fn.__qualname__ = public
    fn.__doc__ = f"numpy.{public} with broadcasting; records a {name} entry."
    return fn


def _elementwise():
    """{numpy name: function} for every elementwise row that names the numpy functions it
    mirrors (``numpy=`` in ``jit/ops_*.py``): tnp.exp, tnp.arctan2, ... come from the table."""
    make = {"map": _map, "zip": _zip}
    return {public: make[row.family](row.name, getattr(_np, public), public)
            for row in _OPS for public in _ROW_NUMPY.get(row.name, ())}


_ELEMENTWISE = _elementwise()
globals().update(_ELEMENTWISE)


def _np_sigmoid(x):
    e = _np.exp(-_np.abs(x))
    return _np.where(_np.asarray(x) >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


sigmoid = _map("SIGMOID", _np_sigmoid, "sigmoid")


def negative(x):
    return -x


def positive(x):
    return x


def real(x):
    """The real part: a traced value is real, so itself (no entry)."""
    return x if _traced(x) else _np.real(x)


def conjugate(x):
    """The complex conjugate: a traced value is real, so itself (no entry)."""
    return x if _traced(x) else _np.conjugate(x)


conj = conjugate


def round(x, decimals=0):  # noqa: A001 - mirrors numpy
    """numpy.round (half to even) to ``decimals`` places: one ROUND entry, zero gradient."""
    return _ew.round_(x, decimals) if _traced(x) else _np.round(x, decimals)


around = round


def clip(a, a_min=None, a_max=None, *, min=None, max=None):  # noqa: A002 - mirrors numpy
    """numpy.clip: number bounds record one CLIP entry (slope 0 at a bound); array or traced
    bounds record maximum and minimum entries (ties split as theirs)."""
    lo = a_min if min is None else min
    hi = a_max if max is None else max
    return _ew.clip(a, lo, hi) if _traced(a, lo, hi) else _np.clip(a, lo, hi)


def sum(x, axis=None, keepdims=False):  # noqa: A001 - mirrors numpy
    return _red.reduce("SUM", x, axis, keepdims) if _traced(x) else _np.sum(x, axis=axis, keepdims=keepdims)


def mean(x, axis=None, keepdims=False):
    return _red.reduce("SUM", x, axis, keepdims, mean=True) if _traced(x) else _np.mean(x, axis=axis, keepdims=keepdims)


def max(x, axis=None, keepdims=False):  # noqa: A001 - mirrors numpy
    return _red.reduce("MAX", x, axis, keepdims) if _traced(x) else _np.max(x, axis=axis, keepdims=keepdims)


amax = max


def logsumexp(x, axis=None, keepdims=False):
    """log(sum(exp(x))) over ``axis`` (an int, a tuple of ints or None for all axes),
    computed without overflow; -inf over no elements."""
    if _traced(x):
        return _red.reduce("LOGSUMEXP", x, axis, keepdims)
    return _red.np_logsumexp(_np.asarray(x, dtype=float), axis, keepdims)


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) over ``axis`` (default: the last; a tuple of ints, or None for
    all axes), without overflow; an empty ``x`` gives an empty result."""
    if _traced(x):
        return _red.softmax(x, axis)
    x = _np.asarray(x, dtype=float)
    return _np.exp(x - _red.np_logsumexp(x, axis, True))


def matmul(x, y):
    return _la.matmul(x, y) if _traced(x, y) else _np.matmul(x, y)


def dot(x, y):
    return _ct.dot(x, y) if _traced(x, y) else _np.dot(x, y)


def reshape(x, shape):
    return _sh.reshape(x, shape) if _traced(x) else _np.reshape(x, shape)


def transpose(x, axes=None):
    """numpy.transpose; on a traced value ``axes`` is checked as numpy checks it."""
    return _sh.transpose(x, axes) if _traced(x) else _np.transpose(x, axes)


def broadcast_to(x, shape):
    return _sh.broadcast_to(x, shape) if _traced(x) else _np.broadcast_to(x, shape)


def where(condition, x=None, y=None):
    """numpy.where(condition, x, y); on traced x or y, the condition must be known when
    recording (a boolean array or a comparison of traced values, which makes the recording
    value dependent).  The one-argument form is numpy's, for plain arrays only."""
    if x is None and y is None:
        if _traced(condition):
            raise TypeError("where(condition) without x and y returns indices: not differentiable "
                            "and not supported on a traced value")
        return _np.where(condition)
    if x is None or y is None:
        raise TypeError("where: give both x and y, or neither")
    return _ew.where(condition, x, y) if _traced(condition, x, y) else _np.where(condition, x, y)


def elementwise_table():
    """The elementwise functions as a Markdown table, generated from the op table: each row
    with the numpy functions that record it (``numpy=`` in ``jit/ops_*.py``) and its doc,
    then the functions written by hand.  docs/index.md shows it (a doctest: it cannot drift)."""
    lines = ["| op | numpy functions (`tnp.f`, `np.f` on traced values) | computes |", "|---|---|---|"]
    for row in _OPS:
        if row.name in _ROW_NUMPY:
            names = ", ".join(f"`{n}`" for n in _ROW_NUMPY[row.name])
            lines.append(f"| {row.name} | {names} | {row.doc} |")
    lines.append("| SIGMOID | `sigmoid` | logistic 1/(1 + exp(-a)), overflow-free |")
    lines.append("| CLIP, MAXIMUM, MINIMUM | `clip`, `x.clip` | number bounds: one CLIP entry; "
                 "array or traced bounds: maximum then minimum |")
    lines.append("| ROUND | `round`, `around`, `x.round` | to `decimals` places, half to even; zero gradient |")
    lines.append("| (none) | `real`, `conj`, `conjugate`, `positive`, `x.real`, `x.conj()`, "
                 "`x.astype(float)` | the value itself: traced values are real float64 |")
    lines.append("| (operators) | `abs(x)`, `x % y`, `x // y`, `divmod(x, y)`, `-x` | ABS, REMAINDER, "
                 "FLOOR_DIVIDE, AFFINE |")
    return "\n".join(lines)


def shape(x):
    return x.shape if _traced(x) else _np.shape(x)


_tracer.UFUNCS.update({
    _np.add: add, _np.subtract: subtract, _np.multiply: multiply, _np.divide: divide,
    _np.power: power, _np.maximum: maximum, _np.negative: negative, _np.positive: positive,
    _np.matmul: matmul, _np.conjugate: conjugate,
})
# the generated elementwise functions: a ufunc dispatches through __array_ufunc__, anything
# else (np.sinc) through __array_function__
for _name, _fn in _ELEMENTWISE.items():
    _target = getattr(_np, _name)
    (_tracer.UFUNCS if isinstance(_target, _np.ufunc) else _tracer.FUNCTIONS)[_target] = _fn
_tracer.FUNCTIONS.update({_np.real: real, _np.round: round, _np.around: around, _np.clip: clip})
_tracer.FUNCTIONS.update({
    _np.sum: sum, _np.mean: mean, _np.max: max, _np.amax: max, _np.dot: dot,
    _np.matmul: matmul, _np.reshape: reshape, _np.transpose: transpose,
    _np.broadcast_to: broadcast_to, _np.shape: shape, _np.where: where,
})

# reductions, array building, layouts and indexing (tapegrad.numpy_arrays); Traced's numpy
# methods (.min, .prod, .var, .squeeze, ...) reach these functions through EMIT.np
from tapegrad.numpy_arrays import *  # noqa: E402,F401,F403
from tapegrad import numpy_arrays as _arrays  # noqa: E402
_tracer.FUNCTIONS.update(_arrays.FUNCTIONS)
_tracer.EMIT.np = _arrays
# decompositions (tapegrad.numpy_linalg) join the linalg namespace
from tapegrad import numpy_linalg as _linalg  # noqa: E402
# a module, not a namespace object: captured-state checks take modules by identity, so user
# code may keep `la = tnp.linalg` in a global
linalg = _types.ModuleType("tapegrad.numpy.linalg", "numpy.linalg functions that record onto the tape")
vars(linalg).update(vars(_arrays.linalg), **_linalg.PUBLIC)
_tracer.FUNCTIONS.update(_linalg.FUNCTIONS)


def __getattr__(name):
    raise AttributeError(f"tapegrad.numpy has no function {name!r} (not supported yet); "
                         f"supported: {', '.join(sorted(n for n in globals() if not n.startswith('_')))}")
