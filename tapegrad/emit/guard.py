"""Comparisons of traced values, and the guards that record the branches they decide.

``x > y`` on traced values returns a :class:`Comparison`: the boolean numpy array numpy
would return (so it works as a mask: ``tnp.where(x > 0, ...)``, ``x[x > 0]``, arithmetic),
which also remembers the two operands.  Turning it into a Python bool (``if``, ``while``,
``and``/``or``/``not``, ``bool()``, builtin ``max``/``min``) records a guard entry
(``jit/ops_guard.py``): the compared nodes and the outcome, checked again on every replay.
``bool(x)`` of a traced value is the guard ``x != 0``.

Invariants
----------
* Never silently wrong: a comparison whose boolean value is used in any other way (a mask,
  an array combined with ``&``, a derived array turned into a bool) is a constant of the
  tape that no guard checks, so the recording counts it as *unresolved* and is value
  dependent (never replayed at other inputs) unless a guard of the same comparison was
  recorded, which pins its value.  A comparison with an operand that cannot be a node
  (``x == None``, a huge int not exact in float64) is unresolved for ever.
* A guard compares one float with one float: ``bool()`` of a comparison with more than one
  element raises as numpy does, before anything is recorded.
* Each guard's source line in the user's code (file:line and text) goes to the recorder's
  side table ``guard_sites``, never into the kernel columns.
"""
import linecache
import os
import sys

import numpy as np

from tapegrad.jit import CODES as C
from tapegrad.tracer import _OWN_CODE, EMIT, UFUNCS, Traced, is_number, lift

_EAGER = {"LT": np.less, "LE": np.less_equal, "GT": np.greater, "GE": np.greater_equal,
          "EQ": np.equal, "NE": np.not_equal}


class Comparison(np.ndarray):
    """The boolean result of comparing traced values: a numpy bool array whose conversion
    to a Python bool records a guard (see the module docstring)."""

    def __bool__(self):
        value = np.ndarray.__bool__(self)  # raises for more than one element, as numpy does
        pending = self.__dict__.pop("_pending", None)
        if pending is not None:
            _record_guard(*pending, value)
        return value

    def __repr__(self):
        return repr(self.view(np.ndarray))

    __str__ = lambda self: str(self.view(np.ndarray))


def _plain_operand(o):
    """``o`` as a float64 constant when it can be a node exactly, else None."""
    if isinstance(o, (bool, np.bool_)):
        return float(o)
    if isinstance(o, int):
        f = float(o) if abs(o) < 2.0 ** 1023 else None
        return f if f is not None and int(f) == o else None
    if is_number(o) or (isinstance(o, np.ndarray) and o.dtype.kind in "biuf"):
        return np.asarray(o, np.float64)
    return None


def compare(name, x, o):
    """``x <name> o`` for a Traced ``x`` (``o`` anything): a :class:`Comparison`."""
    rec = x._rec
    if isinstance(o, Traced):
        if o._rec is not rec:
            raise ValueError("values traced by two different recordings were compared; a "
                             "Traced value must not escape the function being differentiated")
        other, ov = o, o._value
    else:
        other = ov = _plain_operand(o)
    if other is None or rec.closed:  # cannot be a guard: a constant no one checks
        rec.unresolved += 1
        return _EAGER[name](x._value, o._value if isinstance(o, Traced) else o)
    value = np.asarray(_EAGER[name](x._value, ov)).view(Comparison)
    rec.unresolved += 1
    if x.size == 1 and np.size(ov) == 1:
        value._pending = (rec, name, x, other)
    return value


def truth(x):
    """``bool(x)`` of a Traced value: the guard ``x != 0``."""
    return bool(compare("NE", x, 0.0))


def _record_guard(rec, name, x, other, took):
    rec.unresolved -= 1  # the guard pins the comparison's value
    if rec.closed:
        return
    bn = lift(rec, "compare", other)[0]
    entry = rec.n_entries
    rec.entry(C["GUARD_" + name], (x._node, bn), None, ints=(int(took),))
    rec.guard_sites.append((entry,) + _site())


def _site():
    """(file, line, source text) of the user's code that is running (skipping tapegrad's
    and numpy's frames), or ("?", 0, "") when unknown."""
    try:
        frame = sys._getframe(2)
        while frame is not None and frame.f_code.co_filename.startswith(_OWN_CODE):
            frame = frame.f_back
        name, line = frame.f_code.co_filename, frame.f_lineno
        return os.path.basename(name), line, linecache.getline(name, line).strip()
    except Exception:  # only a message is at stake
        return "?", 0, ""


def _ufunc(name, mirrored):
    """numpy's comparison ufunc: ``np.float64(0.5) < x`` reaches it, not ``x.__gt__``."""
    return lambda a, b: compare(name, a, b) if isinstance(a, Traced) else compare(mirrored, b, a)


EMIT.compare = compare
EMIT.truth = truth
for _ufn, _name, _mirrored in ((np.less, "LT", "GT"), (np.less_equal, "LE", "GE"),
                               (np.greater, "GT", "LT"), (np.greater_equal, "GE", "LE"),
                               (np.equal, "EQ", "EQ"), (np.not_equal, "NE", "NE")):
    UFUNCS[_ufn] = _ufunc(_name, _mirrored)
