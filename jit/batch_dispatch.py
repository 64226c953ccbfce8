"""The interpreter's sweeps over many points at once.  GENERATED from the op table by

    python -m tapegrad.jit.gen_dispatch

Do not edit: change a row (``ops_*.py``) or a family template (``gen_dispatch.py``) and
regenerate; a test fails while this file differs from the generator's output.

The sweeps of ``dispatch`` for ``npts`` points of a batched program (``tapegrad.batchprog``).
Points-major (``batch_*``): each operand has a point-0 offset (program row) and a
per-point stride (``strides`` columns so, sa, sb), and each entry runs flat over all
points or once per point (``batch_rules``).  Points-minor (``soa_*``): offsets are scaled
by ``cap``, point index fastest, and each entry runs once over all points (``soa_rules``).
A failed guard marks its points in ``failed`` instead of stopping.
"""
from . import optable as T
from .batch_rules import (array_bwd_b, array_fwd_b, guard_b, map_bwd_b, map_fwd_b, select_bwd_b,
                          select_fwd_b, variadic_bwd_b, variadic_fwd_b, zip_bwd_b, zip_fwd_b)
from .compile import kernel
from .interpreter import A_SHIFT, B_SHIFT, B, F
from .ops_elementwise import map_bwd, map_fwd
from .soa_rules import (soa_gather_bwd, soa_gather_fwd, soa_sum_bwd, soa_sum_fwd, soa_zip_bwd,
                        soa_zip_fwd)

TABLE = (('AFFINE', 'map'), ('POWC', 'map'), ('EXP', 'map'), ('LOG', 'map'), ('SQRT', 'map'), ('SIN', 'map'), ('COS', 'map'), ('TANH', 'map'), ('LOG1P', 'map'), ('SIGMOID', 'map'), ('ADD', 'zip'), ('SUB', 'zip'), ('MUL', 'zip'), ('DIV', 'zip'), ('POW', 'zip'), ('MAXIMUM', 'zip'), ('WHERE', 'select'), ('ABS', 'map'), ('SIGN', 'map'), ('FLOOR', 'map'), ('CEIL', 'map'), ('TRUNC', 'map'), ('RINT', 'map'), ('ROUND', 'map'), ('CLIP', 'map'), ('SQUARE', 'map'), ('RECIPROCAL', 'map'), ('CBRT', 'map'), ('EXPM1', 'map'), ('EXP2', 'map'), ('LOG2', 'map'), ('LOG10', 'map'), ('SINH', 'map'), ('COSH', 'map'), ('ARCSINH', 'map'), ('ARCCOSH', 'map'), ('ARCTANH', 'map'), ('TAN', 'map'), ('ARCSIN', 'map'), ('ARCCOS', 'map'), ('ARCTAN', 'map'), ('SINC', 'map'), ('DEG2RAD', 'map'), ('RAD2DEG', 'map'), ('MINIMUM', 'zip'), ('FMIN', 'zip'), ('FMAX', 'zip'), ('REMAINDER', 'zip'), ('FMOD', 'zip'), ('FLOOR_DIVIDE', 'zip'), ('ARCTAN2', 'zip'), ('HYPOT', 'zip'), ('LOGADDEXP', 'zip'), ('LOGADDEXP2', 'zip'), ('SUM', 'reduce'), ('MAX', 'reduce'), ('LOGSUMEXP', 'reduce'), ('SOFTMAX', 'reduce'), ('CUMSUM', 'reduce'), ('CUMPROD', 'reduce'), ('MATMUL', 'linalg'), ('GATHER', 'index'), ('GUARD_LT', 'guard'), ('GUARD_LE', 'guard'), ('GUARD_GT', 'guard'), ('GUARD_GE', 'guard'), ('GUARD_EQ', 'guard'), ('GUARD_NE', 'guard'), ('CONCAT', 'variadic'), ('SOLVE', 'decomp'), ('INV', 'decomp'), ('DET', 'decomp'), ('SLOGDET', 'decomp'), ('CHOLESKY', 'decomp'), ('EIGH', 'decomp'), ('SVD', 'decomp'), ('PINV', 'decomp'))
SOA_OPS = ('AFFINE', 'POWC', 'EXP', 'LOG', 'SQRT', 'SIN', 'COS', 'TANH', 'LOG1P', 'SIGMOID', 'ADD', 'SUB', 'MUL', 'DIV', 'POW', 'MAXIMUM', 'WHERE', 'ABS', 'SIGN', 'FLOOR', 'CEIL', 'TRUNC', 'RINT', 'ROUND', 'CLIP', 'SQUARE', 'RECIPROCAL', 'CBRT', 'EXPM1', 'EXP2', 'LOG2', 'LOG10', 'SINH', 'COSH', 'ARCSINH', 'ARCCOSH', 'ARCTANH', 'TAN', 'ARCSIN', 'ARCCOS', 'ARCTAN', 'SINC', 'DEG2RAD', 'RAD2DEG', 'MINIMUM', 'FMIN', 'FMAX', 'REMAINDER', 'FMOD', 'FLOOR_DIVIDE', 'ARCTAN2', 'HYPOT', 'LOGADDEXP', 'LOGADDEXP2', 'SUM', 'MAX', 'LOGSUMEXP', 'SOFTMAX', 'CUMSUM', 'CUMPROD', 'GATHER', 'GUARD_LT', 'GUARD_LE', 'GUARD_GT', 'GUARD_GE', 'GUARD_EQ', 'GUARD_NE', 'CONCAT')  # the rows the points-minor sweeps have a branch for


