"""Writes ``dispatch.py`` (the interpreter's two sweeps) and ``batch_dispatch.py`` (the same
two sweeps over many points at once) from the op table.

    python -m tapegrad.jit.gen_dispatch          # rewrite both files
    python -m tapegrad.jit.gen_dispatch --check  # exit 1 if either is out of date

Each sweep is a loop over the program with one branch per opcode, in table order; the
branch body is the row's family template (``TEMPLATES``, ``BATCH_TEMPLATES``) with the
row's name filled in.
The output is plain source, committed, so numba caches it on disk like any other module
(functions made with ``exec`` cannot be cached); a test asserts the committed file equals
:func:`source`.

Invariants
----------
* ``forward_sweep(..., check)`` returns -1, or the program row of the first guard that
  fails when ``check`` is set (``ops_guard``).
* Every row of ``OPS`` gets exactly one branch in each sweep, calling its own rules
  (``F.NAME`` / ``B.NAME``); a family without a template is an error here, not at runtime.
* Deterministic: the text depends only on the table (names, families, order).
* Never stale in silence: ``dispatch.TABLE`` records the (name, family) rows it was written
  for, and ``interpreter.load_sweeps``  hands out
  sweeps that raise, naming the command above, when the file is missing or the table has
  changed since (``interpreter.load_sweeps``).  Importing still works, so the generator
  itself can run.
"""
import os
import sys

from .interpreter import dispatch_table
from .optable import OPS

# family -> (forward call, backward call); ``{name}`` is the row's name.  The variables are
# those the sweeps unpack from the program row (see ``HEADER``).
TEMPLATES = {
    "map": ("map_fwd(F.{name}, vals, oo, oa, n, pe, qe)",
            "map_bwd(B.{name}, vals, adj, oo, oa, n, pe, qe, na)"),
    "zip": ("zip_fwd(F.{name}, vals, ints, oo, oa, ob, n, ia)",
            "zip_bwd(B.{name}, vals, adj, ints, oo, oa, ob, n, ia, na, nb)"),
    "select": ("F.{name}(vals, ints, ia, oo, n)",
               "B.{name}(vals, adj, ints, ia, oo, n)"),
}
_ARRAY = ("F.{name}(vals, ints, oo, oa, ob, n, ia, pe, qe, ext, prog[e, 7])",
          "B.{name}(vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, prog[e, 7])")
TEMPLATES.update(reduce=_ARRAY, linalg=_ARRAY, index=_ARRAY, decomp=_ARRAY)
# a variadic entry's own ints start at prog[e, 2] (oa); its operand pairs at ia
TEMPLATES["variadic"] = ("F.{name}(vals, ints, ia, oa, oo, n)", "B.{name}(vals, adj, ints, ia, oa, oo, n)")
# A guard stops the forward sweep where its comparison no longer holds (the Python side then
# records again); the backward sweep never reaches one (its need is 0), the call is a no-op.
TEMPLATES["guard"] = ("\n            if check and guard_fails(F.{name}, vals, ints, oa, ob, ia):"
                      "\n                return e",
                      "B.{name}(vals, adj, oa, ob)")

# The batched sweeps: the same call per family, through the loops of ``batch_rules`` that
# run it flat over all points or once per point (see there).
BATCH_TEMPLATES = {
    "map": ("map_fwd_b(F.{name}, vals, oo, oa, n, pe, qe, npts, so, sa, flat)",
            "map_bwd_b(B.{name}, vals, adj, oo, oa, n, pe, qe, na, npts, so, sa, flat)"),
    "zip": ("zip_fwd_b(F.{name}, vals, ints, oo, oa, ob, n, ia, npts, so, sa, sb, flat, pat)",
            "zip_bwd_b(B.{name}, vals, adj, ints, oo, oa, ob, n, ia, na, nb, npts, so, sa, sb, flat, pat)"),
    "select": ("select_fwd_b(F.{name}, vals, ints, ia, oo, n, npts, so, flat, nary, n0, n1)",
               "select_bwd_b(B.{name}, vals, adj, ints, ia, oo, n, npts, so, flat, nary, n0, n1)"),
    "variadic": ("variadic_fwd_b(F.{name}, vals, ints, ia, oa, oo, n, npts, so, nary, n0, n1)",
                 "variadic_bwd_b(B.{name}, vals, adj, ints, ia, oa, oo, n, npts, so, nary, n0, n1)"),
    "guard": ("\n            if check:"
              "\n                guard_b(F.{name}, vals, ints, oa, ob, ia, npts, sa, sb, failed)",
              "B.{name}(vals, adj, oa, ob)"),
}
_BATCH_ARRAY = ("array_fwd_b(F.{name}, vals, ints, oo, oa, ob, n, ia, pe, qe, ext, npts, so, sa, sb)",
                "array_bwd_b(B.{name}, vals, adj, ints, oo, oa, ob, n, ia, pe, qe, na, nb, ext, npts, so, sa, sb)")
