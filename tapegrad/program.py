"""The interpreter's view of a tape: its *program*.

The tape's columns are the record of what ran, in terms of nodes.  The interpreter wants
something else: for each entry to replay, one 64-byte row of arena offsets and flags
(``tapegrad.jit.PROG_COLUMNS``).  Deriving it here, once per tape, keeps all per-call work
out of Python.

Invariants
----------
* Entries the output does not depend on are not in the program.
* ``need`` bits: an operand's adjoint is touched only if it leads back to a differentiated
  input; it is *set* rather than added to only by its first contributor in the backward
  sweep, and only if that kernel writes it whole (``overwrites`` in the op table).  Every
  other adjoint that will be accumulated into is in the ``zero`` list.
* An input is read by reference only if nothing but MATMUL reads its storage.
"""
from collections import namedtuple

import numpy as np

import tapegrad.jit as J

_Entries = namedtuple("_Entries", "op out a b iarg p q offset size need base")


def by_reference(tape):
    """{input node: slot} for the inputs read where the caller keeps them: those whose
    storage only MATMUL entries read (BLAS takes an address), so copying them into the
    arena would be wasted work.  Slots count from 1 into the tape's ``inputs``."""
    live = tape.live[tape.out] != 0
    operands = np.concatenate([tape.a[live], tape.b[live & (tape.b >= 0)]])
    users = tape.base[operands]
    ops = np.concatenate([tape.op[live], tape.op[live & (tape.b >= 0)]])
    # a window into the middle of an input is read from the arena, not by address
    inside = tape.offset[operands] != tape.offset[users]
    other = set(users[(ops != J.CODES["MATMUL"]) | inside].tolist()) | {int(tape.base[tape.output])}
    matmul = set(users[ops == J.CODES["MATMUL"]].tolist())
    return {int(node): k + 1 for k, node in enumerate(tape.inputs)
            if node in matmul and node not in other and tape.base[node] == node}


def program(tape):
    """The interpreter's view of a tape: one row of offsets per entry (see PROG_COLUMNS),
    the float attributes, and the merged arena blocks whose adjoints must be zeroed."""
    slots = tape._slots
    keep = tape.live[tape.out] != 0  # an entry the output does not depend on is never run
    tape = _Entries(*(getattr(tape, c)[keep] for c in _Entries._fields[:7]),
                    *(getattr(tape, c) for c in _Entries._fields[7:]))
    n_entries, n_nodes = len(tape.op), len(tape.offset)
    has_b = tape.b >= 0
    b = np.where(has_b, tape.b, 0)
    needed = tape.need[tape.out] != 0
    mode_a = np.where(needed & (tape.need[tape.a] != 0), J.ADD, 0)
    mode_b = np.where(needed & has_b & (tape.need[b] != 0), J.ADD, 0)
    # An operand's adjoint may be assigned instead of accumulated (and not zeroed) when its
    # first contributor in the backward sweep - the last live user on the tape - writes it
    # all.  Within one entry a is handled before b, so only a can be first of a pair.
    base_a, base_b = tape.base[tape.a], tape.base[b]
    last_user = np.full(n_nodes, -1)
    order = np.arange(n_entries)
    np.maximum.at(last_user, base_a[mode_a != 0], order[mode_a != 0])
    np.maximum.at(last_user, base_b[mode_b != 0], order[mode_b != 0])
    overwrites = np.array([row.overwrites for row in J.OPS])[tape.op]
    zips = np.array([row.kind == "zip" for row in J.OPS])[tape.op]
    # only an operand that is all of its storage (not a window of it) and, for an
    # elementwise entry, not broadcast (as large as the output) is written whole
    whole_a = (tape.offset[tape.a] == tape.offset[base_a]) & (tape.size[tape.a] == tape.size[base_a]) \
        & (~zips | (tape.size[tape.a] == tape.size[tape.out]))
    whole_b = (tape.offset[b] == tape.offset[base_b]) & (tape.size[b] == tape.size[base_b]) \
        & (~zips | (tape.size[b] == tape.size[tape.out]))
    set_a = overwrites & whole_a & (mode_a != 0) & (last_user[base_a] == order)
    set_b = overwrites & whole_b & (mode_b != 0) & (last_user[base_b] == order) & ~(set_a & (base_a == base_b))
    mode_a[set_a], mode_b[set_b] = J.SET, J.SET

    prog = np.zeros((n_entries, len(J.PROG_COLUMNS)), np.int64)
    prog[:, 0] = tape.op
    prog[:, 1] = tape.offset[tape.out]
    prog[:, 2] = tape.offset[tape.a]
    prog[:, 3] = np.where(has_b, tape.offset[b], 0)
    prog[:, 4] = tape.size[tape.out]
    prog[:, 5] = tape.iarg
    prog[:, 6] = np.where(needed, J.NEED_OUT | mode_a << J.A_SHIFT | mode_b << J.B_SHIFT, 0)
    slot_of = np.vectorize(lambda node: slots.get(int(node), 0), otypes=[np.int64])
    if slots:
        prog[:, 7] = slot_of(base_a) | np.where(has_b, slot_of(base_b), 0) << J.SLOT_BITS
    attrs = np.ascontiguousarray(np.stack([tape.p, tape.q], axis=1))

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
    return prog, attrs, np.array(merged, np.int64).reshape(-1, 2)
