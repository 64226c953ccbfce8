"""Elementwise emitters: arithmetic with numbers folded into one entry (AFFINE, POWC), unary
maps, broadcasting binary ops, ``where``, ``round`` and ``clip`` (float attributes), ``astype``.

Invariants
----------
* Broadcasting that fits a (d0, d1) block is one entry; more axes first broadcast both
  operands with a GATHER; same-shape operands store no pattern (the program makes it).
* A Python number meets a traced value in one entry: folded into AFFINE/POWC for ``+ - * **``,
  a float attribute of CLIP/ROUND, otherwise a one-element constant node that the zip
  entry reads at stride 0 (``x % 2.0``, ``minimum(x, 0.0)``).
* Which numpy function computes a zip row's eager value comes from its row (``NUMPY``).
"""
import operator

import numpy as np

from tapegrad import shapes as S
from tapegrad.jit import CODES as C
from tapegrad.jit.ops_elementwise import NUMPY
from tapegrad.jit.optable import OPS
from tapegrad.tracer import EMIT, Traced, _as_float_array, _conversion_error, _emit, _recorder, is_number, lift
from tapegrad.emit.shape import broadcast_to
from tapegrad.recorder import CONST



def affine(x, p, q):
    if p == 1.0 and q == 0.0 and _recorder(x):  # x + 0, x * 1: nothing to record
        return x
    return _emit(x._rec, "AFFINE", (x._node,), p * x._value + q, floats=(p, q))


def unary(name, eager, x, floats=()):
    """An elementwise map op (EXP, LOG, ..., POWC) on a Traced value."""
    with np.errstate(all="ignore"):
        value = eager(x._value)
    return _emit(x._rec, name, (x._node,), value, floats=floats)


# the eager (numpy) function of each zip row, from the numpy names its row gives
_EAGER = {row.name: getattr(np, NUMPY[row.name][0]) for row in OPS if row.family == "zip"}


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


def round_(x, decimals=0):
    """numpy.round(x, decimals) of a traced x: one ROUND entry (zero gradient; a replay
    rounds the new values)."""
    d = operator.index(decimals)
    return unary("ROUND", lambda v: np.round(v, d), x, (float(d),))


def clip(x, lo, hi):
    """numpy.clip(x, lo, hi).  Number bounds (or None) become the float attributes of one
    CLIP entry, whose slope is 0 at a bound (the minimum-norm subgradient); an array or
    traced bound records maximum(x, lo) then minimum(., hi), whose ties split evenly."""
    if isinstance(x, Traced) and all(b is None or is_number(b) for b in (lo, hi)):
        p = -np.inf if lo is None else float(lo)
        q = np.inf if hi is None else float(hi)
        return unary("CLIP", lambda v: np.clip(v, p, q), x, (p, q))
    y = x if lo is None else binary("MAXIMUM", x, lo)
    return y if hi is None else binary("MINIMUM", y, hi)


def astype(x, dtype):
    """x.astype(dtype): float64 and float32 keep the value (tapes compute in float64); any
    other dtype would drop the derivative (int, bool) or is not supported (complex, float16),
    and raises a ConversionError naming it."""
    dt = np.dtype(dtype)
    if dt.kind == "f" and dt.itemsize >= 4:
        return x
    raise _conversion_error("round" if dt.kind in "biu" else "float", f"converted to {dt.name} by astype")


EMIT.affine = affine
EMIT.round_ = round_
EMIT.clip = clip
EMIT.astype = astype
EMIT.unary = unary
EMIT.binary = binary
EMIT.where = where
