"""Recording: the growing columns that become a :class:`~tapegrad.tape.Tape`.

While the user's function runs on traced values, each operation calls :meth:`Recorder.entry`
(:meth:`Recorder.scalar_entry` for a 0-d result given as a Python float: the same rows,
without the shape work), which appends one row to typed columns and writes the result's
value into a flat float64 arena.  The columns are ``array.array``s: flat machine integers
and doubles, like numpy's, but appending one costs ~40 ns where writing one element of a
numpy array costs ~80 ns and a doubling numpy column needs bookkeeping per row.  At the
end they become numpy arrays.  No Python object per entry or node is kept; the ``Traced``
objects the user's code holds are only handles (recorder, node id, value).

Invariants
----------
* A node is created once and never changed.  Entries only refer to earlier nodes, so the
  tape is already in topological order, and entry outputs increase with the entry index.
* Every node owns ``size`` consecutive floats of the arena, except an alias (a reshape, or
  a slice contiguous in memory such as ``x[1:]`` or ``x[i]``), which is a window on the
  storage of its ``base`` node: same values, same adjoint, no tape entry.
* Entry i reads the nodes ``args[arg_start[i] : arg_start[i + 1]]`` (its operand list, the
  row's ``arity`` of them) and writes ``out[i]``, or no node (``out`` = -1) when its row has
  ``outputs = 0``.
* Integer attributes of an entry live at ``ints[iarg : iarg + k]``; ``iarg`` is -1 when the
  op has none.  Float attributes go to the ``floats`` arena, as many per entry as its row
  names (``Op.floats``), so they need no offset column.  Shapes live in their own arena,
  node after node (``ndim`` numbers each), so a node's start there is derivable.
* Columns have the smallest safe dtypes: opcodes int16, node ids int32, arena offsets
  int64, ``ndim`` and ``kind`` int8.
"""
from array import array

import numpy as np

CONST, INPUT, OP, ALIAS = 0, 1, 2, 3

# column name -> (array.array type code, numpy dtype of the finished column)
ENTRY_COLUMNS = (("op", "h", np.int16), ("out", "i", np.int32), ("arg_start", "q", np.int64),
                 ("iarg", "q", np.int64))
NODE_COLUMNS = (("offset", "q", np.int64), ("ndim", "b", np.int8), ("kind", "b", np.int8),
                ("base", "i", np.int32))
ARENAS = (("args", "i", np.int32), ("floats", "d", np.float64), ("values", "d", np.float64),
          ("ints", "q", np.int64), ("shapes", "q", np.int64))
MAX_NODES = 2 ** 31 - 1  # node ids are int32


def _finished(columns, spec):
    return {name: np.frombuffer(columns[name], dtype).copy() if len(columns[name])
            else np.zeros(0, dtype) for name, _, dtype in spec}


