"""Gradients at many points: ``batch_grad`` and ``batch_value_and_grad``.

``batch_grad(f, argnums, in_axes)(*args)`` is ``jax.vmap(jax.grad(f, argnums), in_axes)``:
the gradient at every point of the batched arguments, stacked on a new leading axis.  It
is a transformation of the tape, not a loop over points in Python: the tape recorded at
the first point is laid out for a chunk of points (``tapegrad.batchprog``: points-minor
when every entry supports it, else points-major) and one compiled call per thread runs
all its chunks (``tapegrad.jit.batching``); entries run as vector loops over the points
(points-major: only elementwise ones on whole storages, the rest once per point).

Invariants
----------
* Each point's value and gradient are those ``value_and_grad(f, argnums)`` returns at
  that point, bit for bit.  The batched sweeps compute each element by the same rule in
  the same order; a point where one of the tape's guards does not hold is discarded and
  evaluated again with the variant for its branches: the first such point is evaluated
  by ``value_and_grad`` itself (recording a variant if needed) and that variant then runs
  batched on the remaining discarded points, until none is left.
* A tape that may not be replayed elsewhere (value dependent, impure, reading objects no
  guard can check) and a batched argument with non-float leaves (baked into the tape)
  are evaluated point by point through ``value_and_grad``, with a one-time warning.
* Threads: ``numba.get_num_threads()`` if numba's threading layer is already running,
  else ``NUMBA_NUM_THREADS``; the work is split into contiguous ranges, one plain Python
  thread each (the kernels release the GIL), each with its own buffers.  tapegrad never
  starts numba's threading layer (OpenMP would make ``fork()`` unsafe).
* Dask arrays among the arguments hand the call to ``tapegrad.dask_batch.batch_over_blocks``
  (imported then, never by ``import tapegrad``): lazy dask results, each block evaluated
  on a worker by :meth:`_Batched.evaluate` from the tape recorded here at the first point.
"""
import concurrent.futures
import os
import sys
import threading

import numpy as np

from tapegrad import capture, pytree
from tapegrad.api import _normalize_argnums, _Transformed
from tapegrad.batchprog import plan_for
from tapegrad.jit.soa_rules import SOA_WORK
from tapegrad.replay import _adjoint_buffer

_ARENA_FLOATS = 1 << 15  # points per chunk: value + adjoint buffers of ~0.5 MB (L2)
_MAX_CAP = 4096
_pool, _pool_lock = None, threading.Lock()


def _kernels():
    from tapegrad.jit.batching import batch_run  # compiled on first use only
    return batch_run


def num_threads():
    """The number of threads batched gradients use (numba's setting, see module docstring)."""
    import numba
    from numba.np.ufunc import parallel
    if getattr(parallel, "_is_initialized", False):
        return numba.get_num_threads()
    return numba.config.NUMBA_NUM_THREADS


