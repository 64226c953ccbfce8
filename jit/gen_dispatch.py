"""Writes ``dispatch.py``, the interpreter's two sweeps, from the op table.

    python -m tapegrad.jit.gen_dispatch          # rewrite jit/dispatch.py
    python -m tapegrad.jit.gen_dispatch --check  # exit 1 if it is out of date

Each sweep is a loop over the program with one branch per opcode, in table order; the
branch body is the row's family template (``TEMPLATES``) with the row's name filled in.
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
    for r in range(zero.shape[0]):
        for j in range(zero[r, 0], zero[r, 1]):
            adj[j] = 0.0
    for j in range(seed.shape[0]):
        adj[root + j] = seed[j]
    for e in range(prog.shape[0] - 1, -1, -1):
        need = prog[e, 6]
        if need == 0:  # no differentiated input upstream, or no path to the output
            continue
        o, oo, oa, ob, n, ia = prog[e, 0], prog[e, 1], prog[e, 2], prog[e, 3], prog[e, 4], prog[e, 5]
        pe, qe, na, nb = attrs[e, 0], attrs[e, 1], (need >> A_SHIFT) & 3, (need >> B_SHIFT) & 3
'''


def _branches(direction):
    width = max(len(row.name) for row in OPS) + len("T.:")
    lines = []
    for k, row in enumerate(OPS):
        if row.family not in TEMPLATES:
            raise ValueError(f"op {row.name}: family {row.family!r} has no call template")
        call = TEMPLATES[row.family][direction].format(name=row.name)
        test = f"o == T.{row.name}:".ljust(width + len("o == ") + (2 if k == 0 else 0))
        line = f"        {'if' if k == 0 else 'elif'} {test} {call}"
        lines.append("\n".join(part.rstrip() for part in line.split("\n")))
    return "\n".join(lines) + "\n"


def source():
    """The text of ``dispatch.py`` for the current op table."""
    return HEADER.replace("{table!r}", repr(dispatch_table())) + _branches(0) + MIDDLE + _branches(1)


PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dispatch.py")


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
    return update_file(PATH, source(), "--check" in argv, "python -m tapegrad.jit.gen_dispatch")


if __name__ == "__main__":
    sys.exit(main())
