"""Which rows of a program run fused, and how (the planning half of ``tapegrad.jit.fusion``).

A *segment* is a run of consecutive elementwise program rows (map and zip) of one size n,
optionally closed by the full SUM of one of them, such that

* its *intermediates* (outputs no row outside the segment reads, read inside only at their
  own offset) can live in a scratch block of ``chunk`` elements each, past the arena's end:
  they are never stored, and are recomputed in the backward sweep;
* its other outputs are read at their own offset only (so a chunk is written before it is
  read), and are stored to the arena as usual;
* every operand is read at the output's element index (a whole array or an aligned view)
  or is one number read at every index that needs no adjoint;
* chunking keeps, for every element of every arena adjoint the segment adds to, the order
  of the additions (:func:`order_kept`).

Then the fused kernels give the unfused sweeps' results bit for bit.  A tape with segments
runs as *pieces*: plain program slices through the ordinary sweeps, segments through the
fused kernels.  Only ``value_and_gradient``-style calls (forward then backward) use them;
everything that reads intermediate values afterwards (``forward``, Jacobian rows,
``debug_nans``) runs the plain program.

Invariants
----------
* ``FUSION["chunk"]`` is a multiple of ``jit.ops_reduce.SUM_BLOCK`` (the sum's bitwise
  equality needs it).  ``FUSION["min_size"]`` = 0 turns fusion off.
* A plan never changes the tape or its program: it is derived data, rebuilt on load.
"""
from collections import namedtuple

import numpy as np

import tapegrad.jit as J
from tapegrad.jit.ops_reduce import SUM_BLOCK
from tapegrad.program import first_operands, operand_rows, replayed

# module settings (tests shrink them to fuse small tapes)
FUSION = {"min_size": 8192, "chunk": 1024}

# scratch slots are chunk + 40 elements apart, not a multiple of 4096 bytes: a loop reading
# one slot and writing another at the same page offset stalls on every store (4K aliasing)
_SLOT_PAD = 40
Plain = namedtuple("Plain", "prog attrs start")
Segment = namedtuple("Segment", "tmpl shift attrs ints_full ints_last meta scale zslots")
Plan = namedtuple("Plan", "pieces zero scratch untouched")

_FAMILY = np.array([row.family for row in J.OPS])
_SUM = J.CODES["SUM"]


def plan(tape, prog, attrs, zero, ints):
    """The fused plan of a program (module docstring), or None if nothing fuses."""
    min_size, chunk = FUSION["min_size"], FUSION["chunk"]
    if not min_size or len(prog) < 2:
        return None
    big = (prog[:, 4] >= max(min_size, 2)) & np.isin(_FAMILY[prog[:, 0]], ("map", "zip"))
    if not big.any():  # (the common case, scalar code: decided without a Python loop)
        return None
    if chunk <= 0 or chunk % SUM_BLOCK:
        raise ValueError(f"FUSION['chunk'] must be a positive multiple of {SUM_BLOCK}, got {chunk}")
    facts = _Facts(tape, prog, ints)
    segments = [seg for seg in facts.runs(min_size) if seg is not None]
    found = []
    for start, stop, closing in segments:
        built = facts.build(start, stop, closing, attrs, zero, chunk, len(tape.values))
        if built is not None:
            found.append((start, stop + (closing is not None), built))
    if not found:
        return None
    pieces, at, cleared = [], 0, []
    for start, stop, (segment, internal) in found:
        if start > at:
            pieces.append(Plain(prog[at:start].copy(), attrs[at:start].copy(), at))
        pieces.append(segment)
        cleared += internal
        at = stop
    if at < len(prog):
        pieces.append(Plain(prog[at:].copy(), attrs[at:].copy(), at))
    scratch = max(len(seg[1]) for _, _, seg in found) * (chunk + _SLOT_PAD)
    untouched = sum(stop - start for start, stop in cleared)
    return Plan(tuple(pieces), _subtract(zero, cleared), scratch, untouched)


def _subtract(blocks, ranges):
    """The (start, stop) ``blocks`` without the (start, stop) ``ranges``."""
    out = [tuple(b) for b in np.asarray(blocks).tolist()]
    for lo, hi in ranges:
        out = [piece for a, b in out for piece in ((a, min(b, lo)), (max(a, hi), b)) if piece[0] < piece[1]]
    return np.array(out, np.int64).reshape(-1, 2)


