"""The interpreter's view of a tape: its *program*.

The tape's columns are the record of what ran, in terms of nodes.  The interpreter wants
something else: for each entry to replay, one 64-byte row of arena offsets and flags
(``tapegrad.jit.PROG_COLUMNS``).  Deriving it here, once per tape, keeps all per-call work
out of Python.

A program is ``(prog, attrs, zero, ints)``: the rows; each row's float attributes
``(p, q)``; the merged arena blocks to zero before a backward sweep; and the integer arena
the kernels read: the tape's, followed by what the program synthesises, which the tape
does not store: the trivial broadcast pattern of elementwise entries whose operands have
the output's shape, and for each n-ary (``select``) entry its operands' ``(offset,
adjoint mode)`` pairs, where its row's ``iarg`` points (a ``variadic`` entry's own ints,
which start with its operand count, are then found through its a-offset column, which
n-ary entries do not use otherwise).  Unary and binary entries keep
their operands' offsets in the row itself, for speed.

Invariants
----------
* Entries the output does not depend on are not in the program; entries without an output
  (a row with ``outputs = 0``) always are, with no adjoint work.
* ``need`` bits: an operand's adjoint is touched only if it leads back to a differentiated
  input; it is *set* rather than added to only under the four conditions proved safe in
  :func:`assignable` (first contributor, whole storage, a kernel that writes it all, no
  other operand of the entry writing that storage first).  Every other adjoint that will
  be accumulated into is in the ``zero`` list.
* An input is read by reference only if nothing but MATMUL reads its storage.
"""
from collections import namedtuple

import numpy as np

import tapegrad.jit as J

# the kept entries, with their first two operands as columns (n-ary entries: 0 and -1)
_Entries = namedtuple("_Entries", "op out a b iarg offset size need base")
_ZIP_PATTERN = 6  # (d0, d1, sa0, sa1, sb0, sb1)


def operand_rows(tape):
    """(entry, position) of every element of the tape's operand list ``args``."""
    count = np.diff(np.append(tape.arg_start, len(tape.args)))
    entry = np.repeat(np.arange(len(tape.op)), count)
    return entry, np.arange(len(tape.args)) - tape.arg_start[entry]


def first_operands(tape):
    """(a, b): each entry's first operand and its second (-1 for an entry with one)."""
    count = np.diff(np.append(tape.arg_start, len(tape.args)))
    args = np.append(tape.args, -1).astype(np.int64)  # -1: nothing there
    a = args[np.where(count >= 1, tape.arg_start, len(tape.args))]
    b = args[np.where(count >= 2, tape.arg_start + 1, len(tape.args))]
    return a, b


def replayed(tape):
    """Mask of the entries the program keeps: those the output depends on, and those
    without an output (replayed for their own sake)."""
    return (tape.out < 0) | (tape.live[np.maximum(tape.out, 0)] != 0)


def by_reference(tape):
    """{input node: slot} for the inputs read where the caller keeps them: those whose
    storage only MATMUL entries read (BLAS takes an address), so copying them into the
    arena would be wasted work.  Slots count from 1 into the tape's ``inputs``."""
    entry, _ = operand_rows(tape)
    kept = replayed(tape)[entry]
    operands, ops = tape.args[kept], tape.op[entry[kept]]
    users = tape.base[operands]
    # a window into the middle of an input is read from the arena, not by address
    inside = tape.offset[operands] != tape.offset[users]
    other = set(users[(ops != J.CODES["MATMUL"]) | inside].tolist()) | {int(tape.base[tape.output])}
    matmul = set(users[ops == J.CODES["MATMUL"]].tolist())
    return {int(node): k + 1 for k, node in enumerate(tape.inputs)
            if node in matmul and node not in other and tape.base[node] == node}


