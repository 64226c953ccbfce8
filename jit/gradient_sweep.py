"""Forward and backward sweep in one compiled call: what a gradient replay runs.

A call into a numba kernel costs about 0.3 us before the kernel starts (numba types each
array argument), as much as a whole scalar program's sweep.  A replayed gradient needs
both sweeps, so it makes one call instead of two (the lecture function's cached gradient:
0.80 -> 0.57 us for the two sweeps).  Nothing of the sweeps is duplicated: this calls the
generated ``forward_sweep`` and ``backward_sweep``.

Invariants
----------
* Same results as ``forward_sweep`` followed, if it returned -1, by ``backward_sweep``;
  the returned value is ``forward_sweep``'s (the failed guard's program row, or -1).
* If ``dispatch`` is stale, ``gradient_sweep`` is the function raising the regeneration
  message, as the sweeps are then.
"""
from .compile import kernel
from .interpreter import load_sweeps

_forward, _backward = load_sweeps()


def _gradient_sweep(prog, attrs, ints, vals, adj, zero, root, seed, ext, check):
    failed = _forward(prog, attrs, ints, vals, ext, check)
    if failed < 0:
        _backward(prog, attrs, ints, vals, adj, zero, root, seed, ext)
    return failed


gradient_sweep = kernel(_gradient_sweep) if hasattr(_forward, "py_func") else _forward
