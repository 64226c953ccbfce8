"""The Tape: a recorded function as plain numpy columns, replayable at new inputs.

The Tape is data.  Its file format is ``tapefile`` (validated by ``tapecheck``), its
execution ``replay`` (on the interpreter's *program*, derived by ``program`` and run by
``tapegrad.jit``), its printing and pictures ``viz``; this module holds the columns and
reads them.

Entries (one row per operation, in execution order)::

    op         opcode (a row of tapegrad.jit.OPS), int16
    out        output node, int32; -1 for an op that writes none (row ``outputs = 0``)
    arg_start  where the entry's operand list starts in ``args`` (its row's ``arity`` long)
    iarg       offset of the integer attributes in ``ints`` (-1: none)

Nodes (one row per value)::

    offset     where the node's values sit in the arena (int64)   kind   const/input/op/alias
    ndim       its number of dimensions, in the ``shapes`` arena  base   storage owner (alias)
    live       the output depends on it (entries making other nodes are not replayed)
    need       live, and on a path from a differentiated input to the output

Arenas: ``args`` (operand node ids, int32), ``floats`` (each entry's float attributes, as
many as its row names), ``ints``, ``shapes``, ``values``.  Derived on construction and not
stored: each node's ``size`` and ``shape_start``, and the program.  Entry i's operands are
:meth:`Tape.operands` ``(i)``.

Invariants
----------
* A Tape is immutable once built and holds no Python callables: it pickles, and saves to
  ``.npz``, as its stored arrays plus a JSON description of the arguments (``tapefile``);
  both ways back in validate every column before any kernel runs.
* Replays never write to the tape: each thread gets its own value and adjoint buffers,
  so one tape can serve many threads.  Inputs are checked against the recorded shapes in
  Python before any kernel runs.
"""
from dataclasses import dataclass

import numpy as np

import tapegrad.jit as J
from tapegrad import fusion, tapefile, viz
from tapegrad.keys import static_key  # noqa: F401 - static_key: for importers
from tapegrad.program import by_reference, program
from tapegrad.replay import Replay, check_scalar_output  # noqa: F401 - for importers
from tapegrad.tapecheck import node_sizes

_GUARD_CODES = [code for code, row in enumerate(J.OPS) if row.family == "guard"]