@kernel
def batch_forward_sweep(prog, attrs, ints, vals, ext, check, strides, nary, npts, pat, failed):
    """Recompute every entry's value at ``npts`` points, first to last; where ``check`` is
    nonzero, mark in ``failed`` the points at which a guard does not hold."""
    for e in range(prog.shape[0]):
        o, oo, oa, ob, n, ia = prog[e, 0], prog[e, 1], prog[e, 2], prog[e, 3], prog[e, 4], prog[e, 5]
        pe, qe = attrs[e, 0], attrs[e, 1]
        so, sa, sb, flat, n0, n1 = strides[e, 0], strides[e, 1], strides[e, 2], strides[e, 3], strides[e, 4], strides[e, 5]
        if o == T.AFFINE:         map_fwd_b(F.AFFINE, vals, oo, oa, n, pe, qe, npts, so, sa, flat)
        elif o == T.POWC:         map_fwd_b(F.POWC, vals, oo, oa, n, pe, qe, npts, so, sa, flat)
        elif o == T.EXP:          map_fwd_b(F.EXP, vals, oo, oa, n, pe, qe, npts, so, sa, flat)
        elif o == T.LOG:          map_fwd_b(F.LOG, vals, oo, oa, n, pe, qe, npts, so, sa, flat)
        elif o == T.SQRT:         map_fwd_b(F.SQRT, vals, oo, oa, n, pe, qe, npts, so, sa, flat)
        elif o == T.SIN:          map_fwd_b(F.SIN, vals, oo, oa, n, pe, qe, npts, so, sa, flat)
        elif o == T.COS:          map_fwd_b(F.COS, vals, oo, oa, n, pe, qe, npts, so, sa, flat)
        elif o == T.TANH:         map_fwd_b(F.TANH, vals, oo, oa, n, pe, qe, npts, so, sa, flat)
        elif o == T.LOG1P:        map_fwd_b(F.LOG1P, vals, oo, oa, n, pe, qe, npts, so, sa, flat)
        elif o == T.SIGMOID:      map_fwd_b(F.SIGMOID, vals, oo, oa, n, pe, qe, npts, so, sa, flat)
        elif o == T.ADD:          zip_fwd_b(F.ADD, vals, ints, oo, oa, ob, n, ia, npts, so, sa, sb, flat, pat)
        elif o == T.SUB:          zip_fwd_b(F.SUB, vals, ints, oo, oa, ob, n, ia, npts, so, sa, sb, flat, pat)
        elif o == T.MUL:          zip_fwd_b(F.MUL, vals, ints, oo, oa, ob, n, ia, npts, so, sa, sb, flat, pat)
        elif o == T.DIV:          zip_fwd_b(F.DIV, vals, ints, oo, oa, ob, n, ia, npts, so, sa, sb, flat, pat)
        elif o == T.POW:          zip_fwd_b(F.POW, vals, ints, oo, oa, ob, n, ia, npts, so, sa, sb, flat, pat)
        elif o == T.MAXIMUM:      zip_fwd_b(F.MAXIMUM, vals, ints, oo, oa, ob, n, ia, npts, so, sa, sb, flat, pat)
        elif o == T.WHERE:        select_fwd_b(F.WHERE, vals, ints, ia, oo, n, npts, so, flat, nary, n0, n1)
        elif o == T.ABS:          map_fwd_b(F.ABS, vals, oo, oa, n, pe, qe, npts, so, sa, flat)
        elif o == T.SIGN:         map_fwd_b(F.SIGN, vals, oo, oa, n, pe, qe, npts, so, sa, flat)
        elif o == T.FLOOR:        map_fwd_b(F.FLOOR, vals, oo, oa, n, pe, qe, npts, so, sa, flat)
        elif o == T.CEIL:         map_fwd_b(F.CEIL, vals, oo, oa, n, pe, qe, npts, so, sa, flat)
        elif o == T.TRUNC:        map_fwd_b(F.TRUNC, vals, oo, oa, n, pe, qe, npts, so, sa, flat)
        elif o == T.RINT:         map_fwd_b(F.RINT, vals, oo, oa, n, pe, qe, npts, so, sa, flat)
        elif o == T.ROUND:        map_fwd_b(F.ROUND, vals, oo, oa, n, pe, qe, npts, so, sa, flat)
        elif o == T.CLIP:         map_fwd_b(F.CLIP, vals, oo, oa, n, pe, qe, npts, so, sa, flat)
        elif o == T.SQUARE:       map_fwd_b(F.SQUARE, vals, oo, oa, n, pe, qe, npts, so, sa, flat)
        elif o == T.RECIPROCAL:   map_fwd_b(F.RECIPROCAL, vals, oo, oa, n, pe, qe, npts, so, sa, flat)
        elif o == T.CBRT:         map_fwd_b(F.CBRT, vals, oo, oa, n, pe, qe, npts, so, sa, flat)
        elif o == T.EXPM1:        map_fwd_b(F.EXPM1, vals, oo, oa, n, pe, qe, npts, so, sa, flat)
        elif o == T.EXP2:         map_fwd_b(F.EXP2, vals, oo, oa, n, pe, qe, npts, so, sa, flat)
        elif o == T.LOG2:         map_fwd_b(F.LOG2, vals, oo, oa, n, pe, qe, npts, so, sa, flat)
        elif o == T.LOG10:        map_fwd_b(F.LOG10, vals, oo, oa, n, pe, qe, npts, so, sa, flat)
        elif o == T.SINH:         map_fwd_b(F.SINH, vals, oo, oa, n, pe, qe, npts, so, sa, flat)
        elif o == T.COSH:         map_fwd_b(F.COSH, vals, oo, oa, n, pe, qe, npts, so, sa, flat)
        elif o == T.ARCSINH:      map_fwd_b(F.ARCSINH, vals, oo, oa, n, pe, qe, npts, so, sa, flat)
        elif o == T.ARCCOSH:      map_fwd_b(F.ARCCOSH, vals, oo, oa, n, pe, qe, npts, so, sa, flat)
        elif o == T.ARCTANH:      map_fwd_b(F.ARCTANH, vals, oo, oa, n, pe, qe, npts, so, sa, flat)
        elif o == T.TAN:          map_fwd_b(F.TAN, vals, oo, oa, n, pe, qe, npts, so, sa, flat)
        elif o == T.ARCSIN:       map_fwd_b(F.ARCSIN, vals, oo, oa, n, pe, qe, npts, so, sa, flat)
        elif o == T.ARCCOS:       map_fwd_b(F.ARCCOS, vals, oo, oa, n, pe, qe, npts, so, sa, flat)
        elif o == T.ARCTAN:       map_fwd_b(F.ARCTAN, vals, oo, oa, n, pe, qe, npts, so, sa, flat)
        elif o == T.SINC:         map_fwd_b(F.SINC, vals, oo, oa, n, pe, qe, npts, so, sa, flat)
        elif o == T.DEG2RAD:      map_fwd_b(F.DEG2RAD, vals, oo, oa, n, pe, qe, npts, so, sa, flat)
        elif o == T.RAD2DEG:      map_fwd_b(F.RAD2DEG, vals, oo, oa, n, pe, qe, npts, so, sa, flat)
        elif o == T.MINIMUM:      zip_fwd_b(F.MINIMUM, vals, ints, oo, oa, ob, n, ia, npts, so, sa, sb, flat, pat)
        elif o == T.FMIN:         zip_fwd_b(F.FMIN, vals, ints, oo, oa, ob, n, ia, npts, so, sa, sb, flat, pat)
        elif o == T.FMAX:         zip_fwd_b(F.FMAX, vals, ints, oo, oa, ob, n, ia, npts, so, sa, sb, flat, pat)
        elif o == T.REMAINDER:    zip_fwd_b(F.REMAINDER, vals, ints, oo, oa, ob, n, ia, npts, so, sa, sb, flat, pat)
        elif o == T.FMOD:         zip_fwd_b(F.FMOD, vals, ints, oo, oa, ob, n, ia, npts, so, sa, sb, flat, pat)
        elif o == T.FLOOR_DIVIDE: zip_fwd_b(F.FLOOR_DIVIDE, vals, ints, oo, oa, ob, n, ia, npts, so, sa, sb, flat, pat)
        elif o == T.ARCTAN2:      zip_fwd_b(F.ARCTAN2, vals, ints, oo, oa, ob, n, ia, npts, so, sa, sb, flat, pat)
        elif o == T.HYPOT:        zip_fwd_b(F.HYPOT, vals, ints, oo, oa, ob, n, ia, npts, so, sa, sb, flat, pat)
        elif o == T.LOGADDEXP:    zip_fwd_b(F.LOGADDEXP, vals, ints, oo, oa, ob, n, ia, npts, so, sa, sb, flat, pat)
        elif o == T.LOGADDEXP2:   zip_fwd_b(F.LOGADDEXP2, vals, ints, oo, oa, ob, n, ia, npts, so, sa, sb, flat, pat)
        elif o == T.SUM:          array_fwd_b(F.SUM, vals, ints, oo, oa, ob, n, ia, pe, qe, ext, npts, so, sa, sb)
        elif o == T.MAX:          array_fwd_b(F.MAX, vals, ints, oo, oa, ob, n, ia, pe, qe, ext, npts, so, sa, sb)
        elif o == T.LOGSUMEXP:    array_fwd_b(F.LOGSUMEXP, vals, ints, oo, oa, ob, n, ia, pe, qe, ext, npts, so, sa, sb)
        elif o == T.SOFTMAX:      array_fwd_b(F.SOFTMAX, vals, ints, oo, oa, ob, n, ia, pe, qe, ext, npts, so, sa, sb)
        elif o == T.CUMSUM:       array_fwd_b(F.CUMSUM, vals, ints, oo, oa, ob, n, ia, pe, qe, ext, npts, so, sa, sb)
        elif o == T.CUMPROD:      array_fwd_b(F.CUMPROD, vals, ints, oo, oa, ob, n, ia, pe, qe, ext, npts, so, sa, sb)
        elif o == T.MATMUL:       array_fwd_b(F.MATMUL, vals, ints, oo, oa, ob, n, ia, pe, qe, ext, npts, so, sa, sb)
        elif o == T.GATHER:       array_fwd_b(F.GATHER, vals, ints, oo, oa, ob, n, ia, pe, qe, ext, npts, so, sa, sb)
        elif o == T.GUARD_LT:
            if check:
                guard_b(F.GUARD_LT, vals, ints, oa, ob, ia, npts, sa, sb, failed)
        elif o == T.GUARD_LE:
            if check:
                guard_b(F.GUARD_LE, vals, ints, oa, ob, ia, npts, sa, sb, failed)
        elif o == T.GUARD_GT:
            if check:
                guard_b(F.GUARD_GT, vals, ints, oa, ob, ia, npts, sa, sb, failed)
        elif o == T.GUARD_GE:
            if check:
                guard_b(F.GUARD_GE, vals, ints, oa, ob, ia, npts, sa, sb, failed)
        elif o == T.GUARD_EQ:
            if check:
                guard_b(F.GUARD_EQ, vals, ints, oa, ob, ia, npts, sa, sb, failed)
        elif o == T.GUARD_NE:
            if check:
                guard_b(F.GUARD_NE, vals, ints, oa, ob, ia, npts, sa, sb, failed)
        elif o == T.CONCAT:       variadic_fwd_b(F.CONCAT, vals, ints, ia, oa, oo, n, npts, so, nary, n0, n1)
        elif o == T.SOLVE:        array_fwd_b(F.SOLVE, vals, ints, oo, oa, ob, n, ia, pe, qe, ext, npts, so, sa, sb)
        elif o == T.INV:          array_fwd_b(F.INV, vals, ints, oo, oa, ob, n, ia, pe, qe, ext, npts, so, sa, sb)
        elif o == T.DET:          array_fwd_b(F.DET, vals, ints, oo, oa, ob, n, ia, pe, qe, ext, npts, so, sa, sb)
        elif o == T.SLOGDET:      array_fwd_b(F.SLOGDET, vals, ints, oo, oa, ob, n, ia, pe, qe, ext, npts, so, sa, sb)
        elif o == T.CHOLESKY:     array_fwd_b(F.CHOLESKY, vals, ints, oo, oa, ob, n, ia, pe, qe, ext, npts, so, sa, sb)
        elif o == T.EIGH:         array_fwd_b(F.EIGH, vals, ints, oo, oa, ob, n, ia, pe, qe, ext, npts, so, sa, sb)
        elif o == T.SVD:          array_fwd_b(F.SVD, vals, ints, oo, oa, ob, n, ia, pe, qe, ext, npts, so, sa, sb)
        elif o == T.PINV:         array_fwd_b(F.PINV, vals, ints, oo, oa, ob, n, ia, pe, qe, ext, npts, so, sa, sb)


