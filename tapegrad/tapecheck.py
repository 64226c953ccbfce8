"""Validation of a tape that comes from outside this process (a file, an unpickled state).

The interpreter runs without bounds checks: every node index, arena offset, operand list,
size and integer attribute of a tape is trusted by some kernel, and by the Python that
derives the program from it.  :func:`validate` checks all of them, with numpy and never a
kernel, before anything is replayed or even analysed (``jit.activity`` is a kernel too).

What is accepted is exactly the layout the recorder produces:

* nodes: ``kind`` is one of CONST, INPUT, OP, ALIAS; the ``shapes`` arena holds each node's
  ``ndim`` (0 to 64) non-negative dimensions, node after node, and nothing else (so
  ``shape_start`` and ``size`` are derived, never read); every node that owns its storage
  (``base`` is itself; every node but an alias) holds the next ``size`` floats of the value
  arena, in node order, and together they fill it; an alias is a window inside the storage
  of an earlier owner;
* entries: ``op`` is a row of the op table; ``out`` is -1 exactly for rows with
  ``outputs = 0``, otherwise fresh OP nodes, one per such entry, in increasing order;
  ``arg_start`` starts at 0, never decreases, and gives each entry exactly its row's
  ``arity`` operands in ``args`` (a variadic row, arity 0: at least one, the count its
  check compares with its ints); every operand is a node made before the entry (before
  its output, or before the next entry's output for an entry without one); the row's
  float attributes fill the ``floats`` arena exactly; the integer attributes pass the
  op's check from the table (``Op.check``, ``jit.checks``), which never trusts a pattern
  the program synthesises (an elementwise entry without attributes must have operands of
  the output's size);
* the interface: ``inputs`` are all the INPUT nodes, each once; ``output`` is a node.

Each failure raises ``ValueError("not a valid tapegrad tape: <what>")`` naming the first
bad entry or node.
"""
import numpy as np

import tapegrad.jit as J
from tapegrad.jit import checks as C
from tapegrad.jit.oprow import VARIADIC
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


def row_table(column):
    """A column of the op table (an attribute of each row, or a function of it) as an
    array indexed by opcode, read from ``J.OPS`` at call time."""
    return np.array([column(row) for row in J.OPS])


def node_sizes(ndim, shapes):
    """(shape_start, size) of every node, derived from ``ndim`` and the shapes arena; sizes
    above 2**62 (which could overflow) are -1."""
    ndim = ndim.astype(np.int64)
    start = np.cumsum(ndim) - ndim
    size = np.ones(len(ndim), np.int64)
    for d in np.unique(ndim):
        if d:
            rows = np.flatnonzero(ndim == d)
            size[rows] = C.product(*shapes[start[rows, None] + np.arange(d)].T)
    return start, size


def validate(entries, nodes, arenas, inputs, output):
    """Check a tape's columns (dicts of numpy columns of the right dtypes, as read by
    ``tapefile``) against everything the kernels and the program builder trust.

    ``entries['op']`` holds rows of this process's op table (already remapped by name);
    ``arenas`` holds ``args``, ``floats``, ``ints``, ``shapes`` and ``values``.  Returns the
    derived node columns ``{"shape_start", "size"}``; raises ValueError for the first
    violation found.
    """
    derived = _check_nodes(nodes, arenas["shapes"], len(arenas["values"]))
    _check_entries(entries, nodes, derived["size"], arenas)
    kind, n = nodes["kind"], len(nodes["kind"])
    _require((inputs < 0) | (inputs >= n), "input {} is not a node")
    _require(kind[inputs] != INPUT, "input {} is not an INPUT node")
    if len(np.unique(inputs)) != len(inputs) or np.count_nonzero(kind == INPUT) != len(inputs):
        raise invalid("the inputs are not the INPUT nodes, each once")
    if not 0 <= output < n:
        raise invalid(f"output {output} is not a node")
    return derived


