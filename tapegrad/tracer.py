"""Traced values and the emitters that record one tape entry per operation.

A :class:`Traced` is a handle: the recorder it belongs to, its node id, and its value
computed eagerly with numpy (so shapes are known and Python control flow can look at it).
Each emitter checks its operands, computes the eager value, works out the entry's integer
attributes with :mod:`tapegrad.shapes` and appends one entry.  Arithmetic with a Python
number is folded into the entry (AFFINE, POWC) instead of becoming a constant node.

Invariants
----------
* Every check happens here, at record time, before any kernel runs.
* A Traced value is never silently turned into a plain number or array: ``float()``,
  ``bool()``, ``int()`` and comparisons work but mark the recording *value dependent*
  (such a tape is never reused for other inputs); ``numpy.asarray`` raises.
"""
import numbers

import numpy as np

from tapegrad import shapes as S
from tapegrad.jit import CODES as C
from tapegrad.recorder import ALIAS, CONST

UFUNCS = {}     # numpy ufunc -> tapegrad function, filled by tapegrad.numpy
FUNCTIONS = {}  # numpy function -> tapegrad function, filled by tapegrad.numpy


def is_number(x):
    """A constant to fold into an entry: a real Python/numpy scalar or 0-d real array."""
    if isinstance(x, (bool, np.bool_)):
        return False
    if isinstance(x, numbers.Real):
        return True
    return isinstance(x, np.ndarray) and x.ndim == 0 and x.dtype.kind in "fiu"


class Traced:
    """A value being recorded onto a tape.  Behaves like a float64 numpy array."""

    __slots__ = ("_rec", "_node", "_value")
    __array_priority__ = 1000.0

    def __init__(self, rec, node, value):
        self._rec, self._node, self._value = rec, node, value

    shape = property(lambda self: self._value.shape)
    ndim = property(lambda self: self._value.ndim)
    size = property(lambda self: self._value.size)
    dtype = property(lambda self: self._value.dtype)
    T = property(lambda self: transpose(self))

    def __repr__(self):
        return f"Traced(node={self._node}, shape={self.shape}, value={self._value!r})"

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d traced value")
        return self.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    # arithmetic -------------------------------------------------------------------------
    __add__ = lambda self, o: binary("ADD", self, o)
    __radd__ = lambda self, o: binary("ADD", o, self)
    __sub__ = lambda self, o: binary("SUB", self, o)
    __rsub__ = lambda self, o: binary("SUB", o, self)
    __mul__ = lambda self, o: binary("MUL", self, o)
    __rmul__ = lambda self, o: binary("MUL", o, self)
    __truediv__ = lambda self, o: binary("DIV", self, o)
    __rtruediv__ = lambda self, o: binary("DIV", o, self)
    __pow__ = lambda self, o: binary("POW", self, o)
    __rpow__ = lambda self, o: binary("POW", o, self)
    __matmul__ = lambda self, o: matmul(self, o)
    __rmatmul__ = lambda self, o: matmul(o, self)
    __neg__ = lambda self: affine(self, -1.0, 0.0)
    __pos__ = lambda self: self

    # structure ----------------------------------------------------------------------------
    def reshape(self, *shape):
        return reshape(self, shape[0] if len(shape) == 1 else shape)

    def ravel(self):
        return reshape(self, -1)

    flatten = ravel

    def transpose(self, *axes):
        return transpose(self, axes[0] if len(axes) == 1 else (axes or None))

    def sum(self, axis=None, keepdims=False):
        return reduce("SUM", self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return reduce("SUM", self, axis, keepdims, mean=True)

    def max(self, axis=None, keepdims=False):
        return reduce("MAX", self, axis, keepdims)

    def dot(self, other):
        return dot(self, other)

    def __getitem__(self, key):
        return getitem(self, key)

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
        raise TypeError("a traced value cannot be converted to a numpy array (numpy.asarray, "
                        "numpy.array or a numpy function tapegrad does not know): the gradient "
                        "would be lost; use tapegrad.numpy functions instead")

    # leaving the tape: allowed, but the recording becomes value dependent -------------
    def _concrete(self):
        self._rec.value_dependent = True
        return self._value

    __float__ = lambda self: float(self._concrete())
    __int__ = lambda self: int(self._concrete())
    __index__ = lambda self: int(self._concrete())
    __bool__ = lambda self: bool(self._concrete())
    __lt__ = lambda self, o: self._concrete() < _plain(o)
    __le__ = lambda self, o: self._concrete() <= _plain(o)
    __gt__ = lambda self, o: self._concrete() > _plain(o)
    __ge__ = lambda self, o: self._concrete() >= _plain(o)
    __eq__ = lambda self, o: self._concrete() == _plain(o)
    __ne__ = lambda self, o: self._concrete() != _plain(o)
    __hash__ = object.__hash__


def _plain(x):
    return x._concrete() if isinstance(x, Traced) else x


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


def _emit(rec, name, a, value, b=-1, ints=None, p=0.0, q=0.0):
    value = np.asarray(value, dtype=np.float64)
    return Traced(rec, rec.entry(C[name], a, value, b, ints, p, q), value)


# elementwise ------------------------------------------------------------------------------

def affine(x, p, q):
    if p == 1.0 and q == 0.0 and _recorder(x):  # x + 0, x * 1: nothing to record
        return x
    return _emit(x._rec, "AFFINE", x._node, p * x._value + q, p=p, q=q)


def unary(name, eager, x, p=0.0):
    """An elementwise map op (EXP, LOG, ..., POWC) on a Traced value."""
    with np.errstate(all="ignore"):
        value = eager(x._value)
    return _emit(x._rec, name, x._node, value, p=p)


_EAGER = {"ADD": np.add, "SUB": np.subtract, "MUL": np.multiply, "DIV": np.divide,
          "POW": np.power, "MAXIMUM": np.maximum}


def binary(name, x, y):
    """``x <name> y`` with numpy broadcasting; at least one of x, y is Traced."""
    if name == "POW" and isinstance(x, Traced) and is_number(y):
        p = float(y)
        return unary("POWC", lambda v: v * v if p == 2.0 else np.power(v, p), x, p=p)
    if name in ("ADD", "SUB", "MUL") and (is_number(x) or is_number(y)):
        t, c, c_first = (y, float(x), True) if is_number(x) else (x, float(y), False)
        if name == "ADD":
            return affine(t, 1.0, c)
        if name == "MUL":
            return affine(t, c, 0.0)
        return affine(t, -1.0, c) if c_first else affine(t, 1.0, -c)
    rec = _recorder(x, y)
    op = name.lower()
    xn, xv = lift(rec, op, x)
    yn, yv = lift(rec, op, y)
    out = S.broadcast(op, xv.shape, yv.shape)
    pattern = S.zip_pattern(xv.shape, yv.shape, out)
    if pattern is None:  # more than two broadcast axes: make both operands full-size first
        x, y = (broadcast_to(Traced(rec, n, v), out) for n, v in ((xn, xv), (yn, yv)))
        return binary(name, x, y)
    with np.errstate(all="ignore"):
        value = _EAGER[name](xv, yv)
    return _emit(rec, name, xn, value, yn, ints=pattern)


# axis ops ---------------------------------------------------------------------------------

_EAGER_REDUCE = {"SUM": np.sum, "MAX": np.max,
                 "LOGSUMEXP": lambda v, axis, keepdims: np_logsumexp(v, axis, keepdims)}


def np_logsumexp(v, axis, keepdims):
    top = np.max(v, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(v - top), axis=axis, keepdims=True)) + top
    return out if keepdims else np.squeeze(out, axis=axis)


