"""The tape interpreter: one forward loop and one backward loop over the entries.

The backward loop is the lectures' ``grad_table`` algorithm.  The lecture *pulls*: the
adjoint of node j is the sum, over the entries i that use j, of grad_table[i] * du_i/du_j.
Here each entry *pushes* its term into its operands' adjoints as soon as its own adjoint is
complete.  Walking the entries last to first makes that so: every user of a node comes
after it on the tape, so by the time the loop reaches the entry that made a node, all the
terms of that node's sum have been added.  Same sum, no list of children needed.

Invariants
----------
* Arrays only: the interpreter sees the tape's columns, the integer and float arenas and
  the node table; nothing else.  Opcodes are the constants of ``optable``.
* ``vals`` and ``adj`` are the caller's work buffers, never the tape's own arrays, so one
  tape can be replayed from several threads at once (the kernels release the GIL).
* Only nodes with ``need[node]`` (on a path from a differentiated input to the output)
  have their adjoints zeroed, read or written.
"""
import types

import numpy as np

from . import optable as T
from .compile import kernel, rule

# The rules as attributes of two module objects (F.EXP, B.EXP): numba resolves a module
# attribute at compile time to the function itself and inlines it.  (A tuple of functions
# would become function pointers: an indirect call per element and no on-disk cache.)
F = types.ModuleType("forward_rules")
B = types.ModuleType("backward_rules")
for _row in T.OPS:
    setattr(F, _row.name, _row.forward)
    setattr(B, _row.name, _row.backward)


@kernel
def forward_sweep(op, out, a, b, iarg, p, q, offset, size, ints, vals):
    """Recompute every entry's value, first to last (the lectures' forward pass)."""
    for e in range(op.shape[0]):
        o, oo, n, oa, ob, ia, pe, qe = op[e], offset[out[e]], size[out[e]], offset[a[e]], offset[b[e]], iarg[e], p[e], q[e]
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
        elif o == T.SUM:       F.SUM(vals, ints, oo, oa, ob, n, ia, pe, qe)
        elif o == T.MAX:       F.MAX(vals, ints, oo, oa, ob, n, ia, pe, qe)
        elif o == T.LOGSUMEXP: F.LOGSUMEXP(vals, ints, oo, oa, ob, n, ia, pe, qe)
        elif o == T.SOFTMAX:   F.SOFTMAX(vals, ints, oo, oa, ob, n, ia, pe, qe)
        elif o == T.MATMUL:    F.MATMUL(vals, ints, oo, oa, ob, n, ia, pe, qe)
        elif o == T.GATHER:    F.GATHER(vals, ints, oo, oa, ob, n, ia, pe, qe)


@kernel
def backward_sweep(op, out, a, b, iarg, p, q, offset, size, need, ints, vals, adj):
    """grad_table: walk the entries last to first, adding each one's VJP to its operands."""
    for e in range(op.shape[0] - 1, -1, -1):
        if not need[out[e]]:
            continue
        o, oo, n, oa, ob, ia, pe, qe = op[e], offset[out[e]], size[out[e]], offset[a[e]], offset[b[e]], iarg[e], p[e], q[e]
        na, nb = need[a[e]] != 0, b[e] >= 0 and need[b[e]] != 0
        if o == T.AFFINE:      map_bwd(B.AFFINE, vals, adj, oo, oa, n, pe, qe)
        elif o == T.POWC:      map_bwd(B.POWC, vals, adj, oo, oa, n, pe, qe)
        elif o == T.EXP:       map_bwd(B.EXP, vals, adj, oo, oa, n, pe, qe)
        elif o == T.LOG:       map_bwd(B.LOG, vals, adj, oo, oa, n, pe, qe)
        elif o == T.SQRT:      map_bwd(B.SQRT, vals, adj, oo, oa, n, pe, qe)
        elif o == T.SIN:       map_bwd(B.SIN, vals, adj, oo, oa, n, pe, qe)
        elif o == T.COS:       map_bwd(B.COS, vals, adj, oo, oa, n, pe, qe)
        elif o == T.TANH:      map_bwd(B.TANH, vals, adj, oo, oa, n, pe, qe)
        elif o == T.LOG1P:     map_bwd(B.LOG1P, vals, adj, oo, oa, n, pe, qe)
        elif o == T.SIGMOID:   map_bwd(B.SIGMOID, vals, adj, oo, oa, n, pe, qe)
        elif o == T.ADD:       zip_bwd(B.ADD, vals, adj, ints, oo, oa, ob, n, ia, na, nb)
        elif o == T.SUB:       zip_bwd(B.SUB, vals, adj, ints, oo, oa, ob, n, ia, na, nb)
        elif o == T.MUL:       zip_bwd(B.MUL, vals, adj, ints, oo, oa, ob, n, ia, na, nb)
        elif o == T.DIV:       zip_bwd(B.DIV, vals, adj, ints, oo, oa, ob, n, ia, na, nb)
        elif o == T.POW:       zip_bwd(B.POW, vals, adj, ints, oo, oa, ob, n, ia, na, nb)
        elif o == T.MAXIMUM:   zip_bwd(B.MAXIMUM, vals, adj, ints, oo, oa, ob, n, ia, na, nb)
        elif o == T.SUM:       B.SUM(vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb)
        elif o == T.MAX:       B.MAX(vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb)
        elif o == T.LOGSUMEXP: B.LOGSUMEXP(vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb)
        elif o == T.SOFTMAX:   B.SOFTMAX(vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb)
        elif o == T.MATMUL:    B.MATMUL(vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb)
        elif o == T.GATHER:    B.GATHER(vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb)