class Recorder:
    """The tape under construction."""

    def __init__(self):
        self.entries = {name: array(code) for name, code, _ in ENTRY_COLUMNS}
        self.nodes = {name: array(code) for name, code, _ in NODE_COLUMNS}
        self.arenas = {name: array(code) for name, code, _ in ARENAS}
        self.args, self.floats, self.values = self.arenas["args"], self.arenas["floats"], self.arenas["values"]
        self.ints, self.shapes = self.arenas["ints"], self.arenas["shapes"]
        self.shape_start = array("q")  # not part of the tape: derivable from ndim
        self._scalar_columns = (self.nodes["offset"], self.nodes["ndim"], self.nodes["kind"],
                                self.nodes["base"], self.shape_start, *self.entries.values())
        self.value_dependent = False  # set when a traced value became a Python value
        self.unresolved = 0  # comparisons whose value no guard pins (tapegrad.emit.guard)
        self.guard_sites = []  # (entry, file, line, source text) of each guard entry
        self.closed = False

    @property
    def n_entries(self):
        return len(self.entries["op"])

    def node(self, value, kind, base=-1, start=0):
        """Add a node holding ``value`` (a float64 array or number).  An alias (a reshape,
        or a slice that is contiguous in memory) instead views ``base``'s storage from
        element ``start`` on."""
        if self.closed:
            raise ValueError("this traced value belongs to a finished recording; a Traced value "
                             "must not escape the function being differentiated")
        cols = self.nodes
        node = len(cols["offset"])
        if node >= MAX_NODES:
            raise ValueError(f"a tape holds at most {MAX_NODES} nodes")
        shape = value.shape if isinstance(value, np.ndarray) else np.shape(value)
        size = 1
        for d in shape:
            size *= d
        if base >= 0:
            offset = cols["offset"][base] + start
            base = cols["base"][base]
        else:
            offset, base = len(self.values), node
            if size == 1:
                self.values.append(value if isinstance(value, float) else value.item())
            elif size:
                self.values.frombytes(np.ascontiguousarray(value, np.float64).tobytes())
        cols["offset"].append(offset)
        cols["ndim"].append(len(shape))
        cols["kind"].append(kind)
        cols["base"].append(base)
        self.shape_start.append(len(self.shapes))
        self.shapes.extend(shape)
        return node

    def entry(self, opcode, args, value, ints=None, floats=()):
        """Append one entry computing ``value`` from the nodes ``args`` (a tuple), with
        ``floats`` its row's float attributes; return its node.  ``value`` None: the entry
        writes no node (its row has ``outputs = 0``) and -1 is returned."""
        out = -1 if value is None else self.node(value, OP)
        if ints is None:
            iarg = -1
        else:
            iarg = len(self.ints)
            if isinstance(ints, tuple):
                self.ints.extend(ints)
            else:
                self.ints.frombytes(np.ascontiguousarray(ints, np.int64).tobytes())
        cols = self.entries
        cols["op"].append(opcode)
        cols["out"].append(out)
        cols["arg_start"].append(len(self.args))
        cols["iarg"].append(iarg)
        self.args.extend(args)
        if floats:
            self.floats.extend(floats)
        return out

    def scalar_node(self, value, kind, base=-1, start=0):
        """:meth:`node` for a 0-d ``value`` (a Python float; unused for an alias), without
        the shape work: the same rows."""
        if self.closed:
            self.node(value, kind)  # raises the finished-recording error
        offsets, ndim, kinds, bases, shape_start = self._scalar_columns[:5]
        node = len(offsets)
        if node >= MAX_NODES:
            raise ValueError(f"a tape holds at most {MAX_NODES} nodes")
        if base >= 0:
            offsets.append(offsets[base] + start)
            bases.append(bases[base])
        else:
            offsets.append(len(self.values))
            self.values.append(value)
            bases.append(node)
        ndim.append(0)
        kinds.append(kind)
        shape_start.append(len(self.shapes))
        return node

    def scalar_entry(self, opcode, args, value, floats=()):
        """:meth:`entry` for an op with no integer attributes whose result is 0-d:
        ``value`` is a Python float.  Appends the same rows without the shape work."""
        if self.closed:
            self.node(value, OP)  # raises the finished-recording error
        offsets, ndim, kinds, bases, shape_start, ops, outs, arg_starts, iargs = \
            self._scalar_columns
        out = len(offsets)
        if out >= MAX_NODES:
            raise ValueError(f"a tape holds at most {MAX_NODES} nodes")
        offsets.append(len(self.values))
        self.values.append(value)
        ndim.append(0)
        kinds.append(OP)
        bases.append(out)
        shape_start.append(len(self.shapes))
        ops.append(opcode)
        outs.append(out)
        arg_starts.append(len(self.args))
        iargs.append(-1)
        self.args.extend(args)
        if floats:
            self.floats.extend(floats)
        return out

    def shape(self, node):
        start, ndim = self.shape_start[node], self.nodes["ndim"][node]
        return tuple(self.shapes[start:start + ndim])

    def producer(self, node):
        """(opcode, first operand, iarg) of the entry whose output is ``node``, or None for
        an input, constant or alias."""
        if self.nodes["kind"][node] != OP:
            return None
        e = int(np.flatnonzero(np.frombuffer(self.entries["out"], np.int32) == node)[0])
        return self.entries["op"][e], self.args[self.entries["arg_start"][e]], self.entries["iarg"][e]

    def int_attrs(self, iarg, count):
        """The integer attributes ``ints[iarg : iarg + count]`` recorded so far, as numpy."""
        return np.frombuffer(self.ints, np.int64, count, 8 * iarg).copy()

    def columns(self):
        """Everything recorded, as numpy arrays: the raw material of a Tape."""
        self.closed = True
        return dict(entries=_finished(self.entries, ENTRY_COLUMNS),
                    nodes=_finished(self.nodes, NODE_COLUMNS), **_finished(self.arenas, ARENAS))