def reduce(name, x, axis=None, keepdims=False, mean=False):
    """SUM / MAX / LOGSUMEXP over ``axis``; one entry per run of consecutive axes."""
    op = "mean" if mean else name.lower()
    if not isinstance(x, Traced):
        raise TypeError(f"{op}: expected a traced value")
    axes = S.normalize_axes(op, axis, x.ndim)
    count = int(np.prod([x.shape[ax] for ax in axes], dtype=np.int64))
    if name == "MAX" and count == 0:
        raise ValueError(f"max: zero-size reduction over axis {axis!r} of shape {x.shape} has no identity")
    runs = S.axis_runs(axes)
    if not runs:
        return affine(x, 1.0, 0.0)  # a reduction over no axes is the identity
    for i, run in enumerate(runs):
        last = i == len(runs) - 1
        q = (1.0 / count if count else np.nan) if (mean and last) else 1.0
        with np.errstate(all="ignore"):
            value = _EAGER_REDUCE[name](x._value, axis=run, keepdims=keepdims) * q
        x = _emit(x._rec, name, x._node, value, ints=S.reduce_block(x.shape, run), q=q)
    return x


def softmax(x, axis=-1):
    """exp(x - logsumexp(x, axis)) along one axis, as one entry."""
    if axis is None:
        return reshape(softmax(reshape(x, -1), 0), x.shape)
    (ax,) = S.normalize_axes("softmax", axis, x.ndim)
    lse = np_logsumexp(x._value, ax, True)
    with np.errstate(all="ignore"):
        value = np.exp(x._value - lse)
    return _emit(x._rec, "SOFTMAX", x._node, value, ints=S.reduce_block(x.shape, (ax,)))


