"""One compiled call that evaluates a batched program at a range of points, chunk by chunk.

``batch_run`` is what one thread runs for ``tapegrad.batch``: for each chunk of at most
``cap`` points of ``[start, stop)`` it copies the points' inputs into the work arena,
runs the batched forward sweep (guards checked per point), the batched backward sweep,
and copies each point's value and gradients out.  No Python between chunks.

Packed arrays (all 1-d float64, ``N`` points in all): input leaf k is an ``(N, s_k)``
C-ordered block of ``xin`` starting at ``N * xcol[k]``, written to arena position
``xpos[k]`` (point 0 of the chunk); gradient leaf k likewise in ``gout`` at
``N * gcol[k]`` from ``gpos[k]`` (-1: the output does not depend on it, write zeros).
``vout[i]`` is point i's value.  With ``soa`` the program is points-minor (element j of
point b of a block at p is at ``p + j * cap + b``; ``cap`` is then the program's own) and
inputs and gradients are transposed on the way in and out; else points-major (at
``p + b * s + j``: a chunk's block is the user's rows as they are).

Invariants
----------
* ``vals``, ``adj``, ``ints``, ``pat`` and ``work`` belong to the calling thread (the
  sweeps write all of them); the program arrays are shared and only read.
* The arena positions of every operand were validated when the batched program was built
  (``tapegrad.batchprog``): no bounds checks here.
* Returns -1, or the row of a points-minor program that the sweeps have no branch for
  (nothing was computed right: the caller raises).
"""
from .batch_dispatch import (TABLE, batch_backward_sweep, batch_forward_sweep, soa_backward_sweep,
                             soa_forward_sweep)
from .compile import kernel
from .interpreter import dispatch_table

if TABLE != dispatch_table():
    raise RuntimeError("tapegrad/jit/batch_dispatch.py was generated for another op table: run "
                       "python -m tapegrad.jit.gen_dispatch")


@kernel
def batch_run(prog, attrs, ints, strides, nary, zero, root, rstride, vals, adj, pat, ext, check,
              xin, xpos, xsize, xcol, gout, gpos, gsize, gcol, vout, n_total, start, stop, cap,
              failed, soa, work):
    for c0 in range(start, stop, cap):
        npts = min(cap, stop - c0)
        for k in range(xpos.shape[0]):
            s = xsize[k]
            src, dst = n_total * xcol[k] + c0 * s, xpos[k]
            if soa:
                for j in range(s):
                    row = vals[dst + j * cap:dst + j * cap + npts]
                    for b in range(npts):
                        row[b] = xin[src + b * s + j]
            else:
                for j in range(npts * s):
                    vals[dst + j] = xin[src + j]
        if soa:
            bad = soa_forward_sweep(prog, attrs, ints, vals, ext, check, npts, cap, work,
                                    failed[c0:c0 + npts])
            if bad >= 0:
                return bad
            soa_backward_sweep(prog, attrs, ints, vals, adj, zero, root, ext, npts, cap, work)
        else:
            batch_forward_sweep(prog, attrs, ints, vals, ext, check, strides, nary, npts, pat,
                                failed[c0:c0 + npts])
            batch_backward_sweep(prog, attrs, ints, vals, adj, zero, root, rstride, ext, strides,
                                 nary, npts, pat)
        for b in range(npts):
            vout[c0 + b] = vals[root + b * rstride]
        for k in range(gpos.shape[0]):
            s = gsize[k]
            dst, src = n_total * gcol[k] + c0 * s, gpos[k]
            if src < 0:
                for j in range(npts * s):
                    gout[dst + j] = 0.0
            elif soa:
                for j in range(s):
                    row = adj[src + j * cap:src + j * cap + npts]
                    for b in range(npts):
                        gout[dst + b * s + j] = row[b]
            else:
                for j in range(npts * s):
                    gout[dst + j] = adj[src + j]
    return -1