@kernel
def gradient(op, out, a, b, iarg, p, q, offset, size, need, ints, vals, adj, root, seed, replay):
    """Optionally replay forward, then seed adj[root] with ``seed`` and sweep backward."""
    if replay:
        forward_sweep(op, out, a, b, iarg, p, q, offset, size, ints, vals)
    for node in range(offset.shape[0]):
        if need[node]:
            adj[offset[node]:offset[node] + size[node]] = 0.0
    adj[offset[root]:offset[root] + size[root]] = seed
    backward_sweep(op, out, a, b, iarg, p, q, offset, size, need, ints, vals, adj)


# --- the elementwise loops around the scalar rules -------------------------------------
# A zip entry's ints are (d0, d1, sa0, sa1, sb0, sb1): the output as a C-ordered d0 x d1
# block and each operand's strides in it (0 along a broadcast axis).  The front end folds
# every broadcast that fits two axes into this; the rare rest get an explicit GATHER.

@rule
def map_fwd(f, vals, oo, oa, n, p, q):
    for j in range(n):
        vals[oo + j] = f(vals[oa + j], p, q)


@rule
def map_bwd(df, vals, adj, oo, oa, n, p, q):
    for j in range(n):
        adj[oa + j] += df(adj[oo + j], vals[oa + j], vals[oo + j], p, q)


@rule
def zip_fwd(f, vals, ints, oo, oa, ob, n, ia):
    if n == 1:  # scalar code: skip the pattern
        vals[oo] = f(vals[oa], vals[ob])
        return
    d0, d1, sa0, sa1, sb0, sb1 = ints[ia], ints[ia + 1], ints[ia + 2], ints[ia + 3], ints[ia + 4], ints[ia + 5]
    for i in range(d0):
        jo, ja, jb = oo + i * d1, oa + i * sa0, ob + i * sb0
        if sa1 == 1 and sb1 == 1:  # the common contiguous cases, written out so they vectorise
            for k in range(d1):
                vals[jo + k] = f(vals[ja + k], vals[jb + k])
        elif sb1 == 0:
            vb = vals[jb]
            for k in range(d1):
                vals[jo + k] = f(vals[ja + k * sa1], vb)
        elif sa1 == 0:
            va = vals[ja]
            for k in range(d1):
                vals[jo + k] = f(va, vals[jb + k * sb1])
        else:
            for k in range(d1):
                vals[jo + k] = f(vals[ja + k * sa1], vals[jb + k * sb1])


@rule
def zip_bwd(df, vals, adj, ints, oo, oa, ob, n, ia, need_a, need_b):
    if n == 1:
        da, db = df(adj[oo], vals[oa], vals[ob], vals[oo])
        if need_a:
            adj[oa] += da
        if need_b:
            adj[ob] += db
        return
    d0, d1, sa0, sa1, sb0, sb1 = ints[ia], ints[ia + 1], ints[ia + 2], ints[ia + 3], ints[ia + 4], ints[ia + 5]
    for i in range(d0):
        jo, ja, jb = oo + i * d1, oa + i * sa0, ob + i * sb0
        for k in range(d1):
            da, db = df(adj[jo + k], vals[ja + k * sa1], vals[jb + k * sb1], vals[jo + k])
            if need_a:
                adj[ja + k * sa1] += da
            if need_b:
                adj[jb + k * sb1] += db


@kernel
def activity(out, a, b, base, diff, root):
    """need[node]: the node lies on a path from a differentiated input to ``root``.

    Decided per storage (``base``) so that a reshape alias and its source agree.
    """
    n = base.shape[0]
    active = np.zeros(n, np.uint8)
    live = np.zeros(n, np.uint8)
    for node in diff:
        active[base[node]] = 1
    for e in range(out.shape[0]):
        if active[base[a[e]]] or (b[e] >= 0 and active[base[b[e]]]):
            active[base[out[e]]] = 1
    live[base[root]] = 1
    for e in range(out.shape[0] - 1, -1, -1):
        if live[base[out[e]]]:
            live[base[a[e]]] = 1
            if b[e] >= 0:
                live[base[b[e]]] = 1
    need = np.zeros(n, np.uint8)
    for node in range(n):
        need[node] = active[base[node]] & live[base[node]]
    return need
