"""Traced values and the emitters that record one tape entry per operation.

A :class:`Traced` is a handle: the recorder it belongs to, its node id, and its value
computed eagerly with numpy (so shapes are known and Python control flow can look at it).
Each emitter checks its operands, computes the eager value, works out the entry's integer
attributes with :mod:`tapegrad.shapes` and appends one entry.  Arithmetic with a Python
number is folded into the entry (AFFINE, POWC) instead of becoming a constant node.

Invariants
----------
* Every check happens here, at record time, before any kernel runs.
* A Traced value is never silently turned into a plain number or array, which would drop
  its derivative: every conversion (``float()``, ``int()``, ``operator.index``,
  ``complex()``, ``round``/``math.floor``/..., ``.item()``, ``.tolist()``, number formats,
  and so every ``math`` function, ``np.float64(x)`` and ``a[i] = x``) raises a TypeError
  naming the expression and what to use instead; ``numpy.asarray`` raises too.
* ``bool()`` and comparisons work, for Python control flow, but mark the recording *value
  dependent* (such a tape is never reused for other inputs).  ``repr``/``str``/``print``
  show the recorded value and change nothing.
"""
import dis
import linecache
import numbers
import os
import sys

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

    # comparisons and bool(): allowed for Python control flow; the recording becomes value
    # dependent (such a tape is never reused for other inputs) ---------------------------
    def _concrete(self):
        self._rec.value_dependent = True
        return self._value

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


