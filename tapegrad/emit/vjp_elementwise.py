"""Traced vector-Jacobian products of the elementwise rows (map, zip, select).

Each rule is the op's backward kernel (``jit/ops_elementwise.py``, ``ops_unary.py``,
``ops_binary.py``) written again with tapegrad's own traced operations, so that the
gradient it computes is itself recorded and can be differentiated, replayed or saved.
A rule takes the output's adjoint ``g``, the output ``y``, the operands and the entry's
attributes ``e`` (``e.p``, ``e.q``: its float attributes), all traced values of the outer
recording, and returns the operand's adjoint, or None for an adjoint that is zero
everywhere (the rounding rows).  Zip rules are unbroadcast to the operand's shape by the
caller (``tapegrad.vjps``).

Invariants
----------
* A rule computes what its kernel computes, with the kernel's own formula where one
  exists (tests/test_second_order_ops.py compares them on every case of the op table).
* Choices the kernel makes with a branch (a kink, a tie, a guarded division) are made here
  by :func:`select`: a WHERE entry whose condition is a *traced* 0/1-valued node computed on
  the tape, never a constant mask, so the recording stays valid at other inputs and needs
  no guard.  The branch not taken is fed a harmless stand-in value (the "double where"), so
  that its zero adjoint never meets an infinite partial derivative (0 * inf = NaN) when the
  rule itself is differentiated.
* The one place a rule and its kernel differ is a tie between two infinities of one sign
  (inf - inf is NaN, not 0): the kernel splits the adjoint, the rule gives it to neither.
"""
import math

import numpy as np

import tapegrad.numpy as tnp
from tapegrad import shapes as S
from tapegrad.emit.arrays import const
from tapegrad.emit.reductions import reduce
from tapegrad.emit.shape import broadcast_to, reshape
from tapegrad.tracer import Traced, _emit

LN2, LN10, RAD = math.log(2.0), math.log(10.0), math.pi / 180.0


def select(c, x, y):
    """``x`` where the traced ``c`` is nonzero (NaN counts as nonzero, as WHERE's kernel
    reads it), else ``y``; ``x`` and ``y`` traced or numbers, all broadcast together.  The
    condition gets no adjoint (WHERE's backward never writes it): a 0/1 switch."""
    rec = c._rec
    shapes = [np.shape(v._value) if isinstance(v, Traced) else () for v in (c, x, y)]
    out = S.broadcast("select", *shapes)
    nodes, values = [], []
    for v in (c, x, y):
        if not isinstance(v, Traced):
            v = const(rec, np.full(out, float(v)))
        v = broadcast_to(v, out)
        nodes.append(v._node)
        values.append(v._value)
    return _emit(rec, "WHERE", tuple(nodes), np.where(values[0] != 0.0, values[1], values[2]))


def unbroadcast(x, shape):
    """``x`` summed down to ``shape``, which broadcasts to ``x.shape`` (numpy's rules):
    the adjoint of an operand that a zip entry read at stride 0 along some axes."""
    shape = tuple(shape)
    if x.shape == shape:
        return x
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(shape)
                                      if d == 1 and x.shape[lead + i] != 1)
    return reshape(reduce("SUM", x, axes) if axes else x, shape)


def equal_weight(a, y):
    """1 where ``a == y`` and 0 elsewhere (also where either is NaN), as a traced switch."""
    return select(a - y, 0.0, 1.0)


def _select_vjp(g, y, a, b, e):
    """The adjoint goes to the operand equal to the result, half to each on a tie, none to
    a NaN operand (``_select_vjp`` and ``_maximum_vjp`` in the kernels)."""
    ea, eb = equal_weight(a, y), equal_weight(b, y)
    return g * select(ea, select(eb, 0.5, 1.0), 0.0), g * select(eb, select(ea, 0.5, 1.0), 0.0)


def _pow_a(g, y, a, b, e):
    bs = select(b, b, 1.0)  # b == 0: the kernel's 0, and a finite stand-in in the formula
    return select(b, g * bs * a ** (bs - 1.0), 0.0)


def _pow_b(g, y, a, b, e):
    a_s = select(a, a, 1.0)
    return select(a, g * y * tnp.log(a_s), 0.0)


def _hypot(g, y, a, b, e):
    ys = select(y, y, 1.0)
    return select(y, g * a / ys, 0.0), select(y, g * b / ys, 0.0)


