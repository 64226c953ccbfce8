"""The traced vector-Jacobian product of every op: one table keyed by op name.

The numba kernels (``jit/ops_*.py``) are the fast path of a first-order gradient: they
compute numbers.  The rules here compute the same adjoints as *traced* values: each rule
is written with tapegrad's own operations (``tapegrad.emit.vjp_elementwise`` and
``vjp_arrays``, one rule a line where possible, as autograd's ``numpy_vjps``), so a
backward sweep run through them (``tapegrad.inline``) is itself recorded onto a tape, and
that tape can be differentiated again, replayed, saved.

``RULES[name]`` is a tuple with one function per operand, ``rule(g, y, *operands, e)``
returning that operand's adjoint (None: zero), except for a variadic row, whose single
function ``rule(t, g, y, operands, e)`` gives operand ``t``'s.  Zip rules are wrapped to
sum their result down to the operand's shape (a broadcast operand's adjoint is a sum).  A
decomposition row writes one packed node: its rule gets ``g`` as a list of per-component
adjoints (``components``; None for an unused component).

Invariants
----------
* Every row of the op table that writes an output has a rule (``missing()`` is empty;
  tests/test_second_order_ops.py fails otherwise); guard rows write none and need none.
* A rule's adjoint has its operand's shape, and equals what the row's backward kernel adds
  into that operand's adjoint (checked per op, on every case of tests/test_ops.py).
"""
from collections import namedtuple

import tapegrad.jit as J
from tapegrad.emit import vjp_arrays as VA, vjp_decomp as VD, vjp_elementwise as VE

Attrs = namedtuple("Attrs", "ints p q")  # one entry's integer and float attributes


def _zip(rules):
    """Per-operand rules of a zip row, each summed down to its operand's shape; a single
    function returning both adjoints (they share work) is called once per entry."""
    if callable(rules):
        def both(g, y, a, b, e):
            da, db = rules(g, y, a, b, e)
            return VE.unbroadcast(da, a.shape), VE.unbroadcast(db, b.shape)
        both.pair = True
        return both

    def fit(rule, k):
        def fitted(g, y, a, b, e):
            d = rule(g, y, a, b, e)
            return None if d is None else VE.unbroadcast(d, (a, b)[k].shape)
        return fitted
    return tuple(fit(rule, k) for k, rule in enumerate(rules))


def _table():
    rules = {name: (rule,) for name, rule in VE.MAP.items()}
    rules.update({name: _zip(r) for name, r in VE.ZIP.items()})
    rules.update(VE.SELECT)
    rules.update(VA.REDUCE)
    rules.update(VA.LINALG)
    rules.update(VA.INDEX)
    rules.update(VA.VARIADIC)
    rules.update(VD.DECOMP)
    return rules


RULES = _table()


def missing():
    """Names of the op-table rows that write an output but have no traced VJP rule."""
    return [row.name for row in J.OPS if row.outputs and row.name not in RULES]


def components(name, ints):
    """``[(start, size, shape)]`` of the components of a packed output (a decomposition
    row), whose rule takes one adjoint per component; None for any other row."""
    return VD.components(name, ints) if name in VD.DECOMP else None


def adjoints(name, g, y, operands, e, wanted):
    """The adjoint of each operand of one ``name`` entry whose position is in ``wanted``
    (None for a zero one): ``{position: traced adjoint}``."""
    rules = RULES[name]
    if getattr(rules, "pair", False):
        both = rules(g, y, *operands, e)
        return {t: both[t] for t in wanted}
    if callable(rules):  # a variadic row
        return {t: rules(t, g, y, operands, e) for t in wanted}
    return {t: rules[t](g, y, *operands, e) for t in wanted}
