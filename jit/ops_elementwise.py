"""Elementwise ops: the map rows (one operand), the zip rows (two operands, broadcast) and
the select row (WHERE: n operands of the output's shape), with their scalar rules and the
loops that apply a scalar rule to a whole entry.

Rules act on single floats; the loops live here too, one pair per family:

* map:    forward(a, p, q) -> y;   backward(g, a, y, p, q) -> da
* zip:    forward(a, b) -> y;      backward(g, a, b, y) -> (da, db)
* select: whole-entry kernels reading their operands' (offset, adjoint mode) pairs from the
          program's int arena, at ``ia`` (the program synthesises them: the tape stores none).

Invariants
----------
* Every loop here is compiled with ``rule`` (no NRT, never allocates) and inlined into the
  generated sweeps (``dispatch``).
* A backward loop told SET for an operand writes every element of it exactly once and
  reads none of its adjoint first (the proof in ``program.assignable`` relies on it): map
  and unbroadcast zip operands only; a broadcast zip operand and select operands are
  always ADDed.
* A zip entry's ints are (d0, d1, sa0, sa1, sb0, sb1): the output as a C-ordered d0 x d1
  block and each operand's strides in it (0 along a broadcast axis).  When both operands
  have the output's shape the tape stores no ints (iarg = -1) and the program synthesises
  (1, n, 0, 1, 0, 1) in its own int array.
"""
import math

from . import checks as C
from .compile import rule
from .oprow import ADD, SET, Op
from .vmath import vcos, vexp, vsigmoid, vsin


# --- the loops around the scalar rules -----------------------------------------------------
# Each has a one-element path first (scalar code is all one-element entries) and then a
# loop over array views, which LLVM vectorises (index arithmetic on the whole arena would
# defeat that).  The zip loops keep their block path in a function of its own: that keeps
# the one-element path small enough for LLVM to inline into the interpreter (measured:
# 8.6 against 11.5 ns per scalar entry).

@rule
def map_fwd(f, vals, oo, oa, n, p, q):
    if n == 1:
        vals[oo] = f(vals[oa], p, q)
        return
    y, a = vals[oo:oo + n], vals[oa:oa + n]
    for j in range(n):
        y[j] = f(a[j], p, q)


@rule
def map_bwd(df, vals, adj, oo, oa, n, p, q, mode):
    if n == 1:
        d = df(adj[oo], vals[oa], vals[oo], p, q)
        if mode == SET:
            adj[oa] = d
        else:
            adj[oa] += d
        return
    g, a, y, ga = adj[oo:oo + n], vals[oa:oa + n], vals[oo:oo + n], adj[oa:oa + n]
    if mode == SET:
        for j in range(n):
            ga[j] = df(g[j], a[j], y[j], p, q)
    else:
        for j in range(n):
            ga[j] += df(g[j], a[j], y[j], p, q)


@rule
def zip_fwd(f, vals, ints, oo, oa, ob, n, ia):
    if n == 1:
        vals[oo] = f(vals[oa], vals[ob])
    else:
        zip_fwd_block(f, vals, ints, oo, oa, ob, ia)


@rule
def zip_fwd_block(f, vals, ints, oo, oa, ob, ia):
    d0, d1, sa0, sa1, sb0, sb1 = ints[ia], ints[ia + 1], ints[ia + 2], ints[ia + 3], ints[ia + 4], ints[ia + 5]
    for i in range(d0):
        jo, ja, jb = oo + i * d1, oa + i * sa0, ob + i * sb0
        y = vals[jo:jo + d1]
        if sa1 == 1 and sb1 == 1:
            a, b = vals[ja:ja + d1], vals[jb:jb + d1]
            for k in range(d1):
                y[k] = f(a[k], b[k])
        elif sa1 == 1:  # b is one number per row
            a, vb = vals[ja:ja + d1], vals[jb]
            for k in range(d1):
                y[k] = f(a[k], vb)
        elif sb1 == 1:
            va, b = vals[ja], vals[jb:jb + d1]
            for k in range(d1):
                y[k] = f(va, b[k])
        else:  # both one number per row
            y[:] = f(vals[ja], vals[jb])