# linear algebra ---------------------------------------------------------------------------

def matmul(x, y):
    rec = _recorder(x, y)
    xn, xv = lift(rec, "matmul", x)
    yn, yv = lift(rec, "matmul", y)
    m, k, n, batch, result = S.matmul_shapes(xv.shape, yv.shape)
    nbatch = int(np.prod(batch, dtype=np.int64))
    xn, xv, sa = _batch_operand(rec, xn, xv, batch, (m, k))
    yn, yv, sb = _batch_operand(rec, yn, yv, batch, (k, n))
    value = np.matmul(xv, yv)
    return _emit(rec, "MATMUL", xn, value.reshape(result), yn, ints=(m, k, n, nbatch, sa, sb))


def _batch_operand(rec, node, value, batch, core):
    """(node, value, batch stride) of a matmul operand; expands a partial batch by GATHER."""
    own = value.shape[:-2] if value.ndim > 2 else ()
    if int(np.prod(own, dtype=np.int64)) == 1:
        return node, value, 0  # one matrix serves the whole batch
    if (1,) * (len(batch) - len(own)) + tuple(own) != batch:
        full = broadcast_to(Traced(rec, node, value), batch + core)
        node, value = full._node, full._value
    return node, value, core[0] * core[1]


def dot(x, y):
    xs, ys = np.shape(x._value if isinstance(x, Traced) else x), np.shape(y._value if isinstance(y, Traced) else y)
    if len(xs) == 0 or len(ys) == 0:
        return binary("MUL", x, y)
    if len(xs) > 2 or len(ys) > 2:
        raise TypeError(f"dot: arrays of more than 2 dimensions (shapes {xs} and {ys}) are not "
                        "supported; use matmul (@)")
    return matmul(x, y)


# structure: views and gathers ---------------------------------------------------------------

def reshape(x, shape):
    try:
        value = x._value.reshape(shape)
    except (ValueError, TypeError) as err:
        raise type(err)(f"reshape: {err}") from None
    return Traced(x._rec, x._rec.node(value, ALIAS, base=x._node), value)


def gather(x, select):
    """A GATHER entry for ``select`` (numpy indexing or layout op applied to positions)."""
    shape, idx = S.index_map(x.shape, select)
    value = x._value.ravel()[idx].reshape(shape)
    return _emit(x._rec, "GATHER", x._node, value, ints=idx)


def transpose(x, axes=None):
    if x.ndim < 2:
        return x
    return gather(x, lambda pos: pos.transpose(axes))


def broadcast_to(x, shape):
    shape = tuple(shape)
    if x.shape == shape:
        return x
    S.broadcast("broadcast_to", x.shape, shape)
    return gather(x, lambda pos: np.broadcast_to(pos, shape))


def _check_key(key):
    for k in key if isinstance(key, tuple) else (key,):
        if isinstance(k, Traced):
            raise TypeError("indexing with a traced value is not supported: indices must be "
                            "Python ints, slices or integer arrays known when recording")


def _window(v, key):
    """The start of ``v[key]`` in ``v``'s flat storage if the selection is one contiguous
    run of it (``x[i]``, ``x[1:]``, a row), else None.  Decided with numpy itself on the
    eager value: a basic index gives a view whose address says where it starts."""
    if not v.flags.c_contiguous:
        return None
    keys = key if isinstance(key, tuple) else (key,)
    if len(keys) == v.ndim and all(isinstance(k, (int, np.integer)) and not isinstance(k, bool)
                                   for k in keys):
        v[key]  # let numpy raise its IndexError for an index out of bounds
        return int(np.ravel_multi_index(tuple(int(k) % d for k, d in zip(keys, v.shape)), v.shape))
    picked = v[key]
    if (isinstance(picked, np.ndarray) and picked.size and picked.flags.c_contiguous
            and np.may_share_memory(picked, v)):
        return (picked.ctypes.data - v.ctypes.data) // v.itemsize
    return None


def getitem(x, key):
    """``x[key]``: a free view when the selection is contiguous in memory (``x[i]``,
    ``x[1:]``, ``X[2]``), otherwise a GATHER entry."""
    _check_key(key)
    try:
        start = _window(x._value, key)
        if start is not None:
            value = np.asarray(x._value[key])
            return Traced(x._rec, x._rec.node(value, ALIAS, base=x._node, start=start), value)
        return gather(x, lambda pos: pos[key])
    except IndexError as err:
        raise IndexError(f"indexing a traced value of shape {x.shape}: {err}") from None
