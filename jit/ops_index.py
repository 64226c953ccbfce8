"""Indexing: GATHER, which copies any selection, transpose or broadcast of its operand.

Kernels have the array-kernel signatures documented in :mod:`tapegrad.jit.oprow`.

Invariants
----------
* ints: one flat index into the operand per output element, each in [0, size(a))
  (``checks.gather``); the backward is a scatter-add, so a broadcast sums its adjoints.
* A selection contiguous in memory never becomes a GATHER: the front end makes it a free
  alias node instead.
"""
from . import checks as C
from .compile import rule
from .oprow import Op


@rule
def gather_fwd(vals, ints, oo, oa, ob, n, ia, p, q, ext, xs):
    for j in range(n):
        vals[oo + j] = vals[oa + ints[ia + j]]


@rule
def gather_bwd(vals, adj, ints, oo, oa, ob, n, ia, p, q, need_a, need_b, ext, xs):
    for j in range(n):  # a scatter-add: repeated indices (broadcasts) sum their adjoints
        adj[oa + ints[ia + j]] += adj[oo + j]


ROWS = (
    Op("GATHER", "index", 1, gather_fwd, gather_bwd, "y.flat[j] = a.flat[idx[j]]: indexing, transpose, broadcast", C.gather),
)
