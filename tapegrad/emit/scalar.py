"""The scalar fast path: the operators ``+ - * / **`` and unary minus on 0-d traced values,
and ``x[i]`` / ``x[i, j]`` picking one element, as code that loops over scalars uses them.

Each operator first looks for the scalar case: its operands are a 0-d Traced and another
0-d Traced of the same recording, or a Python ``float``/``int`` (for indexing: an int per
axis of a C-contiguous traced array, in range).  Then it computes the value on Python
floats and appends the entry with :func:`tapegrad.tracer.emit_scalar`, skipping the
general emitters' shape, broadcasting and dtype work (~1.5 us instead of ~5 us per
operation).  Every other case, and every case where Python's float arithmetic could differ
from numpy's (a zero divisor, a power other than 2, a NaN result, whose sign bit numpy may
set otherwise), goes to the general emitters.

Invariants
----------
* The fast path records exactly the tape the general emitters record (the same entries,
  nodes, attributes and bit-identical values), and raises nothing they would not: it only
  takes operations whose outcome it knows to be the same.  Python's ``+ - * /`` on floats
  are numpy's float64 operations (IEEE, correctly rounded, no exception except a division
  by zero, which is left to numpy), up to the sign bit of a NaN, also left to numpy.
  ``tests/test_scalar_path.py`` compares both paths.
* A finished recording, or operands of two recordings, go to the general emitters, which
  raise their errors.
"""
import operator

from tapegrad.emit.elementwise import affine as _general_affine
from tapegrad.emit.elementwise import binary as _general_binary
from tapegrad.emit.shape import getitem as _general_getitem
from tapegrad.jit import CODES as C
from tapegrad.recorder import ALIAS, CONST
from tapegrad.tracer import EMIT, Traced, emit_scalar

_AFFINE, _POWC = C["AFFINE"], C["POWC"]
_NAN = float("nan")


def _affine(t, rec, v, p, q):
    """``p * t + q`` on the float ``v`` of the 0-d ``t`` (elementwise.affine's value)."""
    if p == 1.0 and q == 0.0:
        return t
    value = p * v + q
    if value != value:  # a NaN: numpy's may have another sign bit
        return _general_affine(t, p, q)
    return emit_scalar(rec, _AFFINE, (t._node,), value, (p, q))


def _operator(name, reflected):
    """The operator ``t <name> o`` (``o <name> t`` if ``reflected``) of a Traced ``t``."""
    code, fn = C[name], {"ADD": operator.add, "SUB": operator.sub, "MUL": operator.mul,
                         "DIV": operator.truediv, "POW": None}[name]

    def scalar_or_general(t, o):
        rec, v = t._rec, t._float
        if v is not None and not rec.closed:
            kind = type(o)
            if kind is Traced:
                w = o._float
                if o._rec is rec and w is not None and fn is not None:
                    a, b = (w, v) if reflected else (v, w)
                    value = fn(a, b) if name != "DIV" or b != 0.0 else _NAN
                    if value == value:
                        args = (o._node, t._node) if reflected else (t._node, o._node)
                        return emit_scalar(rec, code, args, value)
            elif kind is float or kind is int:
                if name == "ADD":
                    return _affine(t, rec, v, 1.0, float(o))
                if name == "MUL":
                    return _affine(t, rec, v, float(o), 0.0)
                if name == "SUB":
                    return _affine(t, rec, v, -1.0, float(o)) if reflected else \
                        _affine(t, rec, v, 1.0, -float(o))
                if name == "POW" and not reflected and o == 2 and v == v:
                    return emit_scalar(rec, _POWC, (t._node,), v * v, (2.0,))
                if name == "DIV" and kind is float and (v if reflected else o) != 0.0:
                    value = o / v if reflected else v / o
                    if value == value:
                        c = rec.scalar_node(o, CONST)  # the general path's constant node
                        args = (c, t._node) if reflected else (t._node, c)
                        return emit_scalar(rec, code, args, value)
        return _general_binary(name, o, t) if reflected else _general_binary(name, t, o)

    return scalar_or_general


def neg(t):
    """``-t``: AFFINE(-1, 0)."""
    rec, v = t._rec, t._float
    if v is not None and not rec.closed:
        return _affine(t, rec, v, -1.0, 0.0)
    return _general_affine(t, -1.0, 0.0)


def getitem(x, key):
    """``x[i]`` of a 1-d, ``x[i, j, ...]`` (an int per axis) of a C-contiguous ``x``, every
    index in range: a 0-d alias node on element ``start`` of ``x``'s storage."""
    rec, xv = x._rec, x._value
    if not rec.closed and xv.flags.c_contiguous:
        kind = type(key)
        if kind is int and xv.ndim == 1:
            n = xv.shape[0]
            if -n <= key < n:
                return _element(x, rec, xv, key % n)
        elif kind is tuple and len(key) == xv.ndim:
            start = 0
            for k, n in zip(key, xv.shape):
                if type(k) is not int or not -n <= k < n:
                    break
                start = start * n + k % n
            else:
                return _element(x, rec, xv, start)
    return _general_getitem(x, key)


def _element(x, rec, xv, start):
    return Traced(rec, rec.scalar_node(None, ALIAS, x._node, start), None, xv.item(start))


for _name in ("ADD", "SUB", "MUL", "DIV", "POW"):
    _method = "truediv" if _name == "DIV" else _name.lower()
    setattr(EMIT, _method, _operator(_name, False))
    setattr(EMIT, "r" + _method, _operator(_name, True))
EMIT.neg = neg
EMIT.getitem = getitem