@rule
def put(arr, i, d, mode):
    """arr[i] = d (SET) or arr[i] += d (ADD); nothing for mode 0."""
    if mode == SET:
        arr[i] = d
    elif mode:
        arr[i] += d


@rule
def zip_bwd(df, vals, adj, ints, oo, oa, ob, n, ia, need_a, need_b):
    if n == 1:
        da, db = df(adj[oo], vals[oa], vals[ob], vals[oo])
        put(adj, oa, da, need_a)  # a before b: if both are one node, b adds to a's SET
        put(adj, ob, db, need_b)
    else:
        zip_bwd_block(df, vals, adj, ints, oo, oa, ob, ia, need_a, need_b)


@rule
def zip_bwd_a(df, g, a, b, y, ga, mode):
    if mode == SET:
        for k in range(g.shape[0]):
            ga[k] = df(g[k], a[k], b[k], y[k])[0]
    else:
        for k in range(g.shape[0]):
            ga[k] += df(g[k], a[k], b[k], y[k])[0]


@rule
def zip_bwd_b(df, g, a, b, y, gb, mode):
    if mode == SET:
        for k in range(g.shape[0]):
            gb[k] = df(g[k], a[k], b[k], y[k])[1]
    else:
        for k in range(g.shape[0]):
            gb[k] += df(g[k], a[k], b[k], y[k])[1]


@rule
def zip_bwd_block(df, vals, adj, ints, oo, oa, ob, ia, need_a, need_b):
    d0, d1, sa0, sa1, sb0, sb1 = ints[ia], ints[ia + 1], ints[ia + 2], ints[ia + 3], ints[ia + 4], ints[ia + 5]
    for i in range(d0):
        jo, ja, jb = oo + i * d1, oa + i * sa0, ob + i * sb0
        g, y = adj[jo:jo + d1], vals[jo:jo + d1]
        if sa1 == 1 and sb1 == 1:
            # a's whole row first, then b's: each loop has one store pattern (it vectorises),
            # and every element of a storage gets a's term before b's whatever their offsets
            # (the fused segments' order analysis relies on that)
            # (each loop in a function of its own: LLVM vectorised only the first of two
            # loops written one after the other here, measured 0.4-0.6 against 0.12 ns/element)
            a, b = vals[ja:ja + d1], vals[jb:jb + d1]
            if need_a:
                zip_bwd_a(df, g, a, b, y, adj[ja:ja + d1], need_a)
            if need_b:
                zip_bwd_b(df, g, a, b, y, adj[jb:jb + d1], need_b)
        else:  # an operand broadcast along the row: its adjoint is a sum (never SET)
            sa, sb = 0.0, 0.0
            for k in range(d1):
                da, db = df(g[k], vals[ja + k * sa1], vals[jb + k * sb1], y[k])
                if sa1 == 0:
                    sa += da
                else:
                    put(adj, ja + k, da, need_a)
                if sb1 == 0:
                    sb += db
                else:
                    put(adj, jb + k, db, need_b)
            if sa1 == 0:
                put(adj, ja, sa, need_a)
            if sb1 == 0:
                put(adj, jb, sb, need_b)


# --- select: where(c, x, y) ------------------------------------------------------------------
@rule
def where_fwd(vals, ints, ia, oo, n):
    """y = x where c != 0 (NaN counts as true, as in numpy), else y; all of the output's size."""
    oc, ox, oy = ints[ia], ints[ia + 2], ints[ia + 4]
    for j in range(n):
        vals[oo + j] = vals[ox + j] if vals[oc + j] != 0.0 else vals[oy + j]


@rule
def where_bwd(vals, adj, ints, ia, oo, n):
    """The output's adjoint goes to x where c != 0 and to y elsewhere; c gets none."""
    oc, ox, oy = ints[ia], ints[ia + 2], ints[ia + 4]
    mx, my = ints[ia + 3], ints[ia + 5]
    for j in range(n):
        if vals[oc + j] != 0.0:
            if mx:
                adj[ox + j] += adj[oo + j]
        elif my:
            adj[oy + j] += adj[oo + j]


# --- scalar rules ----------------------------------------------------------------------------
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
    if a == b:  # a tie: split evenly, as JAX does
        return 0.5 * g, 0.5 * g
    return 0.0, 0.0  # a NaN operand: the output is NaN whatever either does (JAX: zeros)


