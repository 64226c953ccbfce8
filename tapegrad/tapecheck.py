"""Validation of a tape that comes from outside this process (a file, an unpickled state).

The interpreter runs without bounds checks: every node index, arena offset, size and
integer attribute of a tape is trusted by some kernel, and by the Python that derives the
program from it.  :func:`validate` checks all of them, with numpy and never a kernel,
before anything is replayed or even analysed (``jit.activity`` is a kernel too).

What is accepted is exactly the layout the recorder produces:

* nodes: ``kind`` is one of CONST, INPUT, OP, ALIAS; every node that owns its storage
  (``base`` is itself; every node but an alias) holds the next ``size`` floats of the value
  arena, in node order, and together they fill it; an alias is a window inside the storage
  of an earlier owner; a node's shape is ``ndim`` (at most 64) non-negative numbers inside
  the ``shapes`` arena whose product is ``size``;
* entries: ``op`` is a row of the op table; outputs are fresh OP nodes, one per entry, in
  increasing order; operands are earlier nodes; ``b`` is -1 exactly for one-operand ops;
  the integer attributes pass the op's check from the table (``Op.check``, ``jit.checks``);
* the interface: ``inputs`` are all the INPUT nodes, each once; ``output`` is a node.

Each failure raises ``ValueError("not a valid tapegrad tape: <what>")`` naming the first
bad entry or node.
"""
import numpy as np

import tapegrad.jit as J
from tapegrad.jit import checks as C
from tapegrad.recorder import ALIAS, CONST, INPUT, OP

MAX_NDIM = 64  # numpy's limit


def invalid(what):
    return ValueError(f"not a valid tapegrad tape: {what}")


def _first(bad):
    return int(np.flatnonzero(bad)[0])


def _require(bad, what):
    """Raise for the first True in ``bad``; ``what`` formats with its index."""
    if np.any(bad):
        raise invalid(what.format(_first(bad)))


def validate(entries, nodes, ints, shapes, values, inputs, output):
    """Check a tape's columns (dicts of numpy columns of the right dtypes and lengths, as
    read by ``tapefile``) against everything the kernels and the program builder trust.

    ``entries['op']`` holds rows of this process's op table (already remapped by name).
    Returns nothing; raises ValueError for the first violation found.
    """
    _check_nodes(nodes, shapes, len(values))
    _check_entries(entries, nodes, ints)
    kind, n = nodes["kind"], len(nodes["kind"])
    _require((inputs < 0) | (inputs >= n), "input {} is not a node")
    _require(kind[inputs] != INPUT, "input {} is not an INPUT node")
    if len(np.unique(inputs)) != len(inputs) or np.count_nonzero(kind == INPUT) != len(inputs):
        raise invalid("the inputs are not the INPUT nodes, each once")
    if not 0 <= output < n:
        raise invalid(f"output {output} is not a node")


def _check_nodes(nodes, shapes, n_values):
    offset, size, kind, base = nodes["offset"], nodes["size"], nodes["kind"], nodes["base"]
    ndim, start = nodes["ndim"], nodes["shape_start"]
    n = len(offset)
    if n == 0:
        raise invalid("no nodes")
    _require((kind != CONST) & (kind != INPUT) & (kind != OP) & (kind != ALIAS), "node {} has an unknown kind")
    _require((size < 0) | (offset < 0) | (offset > n_values - size), "node {} lies outside the value arena")
    own = np.arange(n)
    _require((base < 0) | (base >= n), "node {}'s base is not a node")
    _require((kind != ALIAS) & (base != own), "node {} is not an alias but has another node's storage")
    alias = kind == ALIAS
    _require(alias & ((base >= own) | (kind[base] == ALIAS)), "alias {} is not a window on an earlier owner")
    _require(alias & ((offset < offset[base]) | (offset + size > offset[base] + size[base])),
             "alias {} lies outside its base's storage")
    owners = np.flatnonzero(~alias)
    expected = np.cumsum(size[owners]) - size[owners]
    _require(offset[owners] != expected, "the storage of node {} does not follow the previous "
             "node's (owners fill the value arena in node order)")
    if int(size[owners].sum()) != n_values:
        raise invalid("the nodes do not fill the value arena")
    _require((ndim < 0) | (ndim > MAX_NDIM) | (start < 0) | (start > len(shapes) - ndim),
             "node {}'s shape lies outside the shapes arena")
    for d in np.unique(ndim):
        rows = np.flatnonzero(ndim == d)
        dims = shapes[start[rows, None] + np.arange(d)]
        total = C.product(*dims.T) if d else np.ones(len(rows), np.int64)
        bad = np.any(dims < 0, axis=1) | (total != size[rows])
        if np.any(bad):
            raise invalid(f"node {int(rows[_first(bad)])}'s shape does not have its size")


def _check_entries(entries, nodes, ints):
    op, out, a, b, iarg = entries["op"], entries["out"], entries["a"], entries["b"], entries["iarg"]
    size, kind, n = nodes["size"], nodes["kind"], len(nodes["size"])
    _require((op < 0) | (op >= len(J.OPS)), "entry {} has an unknown opcode")
    _require((out < 0) | (out >= n), "entry {}'s output is not a node")
    _require(kind[out] != OP, "entry {}'s output is not an OP node")
    _require(np.concatenate([[False], np.diff(out) <= 0]), "entry {}'s output is not fresh (outputs must increase)")
    if np.count_nonzero(kind == OP) != len(op):
        raise invalid("some OP node is the output of no entry")
    arity = np.array([row.arity for row in J.OPS])[op]
    _require((a < 0) | (a >= out), "entry {}'s operand a is not an earlier node")
    _require(np.where(arity == 1, b != -1, (b < 0) | (b >= out)),
             "entry {}'s operand b is not an earlier node (or -1 for a one-operand op)")
    size_b = np.where(b >= 0, size[np.maximum(b, 0)], 0)
    for code in np.unique(op):
        rows = np.flatnonzero(op == code)
        bad = J.OPS[code].check(ints, iarg[rows], size[out[rows]], size[a[rows]], size_b[rows])
        if bad is not None:
            raise invalid(f"entry {int(rows[bad[0]])} ({J.NAMES[code]}): {bad[1]}")
