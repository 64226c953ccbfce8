"""The lectures' ``grad_table`` backward pass, shown term by term on a real backward sweep.

The lecture fills grad_table[u_j] = sum over the consumers i of u_j of
grad_table[u_i] * du_i/du_j, for j from the output down.  ``trace_grad_table`` prints that
table for a function at given arguments: one block per node, last to first, listing each
chain-rule term and their sum, so that every path from a node to the output is visible.

The terms are not recomputed by a second implementation of the derivative rules.  After
one ordinary replay and backward sweep (which gives every grad_table[u_i]), each entry of
the interpreter's program is run again on its own, seeded with its output's adjoint, into
a zeroed scratch buffer and with its operands forced to accumulate (``ADD``), one operand
at a time; what lands in that operand's block is exactly the term the full sweep added.

Invariants
----------
* A term belongs to the storage owner of the operand it was read through: ``x[1]`` and
  ``x`` share storage, so a term through the view ``x[1]`` is part of ``x``'s sum, shown as
  landing in the window ``[1:2]``.
* Each node's ``total`` is the seed (for the output) plus its terms, added in the order
  the backward sweep adds them; tests check it equals the interpreter's adjoint.
* Only nodes the interpreter differentiates are listed (on a path from a differentiated
  input to the output; see activity analysis), plus every differentiated input.
"""
import inspect
from dataclasses import dataclass

import numpy as np

import tapegrad.jit as J
from tapegrad import pytree, viz
from tapegrad.api import record
from tapegrad.tape import Tape, check_scalar_output
from tapegrad.viz import (differentiated_inputs, entry_call, input_leaves, node_role, operand_label,
                          operands, output_node, program_entries, storage_owner, summary, window)

_NO_BLOCKS = np.zeros((0, 2), np.int64)


@dataclass
class Term:
    """One chain-rule term grad_table[consumer] * d consumer / d operand, as computed by the
    backward rule of entry ``entry`` for its operand number ``position``.  ``block`` is the
    term, shaped like the operand; it lands in ``window`` of the owner's flat storage.
    ``upstream`` is grad_table[consumer]; ``local`` is d consumer / d operand when the
    consumer is a single number (else None), and then block = upstream * local."""
    entry: int
    consumer: int
    operand: int
    position: int
    window: tuple
    block: np.ndarray
    upstream: np.ndarray
    local: object
    owner_shape: tuple

    @property
    def value(self):
        """The term as an array shaped like the storage owner, zero outside ``window``."""
        full = np.zeros(int(np.prod(self.owner_shape)))
        full[self.window[0]:self.window[1]] = self.block.ravel()
        return full.reshape(self.owner_shape)


@dataclass
class NodeStep:
    """One node's row of grad_table: its value, its terms and their sum (``total``), and the
    adjoint the full backward sweep left for it (``adjoint``), which equals ``total``."""
    node: int
    role: str
    label: str
    value: np.ndarray
    terms: list
    seed: object
    total: np.ndarray
    adjoint: np.ndarray


