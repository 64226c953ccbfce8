"""Replaying a Tape: binding arguments, the per-thread buffers, the two sweeps, gradients.

:class:`Replay` is the execution half of :class:`~tapegrad.tape.Tape` (which is the data);
it reads the tape's columns and the program derived from them (``tapegrad.program``) and
calls the interpreter (``tapegrad.jit``).

Invariants
----------
* Replays never write to the tape: each thread gets its own value and adjoint buffers,
  so one tape can serve many threads.  Inputs are checked against the recorded shapes in
  Python before any kernel runs.
* A replay checks the tape's guards in the forward sweep; when one fails, no result is
  returned: ``Tape`` methods raise :class:`GuardFailed` naming its source line, and
  ``tapegrad.grad`` picks or records another variant.
* A gradient returned as a view of an adjoint buffer keeps that buffer out of service
  until it is released (``_workspace``).
"""
import sys
import threading
from collections import namedtuple

import numpy as np

import tapegrad.jit as J
from tapegrad import debug, fusion, pytree
from tapegrad.config import config
from tapegrad.keys import leaf_spec
from tapegrad.program import replayed
from tapegrad.jit.gradient_sweep import gradient_sweep
from tapegrad.jit.rows import jacobian_rows

_ONE = np.ones(1)
_POOL_SIZE = 4  # adjoint buffers kept per thread; beyond that, results get fresh ones
_VIEW_SHARE = 0.5  # gradients are views, not copies, when they fill this much of the arena


def _refcount(pool, i):
    return sys.getrefcount(pool[i])


def _adjoint_buffer(vals):
    """(owner, adj): an adjoint buffer as long as ``vals`` whose element i lies half a page
    (mod 4096 bytes) away from vals[i].  A backward loop reads an operand's values and
    writes its adjoint at the same index; at equal page offsets the CPU takes each store for
    a possible write to the next load (4K aliasing): measured 3-4x slower loops."""
    owner = np.empty(len(vals) + 512)
    gap = (owner.ctypes.data - vals.ctypes.data) % 4096
    shift = ((2048 - gap) % 4096) // 8
    return owner, owner[shift:shift + len(vals)]


_Bound = namedtuple("_Bound", "vals adj ext keep")  # one call's buffers and bound arguments


def check_scalar_output(shape, what):
    if shape != ():
        raise TypeError(f"{what} needs a function with a scalar output, but the output has "
                        f"shape {shape}; use tapegrad.jacobian for non-scalar outputs")


def _expected(spec):
    """What a leaf of this spec must be, in words."""
    if spec[0] != "f":
        return "the value baked into the tape"
    if spec[3] == "float":
        return "a float"
    return f"a float {'array' if spec[3] == 'array' else 'scalar'} of shape {spec[1]}"


def _got(x):
    if x is None:
        return "None"
    if isinstance(x, (np.ndarray, np.generic)):
        return f"{'an array' if isinstance(x, np.ndarray) else 'a scalar'} of dtype {x.dtype} and shape {x.shape}"
    return f"a {type(x).__name__}"


def _leaf_paths(d, path):
    """The path (``[0]['w']``, ``.bias``) of each leaf of treedef ``d``, in leaf order."""
    if d == "*":
        yield path
    elif d[0] in ("tuple", "list"):
        for i, c in enumerate(d[1]):
            yield from _leaf_paths(c, f"{path}[{i}]")
    elif d[0] == "dict":
        for k, c in zip(d[1], d[2]):
            yield from _leaf_paths(c, f"{path}[{k!r}]")
    elif d[0] == "namedtuple":
        for name, c in zip(d[1]._fields, d[2]):
            yield from _leaf_paths(c, f"{path}.{name}")
    elif d[0] == "dataclass":
        for name, c in zip(d[2], d[3]):
            yield from _leaf_paths(c, f"{path}.{name}")


def _leaf_name(tape, i):
    """``argument k`` followed by the path of leaf ``i`` inside argument k, if it has one."""
    k = tape.leaf_arg[i]
    first = tape.leaf_arg.index(k)
    paths = list(_leaf_paths(pytree.children(tape.in_tree)[k], ""))
    return f"argument {k}{paths[i - first] if i - first < len(paths) else ''}"