def assignable(e, shape, mode_a, mode_b, b, has_b, root_base, others):
    """(set_a, set_b): per program entry, whether it may *assign* operand a's (b's) adjoint
    (``J.SET``) instead of adding to it, which spares zeroing that storage beforehand.

    ``e`` holds the kept entries' columns and the node table, ``shape(node)`` a node's
    shape, ``mode_a``/``mode_b`` which operand adjoints are touched at all, ``b`` the b
    operands (0 where ``has_b`` is False), ``root_base`` the output's storage, ``others``
    (entry, storage) arrays of the adjoints touched through any other operand (those of
    n-ary entries).

    Operand j (a or b) of entry e, whose storage is S = base(j), is SET only if

    1. *first contributor*: no entry after e on the tape touches S's adjoint through any
       operand (so e is the first the backward sweep visits that does), and S is not the
       output's storage (the seed is written there before the sweep);
    2. *whole*: j starts where S starts and has S's size, so j covers every element of S;
    3. *kernel writes it all*: told SET, the kernel's first write to each element of j
       assigns, it writes every element of j, and it reads none of j's adjoint before
       writing it.  Rows with ``overwrites`` promise this when j is not broadcast, so an
       elementwise (zip) operand must be as large as the output;
    4. *nothing else first*: within e, no other write to S precedes j's: the other operand
       does not share S at all, or it is the very same view (same offset and shape) and j
       is a (kernels write a's term of an element before b's; a window of S, or S seen
       with another shape, may be written before j's assignment, by an earlier row of a
       row-by-row kernel or an earlier product of a matmul, and would be overwritten).

    Claim: then SET gives the adjoint that zeroing S before the sweep and adding gives.
    Proof: with zeroing, adj[S] is still 0 when the sweep reaches e, since nothing visited
    before e wrote to S (1).  For each element s of S (an element of j, by 2), e's first
    write to s is j's term d (3, 4), giving 0 + d = d, exactly what SET writes; any later
    write by e (the same view as b) and by entries visited after e adds alike in both
    cases, in the same order.  So both give the same floats (0.0 + -0.0 aside).  QED.

    The kernels that honour SET, against 3 and 4: ``map_bwd`` (one operand of the output's
    size, each element written once); ``zip_bwd``/``zip_bwd_block`` (an operand as large
    as the output has strides (d1, 1), so its rows tile it and each element is written
    once, a's ``put`` before b's; broadcast operands are never SET); ``matmul_bwd`` (dA
    before dB in each batch step t; a whole operand with batch stride s > 0 is tiled by
    its blocks t*s, each assigned by its first product (beta = 0); with s = 0 the one
    block is assigned at t = 0 and added to after; an operand BLAS reads transposed has
    s = 0 and is assigned as one (k, m) block; the same view has the same blocks).  n-ary
    rows never overwrite.
    """
    order = np.arange(len(e.op))
    base_a, base_b = e.base[e.a], e.base[b]
    touched_a, touched_b = mode_a != 0, has_b & (mode_b != 0)
    last_user = np.full(len(e.base), -1)
    np.maximum.at(last_user, base_a[touched_a], order[touched_a])
    np.maximum.at(last_user, base_b[touched_b], order[touched_b])
    np.maximum.at(last_user, others[1], others[0])
    first_a = touched_a & (last_user[base_a] == order) & (base_a != root_base)
    first_b = touched_b & (last_user[base_b] == order) & (base_b != root_base)
    overwrites = np.array([row.overwrites for row in J.OPS], bool)[e.op]
    zips = np.array([row.family == "zip" for row in J.OPS], bool)[e.op]
    whole_a = (e.offset[e.a] == e.offset[base_a]) & (e.size[e.a] == e.size[base_a]) \
        & (~zips | (e.size[e.a] == e.size[e.out]))
    whole_b = (e.offset[b] == e.offset[base_b]) & (e.size[b] == e.size[base_b]) \
        & (~zips | (e.size[b] == e.size[e.out]))
    shared = has_b & (base_a == base_b)
    same_view = shared & (e.a == b)
    for i in np.flatnonzero(shared & ~same_view & (e.offset[e.a] == e.offset[b])):
        same_view[i] = shape(e.a[i]) == shape(b[i])
    set_a = first_a & overwrites & whole_a & (~shared | same_view)
    set_b = first_b & overwrites & whole_b & ~shared
    return set_a, set_b