class GradTable(list):
    """The trace: a list of :class:`NodeStep`, output first, inputs last.

    ``value`` is the function's value, ``gradient`` the interpreter's gradient (shaped like
    the differentiated arguments), ``tape`` the tape traced, ``node_values`` every drawn
    node's value at the traced arguments, ``digits`` the significant digits printed.
    """

    def __init__(self, steps, value, gradient, tape, node_values, digits, names, consumers):
        super().__init__(steps)
        self.value, self.gradient, self.tape, self.node_values = value, gradient, tape, node_values
        self.digits, self._names, self._consumers = digits, names, consumers

    def to_dot(self):
        """The tape's graph, each node labelled with its value and its grad_table entry."""
        return viz.to_dot(self.tape, self.node_values, {s.node: s.total for s in self})

    def render(self, path, format=None):
        """Draw :meth:`to_dot` into ``path`` with Graphviz (SVG, PNG, ...: by suffix)."""
        return viz.write_dot(self.to_dot(), path, format)

    def step(self, node):
        """The step of ``node`` (a view's step is its storage owner's)."""
        for s in self:
            if s.node == node:
                return s
        raise KeyError(f"node {node} is not in the trace (not differentiated, or a view)")

    def _ref(self, node):
        return self._names.get(node, str(node))

    def __str__(self):
        return self.format()

    def __repr__(self):
        return (f"<GradTable: {len(self)} nodes, output value {summary(self.value, self.digits)}; "
                "print it to see every chain-rule term>")

    def format(self, nodes=None):
        """The printed trace; ``nodes`` (a collection of node numbers) limits it to those
        nodes' steps."""
        fmt = lambda v: summary(v, self.digits)  # noqa: E731
        lines = [f"grad_table, last node to first (output value {fmt(self.value)}); "
                 "each + line is one chain-rule term grad_table[i] * di/dj"]
        for s in self:
            if nodes is not None and s.node not in nodes:
                continue
            name = f" ({self._names[s.node]})" if s.node in self._names else ""
            lines.append(f"node {s.node}{name} = {s.label}, value {fmt(s.value)}")
            if s.seed is not None:
                lines.append(f"  + seed {fmt(s.seed)} (the output)")
            for t in s.terms:
                i, j = self._ref(t.consumer), self._ref(t.operand)
                rhs = fmt(t.block) if t.local is None else \
                    f"{fmt(t.upstream)} * {fmt(t.local)} = {fmt(t.block)}"
                whole = t.window == (0, s.value.size)
                where = "" if whole else f" into [{t.window[0]}:{t.window[1]}]"
                view = f" (through view {j})" if t.operand != s.node else ""
                if sum(u.entry == t.entry for u in s.terms) > 1 and t.operand == s.node:
                    view = f" (operand {operand_label(t.position)})"  # e.g. x * x: one term per operand
                lines.append(f"  + grad_table[{i}] * d{i}/d{j} = {rhs}{where}"
                             f"   [{t.consumer} = {self._consumers[t.entry]}{view}]")
            if not s.terms and s.seed is None:
                lines.append("  (no path to the output)")
            lines.append(f"  grad_table[{self._ref(s.node)}] = {fmt(s.total)}")
        return "\n".join(lines)


def trace_grad_table(f, *args, argnums=0, names=None, digits=4, show=True):
    """Run the backward pass of ``f`` at ``args`` and print it the way the lectures'
    ``grad_table`` algorithm runs: nodes from the output down, each with one line per
    chain-rule term (one per consumer, i.e. per path step) and their sum.

    ``f`` may also be a recorded :class:`Tape`, traced at new ``args`` of its shapes.
    ``names`` maps node numbers to names printed beside them (``{1: "h1"}``).  Returns the
    trace, a :class:`GradTable`; ``show=False`` only returns it.
    """
    if isinstance(f, Tape):
        tape, fresh, arg_names = f, False, None
    else:
        tape, fresh = record(f, *args, argnums=argnums), True
        arg_names = _parameter_names(f, len(args))
    check_scalar_output(tape.shape(tape.output), "trace_grad_table")
    table = _trace(tape, args, fresh, arg_names, dict(names or {}), digits)
    if show:
        print(table)
    return table


def _parameter_names(f, nargs):
    try:
        params = list(inspect.signature(f).parameters.values())
    except (TypeError, ValueError):
        return None
    if len(params) < nargs or any(p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                                  for p in params[:nargs]):
        return None
    return [p.name for p in params[:nargs]]


def _input_labels(tape, leaves, arg_names):
    """{input node: label} and {by-reference input node: its values as the caller holds them}."""
    per_arg = {}
    for _, i in input_leaves(tape):
        per_arg[tape.leaf_arg[i]] = per_arg.get(tape.leaf_arg[i], 0) + 1
    labels, by_ref, seen = {}, {}, {}
    for node, i in input_leaves(tape):
        arg = tape.leaf_arg[i]
        k = seen[arg] = seen.get(arg, -1) + 1
        name = arg_names[arg] if arg_names else f"argument {arg}"
        labels[node] = f"input {name}" + (f", leaf {k}" if per_arg[arg] > 1 else "")
        if node in tape._slots:  # read by MATMUL where the caller keeps it: not in the arena
            by_ref[node] = np.ascontiguousarray(leaves[i], dtype=np.float64).ravel()
    return labels, by_ref


