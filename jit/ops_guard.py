"""Guards: the outcome of a comparison of traced values that decided Python control flow.

When the user's code turns a comparison of traced values into a Python bool (``if x > 0``,
``while err > tol``, builtin ``max(a, b)``), the front end records a guard entry: the two
compared nodes (a Python number becomes a constant node) and, in its one integer
attribute, the outcome seen when recording (1 true, 0 false).  A guard writes no node
(``outputs = 0``).  In the forward sweep its kernel compares the two values again; when the
outcome differs the sweep stops and returns the entry's program row, so the Python side
records the function again for that input (``tapegrad.variants``).

Invariants
----------
* ints: exactly one attribute, the recorded outcome, 0 or 1 (``checks.guard``); both
  operands hold one float each.
* The comparison is IEEE: any comparison with NaN is false except ``!=``, as in numpy, so
  the replay decides as the recording's numpy comparison of the same floats would.
* The backward sweep never runs a guard (its program row has ``need`` 0); its backward
  rule exists only so that every row has one, and does nothing.
"""
from . import checks as C
from .compile import rule
from .oprow import Op


@rule
def guard_fails(f, vals, ints, oa, ob, ia):
    """True when the comparison now disagrees with the outcome recorded in ``ints[ia]``."""
    return f(vals[oa], vals[ob]) != (ints[ia] != 0)


@rule
def guard_bwd(vals, adj, oa, ob):
    return None


def _guard(name, compare, symbol):
    return Op(name, "guard", 2, rule(compare), guard_bwd,
              f"guard: a {symbol} b decided a branch; ints = (outcome when recorded,)", C.guard,
              outputs=0)


ROWS = (
    _guard("GUARD_LT", lambda a, b: a < b, "<"),
    _guard("GUARD_LE", lambda a, b: a <= b, "<="),
    _guard("GUARD_GT", lambda a, b: a > b, ">"),
    _guard("GUARD_GE", lambda a, b: a >= b, ">="),
    _guard("GUARD_EQ", lambda a, b: a == b, "=="),
    _guard("GUARD_NE", lambda a, b: a != b, "!="),
)
