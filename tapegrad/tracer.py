"""Traced values: the handles the user's code holds while a tape is recorded.

A :class:`Traced` is the recorder it belongs to, its node id, and its value computed
eagerly with numpy (so shapes are known and Python control flow can look at it); a 0-d
value is also kept as a Python float, all that the scalar path (:mod:`tapegrad.emit.scalar`)
computes with, and its numpy value is made when something reads it.  Its operators and
methods call the *emitters* (:mod:`tapegrad.emit`, one module per op family),
which check the operands, compute the eager value, work out the entry's integer attributes
with :mod:`tapegrad.shapes` and append one entry through :func:`_emit`.  The emitters import
this module, so the operators reach them late, through the ``EMIT`` namespace the emitter
modules fill when ``tapegrad`` is imported (no import circle).

Invariants
----------
* Every check happens here, at record time, before any kernel runs.
* A Traced value is never silently turned into a plain number or array, which would drop
  its derivative: every conversion (``float()``, ``int()``, ``operator.index``,
  ``complex()``, ``round``/``math.floor``/..., ``.item()``, ``.tolist()``, number formats,
  and so every ``math`` function, ``np.float64(x)`` and ``a[i] = x``) raises a TypeError
  naming the expression and what to use instead; ``numpy.asarray`` raises too.
* ``bool()`` and comparisons work, for Python control flow: a comparison turned into a
  Python bool records a guard entry (checked on replay); one used otherwise (a mask) marks
  the recording *value dependent* (never reused for other inputs).  ``repr``/``str``/``print``
  show the recorded value and change nothing.
"""
import dis
import linecache
import numbers
import os
import sys

import types

import numpy as np

from tapegrad.config import config
from tapegrad.jit import CODES as C
from tapegrad.recorder import CONST

UFUNCS = {}     # numpy ufunc -> tapegrad function, filled by tapegrad.numpy
FUNCTIONS = {}  # numpy function -> tapegrad function, filled by tapegrad.numpy
EMIT = types.SimpleNamespace()  # emitter name -> function, filled by tapegrad.emit


def is_number(x):
    """A constant to fold into an entry: a real Python/numpy scalar or 0-d real array."""
    if isinstance(x, (bool, np.bool_)):
        return False
    if isinstance(x, numbers.Real):
        return True
    return isinstance(x, np.ndarray) and x.ndim == 0 and x.dtype.kind in "fiu"


