"""More map rows (one operand, elementwise): absolute value and sign, the rounding family,
hyperbolic and inverse trigonometric functions, exponentials and logarithms in other bases,
clip with constant bounds, sinc and angle conversions.

Each row is a scalar forward rule ``f(a, p, q) -> y`` and its vector-Jacobian product
``df(g, a, y, p, q) -> da`` (``ops_elementwise`` has the loops around them).  The ``numpy=``
names say which numpy functions record the row, for ``tapegrad.numpy`` and numpy dispatch.

Invariants
----------
* Forward rules give numpy's value, NaN and infinities included (tests/test_ops.py).
* At a kink the VJP is the minimum-norm subgradient (``abs`` and ``clip`` at a bound: 0),
  as docs/conventions.md states; the rounding rows and ``sign`` are piecewise constant and
  their VJP is 0 everywhere, but they are entries all the same: a replay at new inputs
  recomputes their values.
* Outside an op's real domain the value is NaN, and so is the derivative formula (or, where
  the formula stays finite, it is returned as is, like ``log``'s 1 / a).
"""
import math

import numpy as np

from .compile import rule
from .ops_elementwise import map_row
from .vmath import vcos, vsin

LN2, LN10, RAD = math.log(2.0), math.log(10.0), math.pi / 180.0


@rule
def _sign(a):
    if a > 0.0:
        return 1.0
    if a < 0.0:
        return -1.0
    return 0.0 if a == 0.0 else a  # numpy's sign(-0.0) is 0.0; NaN stays NaN


def _zero(g, a, y, p, q):
    return 0.0


def _round(a, p, q):
    if p == 0.0:
        return np.rint(a)
    if p > 0.0:  # numpy's own steps: scale, round half to even, scale back
        s = 10.0 ** p
        return np.rint(a * s) / s
    s = 10.0 ** -p
    return np.rint(a / s) * s


def _clip(a, p, q):
    m = p if a < p else a
    return q if m > q else m  # as numpy's minimum(maximum(a, lo), hi): hi wins if lo > hi


@rule(inline=True)  # vsin and vcos keep the loops vectorisable, if inlined (see vmath)
def _sinc(a, p, q):
    if a == 0.0:
        return 1.0
    t = math.pi * a
    return vsin(t) / t


@rule(inline=True)
def _sinc_vjp(g, a, y, p, q):
    if abs(a) < 1e-4:  # (cos(pi a) - sinc(a)) / a cancels: its Taylor series instead
        t = math.pi * math.pi * a
        return g * t * (a * a * math.pi * math.pi / 30.0 - 1.0 / 3.0)
    return g * (vcos(math.pi * a) - y) / a


def _arccosh(a, p, q):
    return math.acosh(a) if a >= 1.0 else math.nan


def _arctanh(a, p, q):
    return math.atanh(a) if -1.0 < a < 1.0 else (math.copysign(math.inf, a) if abs(a) == 1.0 else math.nan)