NUMPY = {}  # row name -> the numpy functions it mirrors, filled by map_row/zip_row


def map_row(name, forward, backward, doc, floats=(), numpy=""):
    """A map row; ``numpy`` names the numpy functions (space-separated) that record it with
    no float attributes, so ``tapegrad.numpy`` and numpy dispatch are generated from it."""
    if numpy:
        NUMPY[name] = tuple(numpy.split())
    # elementwise backward loops can always overwrite (the program still decides when: only
    # a whole, unbroadcast operand, by its first contributor)
    return Op(name, "map", 1, rule(forward), rule(backward), doc, C.elementwise, True, floats=floats)


def zip_row(name, forward, backward, doc, numpy=""):
    """A zip (broadcasting binary) row; ``numpy`` as for :func:`map_row`."""
    if numpy:
        NUMPY[name] = tuple(numpy.split())
    return Op(name, "zip", 2, rule(forward), rule(backward), doc, C.zip_block, True)


ROWS = (
    map_row("AFFINE",  lambda a, p, q: p * a + q,         lambda g, a, y, p, q: g * p,              "p*a + q: arithmetic with a Python-number constant", ("p", "q")),
    map_row("POWC",    _powc,                             _powc_vjp,                                "a**p for a constant exponent p", ("p",)),
    map_row("EXP",     lambda a, p, q: vexp(a),           lambda g, a, y, p, q: g * y,              "exponential", numpy="exp"),
    map_row("LOG",     lambda a, p, q: math.log(a) if a > 0.0 else (-math.inf if a == 0.0 else math.nan),
                                                          lambda g, a, y, p, q: g / a,              "natural logarithm", numpy="log"),
    map_row("SQRT",    lambda a, p, q: math.sqrt(a) if a >= 0.0 else math.nan,
                                                          lambda g, a, y, p, q: 0.5 * g / y,        "square root", numpy="sqrt"),
    map_row("SIN",     rule(lambda a, p, q: vsin(a), inline=True), rule(lambda g, a, y, p, q: g * vcos(a), inline=True),
            "sine", numpy="sin"),
    map_row("COS",     rule(lambda a, p, q: vcos(a), inline=True), rule(lambda g, a, y, p, q: -g * vsin(a), inline=True),
            "cosine", numpy="cos"),
    map_row("TANH",    lambda a, p, q: math.tanh(a),      lambda g, a, y, p, q: g * (1.0 - y * y),  "hyperbolic tangent", numpy="tanh"),
    map_row("LOG1P",   lambda a, p, q: math.log1p(a) if a >= -1.0 else math.nan,
                                                          lambda g, a, y, p, q: g / (1.0 + a),      "log(1 + a), accurate for small a", numpy="log1p"),
    map_row("SIGMOID", lambda a, p, q: vsigmoid(a),       lambda g, a, y, p, q: g * y * (1.0 - y),  "logistic 1/(1 + exp(-a)), overflow-free"),
    zip_row("ADD",     lambda a, b: a + b,                lambda g, a, b, y: (g, g),                "a + b",
            numpy="add"),
    zip_row("SUB",     lambda a, b: a - b,                lambda g, a, b, y: (g, -g),               "a - b",
            numpy="subtract"),
    zip_row("MUL",     lambda a, b: a * b,                lambda g, a, b, y: (g * b, g * a),        "a * b",
            numpy="multiply"),
    zip_row("DIV",     lambda a, b: a / b,                lambda g, a, b, y: (g / b, -g * y / b),   "a / b",
            numpy="divide true_divide"),
    zip_row("POW",     lambda a, b: a ** b,               _pow_vjp,                                 "a ** b for a traced exponent",
            numpy="power"),
    zip_row("MAXIMUM", lambda a, b: a if a >= b or math.isnan(a) else b,
                                                          _maximum_vjp,                             "elementwise maximum, NaN-propagating",
            numpy="maximum"),
    Op("WHERE", "select", 3, where_fwd, where_bwd,
       "where(c, x, y): x where the constant condition c is nonzero, else y", C.same_size),
)
