"""Nested containers of arrays ("pytrees"), flattened to a list of leaves and back.

Tuples, lists, dicts (keys sorted, as JAX does), namedtuples, dataclass instances and None
are containers; everything else is a leaf.  A treedef is made of tuples, strings and
classes only, so it hashes (for the replay cache) and pickles (inside a Tape).

Treedef nodes: ``"*"`` (a leaf), ``("none",)``, ``("tuple", children)``, ``("list",
children)``, ``("dict", keys, children)``, ``("namedtuple", cls, children)`` and
``("dataclass", cls, field_names, children)``.  A dataclass's children are its fields (all
of ``dataclasses.fields``, in order); it is rebuilt without calling ``__init__`` or
``__post_init__`` (``object.__new__`` and ``object.__setattr__``, so frozen dataclasses
work too), and attributes that are not fields are not carried over.

The walkers are module-level functions with explicit state, not recursive closures: a
closure that calls itself is a reference cycle, which would keep every leaf (and the
buffers behind returned gradients) alive until the garbage collector runs.
"""
import dataclasses

_LEAF_TYPES = frozenset({float, int, bool, str})  # common leaves: skip the container tests


def walk(t, leaves):
    """The treedef of ``t``, appending its leaves to ``leaves``."""
    if type(t) in _LEAF_TYPES:
        leaves.append(t)
        return "*"
    if t is None:
        return ("none",)
    if isinstance(t, tuple) and hasattr(t, "_fields"):
        return ("namedtuple", type(t), tuple(walk(c, leaves) for c in t))
    if type(t) is tuple:
        return ("tuple", tuple(walk(c, leaves) for c in t))
    if type(t) is list:
        return ("list", tuple(walk(c, leaves) for c in t))
    if type(t) is dict:
        keys = tuple(sorted(t))
        return ("dict", keys, tuple(walk(t[k], leaves) for k in keys))
    if hasattr(type(t), "__dataclass_fields__") and not isinstance(t, type):
        names = tuple(f.name for f in dataclasses.fields(t))
        return ("dataclass", type(t), names, tuple(walk(getattr(t, n), leaves) for n in names))
    leaves.append(t)
    return "*"


def flatten(tree):
    """(leaves, treedef) of ``tree``; leaves in depth-first order."""
    leaves = []
    return leaves, walk(tree, leaves)


def _build(d, it):
    if d == "*":
        return next(it)
    kind = d[0]
    if kind == "none":
        return None
    if kind == "tuple":
        return tuple(_build(c, it) for c in d[1])
    if kind == "list":
        return [_build(c, it) for c in d[1]]
    if kind == "dict":
        return {k: _build(c, it) for k, c in zip(d[1], d[2])}
    if kind == "dataclass":
        obj = object.__new__(d[1])
        for name, c in zip(d[2], d[3]):
            object.__setattr__(obj, name, _build(c, it))
        return obj
    return d[1](*(_build(c, it) for c in d[2]))  # namedtuple


def unflatten(treedef, leaves):
    """Inverse of :func:`flatten`: rebuild the container with ``leaves`` in order."""
    return _build(treedef, iter(leaves))


def children(treedef):
    """The treedefs of the top-level children of a tuple treedef (one per argument)."""
    return treedef[1]