_REMEDY = {
    "float": "Use tapegrad.numpy or numpy functions on it (tnp.exp(x) or np.exp(x), not "
             "math.exp(x) or np.float64(x)); build arrays with arithmetic instead of storing "
             "into them (a + x * np.eye(n)[i], not a[i] = x); compare it (x > 0) to branch on "
             "its value; print(x) shows the value being recorded.",
    "index": "Indices and sizes must be known when recording: use x.shape, x.ndim or len(x) "
             "for sizes and Python ints or integer arrays for indices; compare it (x > 0) to "
             "branch on its value.",
    "round": "Rounding has a zero derivative almost everywhere and is not supported; compare "
             "it (x > 0, x >= 1) to branch on its value.",
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
    # C order whatever numpy chose, so that _window decides alike for every input layout
    value = np.asarray(value, dtype=np.float64, order="C")
    return Traced(rec, rec.entry(C[name], args, value, ints, floats), value)


# elementwise ------------------------------------------------------------------------------

def affine(x, p, q):
    if p == 1.0 and q == 0.0 and _recorder(x):  # x + 0, x * 1: nothing to record
        return x
    return _emit(x._rec, "AFFINE", (x._node,), p * x._value + q, floats=(p, q))


def unary(name, eager, x, floats=()):
    """An elementwise map op (EXP, LOG, ..., POWC) on a Traced value."""
    with np.errstate(all="ignore"):
        value = eager(x._value)
    return _emit(x._rec, name, (x._node,), value, floats=floats)


_EAGER = {"ADD": np.add, "SUB": np.subtract, "MUL": np.multiply, "DIV": np.divide,
          "POW": np.power, "MAXIMUM": np.maximum}


def binary(name, x, y):
    """``x <name> y`` with numpy broadcasting; at least one of x, y is Traced."""
    if name == "POW" and isinstance(x, Traced) and is_number(y):
        p = float(y)
        return unary("POWC", lambda v: v * v if p == 2.0 else np.power(v, p), x, (p,))
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
    if xv.shape == yv.shape:  # no broadcast: the program synthesises the trivial block
        pattern = None
    else:
        out = S.broadcast(op, xv.shape, yv.shape)
        pattern = S.zip_pattern(xv.shape, yv.shape, out)
        if pattern is None:  # more than two broadcast axes: make both operands full-size first
            x, y = (broadcast_to(Traced(rec, n, v), out) for n, v in ((xn, xv), (yn, yv)))
            return binary(name, x, y)
    with np.errstate(all="ignore"):
        value = _EAGER[name](xv, yv)
    return _emit(rec, name, (xn, yn), value, ints=pattern)


def where(cond, x, y):
    """numpy.where(cond, x, y) for a condition known when recording (a boolean or numeric
    array, or the result of comparing traced values): one WHERE entry reading the condition
    as a constant node, x and y, all broadcast to the output shape first.  The gradient
    flows to x where the condition holds and to y elsewhere."""
    if isinstance(cond, Traced):
        raise TypeError("where: the condition must be known when recording (a boolean array, or "
                        "a comparison such as x > 0), not a traced value")
    rec = _recorder(x, y)
    c = np.asarray(cond)
    if c.dtype.kind not in "biuf":
        raise TypeError(f"where: unsupported condition of dtype {c.dtype}")
    shapes = [np.shape(v._value if isinstance(v, Traced) else v) for v in (x, y)]
    out = S.broadcast("where", c.shape, *shapes)
    nodes = [rec.node(np.ascontiguousarray(np.broadcast_to(c, out), np.float64), CONST)]
    values = []
    for v in (x, y):
        if isinstance(v, Traced):
            v = broadcast_to(v, out)
            node, value = v._node, v._value
        else:
            node, value = lift(rec, "where", np.broadcast_to(_as_float_array("where", v), out).copy())
        nodes.append(node)
        values.append(value)
    return _emit(rec, "WHERE", tuple(nodes), np.where(c, values[0], values[1]))


# axis ops ---------------------------------------------------------------------------------

_EAGER_REDUCE = {"SUM": np.sum, "MAX": np.max,
                 "LOGSUMEXP": lambda v, axis, keepdims: np_logsumexp(v, axis, keepdims)}


def np_logsumexp(v, axis, keepdims):
    """log(sum(exp(v))) over ``axis`` with numpy, shifted by the max; -inf over no elements."""
    top = np.max(v, axis=axis, keepdims=True, initial=-np.inf)
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
        x = _emit(x._rec, name, (x._node,), value, ints=S.reduce_block(x.shape, run),
                  floats=(q,) if name == "SUM" else ())
    return x


def softmax(x, axis=-1):
    """exp(x - logsumexp(x, axis, keepdims=True)) over ``axis`` (an int, a tuple of ints,
    or None for all axes); an empty ``x`` gives an empty result.

    Axes that form one run of consecutive axes are one SOFTMAX entry (the kernel sees a C
    ordered (pre, m, post) block whatever the run's length); any other choice of axes is
    recorded as that formula, a LOGSUMEXP per run, a SUB and an EXP."""
    axes = S.normalize_axes("softmax", axis, x.ndim)
    runs = S.axis_runs(axes)
    if len(runs) != 1:
        return unary("EXP", np.exp, x - reduce("LOGSUMEXP", x, axes, keepdims=True))
    lse = np_logsumexp(x._value, runs[0], True)
    with np.errstate(all="ignore"):
        value = np.exp(x._value - lse)
    return _emit(x._rec, "SOFTMAX", (x._node,), value, ints=S.reduce_block(x.shape, runs[0]))


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
    (xn, ta), (yn, tb) = _stored_transposed(rec, xn, sa), _stored_transposed(rec, yn, sb)
    return _emit(rec, "MATMUL", (xn, yn), value.reshape(result), ints=(m, k, n, nbatch, sa, sb, ta, tb))


def _stored_transposed(rec, node, stride):
    """(source, 1) when ``node`` is a 2-d transpose (``W.T``) of the node ``source``, else
    (node, 0).  The matmul then reads ``source`` and BLAS transposes it by a flag: the
    GATHER that copied it is left without live users and is never replayed (``X @ W.T``
    costs what ``X @ W`` does).  Only a single matrix (batch stride 0) qualifies."""
    made = rec.producer(node) if stride == 0 else None
    if made is None or made[0] != C["GATHER"]:
        return node, 0
    _, src, iarg = made
    shape, src_shape = rec.shape(node), rec.shape(src)
    if len(shape) != 2 or src_shape != shape[::-1]:
        return node, 0
    size = shape[0] * shape[1]
    if not np.array_equal(rec.int_attrs(iarg, size),
                          np.arange(size, dtype=np.int64).reshape(src_shape).T.ravel()):
        return node, 0
    return src, 1


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
    return _emit(x._rec, "GATHER", (x._node,), value, ints=idx)


def transpose(x, axes=None):
    """``x`` with its axes permuted as numpy's ``transpose(x, axes)``: a GATHER entry, or
    ``x`` itself when the permutation is the identity (always for 0-d and 1-d ``x``).

    ``axes`` is checked for every ndim as numpy does (wrong length, repeated or out of
    range), with numpy's exception types, before anything is recorded."""
    try:  # numpy checks axes on a zero-size stand-in whose distinct dims reveal the permutation
        perm = np.empty(tuple(range(x.ndim))).transpose(axes).shape
    except (ValueError, TypeError) as err:
        raise type(err)(f"transpose: axes {axes!r} do not fit a traced value of shape "
                        f"{x.shape}: {err}") from None
    if perm == tuple(range(x.ndim)):
        return x
    return gather(x, lambda pos: pos.transpose(perm))


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