BATCH_TEMPLATES.update(reduce=_BATCH_ARRAY, linalg=_BATCH_ARRAY, index=_BATCH_ARRAY, decomp=_BATCH_ARRAY)

# The points-minor sweeps (``soa_rules``): offsets are scaled by cap and every node is a
# contiguous run of n * cap floats, so the one-point elementwise loops run over it as they
# are.  Keyed by family, or by row name where a family's rows differ (a reduce row is
# points-minor only if it works column by column over (pre, m, post): with post * cap
# columns each point's column is the one-point one).  Rows without a template have no
# branch: ``batchprog`` lays out points-minor only programs of rows in ``SOA_OPS``.
SOA_TEMPLATES = {
    "map": ("map_fwd(F.{name}, vals, oo, oa, n * cap, pe, qe)",
            "map_bwd(B.{name}, vals, adj, oo, oa, n * cap, pe, qe, na)"),
    "zip": ("soa_zip_fwd(F.{name}, vals, ints, oo, oa, ob, ia, cap)",
            "soa_zip_bwd(B.{name}, vals, adj, ints, oo, oa, ob, ia, na, nb, cap, work)"),
    "select": ("F.{name}(vals, ints, ia, oo, n * cap)", "B.{name}(vals, adj, ints, ia, oo, n * cap)"),
    "CONCAT": ("F.{name}(vals, ints, ia, oa, oo, n * cap)", "B.{name}(vals, adj, ints, ia, oa, oo, n * cap)"),
    "guard": ("\n            if check:"
              "\n                guard_b(F.{name}, vals, ints, oa, ob, ia, npts, 1, 1, failed)",
              "B.{name}(vals, adj, oa, ob)"),
    "SUM": ("soa_sum_fwd(vals, ints, oo, oa, ia, pe, ext, npts, cap, work)",
            "soa_sum_bwd(adj, ints, oo, oa, ia, pe)"),
    "GATHER": ("soa_gather_fwd(vals, ints, oo, oa, n, ia, cap)", "soa_gather_bwd(adj, ints, oo, oa, n, ia, cap)"),
}
_SOA_COLUMNS = ("F.{name}(vals, ints, oo, oa, ob, n * cap, ia, pe, qe, ext, 0)",
                "B.{name}(vals, adj, ints, oo, oa, ob, n * cap, ia, pe, qe, na, nb, ext, 0)")
SOA_TEMPLATES.update((name, _SOA_COLUMNS) for name in ("MAX", "LOGSUMEXP", "SOFTMAX", "CUMSUM", "CUMPROD"))

HEADER = '''"""The interpreter's sweeps.  GENERATED from the op table by

    python -m tapegrad.jit.gen_dispatch

Do not edit: change a row (``ops_*.py``) or a family template (``gen_dispatch.py``) and
regenerate; a test fails while this file differs from the generator's output.

``forward_sweep`` recomputes every entry first to last; ``backward_sweep`` is grad_table:
seed the output's adjoint, then walk the entries last to first, each adding its
vector-Jacobian product into its operands' adjoints (see ``interpreter``).
"""
from . import optable as T
from .compile import kernel
from .interpreter import A_SHIFT, B_SHIFT, B, F
from .ops_elementwise import map_bwd, map_fwd, zip_bwd, zip_fwd
from .ops_guard import guard_fails

TABLE = {table!r}


@kernel
def forward_sweep(prog, attrs, ints, vals, ext, check):
    """Recompute every entry's value, first to last (the lectures' forward pass).

    Returns -1, or, when ``check`` is nonzero and a guard's comparison disagrees with the
    outcome it recorded, that guard's program row (the sweep stops there: later entries
    may belong to the other branch).
    """
    for e in range(prog.shape[0]):
        o, oo, oa, ob, n, ia = prog[e, 0], prog[e, 1], prog[e, 2], prog[e, 3], prog[e, 4], prog[e, 5]
        pe, qe = attrs[e, 0], attrs[e, 1]
'''

