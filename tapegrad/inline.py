"""Inlining a tape into another recording: the gradient of a tape as a tape.

When a function transformed by ``tapegrad.grad`` (or ``value_and_grad``, ``jacobian``) is
called on traced values, it is being differentiated itself (grad of grad, a Hessian, ...).
Then no numba sweep runs: the inner function is recorded at the concrete values of its
arguments, and that *inner* tape is copied into the *outer* recording by this module:

1. **forward**: every entry the inner tape keeps is appended to the outer recording with
   the same opcode, integer and float attributes, on the outer nodes that stand for its
   operands (the traced arguments, constants, windows); its value is the one the inner
   recording computed, which is the outer eager value, since both ran on the same numbers.
   Guards are copied too, with their source lines, so a replay of the outer tape checks
   the inner function's branches; a value-dependent inner recording makes the outer one
   value dependent (never reused), as ``tapegrad.api`` does for any recording.
2. **backward**: the lecture's ``grad_table``, symbolically: the entries are walked last to
   first, each one's output adjoint is complete when it is reached (all its users come
   later on the tape), and the op's traced VJP rule (``tapegrad.vjps``) emits the adjoints
   of its operands as outer entries.  Adjoints are summed per storage: a window's adjoint
   (``x[1:]``, ``x[i]`` of a scalar loop) lands in its owner's, assembled by one CONCAT
   of the pieces, so a loop over n elements costs O(n) entries, not O(n^2).

The result is a traced gradient: an ordinary value of the outer recording.

Invariants
----------
* Only entries the inner output depends on are copied (the program's ``replayed``), plus
  every guard.  Adjoints flow only along the inner tape's ``need`` (activity) mask.
* An inner node never gets two outer stand-ins: each is made once, in tape order.
"""
import numpy as np

import tapegrad.jit as J
import tapegrad.numpy as tnp
from tapegrad.emit.arrays import concatenate, const
from tapegrad.emit.shape import getitem, reshape
from tapegrad.emit.vjp_elementwise import LINEAR, Lin, materialise
from tapegrad.program import replayed
from tapegrad.recorder import ALIAS, CONST
from tapegrad.tracer import Traced
from tapegrad.vjps import Attrs, adjoints, components


def _int_ends(tape):
    """Where each entry's integer attributes end in ``ints`` (they are laid out in entry
    order, so an entry's run ends where the next entry's with any begins)."""
    ends = np.full(len(tape.op), len(tape.ints), np.int64)
    has = np.flatnonzero(tape.iarg >= 0)
    ends[has[:-1]] = tape.iarg[has[1:]]
    return ends