ROWS = (
    map_row("ABS", lambda a, p, q: abs(a), lambda g, a, y, p, q: g * _sign(a),
            "absolute value; slope 0 at 0 (minimum-norm subgradient)", numpy="absolute abs fabs"),
    map_row("SIGN", lambda a, p, q: _sign(a), _zero, "sign: -1, 0 or 1 (NaN for NaN); zero gradient", numpy="sign"),
    map_row("FLOOR", lambda a, p, q: np.floor(a), _zero, "round down; zero gradient", numpy="floor"),
    map_row("CEIL", lambda a, p, q: np.ceil(a), _zero, "round up; zero gradient", numpy="ceil"),
    map_row("TRUNC", lambda a, p, q: np.trunc(a), _zero, "round toward 0; zero gradient", numpy="trunc"),
    map_row("RINT", lambda a, p, q: np.rint(a), _zero, "round half to even; zero gradient", numpy="rint"),
    map_row("ROUND", _round, _zero, "numpy.round to p decimals (half to even); zero gradient", ("decimals",)),
    map_row("CLIP", _clip, lambda g, a, y, p, q: 0.0 if a <= p or a >= q else g,
            "clip to constant bounds [p, q]; slope 0 at and beyond a bound", ("lo", "hi")),
    map_row("SQUARE", lambda a, p, q: a * a, lambda g, a, y, p, q: 2.0 * g * a, "a * a", numpy="square"),
    map_row("RECIPROCAL", lambda a, p, q: 1.0 / a, lambda g, a, y, p, q: -g * y * y, "1 / a", numpy="reciprocal"),
    map_row("CBRT", lambda a, p, q: np.cbrt(a), lambda g, a, y, p, q: g / (3.0 * y * y), "cube root", numpy="cbrt"),
    map_row("EXPM1", lambda a, p, q: math.expm1(a), lambda g, a, y, p, q: g * (y + 1.0),
            "exp(a) - 1, accurate for small a", numpy="expm1"),
    map_row("EXP2", lambda a, p, q: np.exp2(a), lambda g, a, y, p, q: g * y * LN2, "2 ** a", numpy="exp2"),
    map_row("LOG2", lambda a, p, q: np.log2(a), lambda g, a, y, p, q: g / (a * LN2), "base-2 logarithm", numpy="log2"),
    map_row("LOG10", lambda a, p, q: np.log10(a), lambda g, a, y, p, q: g / (a * LN10), "base-10 logarithm",
            numpy="log10"),
    map_row("SINH", lambda a, p, q: math.sinh(a), lambda g, a, y, p, q: g * math.cosh(a), "hyperbolic sine",
            numpy="sinh"),
    map_row("COSH", lambda a, p, q: math.cosh(a), lambda g, a, y, p, q: g * math.sinh(a), "hyperbolic cosine",
            numpy="cosh"),
    map_row("ARCSINH", lambda a, p, q: math.asinh(a), lambda g, a, y, p, q: g / math.sqrt(a * a + 1.0),
            "inverse hyperbolic sine", numpy="arcsinh"),
    map_row("ARCCOSH", _arccosh, lambda g, a, y, p, q: g / math.sqrt((a - 1.0) * (a + 1.0)),
            "inverse hyperbolic cosine (a >= 1)", numpy="arccosh"),
    map_row("ARCTANH", _arctanh, lambda g, a, y, p, q: g / ((1.0 - a) * (1.0 + a)),
            "inverse hyperbolic tangent (-1 < a < 1)", numpy="arctanh"),
    map_row("TAN", lambda a, p, q: math.tan(a), lambda g, a, y, p, q: g * (1.0 + y * y), "tangent", numpy="tan"),
    map_row("ARCSIN", lambda a, p, q: math.asin(a) if abs(a) <= 1.0 else math.nan,
            lambda g, a, y, p, q: g / math.sqrt((1.0 - a) * (1.0 + a)), "inverse sine (-1 <= a <= 1)", numpy="arcsin"),
    map_row("ARCCOS", lambda a, p, q: math.acos(a) if abs(a) <= 1.0 else math.nan,
            lambda g, a, y, p, q: -g / math.sqrt((1.0 - a) * (1.0 + a)), "inverse cosine (-1 <= a <= 1)",
            numpy="arccos"),
    map_row("ARCTAN", lambda a, p, q: math.atan(a), lambda g, a, y, p, q: g / (1.0 + a * a), "inverse tangent",
            numpy="arctan"),
    map_row("SINC", _sinc, _sinc_vjp, "normalised sinc: sin(pi a) / (pi a), 1 at 0", numpy="sinc"),
    map_row("DEG2RAD", lambda a, p, q: a * RAD, lambda g, a, y, p, q: g * RAD, "degrees to radians",
            numpy="deg2rad radians"),
    map_row("RAD2DEG", lambda a, p, q: a * (180.0 / math.pi), lambda g, a, y, p, q: g * (180.0 / math.pi),
            "radians to degrees", numpy="rad2deg degrees"),
)