class _Facts:
    """Per-row and per-storage facts about one program that the segment search reads."""

    def __init__(self, tape, prog, ints):
        self.tape, self.prog, self.ints = tape, prog, ints
        self.kept = np.flatnonzero(replayed(tape))
        first, second = first_operands(tape)
        self.a, self.b = first[self.kept], second[self.kept]
        self.out = tape.out[self.kept]
        self.family = _FAMILY[prog[:, 0]]
        self.mode_a = (prog[:, 6] >> J.A_SHIFT) & 3
        self.mode_b = (prog[:, 6] >> J.B_SHIFT) & 3
        row_of = np.full(len(tape.op), -1)
        row_of[self.kept] = np.arange(len(self.kept))
        entry, _ = operand_rows(tape)
        rows, nodes = row_of[entry], tape.args
        self.readers = {}  # storage -> [(program row, node read)]
        for r, node in zip(rows[rows >= 0].tolist(), nodes[rows >= 0].tolist()):
            self.readers.setdefault(int(tape.base[node]), []).append((r, node))

    def _pattern(self, r):
        """(a, b) access of zip row r: 1 read at the element's index, 0 one number, -1 neither."""
        d0, d1, sa0, sa1, sb0, sb1 = self.ints[self.prog[r, 5]:self.prog[r, 5] + 6].tolist()
        def access(s0, s1):
            return 1 if s1 == 1 and (d0 == 1 or s0 == d1) else (0 if s0 == 0 and s1 == 0 else -1)
        return access(sa0, sa1), access(sb0, sb1)

    def candidate(self, r, min_size):
        n = self.prog[r, 4]
        if n < max(min_size, 2) or self.family[r] not in ("map", "zip") or self.out[r] < 0:
            return False
        if self.family[r] == "map":
            return True
        pa, pb = self._pattern(r)
        return pa >= 0 and pb >= 0 and (pa or not self.mode_a[r]) and (pb or not self.mode_b[r])

    def runs(self, min_size):
        """[(start, stop, closing SUM row or None)]: maximal runs of candidate rows of one size."""
        found, start = [], None
        for r in range(len(self.prog) + 1):
            ok = r < len(self.prog) and self.candidate(r, min_size)
            if start is not None and (not ok or self.prog[r, 4] != self.prog[start, 4]):
                closing = r if r < len(self.prog) and self._closes(start, r) else None
                if r - start >= 2 or closing is not None:
                    found.append((start, r, closing))
                start = None
            if ok and start is None:
                start = r
        return found

    def _closes(self, start, r):
        """Whether row r is the full SUM of an output of rows [start, r)."""
        if self.prog[r, 0] != _SUM:
            return False
        pre, m, post = self.ints[self.prog[r, 5]:self.prog[r, 5] + 3].tolist()
        return (pre == 1 and post == 1 and m == self.prog[start, 4]
                and self.a[r] in self.out[start:r].tolist())

    def build(self, start, stop, closing, attrs, zero, chunk, arena):
        """(Segment, [(start, stop) arena ranges no longer cleared]) or None if unsafe."""
        tape, prog, n = self.tape, self.prog, int(self.prog[start, 4])
        inside = set(range(start, stop)) | ({closing} if closing is not None else set())
        offset, base = tape.offset, tape.base
        scratch = {}  # storage -> scratch offset
        for r in range(start, stop):
            node, storage = int(self.out[r]), int(base[self.out[r]])
            aligned = all(offset[v] == offset[node] and tape.size[v] == n
                          for row, v in self.readers.get(storage, ()) if row in inside)
            if not aligned:
                return None  # a view of an output read at another offset: chunks would race
            private = all(row in inside for row, _ in self.readers.get(storage, ()))
            if (private and storage == node and tape.size[node] == n and node != tape.output
                    and storage != base[tape.output]):
                scratch[storage] = arena + len(scratch) * (chunk + _SLOT_PAD)
        if not _order_kept(self, start, stop, closing, scratch, zero, chunk, n):
            return None
        rows = prog[start:stop].copy()
        shift = np.zeros((len(rows), 3), np.int64)
        zips = np.zeros((0, 6), np.int64)
        for k, r in enumerate(range(start, stop)):
            access = self._pattern(r) if self.family[r] == "zip" else (1, -1)
            for col, node, acc in ((1, self.out[r], 1), (2, self.a[r], access[0]), (3, self.b[r], access[1])):
                if acc < 0:
                    continue
                storage = int(base[node])
                if storage in scratch:
                    rows[k, col] = scratch[storage]
                else:
                    shift[k, col - 1] = acc
            if self.family[r] == "zip":
                rows[k, 5] = 6 * len(zips)
                zips = np.vstack([zips, [1, chunk, 0, access[0], 0, access[1]]])
        rows[:, 7] = 0
        last = zips.copy()
        last[:, 1] = n - (n - 1) // chunk * chunk
        meta = np.zeros(6, np.int64)
        meta[:2] = n, chunk
        meta[4] = -1
        scale = 0.0
        if closing is not None:
            src = int(base[self.a[closing]])
            meta[2:4] = (scratch[src], 0) if src in scratch else (offset[self.a[closing]], 1)
            meta[4] = prog[closing, 1]
            meta[5] = self.mode_a[closing] if prog[closing, 6] else 0
            scale = float(attrs[closing, 0])
        cleared = [(int(offset[s]), int(offset[s] + n)) for s in scratch]
        zslots = np.array([at for s, at in scratch.items() if _covered(zero, offset[s], n)], np.int64)
        segment = Segment(rows, shift, attrs[start:stop].copy(), zips.ravel().copy(), last.ravel().copy(),
                          meta, scale, zslots)
        return segment, cleared


def _covered(blocks, at, n):
    return any(a <= at and at + n <= b for a, b in np.asarray(blocks).tolist())


