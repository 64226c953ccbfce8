"""Nested containers of arrays ("pytrees"), flattened to a list of leaves and back.

Tuples, lists, dicts (keys sorted, as JAX does), namedtuples and None are containers;
everything else is a leaf.  A treedef is made of tuples and strings only, so it hashes
(for the replay cache) and pickles (inside a Tape).
"""


def flatten(tree):
    """(leaves, treedef) of ``tree``; leaves in depth-first order."""
    leaves = []

    def walk(t):
        if t is None:
            return ("none",)
        if isinstance(t, tuple) and hasattr(t, "_fields"):
            return ("namedtuple", type(t), tuple(walk(c) for c in t))
        if type(t) is tuple:
            return ("tuple", tuple(walk(c) for c in t))
        if type(t) is list:
            return ("list", tuple(walk(c) for c in t))
        if type(t) is dict:
            keys = tuple(sorted(t))
            return ("dict", keys, tuple(walk(t[k]) for k in keys))
        leaves.append(t)
        return "*"

    return leaves, walk(tree)


def unflatten(treedef, leaves):
    """Inverse of :func:`flatten`: rebuild the container with ``leaves`` in order."""
    it = iter(leaves)

    def build(d):
        if d == "*":
            return next(it)
        kind = d[0]
        if kind == "none":
            return None
        if kind == "tuple":
            return tuple(build(c) for c in d[1])
        if kind == "list":
            return [build(c) for c in d[1]]
        if kind == "dict":
            return {k: build(c) for k, c in zip(d[1], d[2])}
        return d[1](*(build(c) for c in d[2]))  # namedtuple

    return build(treedef)


def children(treedef):
    """The treedefs of the top-level children of a tuple treedef (one per argument)."""
    return treedef[1]


def count_leaves(treedef):
    if treedef == "*":
        return 1
    return sum(count_leaves(c) for c in treedef[-1]) if treedef[0] != "none" else 0