MIDDLE = '''    return -1

@kernel
def backward_sweep(prog, attrs, ints, vals, adj, zero, root, seed, ext):
    """grad_table: seed the output's adjoint, then walk the entries last to first, adding
    each one's vector-Jacobian product to its operands' adjoints.

    ``zero`` lists the (start, stop) arena blocks to clear first: the adjoints that will
    be accumulated into.  ``seed`` goes to adj[root:]: 1.0 for a gradient, a unit vector
    for a row of a Jacobian.
    """
    for r in range(zero.shape[0]):  # a slice: an index loop here does not vectorise
        adj[zero[r, 0]:zero[r, 1]] = 0.0
    for j in range(seed.shape[0]):
        adj[root + j] = seed[j]
    for e in range(prog.shape[0] - 1, -1, -1):
        need = prog[e, 6]
        if need == 0:  # no differentiated input upstream, or no path to the output
            continue
        o, oo, oa, ob, n, ia = prog[e, 0], prog[e, 1], prog[e, 2], prog[e, 3], prog[e, 4], prog[e, 5]
        pe, qe, na, nb = attrs[e, 0], attrs[e, 1], (need >> A_SHIFT) & 3, (need >> B_SHIFT) & 3
'''


BATCH_HEADER = '''"""The interpreter's sweeps over many points at once.  GENERATED from the op table by

    python -m tapegrad.jit.gen_dispatch

Do not edit: change a row (``ops_*.py``) or a family template (``gen_dispatch.py``) and
regenerate; a test fails while this file differs from the generator's output.

The sweeps of ``dispatch`` for ``npts`` points of a batched program (``tapegrad.batchprog``).
Points-major (``batch_*``): each operand has a point-0 offset (program row) and a
per-point stride (``strides`` columns so, sa, sb), and each entry runs flat over all
points or once per point (``batch_rules``).  Points-minor (``soa_*``): offsets are scaled
by ``cap``, point index fastest, and each entry runs once over all points (``soa_rules``).
A failed guard marks its points in ``failed`` instead of stopping.
"""
from . import optable as T
from .batch_rules import (array_bwd_b, array_fwd_b, guard_b, map_bwd_b, map_fwd_b, select_bwd_b,
                          select_fwd_b, variadic_bwd_b, variadic_fwd_b, zip_bwd_b, zip_fwd_b)
from .compile import kernel
from .interpreter import A_SHIFT, B_SHIFT, B, F
from .ops_elementwise import map_bwd, map_fwd
from .soa_rules import (soa_gather_bwd, soa_gather_fwd, soa_sum_bwd, soa_sum_fwd, soa_zip_bwd,
                        soa_zip_fwd)

TABLE = {table!r}
SOA_OPS = {soa_ops!r}  # the rows the points-minor sweeps have a branch for


@kernel
def batch_forward_sweep(prog, attrs, ints, vals, ext, check, strides, nary, npts, pat, failed):
    """Recompute every entry's value at ``npts`` points, first to last; where ``check`` is
    nonzero, mark in ``failed`` the points at which a guard does not hold."""
    for e in range(prog.shape[0]):
        o, oo, oa, ob, n, ia = prog[e, 0], prog[e, 1], prog[e, 2], prog[e, 3], prog[e, 4], prog[e, 5]
        pe, qe = attrs[e, 0], attrs[e, 1]
        so, sa, sb, flat, n0, n1 = strides[e, 0], strides[e, 1], strides[e, 2], strides[e, 3], strides[e, 4], strides[e, 5]
'''

BATCH_MIDDLE = '''

@kernel
def batch_backward_sweep(prog, attrs, ints, vals, adj, zero, root, rstride, ext, strides, nary, npts, pat):
    """grad_table at ``npts`` points: seed each point's output adjoint with 1.0, then walk
    the entries last to first (``zero`` holds the blocks to clear, already batched)."""
    for r in range(zero.shape[0]):
        adj[zero[r, 0]:zero[r, 1]] = 0.0  # a slice: a loop over indices is 3x slower
    for b in range(npts):
        adj[root + b * rstride] = 1.0
    for e in range(prog.shape[0] - 1, -1, -1):
        need = prog[e, 6]
        if need == 0:  # no differentiated input upstream, or no path to the output
            continue
        o, oo, oa, ob, n, ia = prog[e, 0], prog[e, 1], prog[e, 2], prog[e, 3], prog[e, 4], prog[e, 5]
        pe, qe, na, nb = attrs[e, 0], attrs[e, 1], (need >> A_SHIFT) & 3, (need >> B_SHIFT) & 3
        so, sa, sb, flat, n0, n1 = strides[e, 0], strides[e, 1], strides[e, 2], strides[e, 3], strides[e, 4], strides[e, 5]
'''