@dataclass(eq=False, repr=False)
class Tape(Replay):
    # entries
    op: np.ndarray
    out: np.ndarray
    arg_start: np.ndarray
    iarg: np.ndarray
    # nodes
    offset: np.ndarray
    ndim: np.ndarray
    kind: np.ndarray
    base: np.ndarray
    need: np.ndarray
    live: np.ndarray
    # arenas
    args: np.ndarray
    floats: np.ndarray
    ints: np.ndarray
    shapes: np.ndarray
    values: np.ndarray
    # interface: traced input nodes (in argument-leaf order), output node, argument layout
    inputs: np.ndarray
    output: int
    in_tree: tuple
    specs: tuple
    leaf_arg: tuple
    argnums: tuple
    argnums_is_int: bool
    value_dependent: bool
    # side table, not kernel columns: (entry, file, line, source text) per guard entry
    guard_sites: tuple = ()

    def __post_init__(self):
        self.shape_start, self.size = node_sizes(self.ndim, self.shapes)
        per_row = np.array([len(row.floats) for row in J.OPS], np.int64)[self.op]
        self._float_start = np.cumsum(per_row) - per_row
        self._guards = tuple(int(i) for i in np.flatnonzero(np.isin(self.op, _GUARD_CODES)))
        self._outcomes = tuple(bool(self.ints[self.iarg[i]]) for i in self._guards)
        self._guard_index = {e: k for k, e in enumerate(self._guards)}
        self._slots = by_reference(self)
        self._prog, self._attrs, self._zero, self._ints = program(self)
        self._fusion = fusion.plan(self, self._prog, self._attrs, self._zero, self._ints)
        self._start_replays()

    @classmethod
    def from_recording(cls, columns, inputs, output, in_tree, specs, leaf_arg, argnums,
                       argnums_is_int, value_dependent, guard_sites=()):
        e, n = columns["entries"], columns["nodes"]
        traced_args = [arg for arg, spec in zip(leaf_arg, specs) if spec[0] == "f"]
        diff = np.array([node for node, arg in zip(inputs, traced_args) if arg in argnums], np.int64)
        n_nodes = len(n["base"])
        flags = np.zeros((2, n_nodes), np.uint8)
        J.activity(e["out"], e["arg_start"], columns["args"], n["base"], diff, np.int64(output),
                   np.zeros((3, n_nodes), np.uint8), flags)
        need, live = flags
        return cls(**e, **n, need=need, live=live, args=columns["args"], floats=columns["floats"],
                   ints=columns["ints"], shapes=columns["shapes"], values=columns["values"],
                   inputs=np.asarray(inputs, np.int64), output=int(output), in_tree=in_tree,
                   specs=tuple(specs), leaf_arg=tuple(leaf_arg), argnums=tuple(argnums),
                   argnums_is_int=argnums_is_int, value_dependent=value_dependent,
                   guard_sites=tuple(guard_sites))

    # guards (jit/ops_guard.py): comparisons that decided a branch ------------------------
    @property
    def guards(self):
        """The guard entries, in tape order: their entry indices."""
        return self._guards

    @property
    def guard_outcomes(self):
        """The outcome each guard recorded (True/False), in tape order: the variant's key."""
        return self._outcomes

    def guard_site(self, entry):
        """``file:line: source`` of the user's code that made guard ``entry`` (when known)."""
        for e, name, line, text in self.guard_sites:
            if e == entry:
                return f"{name}:{line}" + (f": {text}" if text else "")
        return "source line unknown"

    # reading the tape ----------------------------------------------------------------------
    def __len__(self):
        return len(self.op)

    @property
    def n_nodes(self):
        return len(self.offset)

    def operands(self, i):
        """The nodes entry ``i`` reads, in order (a node read twice appears twice)."""
        stop = self.arg_start[i + 1] if i + 1 < len(self.op) else len(self.args)
        return tuple(int(k) for k in self.args[self.arg_start[i]:stop])

    def entry_floats(self, i):
        """Entry ``i``'s float attributes, named by its row's ``floats``: {name: value}."""
        names, start = J.OPS[self.op[i]].floats, self._float_start[i]
        return {name: float(self.floats[start + k]) for k, name in enumerate(names)}

    @property
    def nbytes(self):
        """Bytes of the stored tape: every array its file holds (entry and node columns,
        arenas, inputs; ``tapefile.STORED``).  The derived arrays are
        :attr:`program_nbytes`."""
        return sum(getattr(self, name).nbytes for name in tapefile.STORED)

    @property
    def program_nbytes(self):
        """Bytes of what is derived from the stored tape when it is built: the interpreter's
        program (rows, float attributes, zeroing blocks, int arena with what it
        synthesises), node sizes and shape starts, activity.  Not
        counted: per-thread replay buffers and small Python objects."""
        arrays = [self._prog, self._attrs, self._zero, self._ints, self.size,
                  self.shape_start, self._float_start, self.need, self.live]
        return sum(a.nbytes for a in arrays)

    def shape(self, node):
        start = self.shape_start[node]
        return tuple(int(d) for d in self.shapes[start:start + self.ndim[node]])

    def recorded_value(self, node):
        """The value node ``node`` had when the tape was recorded."""
        return self.values[self.offset[node]:self.offset[node] + self.size[node]].reshape(self.shape(node))

    def entry_str(self, i):
        """Entry ``i`` as printed: ``i: OP(operands; attributes) -> out (shape)`` (see
        ``viz.entry_str``)."""
        return viz.entry_str(self, i)

    def __str__(self):
        return viz.tape_str(self)

    def __repr__(self):
        return (f"<Tape: {len(self)} entries, {self.n_nodes} nodes, "
                f"output shape {self.shape(self.output)}>")

    # pictures (tapegrad.viz) -----------------------------------------------------------------
    def to_dot(self, values=False):
        """Graphviz DOT text of the tape; ``values=True`` labels nodes with recorded values."""
        return viz.to_dot(self, values)

    def render(self, path, format=None, values=False):
        """Draw the tape to ``path`` (SVG, PNG, ...: by suffix) with Graphviz."""
        return viz.render(self, path, format, values)

    def _repr_html_(self):
        return viz.html_table(self)

    def _repr_svg_(self):
        return viz.svg_or_none(self)

    # persistence: the file format and its checks live in tapegrad.tapefile ------------------
    def __getstate__(self):
        """The tape's file contents (plain arrays); unpickling validates them like a load."""
        return tapefile.encode(self)

    def __setstate__(self, state):
        self.__dict__.update(type(self).from_recording(**tapefile.decode(state)).__dict__)

    def save(self, path):
        """Save as an ``.npz`` archive of plain arrays (format and version in
        ``tapegrad.tapefile``); ValueError if a baked-in value cannot be stored."""
        tapefile.save(self, path)

    @classmethod
    def load(cls, path):
        """Load a tape saved by :meth:`save`, checking all of it before any kernel runs:
        ValueError ``"not a valid tapegrad tape: ..."`` for a file that is not one."""
        return cls.from_recording(**tapefile.read(path))