def _order_kept(facts, start, stop, closing, scratch, zero, chunk, n):
    """Whether running rows [start, stop) (and the closing sum) chunk by chunk adds to every
    arena adjoint element in the order the plain backward sweep does.

    The plain sweep walks rows last to first; chunked, element s of a storage gets row i's
    term in chunk (s - o_i) // chunk, where o_i is the offset row i reads the storage at.
    The orders agree if along the walk those chunk numbers never decrease.  One exception
    is harmless: the first two terms an element receives, into an adjoint that starts at
    zero, may swap (0 + x + y == 0 + y + x in IEEE arithmetic).
    """
    tape, base, offset = facts.tape, facts.tape.base, facts.tape.offset
    later = set()  # storages read by a row after the segment: their adjoint may be nonzero
    end = (closing if closing is not None else stop - 1) + 1
    for storage, readers in facts.readers.items():
        if any(row >= end for row, _ in readers):
            later.add(storage)
    walk = []  # (storage, offset within it, mode) in the plain sweep's order
    if closing is not None and facts.prog[closing, 6] and facts.mode_a[closing]:
        walk.append((facts.a[closing], J.ADD))
    for r in range(stop - 1, start - 1, -1):
        if not facts.prog[r, 6]:
            continue
        walk.append((facts.a[r], facts.mode_a[r]))
        if facts.family[r] == "zip":
            walk.append((facts.b[r], facts.mode_b[r]))
    by_storage = {}
    for node, mode in walk:
        storage = int(base[node])
        if mode and node >= 0 and storage not in scratch and tape.size[node] == n:
            by_storage.setdefault(storage, []).append((int(offset[node] - offset[storage]), int(mode)))
    root = int(base[tape.output])
    for storage, accesses in by_storage.items():
        if len({o for o, _ in accesses}) == 1:
            continue
        zero_start = (storage not in later and storage != root
                      and _covered(zero, offset[storage], tape.size[storage]))
        if not _pairs_in_order(accesses, n, chunk, zero_start):
            return False
    return True


def _pairs_in_order(accesses, n, chunk, zero_start):
    """See :func:`_order_kept`: accesses are (offset, mode) in walk order, each touching
    elements [offset, offset + n) of one storage."""
    offs = np.array([o for o, _ in accesses])
    s = np.arange(offs.min(), offs.max() + n)
    touch = (s[None, :] >= offs[:, None]) & (s[None, :] < offs[:, None] + n)
    chunk_of = (s[None, :] - offs[:, None]) // chunk
    has_set = any(mode == J.SET for _, mode in accesses)
    before = np.cumsum(touch, axis=0) - touch  # how many earlier accesses touch s
    for i in range(len(offs)):
        for j in range(i + 1, len(offs)):
            bad = touch[i] & touch[j] & (chunk_of[i] > chunk_of[j])
            if not bad.any():
                continue
            first_two = (before[i] == 0) & (before[j] == 1)
            if has_set or not zero_start or (bad & ~first_two).any():
                return False
    return True


_NO_ZERO, _NO_SEED = np.zeros((0, 2), np.int64), np.zeros(0)
_NO_ROWS, _NO_ATTRS = np.zeros((0, len(J.PROG_COLUMNS)), np.int64), np.zeros((0, 2))


def sweep(fused, ints, vals, adj, ext, root, seed, check):
    """Forward then backward through a plan's pieces; -1, or the program row of the first
    guard that fails (then no backward sweep ran).  ``vals`` and ``adj`` extend past the
    arena by ``fused.scratch`` elements.

    When the last piece is a segment whose closing sum is the output, its adjoint is the
    seed before anything runs, so that segment's forward and backward are one pass."""
    from tapegrad.jit.fusion import fused_backward, fused_forward
    pieces = fused.pieces
    one_pass = isinstance(pieces[-1], Segment) and pieces[-1].meta[4] == root
    for piece in pieces[:-1] if one_pass else pieces:
        if isinstance(piece, Plain):
            failed = J.forward_sweep(piece.prog, piece.attrs, ints, vals, ext, check)
            if failed >= 0:
                return piece.start + failed
        else:
            fused_forward(piece.tmpl, piece.shift, np.empty_like(piece.tmpl), piece.attrs,
                          piece.ints_full, piece.ints_last, vals, ext, piece.meta, piece.scale)
    J.backward_sweep(_NO_ROWS, _NO_ATTRS, ints, vals, adj, fused.zero, root, seed, ext)
    for k in range(len(pieces) - 1, -1, -1):
        piece = pieces[k]
        if isinstance(piece, Plain):
            J.backward_sweep(piece.prog, piece.attrs, ints, vals, adj, _NO_ZERO, root, _NO_SEED, ext)
        else:
            fused_backward(piece.tmpl, piece.shift, np.empty_like(piece.tmpl), piece.attrs,
                           piece.ints_full, piece.ints_last, vals, adj, ext, piece.meta,
                           piece.scale, piece.zslots, _NO_ZERO, _NO_SEED, one_pass and k == len(pieces) - 1)
    return -1
