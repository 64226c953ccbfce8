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

TABLE = (('AFFINE', 'map'), ('POWC', 'map'), ('EXP', 'map'), ('LOG', 'map'), ('SQRT', 'map'), ('SIN', 'map'), ('COS', 'map'), ('TANH', 'map'), ('LOG1P', 'map'), ('SIGMOID', 'map'), ('ADD', 'zip'), ('SUB', 'zip'), ('MUL', 'zip'), ('DIV', 'zip'), ('POW', 'zip'), ('MAXIMUM', 'zip'), ('WHERE', 'select'), ('SUM', 'reduce'), ('MAX', 'reduce'), ('LOGSUMEXP', 'reduce'), ('SOFTMAX', 'reduce'), ('MATMUL', 'linalg'), ('GATHER', 'index'))


@kernel
def forward_sweep(prog, attrs, ints, vals, ext):
    """Recompute every entry's value, first to last (the lectures' forward pass)."""
    for e in range(prog.shape[0]):
        o, oo, oa, ob, n, ia = prog[e, 0], prog[e, 1], prog[e, 2], prog[e, 3], prog[e, 4], prog[e, 5]
        pe, qe = attrs[e, 0], attrs[e, 1]
        if o == T.AFFINE:      map_fwd(F.AFFINE, vals, oo, oa, n, pe, qe)
        elif o == T.POWC:      map_fwd(F.POWC, vals, oo, oa, n, pe, qe)
        elif o == T.EXP:       map_fwd(F.EXP, vals, oo, oa, n, pe, qe)
        elif o == T.LOG:       map_fwd(F.LOG, vals, oo, oa, n, pe, qe)
        elif o == T.SQRT:      map_fwd(F.SQRT, vals, oo, oa, n, pe, qe)
        elif o == T.SIN:       map_fwd(F.SIN, vals, oo, oa, n, pe, qe)
        elif o == T.COS:       map_fwd(F.COS, vals, oo, oa, n, pe, qe)
        elif o == T.TANH:      map_fwd(F.TANH, vals, oo, oa, n, pe, qe)
        elif o == T.LOG1P:     map_fwd(F.LOG1P, vals, oo, oa, n, pe, qe)
        elif o == T.SIGMOID:   map_fwd(F.SIGMOID, vals, oo, oa, n, pe, qe)
        elif o == T.ADD:       zip_fwd(F.ADD, vals, ints, oo, oa, ob, n, ia)
        elif o == T.SUB:       zip_fwd(F.SUB, vals, ints, oo, oa, ob, n, ia)
        elif o == T.MUL:       zip_fwd(F.MUL, vals, ints, oo, oa, ob, n, ia)
        elif o == T.DIV:       zip_fwd(F.DIV, vals, ints, oo, oa, ob, n, ia)
        elif o == T.POW:       zip_fwd(F.POW, vals, ints, oo, oa, ob, n, ia)
        elif o == T.MAXIMUM:   zip_fwd(F.MAXIMUM, vals, ints, oo, oa, ob, n, ia)
        elif o == T.WHERE:     F.WHERE(vals, ints, ia, oo, n)
        elif o == T.SUM:       F.SUM(vals, ints, oo, oa, ob, n, ia, pe, qe, ext, prog[e, 7])
        elif o == T.MAX:       F.MAX(vals, ints, oo, oa, ob, n, ia, pe, qe, ext, prog[e, 7])
        elif o == T.LOGSUMEXP: F.LOGSUMEXP(vals, ints, oo, oa, ob, n, ia, pe, qe, ext, prog[e, 7])
        elif o == T.SOFTMAX:   F.SOFTMAX(vals, ints, oo, oa, ob, n, ia, pe, qe, ext, prog[e, 7])
        elif o == T.MATMUL:    F.MATMUL(vals, ints, oo, oa, ob, n, ia, pe, qe, ext, prog[e, 7])
        elif o == T.GATHER:    F.GATHER(vals, ints, oo, oa, ob, n, ia, pe, qe, ext, prog[e, 7])


@kernel
def backward_sweep(prog, attrs, ints, vals, adj, zero, root, seed, ext):
    """grad_table: seed the output's adjoint, then walk the entries last to first, adding
    each one's vector-Jacobian product to its operands' adjoints.

    ``zero`` lists the (start, stop) arena blocks to clear first: the adjoints that will
    be accumulated into.  ``seed`` goes to adj[root:]: 1.0 for a gradient, a unit vector
    for a row of a Jacobian.
    """
    for r in range(zero.shape[0]):
        for j in range(zero[r, 0], zero[r, 1]):
            adj[j] = 0.0
    for j in range(seed.shape[0]):
        adj[root + j] = seed[j]
    for e in range(prog.shape[0] - 1, -1, -1):
        need = prog[e, 6]
        if need == 0:  # no differentiated input upstream, or no path to the output
            continue
        o, oo, oa, ob, n, ia = prog[e, 0], prog[e, 1], prog[e, 2], prog[e, 3], prog[e, 4], prog[e, 5]
        pe, qe, na, nb = attrs[e, 0], attrs[e, 1], (need >> A_SHIFT) & 3, (need >> B_SHIFT) & 3
        if o == T.AFFINE:      map_bwd(B.AFFINE, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.POWC:      map_bwd(B.POWC, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.EXP:       map_bwd(B.EXP, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.LOG:       map_bwd(B.LOG, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.SQRT:      map_bwd(B.SQRT, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.SIN:       map_bwd(B.SIN, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.COS:       map_bwd(B.COS, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.TANH:      map_bwd(B.TANH, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.LOG1P:     map_bwd(B.LOG1P, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.SIGMOID:   map_bwd(B.SIGMOID, vals, adj, oo, oa, n, pe, qe, na)
        elif o == T.ADD:       zip_bwd(B.ADD, vals, adj, ints, oo, oa, ob, n, ia, na, nb)
        elif o == T.SUB:       zip_bwd(B.SUB, vals, adj, ints, oo, oa, ob, n, ia, na, nb)
        elif o == T.MUL:       zip_bwd(B.MUL, vals, adj, ints, oo, oa, ob, n, ia, na, nb)
        elif o == T.DIV:       zip_bwd(B.DIV, vals, adj, ints, oo, oa, ob, n, ia, na, nb)
        elif o == T.POW:       zip_bwd(B.POW, vals, adj, ints, oo, oa, ob, n, ia, na, nb)
        elif o == T.MAXIMUM:   zip_bwd(B.MAXIMUM, vals, adj, ints, oo, oa, ob, n, ia, na, nb)
        elif o == T.WHERE:     B.WHERE(vals, adj, ints, ia, oo, n)
        elif o == T.SUM:       B.SUM(vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, prog[e, 7])
        elif o == T.MAX:       B.MAX(vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, prog[e, 7])
        elif o == T.LOGSUMEXP: B.LOGSUMEXP(vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, prog[e, 7])
        elif o == T.SOFTMAX:   B.SOFTMAX(vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, prog[e, 7])
        elif o == T.MATMUL:    B.MATMUL(vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, prog[e, 7])
        elif o == T.GATHER:    B.GATHER(vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, prog[e, 7])
