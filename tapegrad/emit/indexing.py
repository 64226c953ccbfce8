"""Indexing emitters beyond ``x[key]``: take, take_along_axis, and the functional update
``tg.at(x)[key].set(v)`` / ``.add(v)`` (as ``jax.numpy``'s ``.at``; traced arrays are
immutable, so an update returns a new array).

An update is recorded without a scatter row: the element of ``v`` that lands on each
position of ``x`` is known when recording, so ``set`` is ``where(hit, gather(v), x)`` and
``add`` is ``x + where(hit, gather(v), 0)``, once per layer of repeated indices (numpy's
``np.add.at`` sums repeats; ``set`` keeps the last write, as numpy's assignment does).

Invariants
----------
* The gradient reaches ``x`` at the positions not overwritten (all of them for ``add``) and
  ``v`` at the elements that are written (an overwritten repeat gets 0).
* Index errors are numpy's (IndexError), raised before anything is recorded.
"""
import numpy as np

from tapegrad.emit.arrays import const, layout, named, positions, take_flat
from tapegrad.emit.elementwise import where
from tapegrad.emit.shape import _check_key
from tapegrad.tracer import Traced, _as_float_array, _recorder


def take(x, indices, axis=None, mode="raise"):
    return layout("take", x, np.take, indices, axis=axis, mode=mode)


def take_along_axis(x, indices, axis):
    return layout("take_along_axis", x, np.take_along_axis, indices, axis)


def _update(x, key, v, op):
    name = f"at[...].{op}"
    _check_key(key)
    try:
        hit = positions(np.shape(x._value if isinstance(x, Traced) else x))[key]
    except IndexError as err:
        raise named(name, err) from None
    hit = np.asarray(hit)
    vshape = np.shape(v._value if isinstance(v, Traced) else v)
    try:
        source = np.broadcast_to(positions(vshape), hit.shape).ravel()  # element of v per hit
    except ValueError:
        raise ValueError(f"{name}: a value of shape {vshape} cannot be broadcast to the "
                         f"selection's shape {hit.shape}") from None
    rec = _recorder(x, v)
    if not isinstance(x, Traced):
        x = const(rec, _as_float_array(name, x))
    if not isinstance(v, Traced):
        v = const(rec, _as_float_array(name, v))
    hit = hit.ravel()
    if hit.size == 0:
        return x
    # layers of distinct positions: the l-th occurrence of each position goes to layer l
    order = np.argsort(hit, kind="stable")
    ranks = np.empty_like(order)
    sorted_hit = hit[order]
    first = np.searchsorted(sorted_hit, sorted_hit, side="left")
    ranks[order] = np.arange(hit.size) - first
    if op == "set":  # the last write wins
        src = np.full(x.size, -1, np.int64)
        src[hit] = source  # numpy assignment: later repeats overwrite earlier ones
        layers = [src]
    else:
        layers = []
        for layer in range(int(ranks.max()) + 1):
            src = np.full(x.size, -1, np.int64)
            src[hit[ranks == layer]] = source[ranks == layer]
            layers.append(src)
    out = x
    for src in layers:
        taken = (src >= 0).reshape(x.shape)
        picked = take_flat(v, np.where(src >= 0, src, 0).reshape(x.shape))
        out = where(taken, picked, out) if op == "set" else out + where(taken, picked, 0.0)
    return out


class _Index:
    def __init__(self, x, key):
        self.x, self.key = x, key

    def set(self, v):
        """A copy of x with ``x[key] = v`` (numpy's assignment; repeats: the last wins)."""
        if not isinstance(self.x, Traced) and not isinstance(v, Traced):
            out = np.array(self.x, dtype=np.result_type(self.x, v, np.float64))
            out[self.key] = v
            return out
        return _update(self.x, self.key, v, "set")

    def add(self, v):
        """A copy of x with ``v`` added at ``key`` (repeated indices add, as ``np.add.at``)."""
        if not isinstance(self.x, Traced) and not isinstance(v, Traced):
            out = np.array(self.x, dtype=np.result_type(self.x, v, np.float64))
            np.add.at(out, self.key, v)
            return out
        return _update(self.x, self.key, v, "add")

    def get(self):
        return self.x[self.key]


class at:  # noqa: N801 - spelled as jax.numpy's .at
    """``tg.at(x)[key].set(v)`` / ``.add(v)`` / ``.get()``: functional updates of ``x``
    (traced or not) at a numpy index known when recording; ``x`` itself never changes."""

    __slots__ = ("x",)

    def __init__(self, x):
        self.x = x

    def __getitem__(self, key):
        return _Index(self.x, key)
