"""A tape's *batched program*: its program laid out for ``cap`` points at once.

The batch transformation of a tape (``tapegrad.batch``) keeps every entry and gives every
node a point axis, in one of two layouts of the work arena:

* *points-minor* (:func:`points_minor_program`, ``minor``): element j of point b of a node
  at one-point offset o sits at ``cap * (o + j) + b``.  Every offset is scaled by ``cap``,
  so a node of n elements, a view (``x[1:]``) as much as a whole storage, is one contiguous
  run of ``n * cap`` floats and every entry runs once over all points, the elementwise ones
  with the one-point loops as they are (``tapegrad.jit.soa_rules``).  Used when every entry
  of the program has a points-minor branch (``batch_dispatch.SOA_OPS``: all but MATMUL and
  the decompositions, which call BLAS/LAPACK on each point's contiguous matrices).
* *points-major* (:func:`batch_program`): each storage of the one-point arena (per-point
  size s, offset o) becomes ``cap`` copies side by side, point b's at ``cap * o + b * s``;
  a view at ``o + d`` inside it is at ``cap * o + b * s + d``.  An entry then reads, for
  each operand, a point-0 position and a per-point stride, and runs flat over all points
  (elementwise entries whose operands are whole storages of the output's size) or once per
  point (everything else), see ``tapegrad.jit.batch_rules``.

Invariants
----------
* Built from ``program(tape, slots={})``: the one-point program with every input in the
  arena (a by-reference input would have one address for all points).  Same entries,
  same need bits, same SET/ADD modes.  Points-major, each point's copy is a storage of its
  own laid out as in the one-point arena, so the proof of ``program.assignable`` holds per
  point; points-minor, each point's elements are those of the one-point arena with every
  offset scaled, and each loop visits a point's elements in the one-point order, so it
  holds per point too.  A flat entry writes each element once as the one-point kernel does.
* Every position is inside the ``cap * arena`` buffer: points-major, the storages tile the
  one-point arena (checked), so ``cap * o + (cap - 1) * s + d < cap * (o + s)``;
  points-minor, ``cap * (o + j) + b < cap * len(arena)``.  Points-minor int attributes
  that count elements are scaled by ``cap`` in the program's own copy of the int arena: a
  zip's broadcast pattern (rows without a broadcast along them), the (pre, m, post) of a
  reduction (post * cap columns: each point's column is the one-point column), CONCAT's
  widths, the n-ary operand offsets.
* A points-minor chunk computes all ``cap`` slots: ``cap`` is cut to the points one
  thread evaluates (:func:`plan_for`).
"""
from collections import namedtuple

import numpy as np

import tapegrad.jit as J
from tapegrad.program import program, replayed

BatchProgram = namedtuple("BatchProgram", "cap prog attrs ints strides nary zero root rstride "
                          "template inputs grads gsize gcol minor")
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
    gsize, gcol = grad_blocks(tape)
    return BatchProgram(cap, prog, attrs, ints, strides, table, cap * zero, int(root[0]),
                        int(rstride[0]), template, inputs, grads, gsize, gcol, False)


def grad_blocks(tape):
    """(gsize, gcol): each differentiated leaf's size and the start, in units of N, of its
    (N, size) block in the packed gradients, in order."""
    gsize = np.array([size for _, _, size, *_ in tape._grad_plan], np.int64)
    return gsize, np.cumsum(np.append(0, gsize[:-1])).astype(np.int64)


POINTS_MINOR = True  # lay out points-minor every program the points-minor sweeps support
# A points-minor chunk runs each entry over all its points at once, so it is fastest when a
# chunk's values and adjoints stay in L1 (measured, Rosenbrock n = 10: cap 32 is 1.2x
# faster than cap 440; the scalar lecture function is indifferent from cap 128 up).
SOA_ARENA_FLOATS = 1 << 11
# every reduce row reads its operand as a (pre, m, post) block, its ints (ops_reduce)
_REDUCE = np.array([row.family == "reduce" for row in J.OPS], bool)