def _powc(g, y, a, e):
    if e.p == 0.0:
        return None
    return 2.0 * (g * a) if e.p == 2.0 else e.p * (g * a ** (e.p - 1.0))


def _clip(g, y, a, e):
    # zero at and beyond a bound: a <= p or a >= q (false for NaN: the kernel's g)
    at_lo = tnp.fmax(tnp.sign(e.p - a) + 1.0, 0.0) if e.p > -np.inf else None
    at_hi = tnp.fmax(tnp.sign(a - e.q) + 1.0, 0.0) if e.q < np.inf else None
    hits = [h for h in (at_lo, at_hi) if h is not None]
    if not hits:
        return g
    return select(hits[0] + hits[1] if len(hits) == 2 else hits[0], 0.0, g)


def _sinc(g, y, a, e):
    big = tnp.sign(tnp.abs(a) - 1e-4) + 1.0  # nonzero (or NaN) where |a| >= 1e-4
    ab, yb, a_small = select(big, a, 1.0), select(big, y, 0.0), select(big, 0.0, a)
    t = (math.pi * math.pi) * a_small  # the kernel's Taylor series near 0
    small = g * t * ((math.pi * math.pi / 30.0) * (a_small * a_small) - 1.0 / 3.0)
    return select(big, g * (tnp.cos(math.pi * ab) - yb) / ab, small)


def _zero(*args):
    return None


MAP = {
    "AFFINE": lambda g, y, a, e: e.p * g,
    "POWC": _powc,
    "EXP": lambda g, y, a, e: g * y,
    "LOG": lambda g, y, a, e: g / a,
    "SQRT": lambda g, y, a, e: 0.5 * g / y,
    "SIN": lambda g, y, a, e: g * tnp.cos(a),
    "COS": lambda g, y, a, e: -(g * tnp.sin(a)),
    "TANH": lambda g, y, a, e: g * (1.0 - y * y),
    "LOG1P": lambda g, y, a, e: g / (1.0 + a),
    "SIGMOID": lambda g, y, a, e: g * y * (1.0 - y),
    "ABS": lambda g, y, a, e: g * tnp.sign(a),
    "SIGN": _zero, "FLOOR": _zero, "CEIL": _zero, "TRUNC": _zero, "RINT": _zero, "ROUND": _zero,
    "CLIP": _clip,
    "SQUARE": lambda g, y, a, e: 2.0 * (g * a),
    "RECIPROCAL": lambda g, y, a, e: -(g * y * y),
    "CBRT": lambda g, y, a, e: g / (3.0 * y * y),
    "EXPM1": lambda g, y, a, e: g * (y + 1.0),
    "EXP2": lambda g, y, a, e: LN2 * (g * y),
    "LOG2": lambda g, y, a, e: g / (LN2 * a),
    "LOG10": lambda g, y, a, e: g / (LN10 * a),
    "SINH": lambda g, y, a, e: g * tnp.cosh(a),
    "COSH": lambda g, y, a, e: g * tnp.sinh(a),
    "ARCSINH": lambda g, y, a, e: g / tnp.sqrt(a * a + 1.0),
    "ARCCOSH": lambda g, y, a, e: g / tnp.sqrt((a - 1.0) * (a + 1.0)),
    "ARCTANH": lambda g, y, a, e: g / ((1.0 - a) * (1.0 + a)),
    "TAN": lambda g, y, a, e: g * (1.0 + y * y),
    "ARCSIN": lambda g, y, a, e: g / tnp.sqrt((1.0 - a) * (1.0 + a)),
    "ARCCOS": lambda g, y, a, e: -g / tnp.sqrt((1.0 - a) * (1.0 + a)),
    "ARCTAN": lambda g, y, a, e: g / (1.0 + a * a),
    "SINC": _sinc,
    "DEG2RAD": lambda g, y, a, e: RAD * g,
    "RAD2DEG": lambda g, y, a, e: (180.0 / math.pi) * g,
}