def _n_leaves(d):
    """The number of leaves of treedef ``d`` (the "*" in it, dict keys aside)."""
    if d == "*":
        return 1
    if isinstance(d, tuple):
        if d and d[0] in ("dict", "dataclass"):  # skip the keys / field names
            d = d[-1]
        return sum(_n_leaves(c) for c in d)
    return 0


def _first_difference(d, x, specs, path):
    """(path, what was expected, what was given) at the first place where the value ``x``
    does not have the treedef ``d``, or None; ``specs`` yields the specs of d's leaves."""
    got = pytree.walk(x, [])
    if d == "*":
        spec = next(specs)
        if got == "*":
            return None
        hint = " (pass np.asarray(...))" if spec[0] == "f" and isinstance(x, (list, tuple)) else ""
        return path, _expected(spec), _got(x) + hint
    if got == d:
        for _ in range(_n_leaves(d)):
            next(specs)
        return None
    kind = d[0]
    if got == "*" or got[0] != kind or (kind in ("namedtuple", "dataclass") and got[1] is not d[1]):
        what = d[1].__name__ if kind in ("namedtuple", "dataclass") else (
            "None" if kind == "none" else f"a {kind}")
        return path, what, _got(x)
    if kind in ("tuple", "list") and len(d[1]) != len(x):
        return path, f"a {kind} of {len(d[1])} items", f"a {kind} of {len(x)} items"
    if kind == "dict" and d[1] != got[1]:
        return path, f"a dict with keys {list(d[1])}", f"keys {sorted(x, key=repr)}"
    if kind == "dict":
        items = [(f"[{k!r}]", c, x[k]) for k, c in zip(d[1], d[2])]
    elif kind == "namedtuple":
        items = [(f".{name}", c, v) for name, c, v in zip(d[1]._fields, d[2], x)]
    elif kind == "dataclass":
        items = [(f".{name}", c, getattr(x, name)) for name, c in zip(d[2], d[3])]
    else:
        items = [(f"[{i}]", c, v) for i, (c, v) in enumerate(zip(d[1], x))]
    for sub, c, v in items:
        found = _first_difference(c, v, specs, path + sub)
        if found:
            return found
    return path, f"structure {d}", f"structure {got}"


def _structure_error(tape, args):
    """The error for arguments whose structure differs from the recording's: the number
    of arguments, or the first argument (and place inside it) that differs."""
    expected = pytree.children(tape.in_tree)
    if len(args) != len(expected):
        return TypeError(f"the tape was recorded with {len(expected)} positional argument"
                         f"{'s' if len(expected) != 1 else ''}, got {len(args)}")
    specs = iter(tape.specs)
    try:
        for k, (d, x) in enumerate(zip(expected, args)):
            found = _first_difference(d, x, specs, "")
            if found:
                path, want, got = found
                return ValueError(f"argument {k}{path}: the argument structure differs from "
                                  f"the recording: expected {want}, got {got}")
    except Exception:  # a container kind the walk above does not know: the plain message
        pass
    return ValueError(f"arguments have structure {pytree.flatten(tuple(args))[1]}, the tape "
                      f"was recorded with {tape.in_tree}")



class GuardFailed(ValueError):
    """A tape was replayed where one of its branches (a guard) goes the other way."""


