"""A tape's *batched program*: its program laid out for ``cap`` points at once.

The batch transformation of a tape (``tapegrad.batch``) keeps every entry and gives every
node a leading point axis: each storage of the one-point arena (per-point size s, offset
o) becomes ``cap`` copies side by side, point b's at ``cap * o + b * s``; a view at
``o + d`` inside it is at ``cap * o + b * s + d``.  An entry then reads, for each operand,
a point-0 position and a per-point stride, and runs flat over all points (elementwise
entries whose operands are whole storages of the output's size: scalar code becomes
vector code) or once per point (everything else), see ``tapegrad.jit.batch_rules``.

Invariants
----------
* Built from ``program(tape, slots={})``: the one-point program with every input in the
  arena (a by-reference input would have one address for all points).  Same entries,
  same need bits, same SET/ADD modes: each point's copy is a storage of its own, laid out
  as in the one-point arena, so the proof of ``program.assignable`` holds per point, and
  a flat entry writes each element once just as the one-point kernel does.
* Every position is inside the ``cap * arena`` buffer: the storages tile the one-point
  arena (checked), so ``cap * o + (cap - 1) * s + d < cap * (o + s)``.
"""
from collections import namedtuple

import numpy as np

import tapegrad.jit as J
from tapegrad.program import program

BatchProgram = namedtuple("BatchProgram", "cap prog attrs ints strides nary zero root rstride "
                          "template inputs grads gsize gcol")
_MAP, _ZIP, _SELECT, _VARIADIC = (np.array([row.family == f for row in J.OPS], bool)
                                  for f in ("map", "zip", "select", "variadic"))
_WRITES = np.array([row.outputs == 1 for row in J.OPS], bool)


def _storages(tape):
    """(starts, sizes) of the storages (base nodes) sorted by start, checked to tile the arena."""
    bases = np.flatnonzero(tape.base == np.arange(len(tape.base)))
    order = np.lexsort((tape.size[bases], tape.offset[bases]))
    starts, sizes = tape.offset[bases][order], tape.size[bases][order]
    nonempty = sizes > 0
    ends = starts[nonempty] + sizes[nonempty]
    if len(tape.values) and (starts[nonempty][0] != 0 or np.any(ends[:-1] != starts[nonempty][1:])
                             or ends[-1] != len(tape.values)):
        raise AssertionError("tapegrad.batchprog: the storages do not tile the arena")
    return starts, sizes


def _placer(tape, cap):
    """A function mapping one-point arena offsets to (point-0 position, per-point stride)."""
    starts, sizes = _storages(tape)

    def place(offsets):
        offsets = np.asarray(offsets, np.int64)
        k = np.maximum(np.searchsorted(starts, offsets, side="right") - 1, 0)
        return cap * starts[k] + (offsets - starts[k]), sizes[k]
    return place


def batch_program(tape, cap):
    """The batched program of ``tape`` for chunks of ``cap`` points (module docstring)."""
    prog, attrs, zero, ints, (table_entry, table_at) = program(tape, slots={}, operand_table=True)
    place = _placer(tape, cap)
    ops = prog[:, 0]
    nary = _SELECT[ops] | _VARIADIC[ops]
    prog = prog.copy()
    strides = np.zeros((len(prog), 6), np.int64)
    has_out = _WRITES[ops]
    prog[:, 1], strides[:, 0] = np.where(has_out, place(prog[:, 1]), 0)
    pos, stride = place(prog[:, 2])
    prog[:, 2] = np.where(nary, prog[:, 2], pos)  # a variadic row keeps its ints start there
    strides[:, 1] = np.where(nary, 0, stride)
    pos, stride = place(prog[:, 3])
    prog[:, 3], strides[:, 2] = pos, stride
    n = prog[:, 4]

    ints = ints.copy()
    table_pos, table_stride = place(ints[table_at])
    ints[table_at] = table_pos
    table = np.stack([table_at, table_pos, table_stride], axis=1).astype(np.int64).reshape(-1, 3)
    first = np.searchsorted(table_entry, np.arange(len(prog)), side="left")
    last = np.searchsorted(table_entry, np.arange(len(prog)), side="right")
    strides[:, 4], strides[:, 5] = first, last
    # flat: every operand a whole storage of the output's size
    whole = (strides[:, 0] == n) & (n > 0)
    unary, binary = _MAP[ops], _ZIP[ops]
    flat_map = unary & whole & (strides[:, 1] == n)
    # a zip operand of the output's size has an identity pattern (not broadcast); one whose
    # storage merely has that size (a window x[0] of an x of n elements) does not
    pattern = np.zeros((len(prog), 6), np.int64)
    pattern[binary] = ints[prog[binary, 5][:, None] + np.arange(6)]
    d0, d1, sa0, sa1, sb0, sb1 = pattern.T
    unbroadcast = (sa1 == 1) & (sb1 == 1) & ((d0 == 1) | ((sa0 == d1) & (sb0 == d1)))
    flat_zip = binary & whole & unbroadcast & (strides[:, 1] == n) & (strides[:, 2] == n)
    flat_select = _SELECT[ops] & whole
    for e in np.flatnonzero(flat_select):
        flat_select[e] = bool(np.all(table_stride[first[e]:last[e]] == n[e]))
    strides[:, 3] = flat_map | flat_zip | flat_select

    root, rstride = place([tape.offset[tape.output]])
    x = np.arange(len(tape.values))
    xpos, xstride = place(x)
    positions = xpos[None, :] + np.arange(cap)[:, None] * xstride[None, :]
    template = np.zeros(cap * len(tape.values))
    template[positions.ravel()] = np.broadcast_to(tape.values, (cap, len(tape.values))).ravel()
    inputs = [int(p) for p in place(tape.offset[tape.inputs])[0]]
    grads = np.array([int(place([start])[0][0]) if needed else -1
                      for _, start, _, needed, *_ in tape._grad_plan], np.int64)
    gsize = np.array([size for _, _, size, *_ in tape._grad_plan], np.int64)
    gcol = np.cumsum(np.append(0, gsize[:-1])).astype(np.int64)  # (N, size) blocks, in order
    return BatchProgram(cap, prog, attrs, ints, strides, table, cap * zero, int(root[0]),
                        int(rstride[0]), template, inputs, grads, gsize, gcol)
