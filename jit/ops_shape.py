"""Variadic structure ops: CONCAT, which joins any number of operands along one axis.

A *variadic* row (``arity`` 0, family ``variadic``) reads as many operands as its entry's
operand list holds, at least one.  Its integer attributes start with that count:

    CONCAT ints: (k, pre, w_0, ..., w_{k-1})

Operand t is a C-ordered (pre, w_t) block; the output is the C-ordered (pre, W) block with
W = sum(w_t), operand t's columns placed after those of operands 0 .. t-1.  Concatenating
along axis ``ax`` of shapes ``s_t`` is pre = prod(s[:ax]), w_t = prod(s_t[ax:]).

Kernels of the family have the signatures

    forward(vals, ints, ia, own, oo, n)
    backward(vals, adj, ints, ia, own, oo, n)

``ia`` points at the operands' ``(offset, adjoint mode)`` pairs that the program lays out
for every n-ary entry (as for ``select``); ``own`` is where the entry's own integer
attributes start (the program keeps it in the row's a-offset column, unused by n-ary rows).

Invariants
----------
* ``checks.concat``: k equals the operand count, pre * w_t is operand t's size and
  pre * W the output's, so every read and write stays inside its node.
* Linear: the backward moves the output's adjoint block by block into the operands that
  need it (mode != 0), adding; it never overwrites.
"""
from . import checks as C
from .compile import rule
from .oprow import VARIADIC, Op


@rule
def total_width(ints, own, k):
    """The output's row length: the sum of the k operands' widths ``ints[own + 2:]``."""
    width = 0
    for t in range(k):
        width += ints[own + 2 + t]
    return width


@rule
def concat_fwd(vals, ints, ia, own, oo, n):
    k, pre = ints[own], ints[own + 1]
    width = total_width(ints, own, k)
    col = 0
    for t in range(k):
        w, src = ints[own + 2 + t], ints[ia + 2 * t]
        for i in range(pre):
            for j in range(w):
                vals[oo + i * width + col + j] = vals[src + i * w + j]
        col += w


@rule
def concat_bwd(vals, adj, ints, ia, own, oo, n):
    k, pre = ints[own], ints[own + 1]
    width = total_width(ints, own, k)
    col = 0
    for t in range(k):
        w, dst, mode = ints[own + 2 + t], ints[ia + 2 * t], ints[ia + 2 * t + 1]
        if mode:
            for i in range(pre):
                for j in range(w):
                    adj[dst + i * w + j] += adj[oo + i * width + col + j]
        col += w


ROWS = (
    Op("CONCAT", "variadic", VARIADIC, concat_fwd, concat_bwd,
       "join k operands (pre, w_t) blocks along their columns: concatenate, stack", C.concat),
)