@kernel
def batch_backward_sweep(prog, attrs, ints, vals, adj, zero, root, rstride, ext, strides, nary, npts, pat):
    """grad_table at ``npts`` points: seed each point's output adjoint with 1.0, then walk
    the entries last to first (``zero`` holds the blocks to clear, already batched)."""
    for r in range(zero.shape[0]):
        adj[zero[r, 0]:zero[r, 1]] = 0.0  # a slice: a loop over indices is 3x slower
    for b in range(npts):
        adj[root + b * rstride] = 1.0
    for e in range(prog.shape[0] - 1, -1, -1):
        need = prog[e, 6]
        if need == 0:  # no differentiated input upstream, or no path to the output
            continue
        o, oo, oa, ob, n, ia = prog[e, 0], prog[e, 1], prog[e, 2], prog[e, 3], prog[e, 4], prog[e, 5]
        pe, qe, na, nb = attrs[e, 0], attrs[e, 1], (need >> A_SHIFT) & 3, (need >> B_SHIFT) & 3
        so, sa, sb, flat, n0, n1 = strides[e, 0], strides[e, 1], strides[e, 2], strides[e, 3], strides[e, 4], strides[e, 5]
        if o == T.AFFINE:         map_bwd_b(B.AFFINE, vals, adj, oo, oa, n, pe, qe, na, npts, so, sa, flat)
        elif o == T.POWC:         map_bwd_b(B.POWC, vals, adj, oo, oa, n, pe, qe, na, npts, so, sa, flat)
        elif o == T.EXP:          map_bwd_b(B.EXP, vals, adj, oo, oa, n, pe, qe, na, npts, so, sa, flat)
        elif o == T.LOG:          map_bwd_b(B.LOG, vals, adj, oo, oa, n, pe, qe, na, npts, so, sa, flat)
        elif o == T.SQRT:         map_bwd_b(B.SQRT, vals, adj, oo, oa, n, pe, qe, na, npts, so, sa, flat)
        elif o == T.SIN:          map_bwd_b(B.SIN, vals, adj, oo, oa, n, pe, qe, na, npts, so, sa, flat)
        elif o == T.COS:          map_bwd_b(B.COS, vals, adj, oo, oa, n, pe, qe, na, npts, so, sa, flat)
        elif o == T.TANH:         map_bwd_b(B.TANH, vals, adj, oo, oa, n, pe, qe, na, npts, so, sa, flat)
        elif o == T.LOG1P:        map_bwd_b(B.LOG1P, vals, adj, oo, oa, n, pe, qe, na, npts, so, sa, flat)
        elif o == T.SIGMOID:      map_bwd_b(B.SIGMOID, vals, adj, oo, oa, n, pe, qe, na, npts, so, sa, flat)
        elif o == T.ADD:          zip_bwd_b(B.ADD, vals, adj, ints, oo, oa, ob, n, ia, na, nb, npts, so, sa, sb, flat, pat)
        elif o == T.SUB:          zip_bwd_b(B.SUB, vals, adj, ints, oo, oa, ob, n, ia, na, nb, npts, so, sa, sb, flat, pat)
        elif o == T.MUL:          zip_bwd_b(B.MUL, vals, adj, ints, oo, oa, ob, n, ia, na, nb, npts, so, sa, sb, flat, pat)
        elif o == T.DIV:          zip_bwd_b(B.DIV, vals, adj, ints, oo, oa, ob, n, ia, na, nb, npts, so, sa, sb, flat, pat)
        elif o == T.POW:          zip_bwd_b(B.POW, vals, adj, ints, oo, oa, ob, n, ia, na, nb, npts, so, sa, sb, flat, pat)
        elif o == T.MAXIMUM:      zip_bwd_b(B.MAXIMUM, vals, adj, ints, oo, oa, ob, n, ia, na, nb, npts, so, sa, sb, flat, pat)
        elif o == T.WHERE:        select_bwd_b(B.WHERE, vals, adj, ints, ia, oo, n, npts, so, flat, nary, n0, n1)
        elif o == T.ABS:          map_bwd_b(B.ABS, vals, adj, oo, oa, n, pe, qe, na, npts, so, sa, flat)
        elif o == T.SIGN:         map_bwd_b(B.SIGN, vals, adj, oo, oa, n, pe, qe, na, npts, so, sa, flat)
        elif o == T.FLOOR:        map_bwd_b(B.FLOOR, vals, adj, oo, oa, n, pe, qe, na, npts, so, sa, flat)
        elif o == T.CEIL:         map_bwd_b(B.CEIL, vals, adj, oo, oa, n, pe, qe, na, npts, so, sa, flat)
        elif o == T.TRUNC:        map_bwd_b(B.TRUNC, vals, adj, oo, oa, n, pe, qe, na, npts, so, sa, flat)
        elif o == T.RINT:         map_bwd_b(B.RINT, vals, adj, oo, oa, n, pe, qe, na, npts, so, sa, flat)
        elif o == T.ROUND:        map_bwd_b(B.ROUND, vals, adj, oo, oa, n, pe, qe, na, npts, so, sa, flat)
        elif o == T.CLIP:         map_bwd_b(B.CLIP, vals, adj, oo, oa, n, pe, qe, na, npts, so, sa, flat)
        elif o == T.SQUARE:       map_bwd_b(B.SQUARE, vals, adj, oo, oa, n, pe, qe, na, npts, so, sa, flat)
        elif o == T.RECIPROCAL:   map_bwd_b(B.RECIPROCAL, vals, adj, oo, oa, n, pe, qe, na, npts, so, sa, flat)
        elif o == T.CBRT:         map_bwd_b(B.CBRT, vals, adj, oo, oa, n, pe, qe, na, npts, so, sa, flat)
        elif o == T.EXPM1:        map_bwd_b(B.EXPM1, vals, adj, oo, oa, n, pe, qe, na, npts, so, sa, flat)
        elif o == T.EXP2:         map_bwd_b(B.EXP2, vals, adj, oo, oa, n, pe, qe, na, npts, so, sa, flat)
        elif o == T.LOG2:         map_bwd_b(B.LOG2, vals, adj, oo, oa, n, pe, qe, na, npts, so, sa, flat)
        elif o == T.LOG10:        map_bwd_b(B.LOG10, vals, adj, oo, oa, n, pe, qe, na, npts, so, sa, flat)
        elif o == T.SINH:         map_bwd_b(B.SINH, vals, adj, oo, oa, n, pe, qe, na, npts, so, sa, flat)
        elif o == T.COSH:         map_bwd_b(B.COSH, vals, adj, oo, oa, n, pe, qe, na, npts, so, sa, flat)
        elif o == T.ARCSINH:      map_bwd_b(B.ARCSINH, vals, adj, oo, oa, n, pe, qe, na, npts, so, sa, flat)
        elif o == T.ARCCOSH:      map_bwd_b(B.ARCCOSH, vals, adj, oo, oa, n, pe, qe, na, npts, so, sa, flat)
        elif o == T.ARCTANH:      map_bwd_b(B.ARCTANH, vals, adj, oo, oa, n, pe, qe, na, npts, so, sa, flat)
        elif o == T.TAN:          map_bwd_b(B.TAN, vals, adj, oo, oa, n, pe, qe, na, npts, so, sa, flat)
        elif o == T.ARCSIN:       map_bwd_b(B.ARCSIN, vals, adj, oo, oa, n, pe, qe, na, npts, so, sa, flat)
        elif o == T.ARCCOS:       map_bwd_b(B.ARCCOS, vals, adj, oo, oa, n, pe, qe, na, npts, so, sa, flat)
        elif o == T.ARCTAN:       map_bwd_b(B.ARCTAN, vals, adj, oo, oa, n, pe, qe, na, npts, so, sa, flat)
        elif o == T.SINC:         map_bwd_b(B.SINC, vals, adj, oo, oa, n, pe, qe, na, npts, so, sa, flat)
        elif o == T.DEG2RAD:      map_bwd_b(B.DEG2RAD, vals, adj, oo, oa, n, pe, qe, na, npts, so, sa, flat)
        elif o == T.RAD2DEG:      map_bwd_b(B.RAD2DEG, vals, adj, oo, oa, n, pe, qe, na, npts, so, sa, flat)
        elif o == T.MINIMUM:      zip_bwd_b(B.MINIMUM, vals, adj, ints, oo, oa, ob, n, ia, na, nb, npts, so, sa, sb, flat, pat)
        elif o == T.FMIN:         zip_bwd_b(B.FMIN, vals, adj, ints, oo, oa, ob, n, ia, na, nb, npts, so, sa, sb, flat, pat)
        elif o == T.FMAX:         zip_bwd_b(B.FMAX, vals, adj, ints, oo, oa, ob, n, ia, na, nb, npts, so, sa, sb, flat, pat)
        elif o == T.REMAINDER:    zip_bwd_b(B.REMAINDER, vals, adj, ints, oo, oa, ob, n, ia, na, nb, npts, so, sa, sb, flat, pat)
        elif o == T.FMOD:         zip_bwd_b(B.FMOD, vals, adj, ints, oo, oa, ob, n, ia, na, nb, npts, so, sa, sb, flat, pat)
        elif o == T.FLOOR_DIVIDE: zip_bwd_b(B.FLOOR_DIVIDE, vals, adj, ints, oo, oa, ob, n, ia, na, nb, npts, so, sa, sb, flat, pat)
        elif o == T.ARCTAN2:      zip_bwd_b(B.ARCTAN2, vals, adj, ints, oo, oa, ob, n, ia, na, nb, npts, so, sa, sb, flat, pat)
        elif o == T.HYPOT:        zip_bwd_b(B.HYPOT, vals, adj, ints, oo, oa, ob, n, ia, na, nb, npts, so, sa, sb, flat, pat)
        elif o == T.LOGADDEXP:    zip_bwd_b(B.LOGADDEXP, vals, adj, ints, oo, oa, ob, n, ia, na, nb, npts, so, sa, sb, flat, pat)
        elif o == T.LOGADDEXP2:   zip_bwd_b(B.LOGADDEXP2, vals, adj, ints, oo, oa, ob, n, ia, na, nb, npts, so, sa, sb, flat, pat)
        elif o == T.SUM:          array_bwd_b(B.SUM, vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, npts, so, sa, sb)
        elif o == T.MAX:          array_bwd_b(B.MAX, vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, npts, so, sa, sb)
        elif o == T.LOGSUMEXP:    array_bwd_b(B.LOGSUMEXP, vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, npts, so, sa, sb)
        elif o == T.SOFTMAX:      array_bwd_b(B.SOFTMAX, vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, npts, so, sa, sb)
        elif o == T.CUMSUM:       array_bwd_b(B.CUMSUM, vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, npts, so, sa, sb)
        elif o == T.CUMPROD:      array_bwd_b(B.CUMPROD, vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, npts, so, sa, sb)
        elif o == T.MATMUL:       array_bwd_b(B.MATMUL, vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, npts, so, sa, sb)
        elif o == T.GATHER:       array_bwd_b(B.GATHER, vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, npts, so, sa, sb)
        elif o == T.GUARD_LT:     B.GUARD_LT(vals, adj, oa, ob)
        elif o == T.GUARD_LE:     B.GUARD_LE(vals, adj, oa, ob)
        elif o == T.GUARD_GT:     B.GUARD_GT(vals, adj, oa, ob)
        elif o == T.GUARD_GE:     B.GUARD_GE(vals, adj, oa, ob)
        elif o == T.GUARD_EQ:     B.GUARD_EQ(vals, adj, oa, ob)
        elif o == T.GUARD_NE:     B.GUARD_NE(vals, adj, oa, ob)
        elif o == T.CONCAT:       variadic_bwd_b(B.CONCAT, vals, adj, ints, ia, oa, oo, n, npts, so, nary, n0, n1)
        elif o == T.SOLVE:        array_bwd_b(B.SOLVE, vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, npts, so, sa, sb)
        elif o == T.INV:          array_bwd_b(B.INV, vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, npts, so, sa, sb)
        elif o == T.DET:          array_bwd_b(B.DET, vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, npts, so, sa, sb)
        elif o == T.SLOGDET:      array_bwd_b(B.SLOGDET, vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, npts, so, sa, sb)
        elif o == T.CHOLESKY:     array_bwd_b(B.CHOLESKY, vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, npts, so, sa, sb)
        elif o == T.EIGH:         array_bwd_b(B.EIGH, vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, npts, so, sa, sb)
        elif o == T.SVD:          array_bwd_b(B.SVD, vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, npts, so, sa, sb)
        elif o == T.PINV:         array_bwd_b(B.PINV, vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, npts, so, sa, sb)