SOA_HEADER = '''

@kernel
def soa_forward_sweep(prog, attrs, ints, vals, ext, check, npts, cap, work, failed):
    """The points-minor forward sweep at ``npts`` points of a chunk of ``cap``; where
    ``check`` is nonzero, mark in ``failed`` the points at which a guard does not hold.
    Returns -1, or the first row it has no branch for (the program was not points-minor)."""
    for e in range(prog.shape[0]):
        o, oo, oa, ob, n, ia = prog[e, 0], prog[e, 1], prog[e, 2], prog[e, 3], prog[e, 4], prog[e, 5]
        pe, qe = attrs[e, 0], attrs[e, 1]
'''

SOA_MIDDLE = '''        else:
            return e
    return -1


@kernel
def soa_backward_sweep(prog, attrs, ints, vals, adj, zero, root, ext, npts, cap, work):
    """grad_table at the ``npts`` points of a points-minor chunk: seed each point's output
    adjoint with 1.0 (point b's at root + b), then walk the entries last to first."""
    for r in range(zero.shape[0]):
        adj[zero[r, 0]:zero[r, 1]] = 0.0  # a slice: a loop over indices is 3x slower
    for b in range(npts):
        adj[root + b] = 1.0
    for e in range(prog.shape[0] - 1, -1, -1):
        need = prog[e, 6]
        if need == 0:  # no differentiated input upstream, or no path to the output
            continue
        o, oo, oa, ob, n, ia = prog[e, 0], prog[e, 1], prog[e, 2], prog[e, 3], prog[e, 4], prog[e, 5]
        pe, qe, na, nb = attrs[e, 0], attrs[e, 1], (need >> A_SHIFT) & 3, (need >> B_SHIFT) & 3
'''


def _template(row, templates):
    return templates.get(row.name) or templates.get(row.family)


def soa_ops():
    """The names of the rows the points-minor sweeps have a branch for, in table order."""
    return tuple(row.name for row in OPS if _template(row, SOA_TEMPLATES) is not None)


def _branches(direction, templates=TEMPLATES, partial=False):
    """One branch per row with a template (``partial``: rows without one get none)."""
    width = max(len(row.name) for row in OPS) + len("T.:")
    lines = []
    for row in OPS:
        template = _template(row, templates)
        if template is None:
            if partial:
                continue
            raise ValueError(f"op {row.name}: family {row.family!r} has no call template")
        call = template[direction].format(name=row.name)
        test = f"o == T.{row.name}:".ljust(width + len("o == ") + (0 if lines else 2))
        line = f"        {'elif' if lines else 'if'} {test} {call}"
        lines.append("\n".join(part.rstrip() for part in line.split("\n")))
    return "\n".join(lines) + "\n"


def source():
    """The text of ``dispatch.py`` for the current op table."""
    return HEADER.replace("{table!r}", repr(dispatch_table())) + _branches(0) + MIDDLE + _branches(1)


def batch_source():
    """The text of ``batch_dispatch.py`` for the current op table."""
    header = BATCH_HEADER.replace("{table!r}", repr(dispatch_table())).replace("{soa_ops!r}", repr(soa_ops()))
    return (header + _branches(0, BATCH_TEMPLATES) + BATCH_MIDDLE + _branches(1, BATCH_TEMPLATES)
            + SOA_HEADER + _branches(0, SOA_TEMPLATES, True) + SOA_MIDDLE + _branches(1, SOA_TEMPLATES, True))


_HERE = os.path.dirname(os.path.abspath(__file__))
PATH = os.path.join(_HERE, "dispatch.py")
BATCH_PATH = os.path.join(_HERE, "batch_dispatch.py")


def update_file(path, text, check, command):
    """Write ``text`` to ``path`` if it differs; with ``check``, only say whether it is up to
    date.  Returns the exit status (1: out of date under ``check``)."""
    try:
        with open(path) as f:
            current = f.read()
    except FileNotFoundError:
        current = None
    if check:
        if current != text:
            print(f"{path} is out of date: run {command}")
            return 1
        return 0
    if current != text:
        with open(path, "w") as f:
            f.write(text)
        print(f"wrote {path}")
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    command = "python -m tapegrad.jit.gen_dispatch"
    return max(update_file(path, text, "--check" in argv, command)
               for path, text in ((PATH, source()), (BATCH_PATH, batch_source())))


if __name__ == "__main__":
    sys.exit(main())
