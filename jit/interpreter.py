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
* The interpreter runs a *program*: the tape's entry columns with node ids replaced by
  arena offsets, one 64-byte row per entry (``PROG_COLUMNS``), float attributes beside.
* Only nodes on a path from a differentiated input to the output (the ``need`` bits)
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

# A program row, derived from the tape's columns for the interpreter: everything one entry
# needs sits in one 64-byte row, arena offsets already looked up in the node table.
PROG_COLUMNS = ("op", "out_offset", "a_offset", "b_offset", "size", "iarg", "need", "by_reference")
# The need column: bit 0 says the output's adjoint matters at all; bits 1-2 and 3-4 say
# what to do with operand a's and b's adjoints: 0 nothing, ADD accumulate, SET overwrite
# (this entry is the first to reach that adjoint and writes all of it, so it was not zeroed).
NEED_OUT, ADD, SET, A_SHIFT, B_SHIFT = 1, 1, 2, 1, 3


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
        elif o == T.SUM:       B.SUM(vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, prog[e, 7])
        elif o == T.MAX:       B.MAX(vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, prog[e, 7])
        elif o == T.LOGSUMEXP: B.LOGSUMEXP(vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, prog[e, 7])
        elif o == T.SOFTMAX:   B.SOFTMAX(vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, prog[e, 7])
        elif o == T.MATMUL:    B.MATMUL(vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, prog[e, 7])
        elif o == T.GATHER:    B.GATHER(vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, prog[e, 7])


# --- the elementwise loops around the scalar rules -------------------------------------
# Each has a one-element path first (scalar code is all one-element entries) and then a
# loop over array views, which LLVM vectorises (index arithmetic on the whole arena would
# defeat that).  The zip loops keep their block path in a function of its own: that keeps
# the one-element path small enough for LLVM to inline into the interpreter (measured:
# 8.6 against 11.5 ns per scalar entry).
#
# A zip entry's ints are (d0, d1, sa0, sa1, sb0, sb1): the output as a C-ordered d0 x d1
# block and each operand's strides in it (0 along a broadcast axis).  The front end folds
# every broadcast that fits two axes into this; the rare rest get an explicit GATHER.

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
def zip_bwd_block(df, vals, adj, ints, oo, oa, ob, ia, need_a, need_b):
    d0, d1, sa0, sa1, sb0, sb1 = ints[ia], ints[ia + 1], ints[ia + 2], ints[ia + 3], ints[ia + 4], ints[ia + 5]
    for i in range(d0):
        jo, ja, jb = oo + i * d1, oa + i * sa0, ob + i * sb0
        g, y = adj[jo:jo + d1], vals[jo:jo + d1]
        if sa1 == 1 and sb1 == 1:
            a, b, ga, gb = vals[ja:ja + d1], vals[jb:jb + d1], adj[ja:ja + d1], adj[jb:jb + d1]
            if need_a == SET and need_b == SET:
                for k in range(d1):
                    ga[k], gb[k] = df(g[k], a[k], b[k], y[k])
            elif need_a == ADD and need_b == ADD:
                for k in range(d1):
                    da, db = df(g[k], a[k], b[k], y[k])
                    ga[k] += da
                    gb[k] += db
            else:
                for k in range(d1):
                    da, db = df(g[k], a[k], b[k], y[k])
                    put(ga, k, da, need_a)
                    put(gb, k, db, need_b)
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


@kernel(allocates=True)
def activity(out, a, b, base, diff, root):
    """(need, live) per node: live, ``root`` depends on it; need, it is live and depends on
    a differentiated input too (it lies on a path from one to ``root``).

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
    flags = np.zeros((2, n), np.uint8)
    for node in range(n):
        flags[0, node] = active[base[node]] & live[base[node]]
        flags[1, node] = live[base[node]]
    return flags