def _trace(tape, args, fresh, arg_names, names, digits):
    leaves, treedef = pytree.flatten(tuple(args))
    # a tape recorded just now at these very arguments is valid here even if it branched
    bound = tape._load(leaves) if fresh else tape._bind(args)
    failed = tape._sweep(bound, np.ones(1), True, check=not fresh)
    if failed >= 0:
        raise tape._guard_error(failed)
    vals, adj, ext = bound.vals, bound.adj.copy(), bound.ext
    labels, by_ref = _input_labels(tape, leaves, arg_names)

    def block(arr, node):
        return arr[tape.offset[node]:tape.offset[node] + tape.size[node]]

    def value(node):
        owner = storage_owner(tape, node)
        start, stop = window(tape, node)
        flat = by_ref[owner] if owner in by_ref else block(vals, owner)
        return flat[start:stop].reshape(tape.shape(node)).copy()

    terms, consumer = {}, {}
    scratch = np.zeros_like(adj)
    rows = program_entries(tape)
    for r in range(len(rows) - 1, -1, -1):  # the order of the backward sweep
        e = int(rows[r])
        out = output_node(tape, e)
        if out < 0 or not tape.need[out]:
            continue
        consumer[e] = entry_call(tape, e)
        seed = block(adj, out).copy()
        for k, operand in enumerate(operands(tape, e)):
            if not tape.need[operand]:
                continue
            run = lambda s: _one_entry(tape, r, k, operand, s, vals, scratch, ext)  # noqa: E731
            owner = storage_owner(tape, operand)
            term = run(seed).reshape(tape.shape(operand))
            local = run(np.ones(1)).reshape(tape.shape(operand)) if seed.size == 1 else None
            terms.setdefault(owner, []).append(Term(
                e, out, operand, k, window(tape, operand), term, seed.reshape(tape.shape(out)),
                local, tape.shape(owner)))

    root = storage_owner(tape, tape.output)
    diff_inputs = differentiated_inputs(tape)
    producer = {output_node(tape, e): e for e in range(len(tape)) if tape.out[e] >= 0}
    steps = []
    for node in range(tape.n_nodes - 1, -1, -1):
        if storage_owner(tape, node) != node or not (tape.need[node] or node in diff_inputs):
            continue
        shape = tape.shape(node)
        seed = None
        total = np.zeros(int(tape.size[node]))
        if node == root:
            start, stop = window(tape, tape.output)
            total[start:stop] = 1.0
            seed = total.reshape(shape).copy()
        for t in terms.get(node, []):  # one at a time, in the sweep's order: the same floats
            total[t.window[0]:t.window[1]] += t.block.ravel()
        role = node_role(tape, node)
        label = (labels.get(node, "input") if role == "input" else
                 entry_call(tape, producer[node]) if role == "op" else role)
        adjoint = block(adj, node).reshape(shape).copy() if tape.need[node] else np.zeros(shape)
        steps.append(NodeStep(node, role, label, value(node), terms.get(node, []), seed,
                              total.reshape(shape), adjoint))
    out_value = value(tape.output)
    out_value = float(out_value) if out_value.shape == () else out_value
    node_values = {node: value(node) for node in viz.graph_nodes(tape)}
    return GradTable(steps, out_value, tape._gradients(adj), tape, node_values, digits, names,
                     consumer)


def _one_entry(tape, row, position, operand, seed, vals, scratch, ext):
    """The term program row ``row`` adds to its operand ``position`` when its output's
    adjoint is ``seed``: that row alone, run by the interpreter into a zeroed buffer, told
    to accumulate into that operand only (in the row's need bits, or for an n-ary row in
    its (offset, mode) pairs in the program's int arena)."""
    prog, ints = tape._prog[row:row + 1].copy(), tape._ints
    if J.OPS[prog[0, 0]].family in ("select", "variadic"):
        prog[0, 6] = J.NEED_OUT
        ints, start = ints.copy(), prog[0, 5]
        count = J.OPS[prog[0, 0]].arity or int(ints[prog[0, 2]])  # variadic: its own count
        ints[start + 1:start + 2 * count:2] = 0
        ints[start + 2 * position + 1] = J.ADD
    else:
        prog[0, 6] = J.NEED_OUT | J.ADD << (J.A_SHIFT if position == 0 else J.B_SHIFT)
    root = int(prog[0, 1])
    J.backward_sweep(prog, tape._attrs[row:row + 1], ints, vals, scratch, _NO_BLOCKS,
                     root, seed, ext)
    start = int(tape.offset[operand])
    term = scratch[start:start + int(tape.size[operand])].copy()
    scratch[start:start + int(tape.size[operand])] = 0.0
    scratch[root:root + seed.size] = 0.0
    return term