# zip rows: (rule for a, rule for b), each before unbroadcasting to its operand's shape
ZIP = {
    "ADD": (lambda g, y, a, b, e: g, lambda g, y, a, b, e: g),
    "SUB": (lambda g, y, a, b, e: g, lambda g, y, a, b, e: -g),
    "MUL": (lambda g, y, a, b, e: g * b, lambda g, y, a, b, e: g * a),
    "DIV": (lambda g, y, a, b, e: g / b, lambda g, y, a, b, e: -(g * y) / b),
    "POW": (_pow_a, _pow_b),
    "MAXIMUM": _select_vjp, "MINIMUM": _select_vjp, "FMIN": _select_vjp, "FMAX": _select_vjp,
    "REMAINDER": (lambda g, y, a, b, e: g, lambda g, y, a, b, e: -(g * tnp.floor(a / b))),
    "FMOD": (lambda g, y, a, b, e: g, lambda g, y, a, b, e: -(g * tnp.trunc(a / b))),
    "FLOOR_DIVIDE": (_zero, _zero),
    "ARCTAN2": (lambda g, y, a, b, e: g * b / (a * a + b * b),
                lambda g, y, a, b, e: -(g * a) / (a * a + b * b)),
    "HYPOT": _hypot,
    "LOGADDEXP": (lambda g, y, a, b, e: g * tnp.exp(a - y), lambda g, y, a, b, e: g * tnp.exp(b - y)),
    "LOGADDEXP2": (lambda g, y, a, b, e: g * tnp.exp2(a - y), lambda g, y, a, b, e: g * tnp.exp2(b - y)),
}

# select rows: one rule per operand (the condition gets none)
SELECT = {
    "WHERE": (_zero, lambda g, y, c, x, z, e: select(c, g, 0.0),
              lambda g, y, c, x, z, e: select(c, 0.0, g)),
}


# --- adjoints known as a multiple: folding chains of scalings while the backward is emitted ---

class Lin:
    """An adjoint known to be ``p * src`` (``src`` traced) or, with ``src`` None, ``p``
    everywhere, of ``shape``: a seed of 1, a scaled adjoint.  Held symbolically while the
    backward sweep is emitted, so that the scalings of a chain of rules (2 * (-1 * (100 * g)))
    fold into one AFFINE, and a uniform seed is never materialised as an array.
    :func:`materialise` turns it into a traced value when a rule needs one."""
    __slots__ = ("p", "src", "shape")

    def __init__(self, p, src, shape):
        self.p, self.shape = float(p), tuple(shape)
        self.src = src if src is None or src.shape == self.shape else reshape(src, self.shape)

    @property
    def size(self):
        return int(np.prod(self.shape, dtype=np.int64))

    def times(self, c):
        return Lin(c * self.p, self.src, self.shape)

    def of(self, x):
        """``self`` times the traced ``x`` (same shape): p * (src * x), or p * x."""
        return Lin(self.p, x if self.src is None else self.src * x, self.shape)


def materialise(rec, g):
    """A traced value (or ``g`` itself when it already is one) for a :class:`Lin`."""
    if not isinstance(g, Lin):
        return g
    if g.src is None:
        return const(rec, np.full(g.shape, g.p))
    return g.src if g.p == 1.0 else g.p * g.src


def _same_shapes(g, *xs):
    return all(x.shape == g.shape for x in xs)


def _lin_powc(g, y, a, e):
    if e.p == 0.0:
        return (None,)
    return (g.times(e.p).of(a if e.p == 2.0 else a ** (e.p - 1.0)),)


def _lin_zip(da, db):
    def rule(g, y, a, b, e):
        if not _same_shapes(g, a, b):
            return None
        return (lambda: da(g, a, b)), (lambda: db(g, a, b))  # only the wanted ones run
    return rule


def _lin_sum(g, y, a, e):
    return (Lin(g.p * e.p, None, a.shape),) if g.src is None else None


# rule(g: Lin, y, *operands, e) -> one Lin / traced / None (or a thunk making one) per operand,
# or None when it does not apply (then the ordinary rule runs on the materialised g); each equals its RULES entry
LINEAR = {
    "AFFINE": lambda g, y, a, e: (g.times(e.p),),
    "POWC": _lin_powc,
    "SQUARE": lambda g, y, a, e: (g.times(2.0).of(a),),
    "EXP": lambda g, y, a, e: (g.of(y),),
    "ADD": _lin_zip(lambda g, a, b: g, lambda g, a, b: g),
    "SUB": _lin_zip(lambda g, a, b: g, lambda g, a, b: g.times(-1.0)),
    "MUL": _lin_zip(lambda g, a, b: g.of(b), lambda g, a, b: g.of(a)),
    "SUM": _lin_sum,
}
