"""Array-building and layout emitters: concatenate/stack (one variadic CONCAT entry), every
numpy layout function applied to element positions (flip, roll, tile, moveaxis, ...: one
GATHER, or a free alias when the order is unchanged), split, tril/triu, diag, pad, r_/c_.

A layout function is recorded by running numpy's own function on the array of element
positions ``arange(size).reshape(shape)`` (:func:`layout`): whatever numpy returns is the
flat source index of each output element, so the semantics (and the errors) are numpy's.
Outputs that also hold elements not taken from the operand (tril's zeros, pad's constant)
are a GATHER followed by a WHERE against a constant (:func:`place`).

Invariants
----------
* A layout that keeps the element order (expand_dims, squeeze, atleast_2d, a swap of
  length-1 axes) is an alias node: no entry, no copy.
* numpy's exception types, with messages prefixed by the function's name, are raised
  before anything is recorded.
* CONCAT's ints are (k, pre, w_0 .. w_{k-1}) exactly as ``jit.checks.concat`` accepts.
"""
import numpy as np

from tapegrad.emit.elementwise import where
from tapegrad.emit.shape import getitem, reshape
from tapegrad.recorder import CONST
from tapegrad.tracer import Traced, _as_float_array, _emit, _recorder, lift


def named(name, err):
    """``err`` again, its message prefixed with ``name``, of the same type when possible."""
    try:
        return type(err)(f"{name}: {err}")
    except Exception:  # an exception type with another signature
        return ValueError(f"{name}: {err}")


def _no_traced(name, *args):
    for a in args:
        if isinstance(a, Traced):
            raise TypeError(f"{name}: this argument must be known when recording (indices, "
                            "counts, shapes), not a traced value")


def positions(shape):
    return np.arange(int(np.prod(shape, dtype=np.int64)), dtype=np.int64).reshape(shape)


def take_flat(x, idx):
    """The elements ``x.flat[idx]`` in the shape of ``idx``: an alias if that is ``x`` itself
    in order, else one GATHER."""
    idx = np.asarray(idx, dtype=np.int64)
    if idx.size == x.size and np.array_equal(idx.ravel(), np.arange(x.size)):
        return reshape(x, idx.shape)
    value = x._value.ravel()[idx.ravel()].reshape(idx.shape)
    return _emit(x._rec, "GATHER", (x._node,), value, ints=np.ascontiguousarray(idx.ravel()))


def layout(name, x, npfn, *args, **kwargs):
    """``npfn(x, *args, **kwargs)`` for a numpy function that only moves elements."""
    _no_traced(name, *args, *kwargs.values())
    try:
        idx = np.asarray(npfn(positions(x.shape), *args, **kwargs))
    except (ValueError, TypeError, IndexError) as err:
        raise named(name, err) from None
    return take_flat(x, idx)


def const(rec, value):
    value = np.asarray(value, dtype=np.float64)
    return Traced(rec, rec.node(value, CONST), value)


def place(x, src, fill=0.0):
    """An array of ``src``'s shape holding ``x.flat[src]`` where ``src >= 0`` and ``fill``
    (a constant broadcast to that shape) elsewhere; gradient only to the taken elements."""
    src = np.asarray(src, dtype=np.int64)
    taken = src >= 0
    if taken.all():
        return take_flat(x, src)
    if not taken.any():
        return const(x._rec, np.broadcast_to(fill, src.shape))
    return where(taken, take_flat(x, np.where(taken, src, 0)), np.broadcast_to(fill, src.shape))


def _value(name, a):
    return a._value if isinstance(a, Traced) else _as_float_array(name, a)


def concatenate(arrays, axis=0, name="concatenate"):
    """numpy.concatenate of traced and plain arrays: one CONCAT entry (plain ones become
    constant nodes); ``axis=None`` flattens them first."""
    arrays = list(arrays)
    if not arrays:
        raise ValueError(f"{name}: need at least one array to concatenate")
    rec = _recorder(*arrays)
    if axis is None:
        arrays = [reshape(a, -1) if isinstance(a, Traced) else np.ravel(a) for a in arrays]
        axis = 0
    values = [_value(name, a) for a in arrays]
    try:
        value = np.concatenate(values, axis=axis)
    except (ValueError, TypeError) as err:
        raise named(name, err) from None
    if len(arrays) == 1:
        return arrays[0]
    ax = int(axis) % value.ndim
    pre = int(np.prod(value.shape[:ax], dtype=np.int64))
    widths = [int(np.prod(v.shape[ax:], dtype=np.int64)) for v in values]
    nodes = tuple(lift(rec, name, a)[0] for a in arrays)
    return _emit(rec, "CONCAT", nodes, value, ints=(len(nodes), pre, *widths))


def _expand(a, axis):
    return reshape(a, np.expand_dims(a._value, axis).shape) if isinstance(a, Traced) \
        else np.expand_dims(np.asarray(a, dtype=np.float64), axis)