def _check_nodes(nodes, shapes, n_values):
    offset, kind, base, ndim = nodes["offset"], nodes["kind"], nodes["base"], nodes["ndim"]
    n = len(offset)
    if n == 0:
        raise invalid("no nodes")
    _require((kind != CONST) & (kind != INPUT) & (kind != OP) & (kind != ALIAS), "node {} has an unknown kind")
    _require((ndim < 0) | (ndim > MAX_NDIM), "node {} has a negative or too large ndim")
    if int(ndim.astype(np.int64).sum()) != len(shapes):
        raise invalid("the shapes arena does not hold exactly the nodes' dimensions, node after node")
    _require(shapes < 0, "dimension {} of the shapes arena is negative")
    start, size = node_sizes(ndim, shapes)
    _require(size < 0, "node {}'s shape is too large")
    _require((offset < 0) | (offset > n_values - size), "node {} lies outside the value arena")
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
    return {"shape_start": start, "size": size}


def _check_entries(entries, nodes, size, arenas):
    op, out, arg_start, iarg = entries["op"], entries["out"], entries["arg_start"], entries["iarg"]
    args, kind, n, n_entries = arenas["args"], nodes["kind"], len(nodes["kind"]), len(entries["op"])
    _require((op < 0) | (op >= len(J.OPS)), "entry {} has an unknown opcode")
    outputs = row_table(lambda row: row.outputs)[op]
    arity = row_table(lambda row: row.arity)[op]
    _require((outputs == 0) & (out != -1), "entry {} has an output, but its op writes none (out must be -1)")
    _require((outputs != 0) & ((out < 0) | (out >= n)), "entry {}'s output is not a node")
    made = out >= 0
    _require(made & (kind[np.where(made, out, 0)] != OP), "entry {}'s output is not an OP node")
    written = out[made]
    _require(np.isin(np.arange(n_entries), np.flatnonzero(made)[1:][np.diff(written) <= 0]),
             "entry {}'s output is not fresh (outputs must increase)")
    if np.count_nonzero(kind == OP) != len(written):
        raise invalid("some OP node is the output of no entry")
    if n_entries == 0:
        if len(args):
            raise invalid("operands without entries")
    else:
        if arg_start[0] != 0:
            raise invalid("entry 0's operands do not start at 0")
        bad = arg_start > len(args)
        bad[1:] |= arg_start[1:] < arg_start[:-1]
        _require(bad, "entry {}'s operand list lies outside the operand arena or before the previous one's")
    count = np.diff(np.append(arg_start, len(args)))
    _require(np.where(arity == VARIADIC, count < 1, count != arity),
             "entry {} does not have its op's number of operands")
    # an operand must exist before the entry: before its output, or, for an entry without
    # one, before the next output on the tape
    bound = np.where(made, out, n).astype(np.int64)
    bound = np.minimum.accumulate(bound[::-1])[::-1]
    entry_of = np.repeat(np.arange(n_entries), count)
    _require(np.isin(np.arange(n_entries), entry_of[(args < 0) | (args >= bound[entry_of])]),
             "entry {} has an operand that is not an earlier node")
    n_floats = row_table(lambda row: len(row.floats))[op]
    if int(n_floats.sum()) != len(arenas["floats"]):
        raise invalid("the floats arena does not hold exactly the entries' float attributes")
    out_size = np.where(made, size[np.where(made, out, 0)], 0)
    for code in np.unique(op):
        rows = np.flatnonzero(op == code)
        row = J.OPS[code]
        operand_sizes = [size[args[arg_start[rows] + k]] for k in range(row.arity)]
        if row.arity == VARIADIC:  # variadic: (operand counts, all their sizes entry after entry)
            starts, counts = arg_start[rows], count[rows]
            at = np.repeat(starts, counts) + np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
            operand_sizes = [counts, size[args[at]]]
        bad = row.check(arenas["ints"], iarg[rows], out_size[rows], *operand_sizes)
        if bad is not None:
            raise invalid(f"entry {int(rows[bad[0]])} ({row.name}): {bad[1]}")
