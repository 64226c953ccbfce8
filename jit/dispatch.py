"""The interpreter's sweeps.  GENERATED from the op table by

    python -m tapegrad.jit.gen_dispatch

Do not edit: change a row (``ops_*.py``) or a family template (``gen_dispatch.py``) and
regenerate; a test fails while this file differs from the generator's output.

``forward_sweep`` recomputes every entry first to last; ``backward_sweep`` is grad_table:
seed the output's adjoint, then walk the entries last to first, each adding its
vector-Jacobian product into its operands' adjoints (see ``interpreter``).
"""
from . import optable as T
from .compile import kernel
from .interpreter import A_SHIFT, B_SHIFT, B, F
from .ops_elementwise import map_bwd, map_fwd, zip_bwd, zip_fwd
from .ops_guard import guard_fails

TABLE = (('AFFINE', 'map'), ('POWC', 'map'), ('EXP', 'map'), ('LOG', 'map'), ('SQRT', 'map'), ('SIN', 'map'), ('COS', 'map'), ('TANH', 'map'), ('LOG1P', 'map'), ('SIGMOID', 'map'), ('ADD', 'zip'), ('SUB', 'zip'), ('MUL', 'zip'), ('DIV', 'zip'), ('POW', 'zip'), ('MAXIMUM', 'zip'), ('WHERE', 'select'), ('ABS', 'map'), ('SIGN', 'map'), ('FLOOR', 'map'), ('CEIL', 'map'), ('TRUNC', 'map'), ('RINT', 'map'), ('ROUND', 'map'), ('CLIP', 'map'), ('SQUARE', 'map'), ('RECIPROCAL', 'map'), ('CBRT', 'map'), ('EXPM1', 'map'), ('EXP2', 'map'), ('LOG2', 'map'), ('LOG10', 'map'), ('SINH', 'map'), ('COSH', 'map'), ('ARCSINH', 'map'), ('ARCCOSH', 'map'), ('ARCTANH', 'map'), ('TAN', 'map'), ('ARCSIN', 'map'), ('ARCCOS', 'map'), ('ARCTAN', 'map'), ('SINC', 'map'), ('DEG2RAD', 'map'), ('RAD2DEG', 'map'), ('MINIMUM', 'zip'), ('FMIN', 'zip'), ('FMAX', 'zip'), ('REMAINDER', 'zip'), ('FMOD', 'zip'), ('FLOOR_DIVIDE', 'zip'), ('ARCTAN2', 'zip'), ('HYPOT', 'zip'), ('LOGADDEXP', 'zip'), ('LOGADDEXP2', 'zip'), ('SUM', 'reduce'), ('MAX', 'reduce'), ('LOGSUMEXP', 'reduce'), ('SOFTMAX', 'reduce'), ('CUMSUM', 'reduce'), ('CUMPROD', 'reduce'), ('MATMUL', 'linalg'), ('GATHER', 'index'), ('GUARD_LT', 'guard'), ('GUARD_LE', 'guard'), ('GUARD_GT', 'guard'), ('GUARD_GE', 'guard'), ('GUARD_EQ', 'guard'), ('GUARD_NE', 'guard'), ('CONCAT', 'variadic'), ('SOLVE', 'decomp'), ('INV', 'decomp'), ('DET', 'decomp'), ('SLOGDET', 'decomp'), ('CHOLESKY', 'decomp'), ('EIGH', 'decomp'), ('SVD', 'decomp'), ('PINV', 'decomp'))