class Traced:
    """A value being recorded onto a tape.  Behaves like a float64 numpy array."""

    # _float: the value as a Python float when it is 0-d, else None.  A scalar made by the
    # scalar path (tapegrad.emit.scalar) is only that float until ``_value`` is read.
    __slots__ = ("_rec", "_node", "_array", "_float")
    __array_priority__ = 1000.0

    def __init__(self, rec, node, value, scalar=None):
        """``value``: the eager value (an array), or None for the 0-d value ``scalar``."""
        self._rec, self._node, self._array = rec, node, value
        self._float = scalar if value is None else \
            value.item() if value.ndim == 0 and value.dtype == np.float64 else None

    @property
    def _value(self):
        """The eager value: a float64 numpy array (0-d for a scalar)."""
        value = self._array
        if value is None:
            value = self._array = np.array(self._float)
        return value

    shape = property(lambda self: self._value.shape)
    ndim = property(lambda self: self._value.ndim)
    size = property(lambda self: self._value.size)
    dtype = property(lambda self: self._value.dtype)
    T = property(lambda self: EMIT.transpose(self))

    def __repr__(self):
        return f"Traced(node={self._node}, shape={self.shape}, value={self._value!r})"

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d traced value")
        return self.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    # arithmetic -------------------------------------------------------------------------
    # (+ - * / ** and -x: tapegrad.emit.scalar, which takes 0-d operands itself and passes
    # the rest to EMIT.binary / EMIT.affine)
    __add__ = lambda self, o: EMIT.add(self, o)
    __radd__ = lambda self, o: EMIT.radd(self, o)
    __sub__ = lambda self, o: EMIT.sub(self, o)
    __rsub__ = lambda self, o: EMIT.rsub(self, o)
    __mul__ = lambda self, o: EMIT.mul(self, o)
    __rmul__ = lambda self, o: EMIT.rmul(self, o)
    __truediv__ = lambda self, o: EMIT.truediv(self, o)
    __rtruediv__ = lambda self, o: EMIT.rtruediv(self, o)
    __pow__ = lambda self, o: EMIT.pow(self, o)
    __rpow__ = lambda self, o: EMIT.rpow(self, o)
    __matmul__ = lambda self, o: EMIT.matmul(self, o)
    __rmatmul__ = lambda self, o: EMIT.matmul(o, self)
    __neg__ = lambda self: EMIT.neg(self)
    __pos__ = lambda self: self
    __abs__ = lambda self: EMIT.unary("ABS", np.abs, self)
    __mod__ = lambda self, o: EMIT.binary("REMAINDER", self, o)
    __rmod__ = lambda self, o: EMIT.binary("REMAINDER", o, self)
    __floordiv__ = lambda self, o: EMIT.binary("FLOOR_DIVIDE", self, o)
    __rfloordiv__ = lambda self, o: EMIT.binary("FLOOR_DIVIDE", o, self)
    __divmod__ = lambda self, o: (self // o, self % o)
    __rdivmod__ = lambda self, o: (o // self, o % self)

    # elementwise methods: a traced value is real, so real/conj are the value itself
    real = property(lambda self: self)
    conj = conjugate = lambda self: self
    clip = lambda self, min=None, max=None: EMIT.clip(self, min, max)  # noqa: A002 - numpy's names
    round = lambda self, decimals=0: EMIT.round_(self, decimals)
    astype = lambda self, dtype, *args, **kwargs: EMIT.astype(self, dtype)

    # structure ----------------------------------------------------------------------------
    def reshape(self, *shape):
        return EMIT.reshape(self, shape[0] if len(shape) == 1 else shape)

    def ravel(self):
        return EMIT.reshape(self, -1)

    flatten = ravel

    def transpose(self, *axes):
        return EMIT.transpose(self, axes[0] if len(axes) == 1 else (axes or None))

    def sum(self, axis=None, keepdims=False):
        return EMIT.reduce("SUM", self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return EMIT.reduce("SUM", self, axis, keepdims, mean=True)

    def max(self, axis=None, keepdims=False):
        return EMIT.reduce("MAX", self, axis, keepdims)

    def dot(self, other):
        return EMIT.dot(self, other)

    # numpy methods that are tapegrad.numpy functions (EMIT.np: tapegrad.numpy_arrays)
    min = lambda self, axis=None, out=None, keepdims=False: EMIT.np.min(self, axis, out, keepdims)
    prod = lambda self, axis=None, dtype=None, out=None, keepdims=False: EMIT.np.prod(self, axis, dtype, out, keepdims)
    var = lambda self, axis=None, dtype=None, out=None, ddof=0, keepdims=False: EMIT.np.var(self, axis, dtype, out, ddof, keepdims)
    std = lambda self, axis=None, dtype=None, out=None, ddof=0, keepdims=False: EMIT.np.std(self, axis, dtype, out, ddof, keepdims)
    cumsum = lambda self, axis=None: EMIT.np.cumsum(self, axis)
    cumprod = lambda self, axis=None: EMIT.np.cumprod(self, axis)
    trace = lambda self, offset=0, axis1=0, axis2=1: EMIT.np.trace(self, offset, axis1, axis2)
    diagonal = lambda self, offset=0, axis1=0, axis2=1: EMIT.np.diagonal(self, offset, axis1, axis2)
    squeeze = lambda self, axis=None: EMIT.np.squeeze(self, axis)
    swapaxes = lambda self, axis1, axis2: EMIT.np.swapaxes(self, axis1, axis2)
    repeat = lambda self, repeats, axis=None: EMIT.np.repeat(self, repeats, axis)
    take = lambda self, indices, axis=None: EMIT.np.take(self, indices, axis)

    def __getitem__(self, key):
        return EMIT.getitem(self, key)

    # numpy protocols -------------------------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        fn = UFUNCS.get(ufunc) if method == "__call__" and not kwargs else None
        if fn is None:
            raise TypeError(f"numpy.{ufunc.__name__}{'' if method == '__call__' else '.' + method}"
                            f"{' with ' + ', '.join(kwargs) if kwargs else ''} is not supported "
                            "on traced values by tapegrad")
        return fn(*inputs)

    def __array_function__(self, func, types, args, kwargs):
        fn = FUNCTIONS.get(func)
        if fn is None:
            raise TypeError(f"numpy.{func.__name__} is not supported on traced values by tapegrad")
        return fn(*args, **kwargs)

    def __array__(self, dtype=None, copy=None):
        raise ConversionError(
            f"a traced value cannot be converted to a numpy array{_culprit()} (numpy.asarray(x), "
            "numpy.array(x), np.float64(x), storing it into an array with a[...] = x or "
            "a[1:] = x, or a numpy function tapegrad does not know): the gradient would be "
            "lost. Use tapegrad.numpy functions, and build arrays with arithmetic instead of "
            "storing into them (a + x * mask, not a[i] = x)")

    # conversions to Python numbers: refused, they would silently drop the derivative ----
    def __float__(self):
        raise _conversion_error("float", "converted to a Python float")

    def __int__(self):
        raise _conversion_error("int", "converted to a Python int")

    def __index__(self):
        raise _conversion_error("index", "used as a Python integer (an index or a size)")

    def __complex__(self):
        raise _conversion_error("float", "converted to a Python complex")

    def __round__(self, ndigits=None):
        raise _conversion_error("round", "rounded to a Python number", "round(x)")

    def __trunc__(self):
        raise _conversion_error("round", "truncated to a Python int", "math.trunc(x)")

    def __floor__(self):
        raise _conversion_error("round", "rounded down to a Python int", "math.floor(x)")

    def __ceil__(self):
        raise _conversion_error("round", "rounded up to a Python int", "math.ceil(x)")

    def item(self, *args):
        raise _conversion_error("float", "converted to a Python number", "x.item()")

    def tolist(self):
        raise _conversion_error("float", "converted to Python numbers", "x.tolist()")

    def __format__(self, spec):
        if not spec:
            return str(self)
        raise _conversion_error("format", f"formatted as a number (format spec {spec!r})")

    # comparisons and bool(): allowed for Python control flow.  Turned into a Python bool,
    # a comparison records a guard, checked on replay; used any other way (a mask) it makes
    # the recording value dependent (tapegrad.emit.guard) ----------------------------------
    __bool__ = lambda self: EMIT.truth(self)
    __lt__ = lambda self, o: EMIT.compare("LT", self, o)
    __le__ = lambda self, o: EMIT.compare("LE", self, o)
    __gt__ = lambda self, o: EMIT.compare("GT", self, o)
    __ge__ = lambda self, o: EMIT.compare("GE", self, o)
    __eq__ = lambda self, o: EMIT.compare("EQ", self, o)
    __ne__ = lambda self, o: EMIT.compare("NE", self, o)
    __hash__ = object.__hash__


_REMEDY = {
    "float": "Use tapegrad.numpy or numpy functions on it (tnp.exp(x) or np.exp(x), not "
             "math.exp(x) or np.float64(x)); build arrays with arithmetic instead of storing "
             "into them (a + x * np.eye(n)[i], not a[i] = x); compare it (x > 0) to branch on "
             "its value; print(x) shows the value being recorded.",
    "index": "Indices and sizes must be known when recording: use x.shape, x.ndim or len(x) "
             "for sizes and Python ints or integer arrays for indices; compare it (x > 0) to "
             "branch on its value.",
    "round": "To round and stay traced use tnp.round(x), tnp.floor(x), tnp.ceil(x), "
             "tnp.trunc(x) or x.round() (a zero gradient, recomputed on replay); compare it "
             "(x > 0, x >= 1) to branch on its value.",
    "format": "Use print(x), str(x) or f'{x}', which show the value being recorded, or format "
              "the result after the call (the value returned by tapegrad.value_and_grad).",
}
# every float argument is traced, differentiated or not; keyword arguments never are
_KEYWORD = (" A number that must stay a plain Python value (a count, a size) can be passed "
            "as a keyword argument, which is never traced.")
_REMEDY["int"] = _REMEDY["float"] + " For sizes use x.shape, x.ndim or len(x)." + _KEYWORD
_REMEDY["float"] += _KEYWORD
_REMEDY["index"] += _KEYWORD


class ConversionError(TypeError):
    """A traced value was turned into a plain Python value (float, int, index, ...).

    Raised instead of converting: the result would be a constant to the tape, so every
    derivative through it would be silently dropped.  numpy reports a failed ``a[i] = x``
    as a ValueError caused by this error; the recorder re-raises this one instead."""


def _conversion_error(kind, what, via=None):
    culprit = _culprit() or (f" by `{via}`" if via else "")
    return ConversionError(f"a traced value was {what}{culprit}: the result would be a "
                           "constant, so the derivative through it would be silently lost. "
                           + _REMEDY[kind])


_OWN_CODE = (os.path.dirname(os.path.abspath(__file__)) + os.sep,
             os.path.dirname(os.path.abspath(np.__file__)) + os.sep)


def _culprit():
    """`` by `expr` (file.py, line n)`` for the expression of the caller's code that is
    running (``math.exp(x)``, ``a[0] = ...``), skipping tapegrad's and numpy's own frames,
    or "" when the source or its positions (Python >= 3.11) are not available."""
    try:
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_filename.startswith(_OWN_CODE):
            frame = frame.f_back
        code = frame.f_code
        line, end, col, end_col = list(code.co_positions())[frame.f_lasti // 2]
        text = linecache.getline(code.co_filename, line).encode()[col:end_col].decode().strip()
        if line != end or not text:
            return ""
        if code.co_code[frame.f_lasti] == dis.opmap["STORE_SUBSCR"]:
            text += " = ..."
        return f" by `{text}` ({os.path.basename(code.co_filename)}, line {line})"
    except Exception:  # only an error message is at stake
        return ""


def _recorder(*xs):
    recs = {id(x._rec): x._rec for x in xs if isinstance(x, Traced)}
    if len(recs) > 1:
        raise ValueError("values traced by two different recordings were combined; a Traced "
                         "value must not escape the function being differentiated")
    rec = next(iter(recs.values()))
    if rec.closed:
        raise ValueError("this traced value belongs to a finished recording; a Traced value "
                         "must not escape the function being differentiated")
    return rec


def _as_float_array(op, x):
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{op}: unsupported operand of dtype {arr.dtype} (type {type(x).__name__})")
    return arr.astype(np.float64, copy=False)


def lift(rec, op, x):
    """(node, value) of an operand: a Traced as is, anything else as a new constant node."""
    if isinstance(x, Traced):
        return x._node, x._value
    value = _as_float_array(op, x)
    return rec.node(value, CONST), value


def _emit(rec, name, args, value, ints=None, floats=()):
    """Record one ``name`` entry reading the nodes ``args`` (its operand list), with its
    integer attributes ``ints`` and its row's float attributes ``floats``."""
    if ints is None and type(value) is np.float64:  # a 0-d result (numpy gives a scalar)
        return emit_scalar(rec, C[name], args, float(value), floats)
    # C order whatever numpy chose, so that _window decides alike for every input layout
    value = np.asarray(value, dtype=np.float64, order="C")
    out = Traced(rec, rec.entry(C[name], args, value, ints, floats), value)
    if config.debug_nans:  # keep the entry's source line for NaN reports (tapegrad.debug)
        EMIT.note_site(rec)
    return out


def emit_scalar(rec, opcode, args, value, floats=()):
    """:func:`_emit` for an entry with no integer attributes whose value is the Python
    float ``value``: the same entry, through the recorder's scalar path."""
    out = Traced(rec, rec.scalar_entry(opcode, args, value, floats), None, value)
    if config.debug_nans:
        EMIT.note_site(rec)
    return out