def supports_points_minor(tape):
    """Whether every entry of the program of ``tape`` has a points-minor branch."""
    from tapegrad.jit.batch_dispatch import SOA_OPS
    ok = getattr(tape, "_points_minor", None)
    if ok is None:
        codes = np.array([J.CODES[name] for name in SOA_OPS], np.int64)
        ok = tape._points_minor = bool(np.all(np.isin(tape.op[replayed(tape)], codes)))
    return ok


def points_minor_program(tape, cap):
    """The points-minor batched program of ``tape`` for chunks of ``cap`` points (module
    docstring); the caller checked :func:`supports_points_minor`."""
    prog, attrs, zero, ints, (_, table_at) = program(tape, slots={}, operand_table=True)
    ops, n = prog[:, 0], prog[:, 4]
    prog, ints = prog.copy(), ints.copy()
    prog[:, 1] *= cap
    prog[:, 2] = np.where(_VARIADIC[ops], prog[:, 2], cap * prog[:, 2])  # variadic: its ints
    prog[:, 3] *= cap
    ints[table_at] *= cap
    extra = [ints]
    at = len(ints)

    def append(rows, blocks):
        nonlocal at
        if not len(rows):
            return
        blocks = np.asarray(blocks, np.int64).reshape(len(rows), -1)
        prog[rows, 5] = at + blocks.shape[1] * np.arange(len(rows))
        extra.append(blocks.ravel())
        at += blocks.size

    zips = np.flatnonzero(_ZIP[ops])
    d0, d1, sa0, sa1, sb0, sb1 = ints[prog[zips, 5][:, None] + np.arange(6)].T
    one = n[zips] == 1  # one element: the same floats whatever the pattern says
    rows = (sa1 == 1) & (sb1 == 1) | one
    append(zips[rows], np.stack([np.where(one, 1, d0), np.where(one, 1, d1) * cap,
                                 np.where(one, 0, sa0 * cap), np.ones_like(d0),
                                 np.where(one, 0, sb0 * cap), np.ones_like(d0)], axis=1)[rows])
    reduce = np.flatnonzero(_REDUCE[ops])
    pre, m, post = ints[prog[reduce, 5][:, None] + np.arange(3)].T
    append(reduce, np.stack([pre, m, post * cap], axis=1))
    for e in np.flatnonzero(ops == J.CODES["CONCAT"]):
        own = prog[e, 2]
        k = ints[own]
        prog[e, 2] = at
        extra.append(np.concatenate([ints[own:own + 2], cap * ints[own + 2:own + 2 + k]]))
        at += 2 + k

    gsize, gcol = grad_blocks(tape)
    grads = np.array([cap * start if needed else -1 for _, start, _, needed, *_ in tape._grad_plan],
                     np.int64)
    return BatchProgram(cap, prog, attrs, np.concatenate(extra), np.zeros((0, 6), np.int64),
                        np.zeros((0, 3), np.int64), cap * zero, cap * int(tape.offset[tape.output]),
                        1, np.repeat(tape.values, cap), [cap * int(o) for o in tape.offset[tape.inputs]],
                        grads, gsize, gcol, True)


def plan_for(tape, max_cap, points):
    """The batched program of ``tape`` for a thread evaluating ``points`` points in chunks
    of at most ``max_cap`` (cached on the tape).  A points-minor chunk always spans its
    program's ``cap`` points, so its cap is cut to the points there are (a power of two,
    to keep few programs)."""
    minor = POINTS_MINOR and supports_points_minor(tape)
    cap = max_cap
    if minor:
        cap = min(cap, max(8, SOA_ARENA_FLOATS // max(1, len(tape.values))))
        cap = min(cap - cap % 8 if cap >= 8 else cap, max(8, 1 << (int(points) - 1).bit_length()))
    plans = getattr(tape, "_batch_plans", None)
    if plans is None:
        plans = tape._batch_plans = {}
    key = (minor, cap)
    if key not in plans:
        if len(plans) > 8:
            plans.clear()
        plans[key] = points_minor_program(tape, cap) if minor else batch_program(tape, cap)
    return plans[key]
