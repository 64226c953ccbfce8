"""The loops of the points-minor (SoA) batched sweeps that the one-point loops cannot do.

In the points-minor layout of a batched program (``tapegrad.batchprog``) element j of point
b of a node at one-point offset o sits at ``cap * (o + j) + b``: every one-point offset is
scaled by ``cap`` and the point index is the fastest axis.  So a node of n elements, view
or whole storage, is one contiguous run of ``n * cap`` floats, and the one-point loops of
the elementwise families run unchanged over it (the generated sweeps call them with
``n * cap``).  The entries whose element order matters get a loop here that keeps, for
each point, the exact sequence of float operations of the one-point rule, with the point
index innermost so that it vectorises:

* a zip entry with an operand broadcast along its rows (the one-point loop sums that
  operand's adjoint over the row before adding it: ``work`` holds one partial sum per
  point);
* SUM over contiguous rows (post = 1): the one-point rule adds blocks of ``SUM_BLOCK``
  elements, each summed in 8 interleaved lanes (``ops_reduce.lanes_block``); here the 8
  lanes and the running sum are vectors of the chunk's points in ``work``;
* GATHER: element j copies element idx[j], a run of ``cap`` points each.

Invariants
----------
* Point b of every operand and output is only ever combined with point b of the others:
  the slots of points past ``npts`` (the last chunk's unused ones) hold stale but
  harmless values and never reach a used slot.
* Per point, every element is computed by the same scalar rule from the same operands,
  and every adjoint element receives the same terms in the same order as in the
  one-point loop (the tests compare bit for bit).
* ``work`` holds at least ``9 * cap`` floats and belongs to the calling thread.
"""
from .compile import rule
from .ops_elementwise import put, zip_bwd_block, zip_fwd_block
from .ops_reduce import SUM_BLOCK, sum_bwd_inner, sum_fwd

SOA_WORK = 9  # floats of ``work`` per point of a chunk: SUM's running sum and 8 lanes


@rule
def soa_zip_fwd(f, vals, ints, oo, oa, ob, ia, cap):
    """``ints[ia:]``: the points-minor pattern (d0, d1 * cap, sa0 * cap, 1, sb0 * cap, 1) of
    an entry without a broadcast along rows, else the one-point pattern."""
    d0, d1, sa0, sa1, sb0, sb1 = ints[ia], ints[ia + 1], ints[ia + 2], ints[ia + 3], ints[ia + 4], ints[ia + 5]
    if sa1 == 1 and sb1 == 1:
        zip_fwd_block(f, vals, ints, oo, oa, ob, ia)
        return
    for i in range(d0):
        for k in range(d1):
            jo, ja, jb = oo + (i * d1 + k) * cap, oa + (i * sa0 + k * sa1) * cap, ob + (i * sb0 + k * sb1) * cap
            y, a, b = vals[jo:jo + cap], vals[ja:ja + cap], vals[jb:jb + cap]
            for t in range(cap):
                y[t] = f(a[t], b[t])


@rule
def soa_zip_bwd(df, vals, adj, ints, oo, oa, ob, ia, need_a, need_b, cap, work):
    """As ``ops_elementwise.zip_bwd_block``, per point: a broadcast operand's adjoint is the
    row's sum, taken from 0.0 in row order and then added (never SET)."""
    d0, d1, sa0, sa1, sb0, sb1 = ints[ia], ints[ia + 1], ints[ia + 2], ints[ia + 3], ints[ia + 4], ints[ia + 5]
    if sa1 == 1 and sb1 == 1:
        zip_bwd_block(df, vals, adj, ints, oo, oa, ob, ia, need_a, need_b)
        return
    sa, sb = work[0:cap], work[cap:2 * cap]
    for i in range(d0):
        sa[:] = 0.0
        sb[:] = 0.0
        for k in range(d1):
            jo, ja, jb = oo + (i * d1 + k) * cap, oa + (i * sa0 + k * sa1) * cap, ob + (i * sb0 + k * sb1) * cap
            g, y, a, b = adj[jo:jo + cap], vals[jo:jo + cap], vals[ja:ja + cap], vals[jb:jb + cap]
            ga, gb = adj[ja:ja + cap], adj[jb:jb + cap]
            for t in range(cap):
                da, db = df(g[t], a[t], b[t], y[t])
                if sa1 == 0:
                    sa[t] += da
                else:
                    put(ga, t, da, need_a)
                if sb1 == 0:
                    sb[t] += db
                else:
                    put(gb, t, db, need_b)
        ja, jb = oa + i * sa0 * cap, ob + i * sb0 * cap
        if sa1 == 0:
            for t in range(cap):
                put(adj, ja + t, sa[t], need_a)
        if sb1 == 0:
            for t in range(cap):
                put(adj, jb + t, sb[t], need_b)


