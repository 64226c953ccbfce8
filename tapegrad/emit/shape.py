"""Structure emitters: reshape (a free alias), contiguous windows (free aliases), and GATHER
for every other selection, transpose and broadcast.

Invariants
----------
* A selection that is one contiguous run of its operand's storage is an alias node, never
  an entry; every other one is a GATHER of flat indices checked against the operand.
"""
import numpy as np

from tapegrad import shapes as S
from tapegrad.jit import CODES as C
from tapegrad.tracer import EMIT, Traced, _as_float_array, _emit, _recorder, is_number, lift
from tapegrad.recorder import ALIAS



def reshape(x, shape):
    try:
        value = x._value.reshape(shape)
    except (ValueError, TypeError) as err:
        raise type(err)(f"reshape: {err}") from None
    return Traced(x._rec, x._rec.node(value, ALIAS, base=x._node), value)


def gather(x, select):
    """A GATHER entry for ``select`` (numpy indexing or layout op applied to positions)."""
    shape, idx = S.index_map(x.shape, select)
    value = x._value.ravel()[idx].reshape(shape)
    return _emit(x._rec, "GATHER", (x._node,), value, ints=idx)


def transpose(x, axes=None):
    """``x`` with its axes permuted as numpy's ``transpose(x, axes)``: a GATHER entry, or
    ``x`` itself when the permutation is the identity (always for 0-d and 1-d ``x``).

    ``axes`` is checked for every ndim as numpy does (wrong length, repeated or out of
    range), with numpy's exception types, before anything is recorded."""
    try:  # numpy checks axes on a zero-size stand-in whose distinct dims reveal the permutation
        perm = np.empty(tuple(range(x.ndim))).transpose(axes).shape
    except (ValueError, TypeError) as err:
        raise type(err)(f"transpose: axes {axes!r} do not fit a traced value of shape "
                        f"{x.shape}: {err}") from None
    if perm == tuple(range(x.ndim)):
        return x
    return gather(x, lambda pos: pos.transpose(perm))


def broadcast_to(x, shape):
    shape = tuple(shape)
    if x.shape == shape:
        return x
    S.broadcast("broadcast_to", x.shape, shape)
    return gather(x, lambda pos: np.broadcast_to(pos, shape))


def _check_key(key):
    for k in key if isinstance(key, tuple) else (key,):
        if isinstance(k, Traced):
            raise TypeError("indexing with a traced value is not supported: indices must be "
                            "Python ints, slices or integer arrays known when recording")


def _window(v, key):
    """The start of ``v[key]`` in ``v``'s flat storage if the selection is one contiguous
    run of it (``x[i]``, ``x[1:]``, a row), else None.  Decided with numpy itself on the
    eager value: a basic index gives a view whose address says where it starts."""
    if not v.flags.c_contiguous:
        return None
    keys = key if isinstance(key, tuple) else (key,)
    if len(keys) == v.ndim and all(isinstance(k, (int, np.integer)) and not isinstance(k, bool)
                                   for k in keys):
        v[key]  # let numpy raise its IndexError for an index out of bounds
        return int(np.ravel_multi_index(tuple(int(k) % d for k, d in zip(keys, v.shape)), v.shape))
    picked = v[key]
    if (isinstance(picked, np.ndarray) and picked.size and picked.flags.c_contiguous
            and np.may_share_memory(picked, v)):
        return (picked.ctypes.data - v.ctypes.data) // v.itemsize
    return None


def getitem(x, key):
    """``x[key]``: a free view when the selection is contiguous in memory (``x[i]``,
    ``x[1:]``, ``X[2]``), otherwise a GATHER entry."""
    _check_key(key)
    try:
        start = _window(x._value, key)
        if start is not None:
            value = np.asarray(x._value[key])
            return Traced(x._rec, x._rec.node(value, ALIAS, base=x._node, start=start), value)
        return gather(x, lambda pos: pos[key])
    except IndexError as err:
        raise IndexError(f"indexing a traced value of shape {x.shape}: {err}") from None


EMIT.reshape = reshape
EMIT.gather = gather
EMIT.transpose = transpose
EMIT.broadcast_to = broadcast_to
EMIT.getitem = getitem
