"""Emitters of the decomposition rows (``jit/ops_decomp.py``, ``jit/ops_spectral.py``):
``linalg.solve inv det slogdet cholesky eigh eigvalsh svd svdvals pinv`` on traced values.

One entry per call, whatever the number of results: the entry writes one *packed* node
(each component for the whole stack of matrices, then the kernels' scratch; see
``jit/lapack.py``), and every result the user gets is a free alias window on it, like
``x[1:]``.  An adjoint that reaches a window lands in the packed node's adjoint, where the
backward kernel reads all components at once.

Invariants
----------
* numpy computes every value when recording, so numpy's errors (a singular matrix, a
  non-square one) are raised before anything is recorded, with numpy's own message.
* Leading axes are a stack of matrices (batch); operands are broadcast to a common stack
  before the entry (GATHER only when they differ), so kernels see equal batches.
* Only what has a gradient here is recorded: complex inputs are refused by ``lift``;
  ``svd(full_matrices=True)`` of a non-square matrix and ``hermitian=True`` raise
  (the extra columns of U or V have no derivative; JAX and autograd refuse them too).
"""
import numpy as np

from tapegrad.jit.ops_decomp import SIZES as _LU_SIZES
from tapegrad.jit.ops_spectral import SIZES as _SPECTRAL_SIZES
from tapegrad.recorder import ALIAS
from tapegrad.tracer import Traced, _emit, _recorder, lift
from tapegrad.emit.shape import broadcast_to

SIZES = {**_LU_SIZES, **_SPECTRAL_SIZES}


def _matrices(name, x, square=False):
    shape = np.shape(x)
    if len(shape) < 2:
        raise np.linalg.LinAlgError(f"{name}: {len(shape)}-dimensional array given. Array must be "
                                    "at least two-dimensional")
    if square and shape[-1] != shape[-2]:
        raise np.linalg.LinAlgError(f"{name}: last 2 dimensions of the array must be square, "
                                    f"got shape {shape}")
    return shape[:-2], shape[-2], shape[-1]


def _node(rec, name, x, shape):
    """The node of operand ``x`` broadcast to ``shape`` (by GATHER if it must grow)."""
    if isinstance(x, Traced):
        if x.shape != shape:
            x = broadcast_to(x, shape)
        return x._node
    return lift(rec, name, np.broadcast_to(np.asarray(x, dtype=np.float64), shape))[0]


def _eager(x):
    return x._value if isinstance(x, Traced) else np.asarray(x, dtype=np.float64)


def _record(rec, name, nodes, stack, comps, m, n, r=0, floats=()):
    """One ``name`` entry reading ``nodes`` (a stack ``stack`` of matrices each) whose
    components have the eager values ``comps``; returns one Traced window per component."""
    count = int(np.prod(stack, dtype=np.int64))
    sizes, scratch = SIZES[name](m, n, r)
    parts = [np.ascontiguousarray(c, dtype=np.float64).ravel() for c in comps]
    assert [p.size for p in parts] == [count * size for size in sizes[:len(parts)]], name
    out = _emit(rec, name, nodes, np.concatenate(parts + [np.zeros(scratch)]), ints=(count, m, n, r),
                floats=floats)
    results, start = [], 0
    for part, comp, size in zip(parts, comps, sizes):
        value = part.reshape(np.shape(comp))
        results.append(Traced(rec, rec.node(value, ALIAS, base=out._node, start=start), value))
        start += count * size
    return results


def _square(name, a):
    rec = _recorder(a)
    stack, n, _ = _matrices(name, a, square=True)
    return rec, stack, n, (_node(rec, name, a, stack + (n, n)),)


def solve(a, b):
    """numpy.linalg.solve: ``b`` is one vector when 1-d, else a stack of (n, r) matrices
    broadcast against ``a``'s stack (numpy >= 2)."""
    value = np.linalg.solve(_eager(a), _eager(b))  # numpy's checks and errors first
    rec = _recorder(a, b)
    stack_a, n, _ = _matrices("solve", a, square=True)
    vector = np.ndim(b) == 1
    if vector:
        stack, r = stack_a, 1
        b = b.reshape(n, 1) if isinstance(b, Traced) else np.reshape(b, (n, 1))
    else:
        stack, r = np.broadcast_shapes(stack_a, np.shape(b)[:-2]), np.shape(b)[-1]
    nodes = (_node(rec, "solve", a, stack + (n, n)), _node(rec, "solve", b, stack + (n, r)))
    x, = _record(rec, "SOLVE", nodes, stack, [value.reshape(stack + (n, r))], n, n, r)
    return x.reshape(value.shape) if vector else x


def inv(a):
    value = np.linalg.inv(_eager(a))
    rec, stack, n, nodes = _square("inv", a)
    return _record(rec, "INV", nodes, stack, [value], n, n)[0]


def det(a):
    value = np.linalg.det(_eager(a))
    rec, stack, n, nodes = _square("det", a)
    return _record(rec, "DET", nodes, stack, [np.asarray(value)], n, n)[0]


def slogdet(a):
    """(sign, logabsdet) as numpy's ``SlogdetResult``: one SLOGDET entry; the sign is flat."""
    result = np.linalg.slogdet(_eager(a))
    rec, stack, n, nodes = _square("slogdet", a)
    return type(result)(*_record(rec, "SLOGDET", nodes, stack, [np.asarray(v) for v in result], n, n))


def cholesky_lower(a):
    """The lower factor, from ``a``'s lower triangle (``upper=True`` is a transpose of this
    on the transposed matrix, in ``tapegrad.numpy_linalg``)."""
    value = np.linalg.cholesky(_eager(a))
    rec, stack, n, nodes = _square("cholesky", a)
    return _record(rec, "CHOLESKY", nodes, stack, [value], n, n)[0]


def eigh_lower(a):
    """(w, V) as numpy's ``EighResult``, from ``a``'s lower triangle."""
    result = np.linalg.eigh(_eager(a))
    rec, stack, n, nodes = _square("eigh", a)
    return type(result)(*_record(rec, "EIGH", nodes, stack, list(result), n, n))


def svd(a, full_matrices=True, compute_uv=True, hermitian=False):
    if hermitian:
        raise TypeError("svd: hermitian=True is not supported on traced values (use "
                        "hermitian=False, or eigh for a symmetric matrix)")
    rec = _recorder(a)
    stack, m, n = _matrices("svd", a)
    if compute_uv and full_matrices and m != n:
        raise NotImplementedError(
            f"svd: full_matrices=True of a non-square ({m}, {n}) matrix is not differentiable "
            "(the extra columns of U or Vh are not determined by the matrix); pass "
            "full_matrices=False, as JAX and autograd require")
    result = np.linalg.svd(_eager(a), full_matrices=False)
    u, s, vh = _record(rec, "SVD", (_node(rec, "svd", a, stack + (m, n)),), stack, list(result), m, n)
    return type(result)(u, s, vh) if compute_uv else s


def pinv(a, rcond):
    """numpy.linalg.pinv with ``rcond`` already resolved to one number."""
    value = np.linalg.pinv(_eager(a), rcond=rcond)
    rec = _recorder(a)
    stack, m, n = _matrices("pinv", a)
    node = _node(rec, "pinv", a, stack + (m, n))
    return _record(rec, "PINV", (node,), stack, [value], m, n, floats=(float(rcond),))[0]