@rule
def soa_sum_fwd(vals, ints, oo, oa, ia, p, ext, npts, cap, work):
    """SUM; ``ints[ia:]`` is (pre, m, post * cap).  Rows of post > 1 elements are summed as
    the one-point rule sums them (a running sum per column, the columns now post * cap);
    contiguous rows (post = 1) as ``ops_reduce.lanes_sum`` sums each point's row."""
    pre, m, post = ints[ia], ints[ia + 1], ints[ia + 2]
    if post != cap:
        sum_fwd(vals, ints, oo, oa, 0, 0, ia, p, 0.0, ext, 0)
        return
    s = work[0:npts]
    r0, r1, r2, r3 = work[cap:cap + npts], work[2 * cap:2 * cap + npts], work[3 * cap:3 * cap + npts], work[4 * cap:4 * cap + npts]
    r4, r5, r6, r7 = work[5 * cap:5 * cap + npts], work[6 * cap:6 * cap + npts], work[7 * cap:7 * cap + npts], work[8 * cap:8 * cap + npts]
    for i in range(pre):
        s[:] = 0.0
        row = oa + i * m * cap
        for blk in range(0, m, SUM_BLOCK):
            size = min(SUM_BLOCK, m - blk)
            top = size - size % 8
            r0[:] = 0.0
            r1[:] = 0.0
            r2[:] = 0.0
            r3[:] = 0.0
            r4[:] = 0.0
            r5[:] = 0.0
            r6[:] = 0.0
            r7[:] = 0.0
            for k in range(0, top, 8):
                at = row + (blk + k) * cap
                a0, a1, a2, a3 = vals[at:at + npts], vals[at + cap:at + cap + npts], vals[at + 2 * cap:at + 2 * cap + npts], vals[at + 3 * cap:at + 3 * cap + npts]
                at += 4 * cap
                a4, a5, a6, a7 = vals[at:at + npts], vals[at + cap:at + cap + npts], vals[at + 2 * cap:at + 2 * cap + npts], vals[at + 3 * cap:at + 3 * cap + npts]
                for t in range(npts):
                    r0[t] += a0[t]
                    r1[t] += a1[t]
                    r2[t] += a2[t]
                    r3[t] += a3[t]
                    r4[t] += a4[t]
                    r5[t] += a5[t]
                    r6[t] += a6[t]
                    r7[t] += a7[t]
            for t in range(npts):
                r0[t] = ((r0[t] + r1[t]) + (r2[t] + r3[t])) + ((r4[t] + r5[t]) + (r6[t] + r7[t]))
            for k in range(top, size):
                at = row + (blk + k) * cap
                a = vals[at:at + npts]
                for t in range(npts):
                    r0[t] += a[t]
            for t in range(npts):
                s[t] += r0[t]
        y = vals[oo + i * cap:oo + i * cap + npts]
        for t in range(npts):
            y[t] = p * s[t]


@rule
def soa_sum_bwd(adj, ints, oo, oa, ia, p):
    """SUM's adjoint, ``ints[ia:]`` = (pre, m, post * cap): each operand element adds
    ``p * g`` (the product the one-point rule adds), here over array views, so that it
    vectorises."""
    sum_bwd_inner(adj, oo, oa, ints[ia], ints[ia + 1], ints[ia + 2], p)


@rule
def soa_gather_fwd(vals, ints, oo, oa, n, ia, cap):
    for j in range(n):
        src, dst = oa + ints[ia + j] * cap, oo + j * cap
        a, y = vals[src:src + cap], vals[dst:dst + cap]
        for t in range(cap):
            y[t] = a[t]


@rule
def soa_gather_bwd(adj, ints, oo, oa, n, ia, cap):
    for j in range(n):  # a scatter-add in j order, as the one-point rule
        src, dst = oo + j * cap, oa + ints[ia + j] * cap
        g, ga = adj[src:src + cap], adj[dst:dst + cap]
        for t in range(cap):
            ga[t] += g[t]
