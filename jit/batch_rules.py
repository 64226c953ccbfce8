"""The per-family loops of the batched sweeps: one entry, applied to ``npts`` points.

A batched program (``tapegrad.batchprog``) lays out ``cap`` copies of each storage of the
tape side by side: the copy for point b of a node whose storage has per-point size s
starts ``b * s`` after point 0's.  So each operand of an entry has a point-0 offset (in the
program row) and a per-point stride (its storage's size; ``strides`` columns so, sa, sb).
An entry runs either

* *flat*: the output and every operand are whole storages of the output's size, so the
  ``npts`` copies are one contiguous run of ``n * npts`` elements and an elementwise
  entry is a single loop over all of them (scalar programs become vector programs); or
* *per point*: the row's own kernel once per point, offsets advanced by the strides.

Either way each element is computed by the same rule, with the same operands, in the
same order as the one-point sweep computes it, so a batched result equals the one-point
result bit for bit (the tests check this).

Invariants
----------
* Per point, an n-ary (select, variadic) entry reads its operand offsets from the int
  arena; ``patch`` writes point b's offsets there (rows ``(position, point-0 offset,
  stride)`` of ``nary[n0:n1]``) and the loops put point 0's back afterwards, so the
  arena a sweep leaves behind is the one it was given.  ``ints`` is therefore the
  calling thread's own copy.
* ``pat`` is the calling thread's 6-int scratch: the trivial broadcast pattern of a flat
  zip entry over ``n * npts`` elements.
* A guard marks ``failed[b]`` for each point where it does not hold; the sweep goes on
  (other points may be fine), and the caller discards those points' results.
"""
from .compile import rule
from .ops_elementwise import map_bwd, map_fwd, zip_bwd, zip_bwd_block, zip_fwd, zip_fwd_block
from .ops_guard import guard_fails


@rule
def patch(ints, nary, n0, n1, b):
    for r in range(n0, n1):
        ints[nary[r, 0]] = nary[r, 1] + b * nary[r, 2]


@rule
def map_fwd_b(f, vals, oo, oa, n, p, q, npts, so, sa, flat):
    if flat:
        map_fwd(f, vals, oo, oa, n * npts, p, q)
    else:
        for b in range(npts):
            map_fwd(f, vals, oo + b * so, oa + b * sa, n, p, q)


@rule
def map_bwd_b(df, vals, adj, oo, oa, n, p, q, mode, npts, so, sa, flat):
    if flat:
        map_bwd(df, vals, adj, oo, oa, n * npts, p, q, mode)
    else:
        for b in range(npts):
            map_bwd(df, vals, adj, oo + b * so, oa + b * sa, n, p, q, mode)


@rule
def zip_fwd_b(f, vals, ints, oo, oa, ob, n, ia, npts, so, sa, sb, flat, pat):
    if flat:
        pat[1] = n * npts
        zip_fwd_block(f, vals, pat, oo, oa, ob, 0)
    else:
        for b in range(npts):
            zip_fwd(f, vals, ints, oo + b * so, oa + b * sa, ob + b * sb, n, ia)


@rule
def zip_bwd_b(df, vals, adj, ints, oo, oa, ob, n, ia, na, nb, npts, so, sa, sb, flat, pat):
    if flat:
        pat[1] = n * npts
        zip_bwd_block(df, vals, adj, pat, oo, oa, ob, 0, na, nb)
    else:
        for b in range(npts):
            zip_bwd(df, vals, adj, ints, oo + b * so, oa + b * sa, ob + b * sb, n, ia, na, nb)


@rule
def select_fwd_b(f, vals, ints, ia, oo, n, npts, so, flat, nary, n0, n1):
    if flat:
        f(vals, ints, ia, oo, n * npts)
    else:
        for b in range(npts):
            patch(ints, nary, n0, n1, b)
            f(vals, ints, ia, oo + b * so, n)
        patch(ints, nary, n0, n1, 0)


@rule
def select_bwd_b(df, vals, adj, ints, ia, oo, n, npts, so, flat, nary, n0, n1):
    if flat:
        df(vals, adj, ints, ia, oo, n * npts)
    else:
        for b in range(npts):
            patch(ints, nary, n0, n1, b)
            df(vals, adj, ints, ia, oo + b * so, n)
        patch(ints, nary, n0, n1, 0)


@rule
def array_fwd_b(f, vals, ints, oo, oa, ob, n, ia, p, q, ext, npts, so, sa, sb):
    for b in range(npts):
        f(vals, ints, oo + b * so, oa + b * sa, ob + b * sb, n, ia, p, q, ext, 0)


@rule
def array_bwd_b(df, vals, adj, ints, oo, oa, ob, n, ia, p, q, na, nb, ext, npts, so, sa, sb):
    for b in range(npts):
        df(vals, adj, ints, oo + b * so, oa + b * sa, ob + b * sb, n, ia, p, q, na, nb, ext, 0)


@rule
def variadic_fwd_b(f, vals, ints, ia, oa, oo, n, npts, so, nary, n0, n1):
    for b in range(npts):
        patch(ints, nary, n0, n1, b)
        f(vals, ints, ia, oa, oo + b * so, n)
    patch(ints, nary, n0, n1, 0)


@rule
def variadic_bwd_b(df, vals, adj, ints, ia, oa, oo, n, npts, so, nary, n0, n1):
    for b in range(npts):
        patch(ints, nary, n0, n1, b)
        df(vals, adj, ints, ia, oa, oo + b * so, n)
    patch(ints, nary, n0, n1, 0)


@rule
def guard_b(f, vals, ints, oa, ob, ia, npts, sa, sb, failed):
    for b in range(npts):
        if failed[b] == 0 and guard_fails(f, vals, ints, oa + b * sa, ob + b * sb, ia):
            failed[b] = 1