class Inlined:
    """One inner tape copied into an outer recording ``rec``: its forward entries at
    construction, then any number of symbolic backward sweeps (:meth:`backward`)."""

    def __init__(self, tape, rec, leaves):
        self.tape, self.rec = tape, rec
        self.vals = [None] * tape.n_nodes
        traced = [leaf for leaf, spec in zip(leaves, tape.specs) if spec[0] == "f"]
        for node, leaf in zip(tape.inputs, traced):
            self.vals[node] = leaf if isinstance(leaf, Traced) else \
                const(rec, np.asarray(leaf, dtype=np.float64))
        if tape.value_dependent:
            rec.value_dependent = True
        self.kept = np.flatnonzero(replayed(tape))
        self.ends = _int_ends(tape)
        sites = {site[0]: site[1:] for site in tape.guard_sites}
        for i in self.kept:
            self._copy(int(i), sites)
        self.output = self.get(tape.output)

    def get(self, node):
        """The outer value standing for inner ``node`` (constants and windows made on
        first use; inputs and entry outputs are set when they are made)."""
        v = self.vals[node]
        if v is None:
            tape = self.tape
            value = np.array(tape.recorded_value(node))
            if tape.kind[node] == CONST:
                v = const(self.rec, value)
            elif tape.kind[node] == ALIAS:
                owner = int(tape.base[node])
                base = self.get(owner)
                start = int(tape.offset[node] - tape.offset[owner])
                v = Traced(self.rec, self.rec.node(value, ALIAS, base=base._node, start=start), value)
            else:
                raise AssertionError(f"inner node {node} was used before it was made")
            self.vals[node] = v
        return v

    def attrs(self, i):
        tape = self.tape
        ints = tape.ints[tape.iarg[i]:self.ends[i]] if tape.iarg[i] >= 0 else None
        floats = tuple(tape.entry_floats(i).values())
        return ints, floats

    def _copy(self, i, sites):
        tape, rec = self.tape, self.rec
        args = tuple(self.get(k)._node for k in tape.operands(i))
        ints, floats = self.attrs(i)
        out = int(tape.out[i])
        if out < 0:  # a guard: the outer replay checks the inner branch too
            rec.entry(int(tape.op[i]), args, None, ints, floats)
            if i in sites:
                rec.guard_sites.append((rec.n_entries - 1,) + tuple(sites[i]))
            return
        value = np.array(tape.recorded_value(out), dtype=np.float64, order="C")
        self.vals[out] = Traced(rec, rec.entry(int(tape.op[i]), args, value, ints, floats), value)

    def backward(self, seed, along=None):
        """One symbolic backward sweep seeded with ``seed`` (a traced or plain value of the
        output's shape): the adjoint of each differentiated input (None: zero).  With
        ``along`` (one traced value per differentiated input, shaped like it), the scalar
        sum of <adjoint, along> instead, contracted piece by piece (each window's pieces
        with the matching window of ``along``), so the adjoints are never assembled."""
        tape = self.tape
        sums = {}  # owner node -> [(start in its storage, traced adjoint piece)]

        def add(node, value):
            owner = int(tape.base[node])
            sums.setdefault(owner, []).append((int(tape.offset[node] - tape.offset[owner]), value))

        if not isinstance(seed, Traced):
            seed = np.asarray(seed, np.float64)
            shape = tape.shape(tape.output)
            seed = Lin(seed, None, shape) if seed.ndim == 0 else const(self.rec, np.broadcast_to(seed, shape))
        add(tape.output, seed)
        for i in self.kept[::-1]:
            out = int(tape.out[i])
            if out < 0:
                continue
            name, (ints, floats) = J.NAMES[tape.op[i]], self.attrs(i)
            comps = components(name, ints)
            if comps is None:
                g = self._total(out, sums.pop(out, None))
            else:
                g = self._split(sums.pop(out, None), comps)
            if g is None:
                continue
            operands = tape.operands(i)
            wanted = [t for t, k in enumerate(operands) if tape.need[k]]
            if not wanted:
                continue
            e = Attrs(ints, *(floats + (0.0, 0.0))[:2])
            values = tuple(self.get(k) for k in operands)
            for t, d in self._adjoints(name, g, self.vals[out], values, e, wanted).items():
                if d is not None:
                    add(operands[t], d)
        diff = [node for node, plan in zip(tape.inputs, self._traced_args()) if plan in tape.argnums]
        if along is not None:
            return _sum([_dot(p, getitem(reshape(v, -1), slice(start, start + p.size)))
                         for node, v in zip(diff, along) for start, p in sums.pop(int(node), ())])
        return [materialise(self.rec, self._total(int(node), sums.pop(int(node), None))) for node in diff]

    def _adjoints(self, name, g, y, values, e, wanted):
        """``{position: adjoint}`` of one entry's wanted operands: by the folding rule
        (``LINEAR``) while ``g`` is still a known multiple, else by the op's rule."""
        if isinstance(g, Lin):
            fold = LINEAR.get(name)
            found = fold(g, y, *values, e) if fold is not None else None
            if found is not None:
                return {t: found[t]() if callable(found[t]) else found[t] for t in wanted}
            g = materialise(self.rec, g)
        return adjoints(name, g, y, values, e, wanted)

    def _traced_args(self):
        return [arg for arg, spec in zip(self.tape.leaf_arg, self.tape.specs) if spec[0] == "f"]

    def _total(self, owner, pieces):
        """The adjoint of ``owner``'s storage, shaped like it: the sum of the whole-node
        pieces plus the windows' pieces placed at their offsets (None if there are none)."""
        return self._assemble(pieces, int(self.tape.size[owner]), self.tape.shape(owner))

    def _split(self, pieces, comps):
        """A packed node's adjoint as one adjoint per component (None for a component no
        window of which was used), ``comps`` its ``[(start, size, shape)]``: the user's
        windows never straddle two components, so nothing is assembled across them."""
        pieces = [(s, p) for s, p in pieces or () if p.size]
        out, used = [], 0
        for start, size, shape in comps:
            mine = [(s - start, p) for s, p in pieces if start <= s and s + p.size <= start + size]
            used += len(mine)
            out.append(materialise(self.rec, self._assemble(mine, size, shape)))
        assert used == len(pieces), "an adjoint reached the scratch of a packed node"
        return out if used else None

    def _assemble(self, pieces, size, shape):
        """The sum of ``pieces`` ((start, adjoint) with start relative to a storage of
        ``size`` floats) shaped ``shape``: a :class:`Lin` while it is one piece or all are
        multiples of one value, else traced.  Pieces on the same window are added first, so
        the windows' placement (a CONCAT) sees one piece per window."""
        if not pieces:
            return None
        if all(isinstance(p, Lin) and start == 0 and p.size == size for start, p in pieces):
            if len({id(p.src) for _, p in pieces}) == 1:
                return Lin(sum(p.p for _, p in pieces), pieces[0][1].src, shape)
        windows = {}
        for start, p in pieces:
            windows.setdefault((start, p.size), []).append(p)
        pieces = [(start, _sum([_as(materialise(self.rec, p), group[0].shape) for p in group]))
                  for (start, _), group in windows.items()]
        whole = [reshape(p, shape) if p.shape != shape else p
                 for start, p in pieces if start == 0 and p.size == size]
        parts = [(start, reshape(p, -1)) for start, p in pieces if not (start == 0 and p.size == size)]
        total = _sum(whole)
        if parts:
            placed = reshape(_place(self.rec, parts, size), shape)
            total = placed if total is None else total + placed
        return total


def _dot(piece, v):
    """<piece, v> for a flat traced ``v`` of the piece's size: one MATMUL (BLAS's dot)."""
    if isinstance(piece, Lin):
        inner = tnp.sum(v) if piece.src is None else _dot(piece.src, v)
        return inner if piece.p == 1.0 else piece.p * inner
    return reshape(reshape(piece, (1, -1)) @ reshape(v, (-1, 1)), ())


def _as(value, shape):
    return value if value.shape == shape else reshape(value, shape)


def _sum(values):
    total = None
    for v in values:
        total = v if total is None else total + v
    return total


def _place(rec, parts, size):
    """A flat array of ``size``: the sum of the flat ``parts`` (start, traced), each added
    at its start; one CONCAT of the runs between the parts' edges (zeros where none)."""
    edges = sorted({0, size} | {s for s, _ in parts} | {s + p.size for s, p in parts})
    runs = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        covering = [getitem(p, slice(lo - s, hi - s)) for s, p in parts if s <= lo and hi <= s + p.size]
        runs.append(_sum(covering) if covering else const(rec, np.zeros(hi - lo)))
    return runs[0] if len(runs) == 1 else concatenate(runs)