class Replay:
    """Replaying and differentiating a tape (mixed into ``Tape``): everything that runs."""

    def _start_replays(self):
        self._local = threading.local()  # per-thread work buffers
        self._plans()

    def _workspace(self):
        """This thread's value buffer (a copy of the arena, so it holds the constants) and
        an adjoint buffer that no earlier result still uses.

        When the gradients are most of the arena they are returned as views of the adjoint
        buffer rather than copies (see ``_gradients``), so a buffer goes back into service
        only when nothing refers to it any more.  "Nothing" is the reference count the
        buffer had right after it was created, read through the same helper, so the test
        does not depend on how the interpreter counts its own references.
        """
        local = self._local
        extra = self._fusion.scratch if self._fusion else 0  # the fused segments' scratch
        if not hasattr(local, "vals"):
            local.vals, local.owners, local.adjs, local.unshared = (
                np.append(self.values, np.zeros(extra)), [], [], 0)
        for i in range(len(local.owners)):
            if _refcount(local.owners, i) <= local.unshared:
                return local.vals, local.adjs[i]
        owner, adj = _adjoint_buffer(local.vals)
        if len(local.owners) < _POOL_SIZE:
            # the owner is what the gradients' views reference (numpy points a view of a
            # view at the owner), so it is the owner's count that says "free"
            local.owners.append(owner)
            local.adjs.append(adj)
            del owner
            local.unshared = _refcount(local.owners, len(local.owners) - 1)
            return local.vals, local.adjs[-1]
        return local.vals, adj

    def _bind(self, args):
        """Check ``args`` against the recording and write them into this thread's buffers.

        Every mismatch is found here, before any kernel runs, and named: the number of
        arguments (TypeError), the argument and the place inside it whose structure differs
        (ValueError, with what was expected: "argument 0['w']: ... expected a float array
        of shape (2,), got a list"), a leaf of the wrong dtype (TypeError) or shape
        (ValueError).  A call with the right arguments pays for none of the messages."""
        if self.value_dependent:
            raise ValueError("this tape branched on a traced value that no guard checks: a "
                             "comparison of traced values was used as a constant (a mask such "
                             "as where(x > 0, ...), or combined with & or |) when it was "
                             "recorded, so replaying it elsewhere could be wrong. Record it again "
                             "at the new inputs, or use tapegrad.grad, which does so for you")
        leaves, treedef = pytree.flatten(tuple(args))
        if treedef != self.in_tree:
            raise _structure_error(self, args)
        for i, (leaf, spec) in enumerate(zip(leaves, self.specs)):
            if spec[0] == "f" and np.asarray(leaf).dtype.kind not in "fiu":
                raise TypeError(f"{_leaf_name(self, i)}: expected {_expected(spec)}, got "
                                f"{_got(leaf)}")
            if spec[0] == "f" and np.shape(leaf) != spec[1]:
                raise ValueError(f"{_leaf_name(self, i)}: the tape was recorded for shape "
                                 f"{spec[1]}, got shape {np.shape(leaf)}")
            if spec[0] == "s" and spec[1] is None:  # an object: it may have changed unseen
                raise ValueError(f"{_leaf_name(self, i)}: the tape baked in a "
                                 f"{type(leaf).__name__} that cannot be compared with its value "
                                 "at recording time, so replaying could be stale; record again "
                                 "(tapegrad.grad does so on every call for such arguments)")
            if spec[0] == "s" and leaf_spec(leaf, False, self.leaf_arg[i]) != spec:
                raise ValueError(f"{_leaf_name(self, i)}: this non-float value was baked into "
                                 "the tape when it was recorded and has changed; record again")
        return self._load(leaves)

    def _plans(self):
        """Per-call work decided once: where each traced leaf goes in the arena, where each
        differentiated leaf's adjoint is, and where the output is."""
        traced = [(i, spec, arg) for i, (spec, arg) in enumerate(zip(self.specs, self.leaf_arg))
                  if spec[0] == "f"]
        self._load_plan = [(i, int(self.offset[node]), int(self.size[node]), spec[3] == "float",
                            self._slots.get(int(node), 0))
                           for node, (i, spec, _) in zip(self.inputs, traced)]
        self._grad_plan = [(arg, int(self.offset[node]), int(self.size[node]), bool(self.need[node]),
                            spec[1], np.dtype(spec[2]), spec[3])
                           for node, (_, spec, arg) in zip(self.inputs, traced) if arg in self.argnums]
        self._arg_trees = [pytree.children(self.in_tree)[k] for k in self.argnums]
        self._grad_end = max((start + size for _, start, size, *_ in self._grad_plan), default=0)
        self._copy_gradients = (self._grad_end < _VIEW_SHARE * self._touched_arena()
                                and any(plan[6] == "array" for plan in self._grad_plan))
        self._single_leaf = self.argnums_is_int and self._arg_trees == ["*"]
        self._no_ext = np.zeros(len(self.inputs), np.int64)
        out = self.output
        self._out_plan = (int(self.offset[out]), int(self.size[out]), self.shape(out))
        self._prog_entry = np.flatnonzero(replayed(self))  # program row -> tape entry
        self._check = 1 if self.guards else 0

    def _touched_arena(self):
        """The arena's length less what fused segments keep in scratch instead."""
        return len(self.values) - (self._fusion.untouched if self._fusion else 0)

    def _load(self, leaves):
        """Bind argument leaves: copy them into this thread's value buffer, or, for inputs
        read by reference, note their address (keeping a float64 C-ordered copy alive if
        the caller's array is not one already)."""
        vals, adj = self._workspace()
        # without by-reference inputs the table is never written: one shared array will do
        ext = np.zeros(len(self.inputs), np.int64) if self._slots else self._no_ext
        keep = []
        for i, start, size, is_float, slot in self._load_plan:
            leaf = leaves[i]
            if slot:
                if not (type(leaf) is np.ndarray and leaf.dtype == np.float64 and leaf.flags.c_contiguous):
                    leaf = np.ascontiguousarray(leaf, dtype=np.float64)
                keep.append(leaf)
                ext[slot - 1] = leaf.ctypes.data
            elif is_float:
                vals[start] = leaf
            else:
                vals[start:start + size] = leaf.reshape(-1) if type(leaf) is np.ndarray else np.ravel(leaf)
        return _Bound(vals, adj, ext, keep)

    def _output(self, vals):
        start, size, shape = self._out_plan
        return float(vals[start]) if shape == () else vals[start:start + size].reshape(shape).copy()

    def _assemble(self, leaves):
        """Put one value per differentiated leaf back into the arguments' structures."""
        if self._single_leaf:  # grad(f)(x) with one array or float x: nothing to rebuild
            return leaves[0]
        per_arg = {k: [] for k in self.argnums}
        for plan, leaf in zip(self._grad_plan, leaves):
            per_arg[plan[0]].append(leaf)
        grads = tuple(pytree.unflatten(tree, per_arg[k]) for tree, k in zip(self._arg_trees, self.argnums))
        return grads[0] if self.argnums_is_int else grads

    def _adjoints(self, adj):
        """Each differentiated leaf's adjoint block (zeros if the output ignores it)."""
        return [adj[start:start + size] if needed else np.zeros(size)
                for _, start, size, needed, _, _, _ in self._grad_plan]

    def _gradients(self, adj):
        """The gradient for each differentiated argument, shaped and typed like it.

        The differentiated inputs' adjoints are one block at the start of the arena (the
        recorder creates those inputs first).  A block that is most of the arena is handed
        out as views (``_workspace`` will not reuse the buffer while they live): copying
        it would cost as much as a layer of the model.  A smaller one is copied, so that
        a held gradient never keeps a large buffer alive.
        """
        if self._copy_gradients:
            adj = adj[:self._grad_end].copy()
        leaves = []
        for _, start, size, needed, shape, dtype, kind in self._grad_plan:
            if kind == "float":
                leaves.append(float(adj[start]) if needed else 0.0)
            elif kind == "scalar":
                leaves.append(dtype.type(adj[start] if needed else 0.0))
            else:  # the output may not depend on an input at all: then its gradient is 0
                g = adj[start:start + size] if needed else np.zeros(size)
                leaves.append(g.reshape(shape).astype(dtype, copy=False))
        return self._assemble(leaves)

    def _check_scalar_output(self, what):
        check_scalar_output(self.shape(self.output), what)

    def _replay(self, bound, check=True):
        """Forward sweep; -1, or the tape entry of the first guard that fails (``check``
        False: guards are not checked, for a tape just recorded at these very inputs)."""
        failed = J.forward_sweep(self._prog, self._attrs, self._ints, bound.vals, bound.ext,
                                 self._check if check else 0)
        if config.debug_nans and failed < 0:
            debug.check_forward(self, bound)
        return -1 if failed < 0 else int(self._prog_entry[failed])

    def _sweep(self, bound, seed, replay, check=True):
        """Forward (if ``replay``) and backward sweep; -1, or the failed guard's entry (then
        no backward sweep ran)."""
        if replay and not config.debug_nans:  # one compiled call, or the fused pieces
            check = self._check if check else 0
            if self._fusion:
                failed = fusion.sweep(self._fusion, self._ints, bound.vals, bound.adj, bound.ext,
                                      self._out_plan[0], seed, check)
            else:
                failed = gradient_sweep(self._prog, self._attrs, self._ints, bound.vals, bound.adj,
                                        self._zero, self._out_plan[0], seed, bound.ext, check)
            return -1 if failed < 0 else int(self._prog_entry[failed])
        if replay:  # debug_nans: the sweeps one at a time, each checked
            failed = self._replay(bound, check)
            if failed >= 0:
                return failed
        J.backward_sweep(self._prog, self._attrs, self._ints, bound.vals, bound.adj, self._zero,
                         self._out_plan[0], seed, bound.ext)
        if config.debug_nans:
            debug.check_backward(self, bound, seed)
        return -1

    def _guard_error(self, entry):
        return GuardFailed(f"guard {self.entry_str(entry)} of this tape does not hold at these "
                           f"arguments: the comparison at {self.guard_site(entry)} decides the "
                           "other way, so the tape's branch is not the one a fresh run would "
                           "take. Record the tape again at these arguments (tapegrad.record), "
                           "or use tapegrad.grad, which keeps one variant per branch pattern")

    def forward(self, *args):
        """The function's value at ``args``, computed by replaying the tape; GuardFailed if
        a branch recorded in the tape (a guard) goes the other way at ``args``."""
        bound = self._bind(args)
        failed = self._replay(bound)
        if failed >= 0:
            raise self._guard_error(failed)
        return self._output(bound.vals)

    def value_and_gradient(self, *args):
        """(value, gradient) at ``args``: one forward replay and one backward sweep."""
        self._check_scalar_output("gradient")
        bound = self._bind(args)
        failed = self._sweep(bound, _ONE, True)
        if failed >= 0:
            raise self._guard_error(failed)
        return self._output(bound.vals), self._gradients(bound.adj)

    def gradient(self, *args):
        """Gradient of the (scalar) output with respect to the arguments in ``argnums``."""
        return self.value_and_gradient(*args)[1]

    def jacobian(self, *args):
        """d output / d argument, shaped output.shape + argument.shape, by one sweep per output."""
        bound = self._bind(args)
        failed = self._replay(bound)
        if failed >= 0:
            raise self._guard_error(failed)
        return self._jacobian_rows(bound)

    def _jacobian_rows(self, bound):
        """Row i is the gradient of output element i: one backward sweep each, all in one
        compiled call (``jit/rows.py``), except under ``debug_nans``, which checks each."""
        out_shape, m = self.shape(self.output), int(self.size[self.output])
        if not hasattr(self, "_rows_plan"):  # each leaf's columns, and the blocks to copy
            columns = np.cumsum([0] + [plan[2] for plan in self._grad_plan])
            blocks = np.array([(start, size, col) for (_, start, size, needed, *_), col
                               in zip(self._grad_plan, columns) if needed and size], np.int64)
            self._rows_plan = columns, blocks.reshape(-1, 3)
        columns, blocks = self._rows_plan
        table = np.zeros((m, int(columns[-1])))  # a leaf the output ignores keeps its zeros
        seed = np.zeros(m)
        if config.debug_nans:
            for i in range(m):
                seed[:] = 0.0
                seed[i] = 1.0
                self._sweep(bound, seed, False)
                table[i] = np.concatenate([np.ravel(g) for g in self._adjoints(bound.adj)] + [np.zeros(0)])
        elif m:
            jacobian_rows(self._prog, self._attrs, self._ints, bound.vals, bound.adj, self._zero,
                          self._out_plan[0], seed, bound.ext, blocks, table)
        jac = [table[:, lo:hi] for lo, hi in zip(columns[:-1], columns[1:])]
        return self._assemble([float(rows[0, 0]) if plan[6] == "float" and out_shape == ()
                               else rows.reshape(out_shape + plan[4]).astype(plan[5])
                               for rows, plan in zip(jac, self._grad_plan)])
