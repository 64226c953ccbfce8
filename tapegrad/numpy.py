"""numpy-mirroring functions that record onto the tape: ``import tapegrad.numpy as tnp``.

Each function takes the arguments of its numpy namesake.  Given a traced value it records
one entry (a few for multi-axis reductions); given only plain arrays it simply calls numpy,
so code written with ``tnp`` runs with or without tapegrad.  The plain numpy functions and
operators also work on traced values (``np.exp(x)``, ``x @ W``) through numpy's dispatch
protocols; anything tapegrad does not support raises a TypeError naming it.
"""
import numpy as _np

from tapegrad import tracer as _tracer
from tapegrad.emit import elementwise as _ew, linalg as _la, reductions as _red, shape as _sh
from tapegrad.tracer import Traced as _Traced

pi, e, inf, nan, newaxis = _np.pi, _np.e, _np.inf, _np.nan, _np.newaxis


def _traced(*xs):
    return any(isinstance(x, _Traced) for x in xs)


def _map(name, eager):
    def fn(x):
        return _ew.unary(name, eager, x) if isinstance(x, _Traced) else eager(x)
    fn.__name__ = fn.__qualname__ = name.lower()
    fn.__doc__ = f"Elementwise {name.lower()}; records one {name} entry on a traced value."
    return fn


exp = _map("EXP", _np.exp)
log = _map("LOG", _np.log)
sqrt = _map("SQRT", _np.sqrt)
sin = _map("SIN", _np.sin)
cos = _map("COS", _np.cos)
tanh = _map("TANH", _np.tanh)
log1p = _map("LOG1P", _np.log1p)
def _np_sigmoid(x):
    e = _np.exp(-_np.abs(x))
    return _np.where(_np.asarray(x) >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


sigmoid = _map("SIGMOID", _np_sigmoid)


def _zip(name, eager):
    def fn(x, y):
        return _ew.binary(name, x, y) if _traced(x, y) else eager(x, y)
    fn.__name__ = fn.__qualname__ = eager.__name__
    fn.__doc__ = f"numpy.{eager.__name__} with broadcasting; records a {name} entry."
    return fn


add = _zip("ADD", _np.add)
subtract = _zip("SUB", _np.subtract)
multiply = _zip("MUL", _np.multiply)
divide = true_divide = _zip("DIV", _np.divide)
power = _zip("POW", _np.power)
maximum = _zip("MAXIMUM", _np.maximum)


def negative(x):
    return -x


def positive(x):
    return x


def square(x):
    return x ** 2


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
    return _la.dot(x, y) if _traced(x, y) else _np.dot(x, y)


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


def shape(x):
    return x.shape if _traced(x) else _np.shape(x)


_tracer.UFUNCS.update({
    _np.add: add, _np.subtract: subtract, _np.multiply: multiply, _np.divide: divide,
    _np.power: power, _np.maximum: maximum, _np.negative: negative, _np.positive: positive,
    _np.square: square, _np.exp: exp, _np.log: log, _np.sqrt: sqrt, _np.sin: sin,
    _np.cos: cos, _np.tanh: tanh, _np.log1p: log1p, _np.matmul: matmul,
})
_tracer.FUNCTIONS.update({
    _np.sum: sum, _np.mean: mean, _np.max: max, _np.amax: max, _np.dot: dot,
    _np.matmul: matmul, _np.reshape: reshape, _np.transpose: transpose,
    _np.broadcast_to: broadcast_to, _np.shape: shape, _np.where: where,
})


def __getattr__(name):
    raise AttributeError(f"tapegrad.numpy has no function {name!r} (not supported yet); "
                         f"supported: {', '.join(sorted(n for n in globals() if not n.startswith('_')))}")
