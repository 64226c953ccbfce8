"""NaN debugging (``tapegrad.config.debug_nans``): name the first tape entry that makes a NaN.

With the switch on, every replay is checked after each sweep, outside the kernels, so the
sweeps themselves are the same machine code either way:

* forward: if the value arena holds a NaN, walk the program rows in order and report the
  first entry whose output holds a NaN while none of its operands does;
* backward: if a needed adjoint holds a NaN, run the backward sweep again one program row
  at a time on a fresh adjoint buffer (the interpreter's own kernels, one row each) and
  report the first row, in the sweep's order, that sends a NaN to an operand's adjoint
  that had none, from an output adjoint and forward values without NaN.

Either raises ``FloatingPointError`` with the entry as the tape prints it
(``7: LOG(3) -> 8 ()``) and, when the tape was recorded with the switch on, the user's
source line (every entry's line is then kept in the tape's site table, beside the
guards'; recording is slower).  A NaN that comes from the arguments or from a constant
is not reported: NaN in, NaN out.

Invariants
----------
* Never runs unless the switch is on; never changes the replay's results (the backward
  search works in its own buffer).
"""
import ctypes

import numpy as np

import tapegrad.jit as J
from tapegrad.emit.guard import _site
from tapegrad.tracer import EMIT

_NO_BLOCKS = np.zeros((0, 2), np.int64)
_NO_SEED = np.zeros(0)


def note_site(rec):
    """Keep the source line of the entry just recorded (called by ``tracer._emit``)."""
    rec.guard_sites.append((rec.n_entries - 1,) + _site())


EMIT.note_site = note_site


def _site_of(tape, entry):
    for e, name, line, text in tape.guard_sites:
        if e == entry:
            return f"at {name}:{line}" + (f": {text}" if text else "")
    return ("source line unknown: record the tape with debug_nans on (TAPEGRAD_DEBUG_NANS=1 or "
            "tapegrad.config.update('debug_nans', True)) to keep each entry's line")


def _values(tape, bound):
    """node -> its values in this replay (the arena, or the caller's array for an input
    read by reference)."""
    by_ref = {}
    for node, slot in tape._slots.items():
        size = int(tape.size[node])
        by_ref[node] = np.ctypeslib.as_array((ctypes.c_double * size).from_address(int(bound.ext[slot - 1])))

    def value(node):
        owner, start, size = int(tape.base[node]), int(tape.offset[node]), int(tape.size[node])
        if owner in by_ref:
            start -= int(tape.offset[owner])
            return by_ref[owner][start:start + size]
        return bound.vals[start:start + size]
    return value


def _block(arr, tape, node):
    return arr[int(tape.offset[node]):int(tape.offset[node] + tape.size[node])]


def check_forward(tape, bound):
    """Raise FloatingPointError if the forward sweep just run made a NaN (see the module)."""
    if not np.isnan(bound.vals).any():
        return
    value = _values(tape, bound)
    for e in tape._prog_entry:
        out = tape.out[e]
        if out >= 0 and np.isnan(value(out)).any() and not any(np.isnan(value(k)).any() for k in tape.operands(e)):
            raise FloatingPointError(f"debug_nans: the forward sweep made a NaN at entry "
                                     f"{tape.entry_str(e)} from operands without NaN, "
                                     f"{_site_of(tape, int(e))}")


def check_backward(tape, bound, seed):
    """Raise FloatingPointError if the backward sweep just run made a NaN (see the module)."""
    owners = np.flatnonzero((tape.base == np.arange(len(tape.base))) & (tape.need != 0))
    if not any(np.isnan(_block(bound.adj, tape, k)).any() for k in owners):
        return
    value = _values(tape, bound)
    adj = np.empty_like(bound.adj)
    prog, attrs, ints = tape._prog, tape._attrs, tape._ints
    J.backward_sweep(prog[:0], attrs[:0], ints, bound.vals, adj, tape._zero, tape._out_plan[0], seed, bound.ext)
    for r in range(len(prog) - 1, -1, -1):
        e = int(tape._prog_entry[r])
        if prog[r, 6] == 0:
            continue
        operands = [k for k in tape.operands(e) if tape.need[k]]
        before = [bool(np.isnan(_block(adj, tape, k)).any()) for k in operands]
        clean = not any(np.isnan(x).any() for x in [_block(adj, tape, tape.out[e]), value(tape.out[e])]
                        + [value(k) for k in tape.operands(e)])
        J.backward_sweep(prog[r:r + 1], attrs[r:r + 1], ints, bound.vals, adj, _NO_BLOCKS, 0, _NO_SEED, bound.ext)
        for k, had in zip(operands, before):
            if clean and not had and np.isnan(_block(adj, tape, k)).any():
                raise FloatingPointError(
                    f"debug_nans: the backward sweep made a NaN at entry {tape.entry_str(e)}: its "
                    f"vector-Jacobian product sent a NaN to the adjoint of node {k} from an output "
                    f"adjoint and values without NaN, {_site_of(tape, e)}")
