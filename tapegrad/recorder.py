"""Recording: the growing columns that become a :class:`~tapegrad.tape.Tape`.

While the user's function runs on traced values, each operation calls :meth:`Recorder.entry`,
which appends one row to preallocated numpy columns (doubling when full) and writes the
result's value into a flat float64 arena.  No Python object per entry or node is kept; the
``Traced`` objects the user's code holds are only handles (recorder, node id, value).

Invariants
----------
* A node is created once and never changed.  Entries only refer to earlier nodes, so the
  tape is already in topological order.
* Every node owns ``size`` consecutive floats of the arena, except an alias (a reshape, or
  a slice contiguous in memory such as ``x[1:]`` or ``x[i]``), which is a window on the
  storage of its ``base`` node: same values, same adjoint, no tape entry.
* Integer attributes of an entry live at ``ints[iarg : iarg + k]``; ``iarg`` is -1 when the
  op has none.  Shapes live in their own arena at ``shape_start[node]``.
"""
import numpy as np

CONST, INPUT, OP, ALIAS = 0, 1, 2, 3

ENTRY_COLUMNS = (("op", np.int64), ("out", np.int64), ("a", np.int64), ("b", np.int64),
                 ("iarg", np.int64), ("p", np.float64), ("q", np.float64))
NODE_COLUMNS = (("offset", np.int64), ("size", np.int64), ("ndim", np.int64),
                ("shape_start", np.int64), ("kind", np.int8), ("base", np.int64))


class _Columns:
    """Named numpy columns of one length that grow by doubling."""

    def __init__(self, spec, capacity):
        self.n = 0
        self.cols = {name: np.empty(capacity, dtype) for name, dtype in spec}

    def append(self, **row):
        n = self.n
        if n == len(next(iter(self.cols.values()))):
            for name, col in self.cols.items():
                self.cols[name] = np.concatenate([col, np.empty_like(col)])
        for name, value in row.items():
            self.cols[name][n] = value
        self.n = n + 1
        return n

    def trimmed(self):
        return {name: col[:self.n].copy() for name, col in self.cols.items()}


class _Arena:
    """A flat array that hands out consecutive blocks and grows by doubling."""

    def __init__(self, dtype, capacity):
        self.data, self.n = np.empty(capacity, dtype), 0

    def push(self, flat):
        start, k = self.n, len(flat)
        if start + k > len(self.data):
            # nothing else refers to the buffer, so it can be resized in place (realloc)
            self.data.resize(len(self.data) + max(len(self.data), k), refcheck=False)
        self.data[start:start + k] = flat
        self.n = start + k
        return start

    def trimmed(self):
        """The arena, cut to length; the recorder is finished with it."""
        self.data.resize(self.n, refcheck=False)
        return self.data


class Recorder:
    """The tape under construction."""

    def __init__(self, capacity=256):
        self.entries = _Columns(ENTRY_COLUMNS, capacity)
        self.nodes = _Columns(NODE_COLUMNS, capacity)
        self.values = _Arena(np.float64, 4 * capacity)
        self.ints = _Arena(np.int64, capacity)
        self.shapes = _Arena(np.int64, capacity)
        self.value_dependent = False  # set when a traced value became a Python value
        self.closed = False

    def node(self, value, kind, base=-1, start=0):
        """Add a node holding ``value``.  An alias (a reshape, or a slice that is contiguous
        in memory) instead views ``base``'s storage from element ``start`` on."""
        if self.closed:
            raise ValueError("this traced value belongs to a finished recording; a Traced value "
                             "must not escape the function being differentiated")
        shape = np.shape(value)
        if base >= 0:
            offset = self.nodes.cols["offset"][base] + start
            base = int(self.nodes.cols["base"][base])
        else:
            offset = self.values.push(np.ravel(value))
        start = self.shapes.push(shape)
        node = self.nodes.n
        self.nodes.append(offset=offset, size=int(np.size(value)), ndim=len(shape),
                          shape_start=start, kind=kind, base=base if base >= 0 else node)
        return node

    def entry(self, opcode, a, value, b=-1, ints=None, p=0.0, q=0.0):
        """Append one entry computing ``value`` from nodes ``a`` (and ``b``); return its node."""
        out = self.node(value, OP)
        iarg = -1 if ints is None else self.ints.push(np.asarray(ints, np.int64).ravel())
        self.entries.append(op=opcode, out=out, a=a, b=b, iarg=iarg, p=p, q=q)
        return out

    def shape(self, node):
        start, ndim = self.nodes.cols["shape_start"][node], self.nodes.cols["ndim"][node]
        return tuple(int(d) for d in self.shapes.data[start:start + ndim])

    def columns(self):
        """Everything recorded, trimmed to length: the raw material of a Tape."""
        self.closed = True
        return dict(entries=self.entries.trimmed(), nodes=self.nodes.trimmed(),
                    values=self.values.trimmed(), ints=self.ints.trimmed(),
                    shapes=self.shapes.trimmed())
