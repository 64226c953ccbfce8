"""The op table: every opcode of the tape is one row here, and only here.

A row is ``Op(name, kind, arity, forward, backward, doc, overwrites, check)``.  The opcode
number is the row's position; the module constants (``ADD``, ``EXP``, ...), ``NAMES``, the
front end's emitters and the generated tests are all derived from ``OPS``, so an op cannot
exist without a row.

``kind`` says how the interpreter applies the row's rules:

* ``map``   elementwise, one operand:   forward(a, p, q) -> y;  backward(g, a, y, p, q) -> da
* ``zip``   elementwise, two operands with broadcasting:
                                        forward(a, b) -> y;     backward(g, a, b, y) -> (da, db)
* ``array`` whole-array kernels with the signatures documented in ``array_kernels``.

``overwrites`` marks a backward kernel that can assign an operand's whole adjoint instead
of adding to it (see ``interpreter.SET``), which saves zeroing it first.

``check`` is the function (from ``checks``) that decides, for a tape read from a file,
whether the entry's integer attributes keep the kernels inside the arena; elementwise rows
get theirs from their kind, an ``array`` row must name one.

``p`` and ``q`` are the entry's float attributes (the constants of AFFINE and POWC, the
scale of SUM).  Elementwise rules act on one float; the loops around them live next to the
interpreter.  Backward rules return the vector-Jacobian product, the lecture's
``grad_table[u_i] * du_i/du_j`` for one child i.
"""
import math
from collections import namedtuple

from . import array_kernels as K
from . import checks as C
from .compile import rule
from .vmath import vexp, vsigmoid

_Op = namedtuple("Op", "name kind arity forward backward doc overwrites check")


def Op(name, kind, arity, forward, backward, doc, overwrites=None, check=None):
    """A row; elementwise backward loops can always overwrite (the program still decides
    when: only a whole, unbroadcast operand, by its first contributor)."""
    if check is None and kind == "array":
        raise TypeError(f"op {name}: an array op must name the check of its integer attributes")
    check = check or {"map": C.elementwise, "zip": C.zip_block}[kind]
    return _Op(name, kind, arity, forward, backward, doc, kind != "array" if overwrites is None else overwrites, check)


def _powc(a, p, q):
    return a * a if p == 2.0 else a ** p


def _powc_vjp(g, a, y, p, q):
    if p == 0.0:
        return 0.0
    return g * 2.0 * a if p == 2.0 else g * p * a ** (p - 1.0)


def _pow_vjp(g, a, b, y):
    da = 0.0 if b == 0.0 else g * b * a ** (b - 1.0)
    db = 0.0 if a == 0.0 else g * y * math.log(a)  # NaN for a < 0, as the real log is
    return da, db


def _maximum_vjp(g, a, b, y):
    if a > b:
        return g, 0.0
    if b > a:
        return 0.0, g
    return 0.5 * g, 0.5 * g  # a tie (or NaN): split evenly, as JAX does


OPS = (
    # name        kind    arity forward                                   backward                                          doc
    Op("AFFINE",    "map",   1, rule(lambda a, p, q: p * a + q),           rule(lambda g, a, y, p, q: g * p),               "p*a + q: arithmetic with a Python-number constant"),
    Op("POWC",      "map",   1, rule(_powc),                               rule(_powc_vjp),                                 "a**p for a constant exponent p"),
    Op("EXP",       "map",   1, rule(lambda a, p, q: vexp(a))    ,         rule(lambda g, a, y, p, q: g * y),               "exponential"),
    Op("LOG",       "map",   1, rule(lambda a, p, q: math.log(a) if a > 0.0 else (-math.inf if a == 0.0 else math.nan)),
                                                                           rule(lambda g, a, y, p, q: g / a),               "natural logarithm"),
    Op("SQRT",      "map",   1, rule(lambda a, p, q: math.sqrt(a) if a >= 0.0 else math.nan),
                                                                           rule(lambda g, a, y, p, q: 0.5 * g / y),         "square root"),
    Op("SIN",       "map",   1, rule(lambda a, p, q: math.sin(a)),         rule(lambda g, a, y, p, q: g * math.cos(a)),     "sine"),
    Op("COS",       "map",   1, rule(lambda a, p, q: math.cos(a)),         rule(lambda g, a, y, p, q: -g * math.sin(a)),    "cosine"),
    Op("TANH",      "map",   1, rule(lambda a, p, q: math.tanh(a)),        rule(lambda g, a, y, p, q: g * (1.0 - y * y)),   "hyperbolic tangent"),
    Op("LOG1P",     "map",   1, rule(lambda a, p, q: math.log1p(a) if a >= -1.0 else math.nan),
                                                                           rule(lambda g, a, y, p, q: g / (1.0 + a)),       "log(1 + a), accurate for small a"),
    Op("SIGMOID",   "map",   1, rule(lambda a, p, q: vsigmoid(a)),        rule(lambda g, a, y, p, q: g * y * (1.0 - y)),   "logistic 1/(1 + exp(-a)), overflow-free"),
    Op("ADD",       "zip",   2, rule(lambda a, b: a + b),                  rule(lambda g, a, b, y: (g, g)),                 "a + b"),
    Op("SUB",       "zip",   2, rule(lambda a, b: a - b),                  rule(lambda g, a, b, y: (g, -g)),                "a - b"),
    Op("MUL",       "zip",   2, rule(lambda a, b: a * b),                  rule(lambda g, a, b, y: (g * b, g * a)),         "a * b"),
    Op("DIV",       "zip",   2, rule(lambda a, b: a / b),                  rule(lambda g, a, b, y: (g / b, -g * y / b)),    "a / b"),
    Op("POW",       "zip",   2, rule(lambda a, b: a ** b),                 rule(_pow_vjp),                                  "a ** b for a traced exponent"),
    Op("MAXIMUM",   "zip",   2, rule(lambda a, b: a if a >= b or math.isnan(a) else b),
                                                                           rule(_maximum_vjp),                              "elementwise maximum, NaN-propagating"),
    Op("SUM",       "array", 1, K.sum_fwd,                                 K.sum_bwd,                                       "q * sum over the middle axis of (pre, m, post)", check=C.reduce),
    Op("MAX",       "array", 1, K.max_fwd,                                 K.max_bwd,                                       "max over the middle axis of (pre, m, post)", check=C.reduce_nonempty),
    Op("LOGSUMEXP", "array", 1, K.logsumexp_fwd,                           K.logsumexp_bwd,                                 "log(sum(exp(a))) over one axis, shifted by the max", check=C.reduce),
    Op("SOFTMAX",   "array", 1, K.softmax_fwd,                             K.softmax_bwd,                                   "exp(a - logsumexp(a)) along one axis", check=C.along_axis),
    Op("MATMUL",    "array", 2, K.matmul_fwd,                              K.matmul_bwd,                                    "batched row-major op(A) (m, k) @ op(B) (k, n) by BLAS; ints (m, k, n, batch, sa, sb, ta, tb), op transposes a stored operand when ta/tb", True, C.matmul),
    Op("GATHER",    "array", 1, K.gather_fwd,                              K.gather_bwd,                                    "y.flat[j] = a.flat[idx[j]]: indexing, transpose, broadcast", check=C.gather),
)

NAMES = tuple(row.name for row in OPS)
CODES = {name: code for code, name in enumerate(NAMES)}
# ADD = 10, ... : the interpreter compares against these; numba freezes them as constants.
globals().update(CODES)
