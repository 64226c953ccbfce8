"""Fused elementwise segments: a run of elementwise rows, and the sum that closes it, run
chunk by chunk with their intermediate values and adjoints kept in a small scratch block.

A program row of n elements reads and writes n-element arrays of the arena: at n = 10**6
each row is a pass over memory, forward and again backward, and a chain of them is bound
by memory traffic, not arithmetic.  ``tapegrad.fusion`` finds runs of elementwise rows
whose intermediates nothing else reads and describes each run as a *template*: the run's
rows with every intermediate's offset moved to a scratch block past the arena's end.  The
kernels here run the template one chunk of elements at a time, through the interpreter's
own ``forward_sweep`` and ``backward_sweep`` (nothing of the sweeps is duplicated):

* forward: compute the chunk, add it to the closing sum;
* backward: recompute the chunk's values (rematerialisation: cheaper than storing and
  re-reading them), seed the sum's operand with the sum's adjoint, sweep the chunk backward.

Only the segment's inputs and its adjoints' destinations touch the arena, once per sweep.

Invariants
----------
* Each element is computed by the same rule from the same operands, and each adjoint
  element receives the same contributions in the same order (``tapegrad.fusion`` checks
  the order before it fuses), so results equal the unfused sweeps bit for bit.  The sum
  adds ``jit.ops_reduce.SUM_BLOCK`` blocks in order and chunks are whole blocks, so a sum
  taken chunk by chunk is the sum taken at once.
* ``tmpl`` rows are program rows; ``shift[r, k]`` is 1 where column k + 1 (out, a, b) of row
  r is an arena offset that moves with the chunk, 0 for a scratch offset or a broadcast
  scalar.  ``cprog`` is the caller's buffer of ``tmpl``'s shape (a tape is replayed from
  several threads at once: nothing here is shared).
* ``meta`` = (n, chunk, sum operand, its shift, sum output or -1, sum operand's mode);
  ``ints_full``/``ints_last`` hold the zip rows' broadcast patterns for a full chunk and
  for the last one.  ``zslots`` are the scratch adjoints to clear per chunk (those the
  unfused sweep would have cleared once).
* If ``dispatch`` is stale, these kernels are the function raising the regeneration
  message, as the sweeps are then.
"""
from .compile import kernel, rule
from .interpreter import load_sweeps
from .ops_reduce import lanes_sum

_forward, _backward = load_sweeps()


@rule
def _patch(tmpl, shift, cprog, c0, size):
    """cprog = tmpl moved to the chunk starting at element c0, of ``size`` elements."""
    for r in range(tmpl.shape[0]):
        for k in range(tmpl.shape[1]):
            cprog[r, k] = tmpl[r, k]
        cprog[r, 1] += shift[r, 0] * c0
        cprog[r, 2] += shift[r, 1] * c0
        cprog[r, 3] += shift[r, 2] * c0
        cprog[r, 4] = size


def _fused_forward(tmpl, shift, cprog, attrs, ints_full, ints_last, vals, ext, meta, scale):
    n, chunk, src, src_shift, out = meta[0], meta[1], meta[2], meta[3], meta[4]
    s = 0.0
    for c0 in range(0, n, chunk):
        size = min(chunk, n - c0)
        _patch(tmpl, shift, cprog, c0, size)
        _forward(cprog, attrs, ints_full if size == chunk else ints_last, vals, ext, 0)
        if out >= 0:
            s = lanes_sum(s, vals, src + src_shift * c0, size)
    if out >= 0:
        vals[out] = scale * s


def _fused_backward(tmpl, shift, cprog, attrs, ints_full, ints_last, vals, adj, ext, meta, scale,
                    zslots, nozero, noseed, also_forward):
    """With ``also_forward`` (the closing sum is the output, its adjoint the seed already
    in place) the chunks' forward sweep is the forward pass too: one pass over the
    segment's inputs instead of two."""
    n, chunk, src, src_shift, out, mode = meta[0], meta[1], meta[2], meta[3], meta[4], meta[5]
    g = scale * adj[out] if out >= 0 else 0.0
    s = 0.0
    for c0 in range(0, n, chunk):
        size = min(chunk, n - c0)
        _patch(tmpl, shift, cprog, c0, size)
        ints = ints_full if size == chunk else ints_last
        _forward(cprog, attrs, ints, vals, ext, 0)
        if also_forward and out >= 0:
            s = lanes_sum(s, vals, src + src_shift * c0, size)
        for z in range(zslots.shape[0]):
            for j in range(size):
                adj[zslots[z] + j] = 0.0
        if out >= 0 and mode != 0:  # the closing sum's backward: its operand gets g
            ga = adj[src + src_shift * c0:src + src_shift * c0 + size]
            for j in range(size):
                ga[j] += g
        _backward(cprog, attrs, ints, vals, adj, nozero, 0, noseed, ext)
    if also_forward and out >= 0:
        vals[out] = scale * s


if hasattr(_forward, "py_func"):
    fused_forward, fused_backward = kernel(_fused_forward), kernel(_fused_backward)
else:
    fused_forward = fused_backward = _forward