@kernel
def forward_sweep(prog, attrs, ints, vals, ext, check):
    """Recompute every entry's value, first to last (the lectures' forward pass).

    Returns -1, or, when ``check`` is nonzero and a guard's comparison disagrees with the
    outcome it recorded, that guard's program row (the sweep stops there: later entries
    may belong to the other branch).
    """
    for e in range(prog.shape[0]):
        o, oo, oa, ob, n, ia = prog[e, 0], prog[e, 1], prog[e, 2], prog[e, 3], prog[e, 4], prog[e, 5]
        pe, qe = attrs[e, 0], attrs[e, 1]
        if o == T.AFFINE:         map_fwd(F.AFFINE, vals, oo, oa, n, pe, qe)
        elif o == T.POWC:         map_fwd(F.POWC, vals, oo, oa, n, pe, qe)
        elif o == T.EXP:          map_fwd(F.EXP, vals, oo, oa, n, pe, qe)
        elif o == T.LOG:          map_fwd(F.LOG, vals, oo, oa, n, pe, qe)
        elif o == T.SQRT:         map_fwd(F.SQRT, vals, oo, oa, n, pe, qe)
        elif o == T.SIN:          map_fwd(F.SIN, vals, oo, oa, n, pe, qe)
        elif o == T.COS:          map_fwd(F.COS, vals, oo, oa, n, pe, qe)
        elif o == T.TANH:         map_fwd(F.TANH, vals, oo, oa, n, pe, qe)
        elif o == T.LOG1P:        map_fwd(F.LOG1P, vals, oo, oa, n, pe, qe)
        elif o == T.SIGMOID:      map_fwd(F.SIGMOID, vals, oo, oa, n, pe, qe)
        elif o == T.ADD:          zip_fwd(F.ADD, vals, ints, oo, oa, ob, n, ia)
        elif o == T.SUB:          zip_fwd(F.SUB, vals, ints, oo, oa, ob, n, ia)
        elif o == T.MUL:          zip_fwd(F.MUL, vals, ints, oo, oa, ob, n, ia)
        elif o == T.DIV:          zip_fwd(F.DIV, vals, ints, oo, oa, ob, n, ia)
        elif o == T.POW:          zip_fwd(F.POW, vals, ints, oo, oa, ob, n, ia)
        elif o == T.MAXIMUM:      zip_fwd(F.MAXIMUM, vals, ints, oo, oa, ob, n, ia)
        elif o == T.WHERE:        F.WHERE(vals, ints, ia, oo, n)
        elif o == T.ABS:          map_fwd(F.ABS, vals, oo, oa, n, pe, qe)
        elif o == T.SIGN:         map_fwd(F.SIGN, vals, oo, oa, n, pe, qe)
        elif o == T.FLOOR:        map_fwd(F.FLOOR, vals, oo, oa, n, pe, qe)
        elif o == T.CEIL:         map_fwd(F.CEIL, vals, oo, oa, n, pe, qe)
        elif o == T.TRUNC:        map_fwd(F.TRUNC, vals, oo, oa, n, pe, qe)
        elif o == T.RINT:         map_fwd(F.RINT, vals, oo, oa, n, pe, qe)
        elif o == T.ROUND:        map_fwd(F.ROUND, vals, oo, oa, n, pe, qe)
        elif o == T.CLIP:         map_fwd(F.CLIP, vals, oo, oa, n, pe, qe)
        elif o == T.SQUARE:       map_fwd(F.SQUARE, vals, oo, oa, n, pe, qe)
        elif o == T.RECIPROCAL:   map_fwd(F.RECIPROCAL, vals, oo, oa, n, pe, qe)
        elif o == T.CBRT:         map_fwd(F.CBRT, vals, oo, oa, n, pe, qe)
        elif o == T.EXPM1:        map_fwd(F.EXPM1, vals, oo, oa, n, pe, qe)
        elif o == T.EXP2:         map_fwd(F.EXP2, vals, oo, oa, n, pe, qe)
        elif o == T.LOG2:         map_fwd(F.LOG2, vals, oo, oa, n, pe, qe)
        elif o == T.LOG10:        map_fwd(F.LOG10, vals, oo, oa, n, pe, qe)
        elif o == T.SINH:         map_fwd(F.SINH, vals, oo, oa, n, pe, qe)
        elif o == T.COSH:         map_fwd(F.COSH, vals, oo, oa, n, pe, qe)
        elif o == T.ARCSINH:      map_fwd(F.ARCSINH, vals, oo, oa, n, pe, qe)
        elif o == T.ARCCOSH:      map_fwd(F.ARCCOSH, vals, oo, oa, n, pe, qe)
        elif o == T.ARCTANH:      map_fwd(F.ARCTANH, vals, oo, oa, n, pe, qe)
        elif o == T.TAN:          map_fwd(F.TAN, vals, oo, oa, n, pe, qe)
        elif o == T.ARCSIN:       map_fwd(F.ARCSIN, vals, oo, oa, n, pe, qe)
        elif o == T.ARCCOS:       map_fwd(F.ARCCOS, vals, oo, oa, n, pe, qe)
        elif o == T.ARCTAN:       map_fwd(F.ARCTAN, vals, oo, oa, n, pe, qe)
        elif o == T.SINC:         map_fwd(F.SINC, vals, oo, oa, n, pe, qe)
        elif o == T.DEG2RAD:      map_fwd(F.DEG2RAD, vals, oo, oa, n, pe, qe)
        elif o == T.RAD2DEG:      map_fwd(F.RAD2DEG, vals, oo, oa, n, pe, qe)
        elif o == T.MINIMUM:      zip_fwd(F.MINIMUM, vals, ints, oo, oa, ob, n, ia)
        elif o == T.FMIN:         zip_fwd(F.FMIN, vals, ints, oo, oa, ob, n, ia)
        elif o == T.FMAX:         zip_fwd(F.FMAX, vals, ints, oo, oa, ob, n, ia)
        elif o == T.REMAINDER:    zip_fwd(F.REMAINDER, vals, ints, oo, oa, ob, n, ia)
        elif o == T.FMOD:         zip_fwd(F.FMOD, vals, ints, oo, oa, ob, n, ia)
        elif o == T.FLOOR_DIVIDE: zip_fwd(F.FLOOR_DIVIDE, vals, ints, oo, oa, ob, n, ia)
        elif o == T.ARCTAN2:      zip_fwd(F.ARCTAN2, vals, ints, oo, oa, ob, n, ia)
        elif o == T.HYPOT:        zip_fwd(F.HYPOT, vals, ints, oo, oa, ob, n, ia)
        elif o == T.LOGADDEXP:    zip_fwd(F.LOGADDEXP, vals, ints, oo, oa, ob, n, ia)
        elif o == T.LOGADDEXP2:   zip_fwd(F.LOGADDEXP2, vals, ints, oo, oa, ob, n, ia)
        elif o == T.SUM:          F.SUM(vals, ints, oo, oa, ob, n, ia, pe, qe, ext, prog[e, 7])
        elif o == T.MAX:          F.MAX(vals, ints, oo, oa, ob, n, ia, pe, qe, ext, prog[e, 7])
        elif o == T.LOGSUMEXP:    F.LOGSUMEXP(vals, ints, oo, oa, ob, n, ia, pe, qe, ext, prog[e, 7])
        elif o == T.SOFTMAX:      F.SOFTMAX(vals, ints, oo, oa, ob, n, ia, pe, qe, ext, prog[e, 7])
        elif o == T.CUMSUM:       F.CUMSUM(vals, ints, oo, oa, ob, n, ia, pe, qe, ext, prog[e, 7])
        elif o == T.CUMPROD:      F.CUMPROD(vals, ints, oo, oa, ob, n, ia, pe, qe, ext, prog[e, 7])
        elif o == T.MATMUL:       F.MATMUL(vals, ints, oo, oa, ob, n, ia, pe, qe, ext, prog[e, 7])
        elif o == T.GATHER:       F.GATHER(vals, ints, oo, oa, ob, n, ia, pe, qe, ext, prog[e, 7])
        elif o == T.GUARD_LT:
            if check and guard_fails(F.GUARD_LT, vals, ints, oa, ob, ia):
                return e
        elif o == T.GUARD_LE:
            if check and guard_fails(F.GUARD_LE, vals, ints, oa, ob, ia):
                return e
        elif o == T.GUARD_GT:
            if check and guard_fails(F.GUARD_GT, vals, ints, oa, ob, ia):
                return e
        elif o == T.GUARD_GE:
            if check and guard_fails(F.GUARD_GE, vals, ints, oa, ob, ia):
                return e
        elif o == T.GUARD_EQ:
            if check and guard_fails(F.GUARD_EQ, vals, ints, oa, ob, ia):
                return e
        elif o == T.GUARD_NE:
            if check and guard_fails(F.GUARD_NE, vals, ints, oa, ob, ia):
                return e
        elif o == T.CONCAT:       F.CONCAT(vals, ints, ia, oa, oo, n)
        elif o == T.SOLVE:        F.SOLVE(vals, ints, oo, oa, ob, n, ia, pe, qe, ext, prog[e, 7])
        elif o == T.INV:          F.INV(vals, ints, oo, oa, ob, n, ia, pe, qe, ext, prog[e, 7])
        elif o == T.DET:          F.DET(vals, ints, oo, oa, ob, n, ia, pe, qe, ext, prog[e, 7])
        elif o == T.SLOGDET:      F.SLOGDET(vals, ints, oo, oa, ob, n, ia, pe, qe, ext, prog[e, 7])
        elif o == T.CHOLESKY:     F.CHOLESKY(vals, ints, oo, oa, ob, n, ia, pe, qe, ext, prog[e, 7])
        elif o == T.EIGH:         F.EIGH(vals, ints, oo, oa, ob, n, ia, pe, qe, ext, prog[e, 7])
        elif o == T.SVD:          F.SVD(vals, ints, oo, oa, ob, n, ia, pe, qe, ext, prog[e, 7])
        elif o == T.PINV:         F.PINV(vals, ints, oo, oa, ob, n, ia, pe, qe, ext, prog[e, 7])
    return -1