@kernel
def soa_forward_sweep(prog, attrs, ints, vals, ext, check, npts, cap, work, failed):
    """The points-minor forward sweep at ``npts`` points of a chunk of ``cap``; where
    ``check`` is nonzero, mark in ``failed`` the points at which a guard does not hold.
    Returns -1, or the first row it has no branch for (the program was not points-minor)."""
    for e in range(prog.shape[0]):
        o, oo, oa, ob, n, ia = prog[e, 0], prog[e, 1], prog[e, 2], prog[e, 3], prog[e, 4], prog[e, 5]
        pe, qe = attrs[e, 0], attrs[e, 1]
        if o == T.AFFINE:         map_fwd(F.AFFINE, vals, oo, oa, n * cap, pe, qe)
        elif o == T.POWC:         map_fwd(F.POWC, vals, oo, oa, n * cap, pe, qe)
        elif o == T.EXP:          map_fwd(F.EXP, vals, oo, oa, n * cap, pe, qe)
        elif o == T.LOG:          map_fwd(F.LOG, vals, oo, oa, n * cap, pe, qe)
        elif o == T.SQRT:         map_fwd(F.SQRT, vals, oo, oa, n * cap, pe, qe)
        elif o == T.SIN:          map_fwd(F.SIN, vals, oo, oa, n * cap, pe, qe)
        elif o == T.COS:          map_fwd(F.COS, vals, oo, oa, n * cap, pe, qe)
        elif o == T.TANH:         map_fwd(F.TANH, vals, oo, oa, n * cap, pe, qe)
        elif o == T.LOG1P:        map_fwd(F.LOG1P, vals, oo, oa, n * cap, pe, qe)
        elif o == T.SIGMOID:      map_fwd(F.SIGMOID, vals, oo, oa, n * cap, pe, qe)
        elif o == T.ADD:          soa_zip_fwd(F.ADD, vals, ints, oo, oa, ob, ia, cap)
        elif o == T.SUB:          soa_zip_fwd(F.SUB, vals, ints, oo, oa, ob, ia, cap)
        elif o == T.MUL:          soa_zip_fwd(F.MUL, vals, ints, oo, oa, ob, ia, cap)
        elif o == T.DIV:          soa_zip_fwd(F.DIV, vals, ints, oo, oa, ob, ia, cap)
        elif o == T.POW:          soa_zip_fwd(F.POW, vals, ints, oo, oa, ob, ia, cap)
        elif o == T.MAXIMUM:      soa_zip_fwd(F.MAXIMUM, vals, ints, oo, oa, ob, ia, cap)
        elif o == T.WHERE:        F.WHERE(vals, ints, ia, oo, n * cap)
        elif o == T.ABS:          map_fwd(F.ABS, vals, oo, oa, n * cap, pe, qe)
        elif o == T.SIGN:         map_fwd(F.SIGN, vals, oo, oa, n * cap, pe, qe)
        elif o == T.FLOOR:        map_fwd(F.FLOOR, vals, oo, oa, n * cap, pe, qe)
        elif o == T.CEIL:         map_fwd(F.CEIL, vals, oo, oa, n * cap, pe, qe)
        elif o == T.TRUNC:        map_fwd(F.TRUNC, vals, oo, oa, n * cap, pe, qe)
        elif o == T.RINT:         map_fwd(F.RINT, vals, oo, oa, n * cap, pe, qe)
        elif o == T.ROUND:        map_fwd(F.ROUND, vals, oo, oa, n * cap, pe, qe)
        elif o == T.CLIP:         map_fwd(F.CLIP, vals, oo, oa, n * cap, pe, qe)
        elif o == T.SQUARE:       map_fwd(F.SQUARE, vals, oo, oa, n * cap, pe, qe)
        elif o == T.RECIPROCAL:   map_fwd(F.RECIPROCAL, vals, oo, oa, n * cap, pe, qe)
        elif o == T.CBRT:         map_fwd(F.CBRT, vals, oo, oa, n * cap, pe, qe)
        elif o == T.EXPM1:        map_fwd(F.EXPM1, vals, oo, oa, n * cap, pe, qe)
        elif o == T.EXP2:         map_fwd(F.EXP2, vals, oo, oa, n * cap, pe, qe)
        elif o == T.LOG2:         map_fwd(F.LOG2, vals, oo, oa, n * cap, pe, qe)
        elif o == T.LOG10:        map_fwd(F.LOG10, vals, oo, oa, n * cap, pe, qe)
        elif o == T.SINH:         map_fwd(F.SINH, vals, oo, oa, n * cap, pe, qe)
        elif o == T.COSH:         map_fwd(F.COSH, vals, oo, oa, n * cap, pe, qe)
        elif o == T.ARCSINH:      map_fwd(F.ARCSINH, vals, oo, oa, n * cap, pe, qe)
        elif o == T.ARCCOSH:      map_fwd(F.ARCCOSH, vals, oo, oa, n * cap, pe, qe)
        elif o == T.ARCTANH:      map_fwd(F.ARCTANH, vals, oo, oa, n * cap, pe, qe)
        elif o == T.TAN:          map_fwd(F.TAN, vals, oo, oa, n * cap, pe, qe)
        elif o == T.ARCSIN:       map_fwd(F.ARCSIN, vals, oo, oa, n * cap, pe, qe)
        elif o == T.ARCCOS:       map_fwd(F.ARCCOS, vals, oo, oa, n * cap, pe, qe)
        elif o == T.ARCTAN:       map_fwd(F.ARCTAN, vals, oo, oa, n * cap, pe, qe)
        elif o == T.SINC:         map_fwd(F.SINC, vals, oo, oa, n * cap, pe, qe)
        elif o == T.DEG2RAD:      map_fwd(F.DEG2RAD, vals, oo, oa, n * cap, pe, qe)
        elif o == T.RAD2DEG:      map_fwd(F.RAD2DEG, vals, oo, oa, n * cap, pe, qe)
        elif o == T.MINIMUM:      soa_zip_fwd(F.MINIMUM, vals, ints, oo, oa, ob, ia, cap)
        elif o == T.FMIN:         soa_zip_fwd(F.FMIN, vals, ints, oo, oa, ob, ia, cap)
        elif o == T.FMAX:         soa_zip_fwd(F.FMAX, vals, ints, oo, oa, ob, ia, cap)
        elif o == T.REMAINDER:    soa_zip_fwd(F.REMAINDER, vals, ints, oo, oa, ob, ia, cap)
        elif o == T.FMOD:         soa_zip_fwd(F.FMOD, vals, ints, oo, oa, ob, ia, cap)
        elif o == T.FLOOR_DIVIDE: soa_zip_fwd(F.FLOOR_DIVIDE, vals, ints, oo, oa, ob, ia, cap)
        elif o == T.ARCTAN2:      soa_zip_fwd(F.ARCTAN2, vals, ints, oo, oa, ob, ia, cap)
        elif o == T.HYPOT:        soa_zip_fwd(F.HYPOT, vals, ints, oo, oa, ob, ia, cap)
        elif o == T.LOGADDEXP:    soa_zip_fwd(F.LOGADDEXP, vals, ints, oo, oa, ob, ia, cap)
        elif o == T.LOGADDEXP2:   soa_zip_fwd(F.LOGADDEXP2, vals, ints, oo, oa, ob, ia, cap)
        elif o == T.SUM:          soa_sum_fwd(vals, ints, oo, oa, ia, pe, ext, npts, cap, work)
        elif o == T.MAX:          F.MAX(vals, ints, oo, oa, ob, n * cap, ia, pe, qe, ext, 0)
        elif o == T.LOGSUMEXP:    F.LOGSUMEXP(vals, ints, oo, oa, ob, n * cap, ia, pe, qe, ext, 0)
        elif o == T.SOFTMAX:      F.SOFTMAX(vals, ints, oo, oa, ob, n * cap, ia, pe, qe, ext, 0)
        elif o == T.CUMSUM:       F.CUMSUM(vals, ints, oo, oa, ob, n * cap, ia, pe, qe, ext, 0)
        elif o == T.CUMPROD:      F.CUMPROD(vals, ints, oo, oa, ob, n * cap, ia, pe, qe, ext, 0)
        elif o == T.GATHER:       soa_gather_fwd(vals, ints, oo, oa, n, ia, cap)
        elif o == T.GUARD_LT:
            if check:
                guard_b(F.GUARD_LT, vals, ints, oa, ob, ia, npts, 1, 1, failed)
        elif o == T.GUARD_LE:
            if check:
                guard_b(F.GUARD_LE, vals, ints, oa, ob, ia, npts, 1, 1, failed)
        elif o == T.GUARD_GT:
            if check:
                guard_b(F.GUARD_GT, vals, ints, oa, ob, ia, npts, 1, 1, failed)
        elif o == T.GUARD_GE:
            if check:
                guard_b(F.GUARD_GE, vals, ints, oa, ob, ia, npts, 1, 1, failed)
        elif o == T.GUARD_EQ:
            if check:
                guard_b(F.GUARD_EQ, vals, ints, oa, ob, ia, npts, 1, 1, failed)
        elif o == T.GUARD_NE:
            if check:
                guard_b(F.GUARD_NE, vals, ints, oa, ob, ia, npts, 1, 1, failed)
        elif o == T.CONCAT:       F.CONCAT(vals, ints, ia, oa, oo, n * cap)
        else:
            return e
    return -1