def stack(arrays, axis=0):
    """numpy.stack: every array given a new axis ``axis`` (an alias), then one CONCAT."""
    arrays = list(arrays)
    if not arrays:
        raise ValueError("stack: need at least one array to stack")
    shapes = {np.shape(_value("stack", a)) for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"stack: all input arrays must have the same shape, got {sorted(shapes)}")
    ndim = len(shapes.pop()) + 1
    if not isinstance(axis, (int, np.integer)) or not -ndim <= axis < ndim:
        raise np.exceptions.AxisError(f"stack: axis {axis!r} is out of bounds for array of dimension {ndim}")
    return concatenate([_expand(a, int(axis) % ndim) for a in arrays], axis, name="stack")


def atleast(nd, a):
    fn = (np.atleast_1d, np.atleast_2d, np.atleast_3d)[nd - 1]
    if isinstance(a, Traced):
        return reshape(a, fn(a._value).shape) if a.ndim < nd else a
    return fn(np.asarray(a, dtype=np.float64))


def hstack(arrays):
    arrays = [atleast(1, a) for a in arrays]
    return concatenate(arrays, 0 if arrays and all(np.ndim(_value("hstack", a)) == 1 for a in arrays) else 1, "hstack")


def vstack(arrays):
    return concatenate([atleast(2, a) for a in arrays], 0, "vstack")


def dstack(arrays):
    return concatenate([atleast(3, a) for a in arrays], 2, "dstack")


def column_stack(arrays):
    cols = [reshape(a, (-1, 1)) if isinstance(a, Traced) and a.ndim < 2 else
            (np.reshape(a, (-1, 1)) if not isinstance(a, Traced) and np.ndim(a) < 2 else a)
            for a in arrays]
    return concatenate(cols, 1, "column_stack")


def split(x, indices_or_sections, axis=0, name="split"):
    """numpy.split / array_split: one slice per part (an alias when contiguous)."""
    _no_traced(name, indices_or_sections, axis)
    fn = np.split if name == "split" else np.array_split
    try:
        parts = fn(x._value, indices_or_sections, axis=axis)
    except (ValueError, TypeError, IndexError) as err:
        raise named(name, err) from None
    ax = int(axis) % x.ndim
    out, start = [], 0
    for part in parts:
        stop = start + part.shape[ax]
        out.append(getitem(x, (slice(None),) * ax + (slice(start, stop),)))
        start = stop
    return out


def tri(name, x, k=0):
    """tril / triu: where(mask, x, 0) with numpy's mask (a 1-d x is broadcast to rows)."""
    _no_traced(name, k)
    try:
        value = getattr(np, name)(x._value, k)
    except (ValueError, TypeError) as err:
        raise named(name, err) from None
    mask = getattr(np, name)(np.ones(value.shape[-2:], bool), k)
    return where(mask, x, 0.0)


def diag(x, k=0):
    _no_traced("diag", k)
    if x.ndim == 1:
        return place(x, np.diag(np.arange(1, x.size + 1), k) - 1)
    if x.ndim == 2:
        return layout("diag", x, np.diagonal, k)
    raise ValueError("diag: Input must be 1- or 2-d.")


_MOVING = ("edge", "reflect", "symmetric", "wrap")


def pad(x, pad_width, mode="constant", **kwargs):
    """numpy.pad: mode 'constant' (constant_values known when recording) as a GATHER and a
    WHERE; 'edge', 'reflect', 'symmetric', 'wrap' as one GATHER."""
    _no_traced("pad", pad_width, *kwargs.values())
    if mode in _MOVING:
        return layout("pad", x, np.pad, pad_width, mode=mode, **kwargs)
    if mode != "constant":
        raise NotImplementedError(f"pad: mode {mode!r} is not supported on traced values "
                                  f"(supported: 'constant', {', '.join(map(repr, _MOVING))})")
    cv = kwargs.pop("constant_values", 0)
    if kwargs:
        raise TypeError(f"pad: unsupported keyword arguments for mode 'constant': {sorted(kwargs)}")
    try:
        src = np.pad(positions(x.shape), pad_width, mode="constant", constant_values=-1)
        fill = np.pad(np.zeros(x.shape), pad_width, mode="constant", constant_values=cv)
    except (ValueError, TypeError) as err:
        raise named("pad", err) from None
    return place(x, src, fill)


class _Concatenator:
    """``r_[a, b, 1:3]`` / ``c_[a, b]`` on traced values: items are arrays, numbers or
    slices (numpy's ranges); string directives are numpy's only."""

    def __init__(self, columns):
        self.columns = columns

    def __getitem__(self, key):
        items = key if isinstance(key, tuple) else (key,)
        which = "c_" if self.columns else "r_"
        if not any(isinstance(a, Traced) for a in items):
            return (np.c_ if self.columns else np.r_)[key]
        if any(isinstance(a, str) for a in items):
            raise NotImplementedError(f"{which}: string directives are not supported with traced values")
        parts = [np.r_[a] if isinstance(a, slice) else a for a in items]
        if not self.columns:
            return concatenate([atleast(1, a) for a in parts], 0, which)
        cols = [(reshape(a, (-1, 1)) if isinstance(a, Traced) else np.reshape(a, (-1, 1)))
                if np.ndim(_value(which, a)) < 2 else a for a in parts]
        return concatenate(cols, -1, which)


r_, c_ = _Concatenator(False), _Concatenator(True)
