"""A Jacobian's rows in one compiled call: the backward sweep once per output element.

``tapegrad.replay`` builds a Jacobian (and so a Hessian, the Jacobian of a recorded
gradient tape) row by row, row i being the gradient of output element i.  Each sweep is
cheap for the small tapes a Hessian is taken of, so calling the sweep from Python once
per row cost more than the sweeps themselves (about 3 us of call overhead a row).  Here
the loop over rows runs in machine code around the interpreter's own ``backward_sweep``
(nothing of the sweep is duplicated).

Invariants
----------
* Row i is exactly what one Python-level backward sweep seeded with the unit vector e_i
  gives: the same kernel, the same ``zero`` list, the same arena.
* ``seed`` is the caller's zeroed buffer of the output's size (kernels do not allocate);
  it is all zeros again on return.
* If ``dispatch`` is stale (generated for another op table), ``jacobian_rows`` is the
  function that raises the regeneration message, as ``backward_sweep`` is then.
"""
from .compile import kernel
from .interpreter import load_sweeps

_backward = load_sweeps()[1]


def _rows(prog, attrs, ints, vals, adj, zero, root, seed, ext, blocks, jac):
    """For i < seed.shape[0]: sweep seeded with e_i, then for each (start, size, column)
    of ``blocks`` copy adj[start:start + size] to jac[i, column:column + size]."""
    for i in range(seed.shape[0]):
        seed[i] = 1.0
        _backward(prog, attrs, ints, vals, adj, zero, root, seed, ext)
        seed[i] = 0.0
        for b in range(blocks.shape[0]):
            start, size, column = blocks[b, 0], blocks[b, 1], blocks[b, 2]
            for j in range(size):
                jac[i, column + j] = adj[start + j]


jacobian_rows = kernel(_rows) if hasattr(_backward, "py_func") else _backward