@kernel
def backward_sweep(prog, attrs, ints, vals, adj, zero, root, seed, ext):
    """grad_table: seed the output's adjoint, then walk the entries last to first, adding
    each one's vector-Jacobian product to its operands' adjoints.

    ``zero`` lists the (start, stop) arena blocks to clear first: the adjoints that will
    be accumulated into.  ``seed`` goes to adj[root:]: 1.0 for a gradient, a unit vector
    for a row of a Jacobian.
    """
    for r in range(zero.shape[0]):  # a slice: an index loop here does not vectorise
        adj[zero[r, 0]:zero[r, 1]] = 0.0
    for j in range(seed.shape[0]):
        adj[root + j] = seed[j]
    for e in range(prog.shape[0] - 1, -1, -1):
        need = prog[e, 6]
        if need == 0:  # no differentiated input upstream, or no path to the output
            continue
        o, oo, oa, ob, n, ia = prog[e, 0], prog[e, 1], prog[e, 2], prog[e, 3], prog[e, 4], prog[e, 5]
        pe, qe, na, nb = attrs[e, 0], attrs[e, 1], (need >> A_SHIFT) & 3, (need >> B_SHIFT) & 3
        if o == T.AFFINE:         map_bwd(B.AFFINE, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.POWC:         map_bwd(B.POWC, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.EXP:          map_bwd(B.EXP, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.LOG:          map_bwd(B.LOG, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.SQRT:         map_bwd(B.SQRT, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.SIN:          map_bwd(B.SIN, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.COS:          map_bwd(B.COS, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.TANH:         map_bwd(B.TANH, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.LOG1P:        map_bwd(B.LOG1P, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.SIGMOID:      map_bwd(B.SIGMOID, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.ADD:          zip_bwd(B.ADD, vals, adj, ints, oo, oa, ob, n, ia, na, nb)
        elif o == T.SUB:          zip_bwd(B.SUB, vals, adj, ints, oo, oa, ob, n, ia, na, nb)
        elif o == T.MUL:          zip_bwd(B.MUL, vals, adj, ints, oo, oa, ob, n, ia, na, nb)
        elif o == T.DIV:          zip_bwd(B.DIV, vals, adj, ints, oo, oa, ob, n, ia, na, nb)
        elif o == T.POW:          zip_bwd(B.POW, vals, adj, ints, oo, oa, ob, n, ia, na, nb)
        elif o == T.MAXIMUM:      zip_bwd(B.MAXIMUM, vals, adj, ints, oo, oa, ob, n, ia, na, nb)
        elif o == T.WHERE:        B.WHERE(vals, adj, ints, ia, oo, n)
        elif o == T.ABS:          map_bwd(B.ABS, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.SIGN:         map_bwd(B.SIGN, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.FLOOR:        map_bwd(B.FLOOR, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.CEIL:         map_bwd(B.CEIL, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.TRUNC:        map_bwd(B.TRUNC, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.RINT:         map_bwd(B.RINT, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.ROUND:        map_bwd(B.ROUND, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.CLIP:         map_bwd(B.CLIP, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.SQUARE:       map_bwd(B.SQUARE, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.RECIPROCAL:   map_bwd(B.RECIPROCAL, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.CBRT:         map_bwd(B.CBRT, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.EXPM1:        map_bwd(B.EXPM1, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.EXP2:         map_bwd(B.EXP2, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.LOG2:         map_bwd(B.LOG2, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.LOG10:        map_bwd(B.LOG10, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.SINH:         map_bwd(B.SINH, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.COSH:         map_bwd(B.COSH, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.ARCSINH:      map_bwd(B.ARCSINH, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.ARCCOSH:      map_bwd(B.ARCCOSH, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.ARCTANH:      map_bwd(B.ARCTANH, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.TAN:          map_bwd(B.TAN, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.ARCSIN:       map_bwd(B.ARCSIN, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.ARCCOS:       map_bwd(B.ARCCOS, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.ARCTAN:       map_bwd(B.ARCTAN, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.SINC:         map_bwd(B.SINC, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.DEG2RAD:      map_bwd(B.DEG2RAD, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.RAD2DEG:      map_bwd(B.RAD2DEG, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.MINIMUM:      zip_bwd(B.MINIMUM, vals, adj, ints, oo, oa, ob, n, ia, na, nb)
        elif o == T.FMIN:         zip_bwd(B.FMIN, vals, adj, ints, oo, oa, ob, n, ia, na, nb)
        elif o == T.FMAX:         zip_bwd(B.FMAX, vals, adj, ints, oo, oa, ob, n, ia, na, nb)
        elif o == T.REMAINDER:    zip_bwd(B.REMAINDER, vals, adj, ints, oo, oa, ob, n, ia, na, nb)
        elif o == T.FMOD:         zip_bwd(B.FMOD, vals, adj, ints, oo, oa, ob, n, ia, na, nb)
        elif o == T.FLOOR_DIVIDE: zip_bwd(B.FLOOR_DIVIDE, vals, adj, ints, oo, oa, ob, n, ia, na, nb)
        elif o == T.ARCTAN2:      zip_bwd(B.ARCTAN2, vals, adj, ints, oo, oa, ob, n, ia, na, nb)
        elif o == T.HYPOT:        zip_bwd(B.HYPOT, vals, adj, ints, oo, oa, ob, n, ia, na, nb)
        elif o == T.LOGADDEXP:    zip_bwd(B.LOGADDEXP, vals, adj, ints, oo, oa, ob, n, ia, na, nb)
        elif o == T.LOGADDEXP2:   zip_bwd(B.LOGADDEXP2, vals, adj, ints, oo, oa, ob, n, ia, na, nb)
        elif o == T.SUM:          B.SUM(vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, prog[e, 7])
        elif o == T.MAX:          B.MAX(vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, prog[e, 7])
        elif o == T.LOGSUMEXP:    B.LOGSUMEXP(vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, prog[e, 7])
        elif o == T.SOFTMAX:      B.SOFTMAX(vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, prog[e, 7])
        elif o == T.CUMSUM:       B.CUMSUM(vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, prog[e, 7])
        elif o == T.CUMPROD:      B.CUMPROD(vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, prog[e, 7])
        elif o == T.MATMUL:       B.MATMUL(vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, prog[e, 7])
        elif o == T.GATHER:       B.GATHER(vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, prog[e, 7])
        elif o == T.GUARD_LT:     B.GUARD_LT(vals, adj, oa, ob)
        elif o == T.GUARD_LE:     B.GUARD_LE(vals, adj, oa, ob)
        elif o == T.GUARD_GT:     B.GUARD_GT(vals, adj, oa, ob)
        elif o == T.GUARD_GE:     B.GUARD_GE(vals, adj, oa, ob)
        elif o == T.GUARD_EQ:     B.GUARD_EQ(vals, adj, oa, ob)
        elif o == T.GUARD_NE:     B.GUARD_NE(vals, adj, oa, ob)
        elif o == T.CONCAT:       B.CONCAT(vals, adj, ints, ia, oa, oo, n)
        elif o == T.SOLVE:        B.SOLVE(vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, prog[e, 7])
        elif o == T.INV:          B.INV(vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, prog[e, 7])
        elif o == T.DET:          B.DET(vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, prog[e, 7])
        elif o == T.SLOGDET:      B.SLOGDET(vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, prog[e, 7])
        elif o == T.CHOLESKY:     B.CHOLESKY(vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, prog[e, 7])
        elif o == T.EIGH:         B.EIGH(vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, prog[e, 7])
        elif o == T.SVD:          B.SVD(vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, prog[e, 7])
        elif o == T.PINV:         B.PINV(vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, prog[e, 7])
