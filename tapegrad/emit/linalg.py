"""Linear-algebra emitters: matmul (batched, transposes as BLAS flags); dot and the other
contractions are compositions in ``tapegrad.emit.contract``.

Invariants
----------
* A 2-d transpose feeding a matmul is read through a flag, never replayed as a copy.
"""
import numpy as np

from tapegrad import shapes as S
from tapegrad.jit import CODES as C
from tapegrad.tracer import EMIT, Traced, _as_float_array, _emit, _recorder, is_number, lift
from tapegrad.emit.shape import broadcast_to



def matmul(x, y):
    rec = _recorder(x, y)
    xn, xv = lift(rec, "matmul", x)
    yn, yv = lift(rec, "matmul", y)
    m, k, n, batch, result = S.matmul_shapes(xv.shape, yv.shape)
    nbatch = int(np.prod(batch, dtype=np.int64))
    xn, xv, sa = _batch_operand(rec, xn, xv, batch, (m, k))
    yn, yv, sb = _batch_operand(rec, yn, yv, batch, (k, n))
    value = np.matmul(xv, yv)
    (xn, ta), (yn, tb) = _stored_transposed(rec, xn, sa), _stored_transposed(rec, yn, sb)
    return _emit(rec, "MATMUL", (xn, yn), value.reshape(result), ints=(m, k, n, nbatch, sa, sb, ta, tb))


def _stored_transposed(rec, node, stride):
    """(source, 1) when ``node`` is a 2-d transpose (``W.T``) of the node ``source``, else
    (node, 0).  The matmul then reads ``source`` and BLAS transposes it by a flag: the
    GATHER that copied it is left without live users and is never replayed (``X @ W.T``
    costs what ``X @ W`` does).  Only a single matrix (batch stride 0) qualifies."""
    made = rec.producer(node) if stride == 0 else None
    if made is None or made[0] != C["GATHER"]:
        return node, 0
    _, src, iarg = made
    shape, src_shape = rec.shape(node), rec.shape(src)
    if len(shape) != 2 or src_shape != shape[::-1]:
        return node, 0
    size = shape[0] * shape[1]
    if not np.array_equal(rec.int_attrs(iarg, size),
                          np.arange(size, dtype=np.int64).reshape(src_shape).T.ravel()):
        return node, 0
    return src, 1


def _batch_operand(rec, node, value, batch, core):
    """(node, value, batch stride) of a matmul operand; expands a partial batch by GATHER."""
    own = value.shape[:-2] if value.ndim > 2 else ()
    if int(np.prod(own, dtype=np.int64)) == 1:
        return node, value, 0  # one matrix serves the whole batch
    if (1,) * (len(batch) - len(own)) + tuple(own) != batch:
        full = broadcast_to(Traced(rec, node, value), batch + core)
        node, value = full._node, full._value
    return node, value, core[0] * core[1]


EMIT.matmul = matmul