@kernel
def soa_backward_sweep(prog, attrs, ints, vals, adj, zero, root, ext, npts, cap, work):
    """grad_table at the ``npts`` points of a points-minor chunk: seed each point's output
    adjoint with 1.0 (point b's at root + b), then walk the entries last to first."""
    for r in range(zero.shape[0]):
        adj[zero[r, 0]:zero[r, 1]] = 0.0  # a slice: a loop over indices is 3x slower
    for b in range(npts):
        adj[root + b] = 1.0
    for e in range(prog.shape[0] - 1, -1, -1):
        need = prog[e, 6]
        if need == 0:  # no differentiated input upstream, or no path to the output
            continue
        o, oo, oa, ob, n, ia = prog[e, 0], prog[e, 1], prog[e, 2], prog[e, 3], prog[e, 4], prog[e, 5]
        pe, qe, na, nb = attrs[e, 0], attrs[e, 1], (need >> A_SHIFT) & 3, (need >> B_SHIFT) & 3
        if o == T.AFFINE:         map_bwd(B.AFFINE, vals, adj, oo, oa, n * cap, pe, qe, na)
        elif o == T.POWC:         map_bwd(B.POWC, vals, adj, oo, oa, n * cap, pe, qe, na)
        elif o == T.EXP:          map_bwd(B.EXP, vals, adj, oo, oa, n * cap, pe, qe, na)
        elif o == T.LOG:          map_bwd(B.LOG, vals, adj, oo, oa, n * cap, pe, qe, na)
        elif o == T.SQRT:         map_bwd(B.SQRT, vals, adj, oo, oa, n * cap, pe, qe, na)
        elif o == T.SIN:          map_bwd(B.SIN, vals, adj, oo, oa, n * cap, pe, qe, na)
        elif o == T.COS:          map_bwd(B.COS, vals, adj, oo, oa, n * cap, pe, qe, na)
        elif o == T.TANH:         map_bwd(B.TANH, vals, adj, oo, oa, n * cap, pe, qe, na)
        elif o == T.LOG1P:        map_bwd(B.LOG1P, vals, adj, oo, oa, n * cap, pe, qe, na)
        elif o == T.SIGMOID:      map_bwd(B.SIGMOID, vals, adj, oo, oa, n * cap, pe, qe, na)
        elif o == T.ADD:          soa_zip_bwd(B.ADD, vals, adj, ints, oo, oa, ob, ia, na, nb, cap, work)
        elif o == T.SUB:          soa_zip_bwd(B.SUB, vals, adj, ints, oo, oa, ob, ia, na, nb, cap, work)
        elif o == T.MUL:          soa_zip_bwd(B.MUL, vals, adj, ints, oo, oa, ob, ia, na, nb, cap, work)
        elif o == T.DIV:          soa_zip_bwd(B.DIV, vals, adj, ints, oo, oa, ob, ia, na, nb, cap, work)
        elif o == T.POW:          soa_zip_bwd(B.POW, vals, adj, ints, oo, oa, ob, ia, na, nb, cap, work)
        elif o == T.MAXIMUM:      soa_zip_bwd(B.MAXIMUM, vals, adj, ints, oo, oa, ob, ia, na, nb, cap, work)
        elif o == T.WHERE:        B.WHERE(vals, adj, ints, ia, oo, n * cap)
        elif o == T.ABS:          map_bwd(B.ABS, vals, adj, oo, oa, n * cap, pe, qe, na)
        elif o == T.SIGN:         map_bwd(B.SIGN, vals, adj, oo, oa, n * cap, pe, qe, na)
        elif o == T.FLOOR:        map_bwd(B.FLOOR, vals, adj, oo, oa, n * cap, pe, qe, na)
        elif o == T.CEIL:         map_bwd(B.CEIL, vals, adj, oo, oa, n * cap, pe, qe, na)
        elif o == T.TRUNC:        map_bwd(B.TRUNC, vals, adj, oo, oa, n * cap, pe, qe, na)
        elif o == T.RINT:         map_bwd(B.RINT, vals, adj, oo, oa, n * cap, pe, qe, na)
        elif o == T.ROUND:        map_bwd(B.ROUND, vals, adj, oo, oa, n * cap, pe, qe, na)
        elif o == T.CLIP:         map_bwd(B.CLIP, vals, adj, oo, oa, n * cap, pe, qe, na)
        elif o == T.SQUARE:       map_bwd(B.SQUARE, vals, adj, oo, oa, n * cap, pe, qe, na)
        elif o == T.RECIPROCAL:   map_bwd(B.RECIPROCAL, vals, adj, oo, oa, n * cap, pe, qe, na)
        elif o == T.CBRT:         map_bwd(B.CBRT, vals, adj, oo, oa, n * cap, pe, qe, na)
        elif o == T.EXPM1:        map_bwd(B.EXPM1, vals, adj, oo, oa, n * cap, pe, qe, na)
        elif o == T.EXP2:         map_bwd(B.EXP2, vals, adj, oo, oa, n * cap, pe, qe, na)
        elif o == T.LOG2:         map_bwd(B.LOG2, vals, adj, oo, oa, n * cap, pe, qe, na)
        elif o == T.LOG10:        map_bwd(B.LOG10, vals, adj, oo, oa, n * cap, pe, qe, na)
        elif o == T.SINH:         map_bwd(B.SINH, vals, adj, oo, oa, n * cap, pe, qe, na)
        elif o == T.COSH:         map_bwd(B.COSH, vals, adj, oo, oa, n * cap, pe, qe, na)
        elif o == T.ARCSINH:      map_bwd(B.ARCSINH, vals, adj, oo, oa, n * cap, pe, qe, na)
        elif o == T.ARCCOSH:      map_bwd(B.ARCCOSH, vals, adj, oo, oa, n * cap, pe, qe, na)
        elif o == T.ARCTANH:      map_bwd(B.ARCTANH, vals, adj, oo, oa, n * cap, pe, qe, na)
        elif o == T.TAN:          map_bwd(B.TAN, vals, adj, oo, oa, n * cap, pe, qe, na)
        elif o == T.ARCSIN:       map_bwd(B.ARCSIN, vals, adj, oo, oa, n * cap, pe, qe, na)
        elif o == T.ARCCOS:       map_bwd(B.ARCCOS, vals, adj, oo, oa, n * cap, pe, qe, na)
        elif o == T.ARCTAN:       map_bwd(B.ARCTAN, vals, adj, oo, oa, n * cap, pe, qe, na)
        elif o == T.SINC:         map_bwd(B.SINC, vals, adj, oo, oa, n * cap, pe, qe, na)
        elif o == T.DEG2RAD:      map_bwd(B.DEG2RAD, vals, adj, oo, oa, n * cap, pe, qe, na)
        elif o == T.RAD2DEG:      map_bwd(B.RAD2DEG, vals, adj, oo, oa, n * cap, pe, qe, na)
        elif o == T.MINIMUM:      soa_zip_bwd(B.MINIMUM, vals, adj, ints, oo, oa, ob, ia, na, nb, cap, work)
        elif o == T.FMIN:         soa_zip_bwd(B.FMIN, vals, adj, ints, oo, oa, ob, ia, na, nb, cap, work)
        elif o == T.FMAX:         soa_zip_bwd(B.FMAX, vals, adj, ints, oo, oa, ob, ia, na, nb, cap, work)
        elif o == T.REMAINDER:    soa_zip_bwd(B.REMAINDER, vals, adj, ints, oo, oa, ob, ia, na, nb, cap, work)
        elif o == T.FMOD:         soa_zip_bwd(B.FMOD, vals, adj, ints, oo, oa, ob, ia, na, nb, cap, work)
        elif o == T.FLOOR_DIVIDE: soa_zip_bwd(B.FLOOR_DIVIDE, vals, adj, ints, oo, oa, ob, ia, na, nb, cap, work)
        elif o == T.ARCTAN2:      soa_zip_bwd(B.ARCTAN2, vals, adj, ints, oo, oa, ob, ia, na, nb, cap, work)
        elif o == T.HYPOT:        soa_zip_bwd(B.HYPOT, vals, adj, ints, oo, oa, ob, ia, na, nb, cap, work)
        elif o == T.LOGADDEXP:    soa_zip_bwd(B.LOGADDEXP, vals, adj, ints, oo, oa, ob, ia, na, nb, cap, work)
        elif o == T.LOGADDEXP2:   soa_zip_bwd(B.LOGADDEXP2, vals, adj, ints, oo, oa, ob, ia, na, nb, cap, work)
        elif o == T.SUM:          soa_sum_bwd(adj, ints, oo, oa, ia, pe)
        elif o == T.MAX:          B.MAX(vals, adj, ints, oo, oa, ob, n * cap, ia, pe, qe, na, nb, ext, 0)
        elif o == T.LOGSUMEXP:    B.LOGSUMEXP(vals, adj, ints, oo, oa, ob, n * cap, ia, pe, qe, na, nb, ext, 0)
        elif o == T.SOFTMAX:      B.SOFTMAX(vals, adj, ints, oo, oa, ob, n * cap, ia, pe, qe, na, nb, ext, 0)
        elif o == T.CUMSUM:       B.CUMSUM(vals, adj, ints, oo, oa, ob, n * cap, ia, pe, qe, na, nb, ext, 0)
        elif o == T.CUMPROD:      B.CUMPROD(vals, adj, ints, oo, oa, ob, n * cap, ia, pe, qe, na, nb, ext, 0)
        elif o == T.GATHER:       soa_gather_bwd(adj, ints, oo, oa, n, ia, cap)
        elif o == T.GUARD_LT:     B.GUARD_LT(vals, adj, oa, ob)
        elif o == T.GUARD_LE:     B.GUARD_LE(vals, adj, oa, ob)
        elif o == T.GUARD_GT:     B.GUARD_GT(vals, adj, oa, ob)
        elif o == T.GUARD_GE:     B.GUARD_GE(vals, adj, oa, ob)
        elif o == T.GUARD_EQ:     B.GUARD_EQ(vals, adj, oa, ob)
        elif o == T.GUARD_NE:     B.GUARD_NE(vals, adj, oa, ob)
        elif o == T.CONCAT:       B.CONCAT(vals, adj, ints, ia, oa, oo, n * cap)