def program(tape, slots=None, operand_table=False):
    """The interpreter's view of a tape (see the module docstring).

    ``slots`` overrides the tape's by-reference inputs (``{}``: every input in the arena,
    as the batched program needs).  With ``operand_table`` the result has a fifth item:
    ``(entry, position)`` arrays locating, in the returned int arena, the offset of every
    operand of the n-ary entries (program row, position of the offset in ``ints``)."""
    slots, full = (tape._slots if slots is None else slots), tape
    keep = replayed(tape)
    kept = np.flatnonzero(keep)
    has_out = tape.out[keep] >= 0
    out = np.where(has_out, tape.out[keep], 0)
    nary_rows = np.array([row.family in ("select", "variadic") for row in J.OPS], bool)[tape.op[keep]]
    variadic = np.array([row.family == "variadic" for row in J.OPS], bool)[tape.op[keep]]
    first, second = first_operands(tape)
    binary = ~nary_rows & (second[keep] >= 0)
    tape = _Entries(tape.op[keep], out, np.where(nary_rows, 0, first[keep]),
                    np.where(binary, second[keep], -1), tape.iarg[keep],
                    tape.offset, tape.size, tape.need, tape.base)
    n_entries, n_nodes = len(tape.op), len(tape.offset)
    has_b = tape.b >= 0
    b = np.where(has_b, tape.b, 0)
    needed = has_out & (tape.need[tape.out] != 0)
    mode_a = np.where(needed & ~nary_rows & (tape.need[tape.a] != 0), J.ADD, 0)
    mode_b = np.where(needed & has_b & (tape.need[b] != 0), J.ADD, 0)

    # the operands of n-ary entries: (offset, mode) per operand, in order
    entry, _ = operand_rows(full)
    position = np.full(len(full.op), -1)
    position[kept] = np.arange(n_entries)
    # (a tape whose entries are all dead keeps none: no n-ary row to look up)
    in_table = (position[entry] >= 0) & np.append(nary_rows, False)[position[entry]]
    table_entry, table_nodes = position[entry[in_table]], full.args[in_table]
    table_modes = np.where(needed[table_entry] & (tape.need[table_nodes] != 0), J.ADD, 0)
    touched = table_modes != 0
    others = (table_entry[touched], tape.base[table_nodes[touched]])

    base_a, base_b = tape.base[tape.a], tape.base[b]
    set_a, set_b = assignable(tape, full.shape, mode_a, mode_b, b, has_b, full.base[full.output], others)
    mode_a[set_a], mode_b[set_b] = J.SET, J.SET

    # elementwise entries without a stored broadcast pattern get the trivial one, shared
    # by all entries of one size, in an extension of the int arena
    ints, iarg = full.ints, tape.iarg.copy()
    trivial = np.array([row.family == "zip" for row in J.OPS], bool)[tape.op] & (iarg < 0)
    sizes, which = np.unique(tape.size[tape.out][trivial], return_inverse=True)
    if len(sizes):
        patterns = np.zeros((len(sizes), _ZIP_PATTERN), np.int64)
        patterns[:, 0], patterns[:, 1], patterns[:, 3], patterns[:, 5] = 1, sizes, 1, 1
        iarg[trivial] = len(ints) + _ZIP_PATTERN * which.ravel()
        ints = np.concatenate([ints, patterns.ravel()])
    table_at = len(ints) + 2 * np.arange(len(table_entry))  # the offsets, in the new arena
    if len(table_entry):
        pairs = np.stack([tape.offset[table_nodes], table_modes], axis=1).astype(np.int64)
        starts = np.flatnonzero(np.diff(np.append(-1, table_entry)) != 0)
        iarg[table_entry[starts]] = len(ints) + 2 * starts
        ints = np.concatenate([ints, pairs.ravel()])

    prog = np.zeros((n_entries, len(J.PROG_COLUMNS)), np.int64)
    prog[:, 0] = tape.op
    prog[:, 1] = np.where(has_out, tape.offset[tape.out], 0)
    # a variadic entry keeps where its own ints start in the a-offset column it does not use
    prog[:, 2] = np.where(variadic, tape.iarg, np.where(nary_rows, 0, tape.offset[tape.a]))
    prog[:, 3] = np.where(has_b, tape.offset[b], 0)
    prog[:, 4] = np.where(has_out, tape.size[tape.out], 0)
    prog[:, 5] = iarg
    prog[:, 6] = np.where(needed, J.NEED_OUT | mode_a << J.A_SHIFT | mode_b << J.B_SHIFT, 0)
    slot_of = np.vectorize(lambda node: slots.get(int(node), 0), otypes=[np.int64])
    if slots:
        prog[:, 7] = slot_of(base_a) | np.where(has_b, slot_of(base_b), 0) << J.SLOT_BITS

    attrs = np.zeros((n_entries, 2))
    n_floats = np.array([len(row.floats) for row in J.OPS], np.int64)[tape.op]
    for k in range(2):
        has = n_floats > k
        attrs[has, k] = full.floats[full._float_start[kept[has]] + k]

    assigned = np.zeros(n_nodes, bool)
    assigned[base_a[set_a]] = True
    assigned[base_b[set_b]] = True
    owners = np.flatnonzero((tape.base == np.arange(n_nodes)) & (tape.need != 0) & ~assigned)
    blocks = sorted((int(tape.offset[k]), int(tape.offset[k] + tape.size[k])) for k in owners)
    merged = []
    for start, stop in blocks:
        if merged and merged[-1][1] == start:
            merged[-1][1] = stop
        else:
            merged.append([start, stop])
    result = prog, attrs, np.array(merged, np.int64).reshape(-1, 2), ints
    if operand_table:
        result += ((table_entry, table_at),)
    return result
