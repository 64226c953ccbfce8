"""The shape of one op-table row, and the adjoint modes every backward kernel understands.

Kept apart from ``optable`` so that the family modules (``ops_*``) can build their rows
without importing the table that assembles them (no import circle).

A row is ``Op(name, family, arity, forward, backward, doc, check, overwrites, outputs,
floats, jvp, batch)``; ``optable`` documents each field.  Rows are built with :func:`Op`,
which fills the defaults and refuses an incomplete row before anything is compiled.

Array kernels (families reduce, linalg, index, decomp) have the fixed signatures the generated
sweeps call them with:

    forward(vals, ints, oo, oa, ob, n, ia, p, q, ext, xs)
    backward(vals, adj, ints, oo, oa, ob, n, ia, p, q, need_a, need_b, ext, xs)

``vals``/``adj`` are the value and adjoint arenas, ``oo``/``oa``/``ob`` the arena offsets of
the output and operands, ``n`` the output size, ``ia`` the offset of this entry's integer
attributes in ``ints``, ``p``/``q`` its float attributes.  Backward kernels *add* into
``adj`` (the adjoint of a node is the sum over the entries that use it) and touch an
operand's adjoint only when ``need_a``/``need_b`` are nonzero; a value of 2 (``SET``) lets a
kernel whose row has ``overwrites`` assign that adjoint instead (it was not zeroed).

Invariants
----------
* ``outputs`` is 1 (the entry writes one fresh node) or 0 (it writes none: a guard).
* ``arity`` is the fixed number of operands an entry of the row reads (>= 1), or
  ``VARIADIC`` (0) for a ``variadic`` row: any number >= 1, stored first in its ints.
* ``floats`` names the entry's float attributes, in the order the program passes them to
  the rules as ``p`` and ``q`` (at most two); their count is fixed per row, so a tape stores
  them in one arena without per-entry offsets.
"""
from collections import namedtuple

FAMILIES = ("map", "zip", "select", "reduce", "linalg", "index", "guard", "variadic", "decomp")
VARIADIC = 0  # the arity of a row whose entries read any number (>= 1) of operands

_Op = namedtuple("Op", "name family arity forward backward doc check overwrites outputs floats jvp batch")

# The need column of a program row: bit 0 says the output's adjoint matters at all; bits
# 1-2 and 3-4 say what to do with operand a's and b's adjoints: 0 nothing, ADD accumulate,
# SET overwrite (this entry is the first to reach that adjoint and writes all of it, so it
# was not zeroed).  n-ary entries keep one mode per operand in the program's operand table.
NEED_OUT, ADD, SET, A_SHIFT, B_SHIFT = 1, 1, 2, 1, 3
SLOT_BITS = 20  # a MATMUL program row's last column packs the by-reference slots of a and b
SLOT_MASK = (1 << SLOT_BITS) - 1


def Op(name, family, arity, forward, backward, doc, check, overwrites=False, outputs=1,
       floats=(), jvp=None, batch=None):
    """A row of the op table (see ``optable`` for the fields)."""
    if family not in FAMILIES:
        raise ValueError(f"op {name}: unknown family {family!r} (one of {FAMILIES})")
    if check is None:
        raise TypeError(f"op {name}: a row must name the check of its integer attributes")
    if outputs not in (0, 1) or (arity < 1) != (family == "variadic") or len(floats) > 2:
        raise ValueError(f"op {name}: outputs must be 0 or 1, arity >= 1 (0 exactly for a "
                         "variadic row), at most 2 floats")
    return _Op(name, family, arity, forward, backward, doc, check, overwrites, outputs,
               tuple(floats), jvp, batch)
