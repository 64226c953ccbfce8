"""The tape interpreter's data: the rule modules the generated sweeps call, the program row
layout, and activity analysis.

The sweeps themselves (``forward_sweep``, ``backward_sweep``) are generated from the op
table into ``dispatch.py`` by ``gen_dispatch``: one branch per opcode, one call template per
family.  The backward sweep is the lectures' ``grad_table`` algorithm.  The lecture *pulls*:
the adjoint of node j is the sum, over the entries i that use j, of grad_table[i] *
du_i/du_j.  Here each entry *pushes* its term into its operands' adjoints as soon as its own
adjoint is complete.  Walking the entries last to first makes that so: every user of a node
comes after it on the tape, so by the time the loop reaches the entry that made a node, all
the terms of that node's sum have been added.  Same sum, no list of children needed.

Invariants
----------
* Arrays only: the interpreter sees the program, the integer and float arenas and the
  value/adjoint buffers; nothing else.  Opcodes are the constants of ``optable``.
* ``vals`` and ``adj`` are the caller's work buffers, never the tape's own arrays, so one
  tape can be replayed from several threads at once (the kernels release the GIL).
* The interpreter runs a *program* (``tapegrad.program``): the tape's entries with node ids
  replaced by arena offsets, one 64-byte row per entry (``PROG_COLUMNS``), float attributes
  beside.  An n-ary (``select``) entry's operands are (offset, adjoint mode) pairs in the
  program's int arena, where its ``iarg`` column points; unary and binary entries keep
  their operands' offsets in the row.  (A separate operand-table argument would keep one
  more array live across the whole sweep loop: measured 4% slower on scalar code.)
* Only nodes on a path from a differentiated input to the output (the ``need`` bits)
  have their adjoints zeroed, read or written.
"""
import importlib
import types

from . import optable as T
from .compile import kernel
from .oprow import A_SHIFT, ADD, B_SHIFT, NEED_OUT, SET, SLOT_BITS, SLOT_MASK  # noqa: F401

# The rules as attributes of two module objects (F.EXP, B.EXP): numba resolves a module
# attribute at compile time to the function itself and inlines it.  (A tuple of functions
# would become function pointers: an indirect call per element and no on-disk cache.)
F = types.ModuleType("forward_rules")
B = types.ModuleType("backward_rules")
for _row in T.OPS:
    setattr(F, _row.name, _row.forward)
    setattr(B, _row.name, _row.backward)

# A program row: everything one entry needs sits in one 64-byte row, arena offsets already
# looked up in the node table.  ``by_reference`` packs MATMUL's by-reference slots
# (SLOT_BITS each for a and b).
PROG_COLUMNS = ("op", "out_offset", "a_offset", "b_offset", "size", "iarg", "need", "by_reference")


def dispatch_table():
    """What the generated sweeps depend on: each row's (name, family), in opcode order."""
    return tuple((row.name, row.family) for row in T.OPS)


def load_sweeps():
    """(forward_sweep, backward_sweep) from ``dispatch``, or, if that file is missing or was
    generated for another table, two functions that raise RuntimeError saying how to
    regenerate it (so a replay can never skip an op in silence)."""
    try:
        dispatch = importlib.import_module(__package__ + ".dispatch")
        if getattr(dispatch, "TABLE", None) == dispatch_table():
            return dispatch.forward_sweep, dispatch.backward_sweep
        why = "was generated for another op table"
    except ImportError as err:
        why = f"cannot be imported ({err})"

    def stale(*args):
        raise RuntimeError(f"tapegrad/jit/dispatch.py {why}: run python -m tapegrad.jit.gen_dispatch")
    return stale, stale


@kernel
def activity(out, arg_start, operands, base, diff, root, work, flags):
    """Write (need, live) per node into ``flags``: live, ``root`` or an entry without output
    (a guard, replayed for its own sake) depends on it; need, ``root`` depends on it and it
    depends on a differentiated input too (it lies on a path from one to ``root``).

    Entry e reads ``operands[arg_start[e]:arg_start[e + 1]]`` (the last entry up to the end).
    Decided per storage (``base``) so that a reshape alias and its source agree.
    """
    n, n_entries, total = base.shape[0], out.shape[0], operands.shape[0]
    # the caller's zeroed (3, n) scratch and (2, n) result: a kernel that allocated would
    # start numba's runtime on the first gradient's path (measured: 17 ms of a fresh process)
    active, live, wanted = work[0], work[1], work[2]  # wanted: its adjoint can be nonzero
    for node in diff:
        active[base[node]] = 1
    for e in range(n_entries):
        if out[e] < 0:
            continue
        stop = arg_start[e + 1] if e + 1 < n_entries else total
        for k in range(arg_start[e], stop):
            if active[base[operands[k]]]:
                active[base[out[e]]] = 1
                break
    live[base[root]] = 1
    wanted[base[root]] = 1
    for e in range(n_entries - 1, -1, -1):
        stop = arg_start[e + 1] if e + 1 < n_entries else total
        if out[e] < 0:
            for k in range(arg_start[e], stop):
                live[base[operands[k]]] = 1
        elif live[base[out[e]]]:
            carry = wanted[base[out[e]]]
            for k in range(arg_start[e], stop):
                live[base[operands[k]]] = 1
                if carry:
                    wanted[base[operands[k]]] = 1
    for node in range(n):
        flags[0, node] = active[base[node]] & wanted[base[node]]
        flags[1, node] = live[base[node]]
