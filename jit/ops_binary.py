"""More zip rows (two operands, broadcast): minimum and the NaN-ignoring fmin/fmax,
remainder, fmod and floor_divide, arctan2, hypot, logaddexp and logaddexp2.

Each row is a scalar forward rule ``f(a, b) -> y`` and its vector-Jacobian product
``df(g, a, b, y) -> (da, db)``; ``ops_elementwise`` has the broadcasting loops.

Invariants
----------
* Forward rules give numpy's value, NaN and infinities included (tests/test_ops.py).
* The selecting rows (minimum, fmin, fmax, and maximum in ``ops_elementwise``) send the
  adjoint to the operand equal to the result, half to each on a tie, none to a NaN operand
  (NaN equals nothing): so ``fmax(nan, 1)`` gives all of it to the 1, as JAX does.
* ``hypot`` at (0, 0) gives (0, 0), the minimum-norm subgradient of the cone; ``arctan2``
  at (0, 0) is a discontinuity, not a kink, and gives 0 / 0 = NaN, as JAX and autograd.
"""
import math

import numpy as np

from .ops_elementwise import zip_row

LN2 = math.log(2.0)


def _select_vjp(g, a, b, y):
    ea, eb = a == y, b == y
    if ea and eb:
        return 0.5 * g, 0.5 * g
    return (g if ea else 0.0), (g if eb else 0.0)


def _remainder(a, b):
    # numpy's npy_divmod: fmod, then moved into the divisor's sign; a zero result takes it too
    r = np.fmod(a, b)
    if b == 0.0:
        return r
    if r != 0.0:
        if (b < 0.0) != (r < 0.0):
            r += b
        return r
    return math.copysign(0.0, b)


def _floor_divide(a, b):
    # numpy's npy_divmod: the quotient of a - remainder, which is an integer up to rounding,
    # taken to the nearest integer so that a / b just below an integer does not floor past it
    m = np.fmod(a, b)
    if b == 0.0:
        return a / b
    d = (a - m) / b
    if m != 0.0 and (b < 0.0) != (m < 0.0):
        d -= 1.0
    if d == 0.0:
        return math.copysign(0.0, a / b)
    f = np.floor(d)
    return f + 1.0 if d - f > 0.5 else f


def _logaddexp(a, b):
    if a == b:  # also right for two infinities of one sign, where a - b is NaN
        return a + LN2
    d = a - b
    return (a if d > 0.0 else b) + math.log1p(math.exp(-abs(d))) if d == d else d


def _logaddexp2(a, b):
    if a == b:
        return a + 1.0
    d = a - b
    return (a if d > 0.0 else b) + math.log1p(np.exp2(-abs(d))) / LN2 if d == d else d


def _hypot_vjp(g, a, b, y):
    if y == 0.0:
        return 0.0, 0.0
    return g * a / y, g * b / y


def _arctan2_vjp(g, a, b, y):
    r = a * a + b * b
    return g * b / r, -g * a / r


ROWS = (
    zip_row("MINIMUM", lambda a, b: a if a <= b or math.isnan(a) else b, _select_vjp,
            "elementwise minimum, NaN-propagating; a tie splits evenly", numpy="minimum"),
    zip_row("FMIN", lambda a, b: a if a <= b or math.isnan(b) else b, _select_vjp,
            "elementwise minimum ignoring a NaN operand", numpy="fmin"),
    zip_row("FMAX", lambda a, b: a if a >= b or math.isnan(b) else b, _select_vjp,
            "elementwise maximum ignoring a NaN operand", numpy="fmax"),
    zip_row("REMAINDER", _remainder, lambda g, a, b, y: (g, -g * math.floor(a / b)),
            "a mod b with the sign of b (Python's %)", numpy="remainder mod"),
    zip_row("FMOD", lambda a, b: np.fmod(a, b), lambda g, a, b, y: (g, -g * np.trunc(a / b)),
            "a mod b with the sign of a (C's fmod)", numpy="fmod"),
    zip_row("FLOOR_DIVIDE", _floor_divide, lambda g, a, b, y: (0.0, 0.0),
            "a // b, as numpy; zero gradient", numpy="floor_divide"),
    zip_row("ARCTAN2", lambda a, b: math.atan2(a, b), _arctan2_vjp,
            "the angle of the point (b, a): arctan2(a, b)", numpy="arctan2"),
    zip_row("HYPOT", lambda a, b: math.hypot(a, b), _hypot_vjp, "sqrt(a*a + b*b) without overflow",
            numpy="hypot"),
    zip_row("LOGADDEXP", _logaddexp, lambda g, a, b, y: (g * math.exp(a - y), g * math.exp(b - y)),
            "log(exp(a) + exp(b)) without overflow", numpy="logaddexp"),
    zip_row("LOGADDEXP2", _logaddexp2, lambda g, a, b, y: (g * np.exp2(a - y), g * np.exp2(b - y)),
            "log2(2**a + 2**b) without overflow", numpy="logaddexp2"),
)