def _executor():
    """The shared pool of helper threads (one fewer than the most threads a call uses: the
    calling thread works too).  A forked child gets a pool of its own: the parent's
    threads do not exist in it, though the parent's pool object says they do."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid():
            import numba
            _pool = (os.getpid(), concurrent.futures.ThreadPoolExecutor(
                max_workers=max(1, numba.config.NUMBA_NUM_THREADS - 1),
                thread_name_prefix="tapegrad-batch"))
        return _pool[1]


def _forget_pool():  # in a forked child: the parent's lock may have been held at the fork
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _normalize_in_axes(in_axes, nargs):
    if in_axes is None or (isinstance(in_axes, (int, np.integer)) and not isinstance(in_axes, bool)):
        return (in_axes,) * nargs
    if not isinstance(in_axes, (tuple, list)):
        raise TypeError(f"in_axes must be an int, None or a tuple of them (one per positional "
                        f"argument), got {in_axes!r}")
    if len(in_axes) != nargs:
        raise ValueError(f"in_axes has {len(in_axes)} entries but the function was called with "
                         f"{nargs} positional argument(s)")
    for a in in_axes:
        if not (a is None or (isinstance(a, (int, np.integer)) and not isinstance(a, bool))):
            raise TypeError(f"each entry of in_axes must be an int or None, got {a!r} in {in_axes!r}")
    return tuple(in_axes)


def _has_dask_leaf(args, array_type):
    leaves = []
    pytree.walk(args, leaves)
    return any(isinstance(leaf, array_type) for leaf in leaves)


class _Points:
    """The batched arguments split into leaves: the shared ones as given, the batched ones
    with their batch axis moved first, and the number of points."""

    def __init__(self, args, in_axes, arrays=np.ndarray):
        """``arrays``: the types a batched leaf may have (``tapegrad.dask`` adds dask's)."""
        self.trees, self.leaves, self.batched, self.leaf_arg = [], [], [], []
        n = first = None
        for k, (arg, axis) in enumerate(zip(args, in_axes)):
            leaves = []
            self.trees.append(pytree.walk(arg, leaves))
            for leaf in leaves:
                if axis is not None:
                    if not isinstance(leaf, arrays) or leaf.ndim == 0:
                        raise ValueError(f"argument {k} is batched (in_axes {axis}) but has a leaf "
                                         f"that is not an array with a batch axis: {leaf!r:.60}")
                    if not -leaf.ndim <= axis < leaf.ndim:
                        raise ValueError(f"in_axes {axis} is out of range for argument {k}, an "
                                         f"array of shape {leaf.shape}")
                    leaf = np.moveaxis(leaf, axis, 0) if axis % leaf.ndim else leaf
                    if n is None:
                        n, first = leaf.shape[0], k
                    elif leaf.shape[0] != n:
                        raise ValueError(f"batched arguments disagree on the number of points: "
                                         f"argument {first} has {n} along its batch axis, "
                                         f"argument {k} has {leaf.shape[0]}")
                self.leaves.append(leaf)
                self.batched.append(axis is not None)
                self.leaf_arg.append(k)
        if n is None:
            raise ValueError("in_axes batches no argument: name at least one (in_axes=0 "
                             "batches all of them along their first axis)")
        self.n = n

    @classmethod
    def of(cls, trees, leaves, batched, leaf_arg, n):
        """Points from leaves already split (batched ones with their batch axis first)."""
        points = cls.__new__(cls)
        points.trees, points.leaves, points.batched, points.leaf_arg = trees, leaves, batched, leaf_arg
        points.n = n
        return points

    def at(self, i):
        """The positional arguments of point ``i``."""
        leaves = [leaf[i] if b else leaf for leaf, b in zip(self.leaves, self.batched)]
        return pytree.unflatten(("tuple", tuple(self.trees)), leaves)


class _Batched:
    """f wrapped by batch_grad / batch_value_and_grad (see the module docstring)."""

    def __init__(self, f, argnums, in_axes, with_value, cache):
        self._vg = _Transformed(f, argnums, "value_and_grad", cache)
        self._in_axes, self._with_value = in_axes, with_value
        self._warned = set()
        self._local = threading.local()  # per-thread work buffers, per batched program
        try:
            self.__wrapped__, self.__name__ = f, getattr(f, "__name__", type(f).__name__)
        except AttributeError:
            pass

    def __call__(self, *args, **kwargs):
        in_axes = _normalize_in_axes(self._in_axes, len(args))
        nums, _ = _normalize_argnums(self._vg._argnums, len(args))
        if "dask.array" in sys.modules and _has_dask_leaf(args, sys.modules["dask.array"].Array):
            from tapegrad.dask_batch import batch_over_blocks
            return batch_over_blocks(self, args, in_axes, kwargs)
        points = _Points(args, in_axes)
        if points.n == 0:
            return self._empty(points, nums)
        tape, reason, first = self._first(points, kwargs)
        if reason is not None and self._vg._cache:  # cache=False asked for a recording per call
            self._warn_once("pointwise", reason)
        values, leaves = self.evaluate(tape, points, kwargs, pointwise=reason is not None,
                                       first=first)
        result = tape._assemble(leaves)
        return (values, result) if self._with_value else result

    def _first(self, points, kwargs):
        """``(tape, reason, result)``: the tape of f at point 0 (``value_and_grad`` records
        it or replays a cached variant), why it may not run batched at the other points
        (the warning's message; None if it may), and the value and gradient at point 0."""
        first = self._vg(*points.at(0), **kwargs)
        tape = self._vg._last.tape
        return tape, self._reason(tape, points), first

    def _reason(self, tape, points):
        """Why ``tape`` may not run batched at ``points`` (the warning's message), or None."""
        baked = [i for i, (b, spec) in enumerate(zip(points.batched, tape.specs))
                 if b and spec[0] != "f"]
        if baked or tape.value_dependent or not self._vg._cached(tape):
            return self._pointwise_reason(tape, baked)
        return None

    def evaluate(self, tape, points, kwargs, pointwise=False, threads=None, first=None):
        """``(values, gradient leaves)`` at every point of ``points`` (n >= 1): the values
        as an ``(n,)`` array, each differentiated leaf's gradients as an ``(n,) + shape``
        array of its dtype.  ``tape``: f recorded at one point with these argument shapes
        (``_first``'s, or one shipped to a Dask worker), run batched, points whose guards
        fail rerun with their own variant; with ``pointwise`` (or no tape) each point goes
        through ``value_and_grad`` instead, once (``first``: point 0's result, if known).
        ``threads``: at most that many (default :func:`num_threads`)."""
        if tape is None:
            first = self._vg(*points.at(0), **kwargs)
            tape, pointwise = self._vg._last.tape, True
        values, (out, grads) = np.empty(points.n), self._grad_buffers(tape, points.n)
        if pointwise:
            for i in range(points.n):
                self._store(values, grads, i, *(first if i == 0 and first is not None
                                                 else self._vg(*points.at(i), **kwargs)))
        else:
            traced_batched = [points.batched[i] for i, *_ in tape._load_plan]
            self._run_rounds(tape, points, kwargs, values, out, grads, traced_batched, threads)
        return values, [block.reshape((points.n,) + plan[4]).astype(plan[5], copy=False)
                        for block, plan in zip(grads, tape._grad_plan)]

    def _run_rounds(self, tape, points, kwargs, values, out, grads, traced_batched, threads):
        """Batched runs until every point has its result (module docstring)."""
        idx = np.arange(points.n)
        while len(idx):
            failed = self._run(tape, points, idx, values, out, grads, traced_batched, threads)
            idx = idx[failed]
            if len(idx):
                i, idx = idx[0], idx[1:]
                self._store(values, grads, i, *self._vg(*points.at(i), **kwargs))
                tape = self._vg._last.tape
                if tape.value_dependent or not self._vg._cached(tape):
                    for i in idx:
                        self._store(values, grads, i, *self._vg(*points.at(i), **kwargs))
                    return

    @staticmethod
    def _plan(tape, points):
        """The batched program for a thread evaluating ``points`` points."""
        cap = int(min(_MAX_CAP, max(1, _ARENA_FLOATS // max(1, len(tape.values)))))
        return plan_for(tape, cap, points)

    def _buffers(self, plan, tape, shared):
        """This thread's (vals, adj, ints, pat, work) for ``plan``, with the shared inputs
        loaded.  (A points-minor chunk computes on all its slots, used or not: zeros, not
        whatever np.empty holds, in its adjoints' unused slots.)"""
        cache = self._local.__dict__.setdefault("buffers", {})
        key = id(plan)
        if key not in cache or cache[key][0] is not plan:
            if len(cache) > 8:
                cache.clear()
            vals = plan.template.copy()
            owner, adj = _adjoint_buffer(vals)  # half a page from vals: no 4K aliasing
            adj[:] = 0.0
            cache[key] = (plan, vals, adj, plan.ints.copy(), np.array([1, 0, 0, 1, 0, 1], np.int64),
                          np.zeros(SOA_WORK * plan.cap), owner)
        _, vals, adj, ints, pat, work, _ = cache[key]
        for pos, size, value in shared:  # each point's copy, written in place
            block = vals[pos:pos + plan.cap * size]
            if plan.minor:
                block.reshape(size, plan.cap)[:] = np.ravel(value)[:, None]
            else:
                block.reshape(plan.cap, size)[:] = np.ravel(value)
        return vals, adj, ints, pat, work

    def _run(self, tape, points, idx, values, out, grads, traced_batched, threads):
        """Evaluate ``tape`` batched at the points ``idx``; store the results of the points
        where its guards hold (``out``: the buffer behind ``grads``) and return the mask of
        those where one does not."""
        batch_run, n = _kernels(), len(idx)
        threads = max(1, min(threads or num_threads(), -(-n // 64)))
        plan = self._plan(tape, -(-n // threads))
        whole = n == points.n
        xblocks, xpos, xsize, shared = [], [], [], []
        for (i, _, size, _, _), pos, b in zip(tape._load_plan, plan.inputs, traced_batched):
            if b:
                leaf = points.leaves[i] if whole else points.leaves[i][idx]
                xblocks.append(np.asarray(leaf, np.float64).reshape(n, size))
                xpos.append(pos)
                xsize.append(size)
            else:
                shared.append((pos, size, np.asarray(points.leaves[i], np.float64)))
        if len(xblocks) == 1:  # one batched leaf, usually C-ordered already: no copy
            xin = np.ascontiguousarray(xblocks[0]).ravel()
        else:
            xin = np.concatenate([b.ravel() for b in xblocks]) if xblocks else np.zeros(0)
        xcol = np.cumsum([0] + xsize[:-1]).astype(np.int64)
        gsize, gcol = plan.gsize, plan.gcol
        gout = out if whole else np.empty(n * int(gsize.sum()))
        vout = values if whole else np.empty(n)
        failed = np.zeros(n, np.uint8)
        cap = plan.cap if plan.minor else int(min(plan.cap, -(-n // threads)))
        bounds = np.linspace(0, n, threads + 1).astype(np.int64)
        ext = np.zeros(1, np.int64)
        common = (np.array(xpos, np.int64), np.array(xsize, np.int64), xcol, gout,
                  plan.grads, gsize, gcol, vout, n)

        def work(k):
            vals, adj, ints, pat, scratch = self._buffers(plan, tape, shared)
            bad = batch_run(plan.prog, plan.attrs, ints, plan.strides, plan.nary, plan.zero, plan.root,
                            plan.rstride, vals, adj, pat, ext, tape._check, xin, *common[:3],
                            *common[3:8], common[8], int(bounds[k]), int(bounds[k + 1]), cap, failed,
                            plan.minor, scratch)
            if bad >= 0:
                raise AssertionError(f"tapegrad.batch: the points-minor sweeps have no branch for "
                                     f"program row {bad}")

        futures = [_executor().submit(work, k) for k in range(1, threads)]
        work(0)
        for fut in futures:
            fut.result()
        failed = failed.astype(bool)
        if not whole:
            ok = ~failed
            values[idx[ok]] = vout[ok]
            for k, block in enumerate(grads):
                s = gsize[k]
                block[idx[ok]] = gout[n * gcol[k]:n * (gcol[k] + s)].reshape(n, s)[ok]
        return failed

    @staticmethod
    def _grad_buffers(tape, n):
        """(buffer, blocks): one (n, size) block per differentiated leaf, all in one buffer
        as ``batch_run`` writes them."""
        sizes = [plan[2] for plan in tape._grad_plan]
        buf = np.empty(n * sum(sizes))
        blocks, at = [], 0
        for s in sizes:
            blocks.append(buf[at:at + n * s].reshape(n, s))
            at += n * s
        return buf, blocks

    def _store(self, values, grads, i, value, grad):
        values[i] = value
        for block, leaf in zip(grads, pytree.flatten(grad)[0]):
            block[i] = np.ravel(leaf)

    def _empty(self, points, nums):
        """Results for a batch of no points: the per-point shapes with a leading 0."""
        trees = []
        for k in nums:
            leaves = [np.zeros((0,) + np.shape(leaf)[1 if b else 0:],
                               leaf.dtype if isinstance(leaf, np.ndarray) and leaf.dtype.kind == "f"
                               else np.float64)
                      for leaf, b, arg in zip(points.leaves, points.batched, points.leaf_arg) if arg == k]
            trees.append(pytree.unflatten(points.trees[k], leaves))
        result = trees[0] if isinstance(self._vg._argnums, (int, np.integer)) else tuple(trees)
        return (np.zeros(0), result) if self._with_value else result

    def _pointwise_reason(self, tape, baked):
        if baked:
            return (f"batch_grad of {self._vg._name()}: a batched argument has non-float leaves "
                    "(integers, booleans), which a tape bakes in as constants, so each point is "
                    "evaluated on its own (slow). Pass float arrays to batch them")
        return (f"batch_grad of {self._vg._name()}: its recording cannot be replayed at other "
                "points (it used a comparison of traced values as a mask, or reads state "
                "tapegrad cannot check), so each point is evaluated on its own (slow)")

    def _warn_once(self, what, message, stacklevel=4):
        if what not in self._warned:
            self._warned.add(what)
            capture.warn(message, stacklevel=stacklevel)

    def __repr__(self):
        kind = "batch_value_and_grad" if self._with_value else "batch_grad"
        return f"<tapegrad.{kind} of {getattr(self._vg._f, '__qualname__', self._vg._f)!r}>"


def batch_grad(f, argnums=0, in_axes=0, cache=True):
    """The gradient of scalar-valued ``f`` at every point of a batch, as
    ``jax.vmap(jax.grad(f, argnums), in_axes)`` gives it: ``in_axes`` says, per positional
    argument, which axis is the batch axis (None: shared by all points); each gradient
    gets a leading axis of one entry per point.

    >>> import numpy as np, tapegrad as tg, tapegrad.numpy as tnp
    >>> tg.batch_grad(lambda x: tnp.sum(x ** 2))(np.array([[1.0, 2.0], [3.0, 4.0]]))
    array([[2., 4.],
           [6., 8.]])
    """
    _normalize_argnums(argnums, None)
    _normalize_in_axes(in_axes, len(in_axes) if isinstance(in_axes, (tuple, list)) else 1)
    return _Batched(f, argnums, in_axes, False, cache)


def batch_value_and_grad(f, argnums=0, in_axes=0, cache=True):
    """Like :func:`batch_grad` but returns ``(values, gradients)``, the values of ``f`` at
    the points as an array of shape ``(N,)``."""
    _normalize_argnums(argnums, None)
    _normalize_in_axes(in_axes, len(in_axes) if isinstance(in_axes, (tuple, list)) else 1)
    return _Batched(f, argnums, in_axes, True, cache)
