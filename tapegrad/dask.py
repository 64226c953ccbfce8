"""Data-parallel gradients on Dask: the sum over row blocks of ``value_and_grad(f)``.

``value_and_grad_sum(f, argnums)(params, *data)`` treats every positional argument not in
``argnums`` as data: float arrays (numpy, or ``dask.array`` chunked along rows) with the
same number of rows.  It cuts them into blocks of rows, computes
``value_and_grad(f, argnums)(params, *block)`` for each block as a Dask task, adds the
blocks' values and gradients in a tree of Dask tasks (``split_every`` at a time, left to
right within a group), and returns numpy.  When ``f`` is a sum over rows this is the
whole-data ``value_and_grad``, up to the order of the float additions.

How the tape travels (the invariants the tests check):

* The client records ``f`` once per distinct block shape (at the first block of that
  shape; a short last block is the usual second shape), never once per block.  The tapes
  go into one bytes payload in the tape file format (:mod:`tapegrad.tapefile`, compressed,
  with only the constants' values: see :func:`_shipped_file`), with ``f`` pickled by
  cloudpickle.  The payload is one literal of the graph, read by one task
  (``tapegrad-tape-<token>``) that every block task depends on; so a worker receives the
  payload (or the loaded plan, which pickles back into the same payload) once and
  validates it once, whatever the number of blocks.  A lost worker's copy is rebuilt from
  the graph, as any Dask result is.
* Workers import tapegrad and load its numba kernels from their own cache
  (``NUMBA_CACHE_DIR``); nothing compiled crosses the wire.
* A block's result is a replay of a shipped tape only if the replay's guards held at that
  block; when a guard fails (``f`` branches the other way there) the worker records ``f``
  itself, with ``tapegrad.value_and_grad`` (one per worker process and call), so a block
  never returns another branch's gradient.  ``f`` is pickled by value when it lives in
  user code, so a worker sees the globals the client saw.
* A recording that a replay could not reproduce (a comparison of traced values used as a
  mask, random draws, ``f`` changing what it reads) is not shipped: every block is then
  recorded on its worker, and a :class:`~tapegrad.capture.TapegradWarning` says so.
* ``import tapegrad`` does not import this module, and this module imports dask only when
  it is called.
"""
import collections
import hashlib
import io
import pickle
import sys
import threading
import uuid

import numpy as np

from tapegrad import api, capture, pytree, tapefile
from tapegrad.recorder import CONST
from tapegrad.replay import GuardFailed
from tapegrad.tape import Tape

DEFAULT_BLOCK_ROWS = 8192
_STATS = collections.Counter()  # this process: plans loaded (by token), blocks replayed / recorded
_PICKLE_LOCK = threading.Lock()

__all__ = ["value_and_grad_sum", "SumOverRows", "DEFAULT_BLOCK_ROWS"]


def _dask():
    try:
        import dask
        import dask.array as da
    except ImportError as err:
        raise ImportError("tapegrad.dask needs dask: pip install 'dask[array,distributed]'") from err
    return dask, da


def value_and_grad_sum(f, argnums=0, *, block_rows=None, split_every=8):
    """``(value, gradient)`` of ``f`` summed over row blocks of its data arguments, on Dask.

    The data arguments are the positional arguments not in ``argnums``: float arrays with
    the same number of rows (numpy arrays, cut into blocks of ``block_rows`` rows, default
    :data:`DEFAULT_BLOCK_ROWS`; or dask arrays, whose row chunks are the blocks unless
    ``block_rows`` is given).  Keyword arguments are passed to ``f`` as constants.  The
    result is computed with the current Dask scheduler (a ``distributed.Client`` if one is
    active, else Dask's threads); ``.delayed(...)`` gives the lazy ``dask.delayed`` result.

    The result equals the whole-data ``value_and_grad`` only when ``f`` is additive over
    rows (a sum over examples); a mean over the block is not (divide by the total number
    of rows instead: see docs/cluster.md).

    >>> import numpy as np, tapegrad.numpy as tnp
    >>> from tapegrad.dask import value_and_grad_sum
    >>> loss = lambda w, X, y: tnp.sum((X @ w - y) ** 2)
    >>> X, y = np.arange(10.0).reshape(5, 2), np.ones(5)
    >>> value, g = value_and_grad_sum(loss, block_rows=2)(np.zeros(2), X, y)
    >>> value, g.tolist()
    (5.0, [-40.0, -50.0])
    """
    return SumOverRows(f, argnums, block_rows, split_every)


class SumOverRows:
    """``f`` wrapped by :func:`value_and_grad_sum`: call it, or ``.delayed(...)`` it."""

    def __init__(self, f, argnums, block_rows, split_every):
        if not callable(f):
            raise TypeError(f"value_and_grad_sum needs a callable, got {type(f).__name__} {f!r}")
        api._normalize_argnums(argnums, None)
        if block_rows is not None and (not isinstance(block_rows, (int, np.integer))
                                       or isinstance(block_rows, bool) or block_rows < 1):
            raise ValueError(f"block_rows must be a positive int or None, got {block_rows!r}")
        if not isinstance(split_every, (int, np.integer)) or split_every < 2:
            raise ValueError(f"split_every must be an int >= 2, got {split_every!r}")
        self._f, self._argnums = f, argnums
        self._block_rows, self._split_every = block_rows, int(split_every)

    def __call__(self, *args, **kwargs):
        dask, _ = _dask()
        (result,) = dask.compute(self.delayed(*args, **kwargs))
        return result

    def delayed(self, *args, **kwargs):
        """The result as a ``dask.delayed`` object (compute it, or persist it, yourself)."""
        dask, da = _dask()
        nums, _ = api._normalize_argnums(self._argnums, len(args))
        data_pos = tuple(k for k in range(len(args)) if k not in nums)
        if not data_pos:
            raise TypeError("value_and_grad_sum sums over the rows of the positional arguments "
                            "not in argnums, and this call has none: pass the data as "
                            "positional arguments after the parameters")
        for k in nums:
            if isinstance(args[k], da.Array):
                raise TypeError(f"argument {k} (differentiated) is a dask array: parameters "
                                "must be in memory (numpy); only the data arguments are split")
        arrays = row_blocked(args, data_pos, self._block_rows, da)
        row_chunks = arrays[0].chunks[0]
        token = uuid.uuid4().hex[:12]
        payload = _plan_payload(self._f, self._argnums, args, data_pos, arrays, kwargs)
        plan = dask.delayed(_Plan, pure=False)(payload, dask_key_name=f"tapegrad-tape-{token}")
        statics = tuple(args[k] for k in nums)
        statics = dask.delayed(statics, traverse=False, name=f"tapegrad-params-{token}")
        blocks = [a.to_delayed().ravel() for a in arrays]
        parts = [dask.delayed(_block_value_and_grad, pure=False)(
                     plan, statics, *(b[i] for b in blocks), dask_key_name=f"tapegrad-block-{token}-{i}")
                 for i in range(len(row_chunks))]
        level = 0
        while len(parts) > 1:
            level += 1
            parts = [dask.delayed(_sum_parts, pure=False)(
                         *parts[i:i + self._split_every],
                         dask_key_name=f"tapegrad-sum-{token}-{level}-{i // self._split_every}")
                     for i in range(0, len(parts), self._split_every)]
        return parts[0]

    def __repr__(self):
        return f"<tapegrad.dask.value_and_grad_sum of {getattr(self._f, '__qualname__', self._f)!r}>"


def row_blocked(args, data_pos, block_rows, da):
    """The data arguments as dask arrays with the same row chunks and one chunk on every
    other axis; TypeError or ValueError (naming the argument) for anything else."""
    rows, dask_rows = None, None
    for k in data_pos:
        x = args[k]
        if not isinstance(x, da.Array):
            x = np.asarray(x)
        if x.ndim == 0:
            raise TypeError(f"argument {k} is a scalar: the data arguments (those not in "
                            "argnums) are arrays whose rows are summed over; pass constants "
                            "as keyword arguments or in a closure")
        if x.dtype.kind != "f":
            raise TypeError(f"argument {k} has dtype {x.dtype}: data arguments must be float "
                            "arrays (they are traced; other values would be baked into the "
                            "tape of the first block)")
        if rows is not None and x.shape[0] != rows:
            raise ValueError(f"the data arguments have different numbers of rows: "
                             f"{', '.join(f'argument {j}: {np.shape(args[j])[0]}' for j in data_pos)}")
        rows = x.shape[0]
        if isinstance(x, da.Array):
            split = [ax for ax in range(1, x.ndim) if len(x.chunks[ax]) > 1]
            if split:
                raise ValueError(f"argument {k} is chunked along axis {split[0]} (chunks "
                                 f"{x.chunks}): value_and_grad_sum splits the data by rows "
                                 f"only; rechunk it first, e.g. x.rechunk({{{split[0]}: -1}})")
            dask_rows = dask_rows or x.chunks[0]
    if rows == 0:
        raise ValueError("the data arguments have no rows")
    if block_rows is None and dask_rows is not None:
        chunks = dask_rows
    else:
        step = block_rows or DEFAULT_BLOCK_ROWS
        chunks = tuple(min(step, rows - s) for s in range(0, rows, step))
    out = []
    for k in data_pos:
        x = args[k]
        if isinstance(x, da.Array):
            out.append(x if x.chunks[0] == chunks else x.rechunk({0: chunks}))
        else:
            x = np.asarray(x)
            out.append(da.from_array(x, chunks=(chunks,) + x.shape[1:]))
    return out


def _sample_blocks(args, data_pos, arrays, dask, da):
    """{block shapes: the first block with those shapes}: numpy rows sliced here, dask
    blocks computed (one compute for all of them)."""
    row_chunks = arrays[0].chunks[0]
    starts = np.cumsum((0,) + row_chunks)
    firsts = {}
    for i, n in enumerate(row_chunks):
        firsts.setdefault(n, i)
    pending, samples = [], {}
    for n, i in firsts.items():
        block = []
        for k, a in zip(data_pos, arrays):
            if not isinstance(args[k], da.Array):
                block.append(np.asarray(args[k])[starts[i]:starts[i + 1]])
            else:
                block.append(None)
                pending.append((n, len(block) - 1, a.blocks[i]))
        samples[n] = block
    if pending:
        computed = dask.compute(*(p[2] for p in pending))
        for (n, j, _), value in zip(pending, computed):
            samples[n][j] = np.asarray(value)
    return [tuple(b) for b in samples.values()]


def _with_blocks(statics, data_pos, blocks):
    """The positional arguments: ``statics`` in the argnums places, ``blocks`` in the rest."""
    args, s, b = [], iter(statics), iter(blocks)
    for k in range(len(statics) + len(blocks)):
        args.append(next(b) if k in data_pos else next(s))
    return args


def _plan_payload(f, argnums, args, data_pos, arrays, kwargs):
    """Record ``f`` at the first block of each shape; the bytes every worker receives: the
    tapes in the tape file format, ``f`` by cloudpickle.  No tapes when a replay could not
    reproduce the recording (then a warning says that every block is recorded)."""
    nums, is_int = api._normalize_argnums(argnums, len(args))
    statics = [args[k] for k in nums]
    samples = _sample_blocks(args, data_pos, arrays, *_dask())  # may draw (Dask's own keys)
    guards = capture.guards_for(f, desc=f"the function {_name(f)}")
    before = capture.random_state(list(guards.rngs))
    tapes, reason = [], None
    for block in samples:
        call = _with_blocks(statics, data_pos, block)
        tape = api._record(f, kwargs, nums, is_int, *api._signature(call, nums),
                           scalar_for="value_and_grad")
        if tape.value_dependent:
            reason = "used a comparison of traced values as a constant (a mask)"
            break
        tapes.append((tuple(np.shape(x) for x in block), _shipped_file(tape)))
    if reason is None and capture.random_state(list(guards.rngs)) != before:
        reason = "changed a random state (it draws random numbers)"
    elif reason is None and not guards.holds():
        reason = f"changed a value it reads ({', '.join(guards.failing()[:3])})"
    if reason is not None:
        tapes = []
        capture.warn(f"{_name(f)} {reason} while it was recorded, so its tape cannot be "
                     "replayed on other blocks: every block is recorded on its worker "
                     "(correct, but slower)", stacklevel=4)
    state = {"tapes": tapes, "data_pos": data_pos, "n_args": len(args),
             "f": _pickle_by_value((f, argnums, kwargs), getattr(f, "__module__", None))}
    return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)


def _shipped_file(tape):
    """The tape file of ``tape`` as bytes, with every value but the constants' zeroed and
    the archive compressed.  A replay writes each input and each replayed entry's output
    before anything reads it (which is what lets one thread's buffers serve replay after
    replay at other inputs), so only the constants' values are read; the recorded block's
    data and intermediates would be most of the file, for nothing."""
    state = tapefile.encode(tape)
    keep = np.zeros(len(tape.values), bool)
    for node in np.flatnonzero(tape.kind == CONST):
        keep[tape.offset[node]:tape.offset[node] + tape.size[node]] = True
    state["values"] = np.where(keep, state["values"], 0.0)
    state["sha256"] = tapefile.checksum(state)
    buf = io.BytesIO()
    np.savez_compressed(buf, **state)
    return buf.getvalue()


def _pickle_by_value(obj, module_name):
    """cloudpickle ``obj``, taking ``module_name``'s functions by value if it is user code,
    so that a worker runs them with the globals the client has now (not its own import's)."""
    import cloudpickle
    module = sys.modules.get(module_name or "")
    by_value = (module is not None and module_name != "__main__"
                and not capture.is_library(module_name))
    with _PICKLE_LOCK:
        added = by_value and module_name not in cloudpickle.list_registry_pickle_by_value()
        if added:
            cloudpickle.register_pickle_by_value(module)
        try:
            return cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        finally:
            if added:
                cloudpickle.unregister_pickle_by_value(module)


def _name(f):
    return getattr(f, "__qualname__", None) or type(f).__name__


class _Plan:
    """A worker's copy of the payload: the tapes (loaded, hence validated) by block shapes,
    and ``f`` to record blocks no tape serves.  Pickles as its payload, so another worker
    that receives it loads and validates the tapes again."""

    def __init__(self, payload):
        import cloudpickle
        state = pickle.loads(payload)
        self._payload = payload
        self.token = hashlib.sha256(payload).hexdigest()[:16]
        self.tapes = {shapes: Tape.load(io.BytesIO(data)) for shapes, data in state["tapes"]}
        self.data_pos, self.n_args = state["data_pos"], state["n_args"]
        self.f, self.argnums, self.kwargs = cloudpickle.loads(state["f"])
        self._recorder, self._lock = None, threading.Lock()
        _STATS["plans loaded", self.token] += 1

    def __reduce__(self):
        return _Plan, (self._payload,)

    def value_and_grad(self, statics, blocks):
        args = _with_blocks(statics, self.data_pos, blocks)
        tape = self.tapes.get(tuple(np.shape(b) for b in blocks))
        if tape is not None:
            try:
                result = tape.value_and_gradient(*args)
            except GuardFailed:
                pass
            else:
                _STATS["blocks replayed"] += 1
                return result
        with self._lock:
            if self._recorder is None:
                self._recorder = api.value_and_grad(self.f, self.argnums)
        _STATS["blocks recorded"] += 1
        return self._recorder(*args, **self.kwargs)


def _block_value_and_grad(plan, statics, *blocks):
    return plan.value_and_grad(statics, blocks)


def _sum_parts(*parts):
    """The sum of ``(value, gradients)`` pairs, added left to right, leaf by leaf."""
    value, grads = parts[0]
    leaves, tree = pytree.flatten(grads)
    for v, g in parts[1:]:
        value = value + v
        leaves = [a + b for a, b in zip(leaves, pytree.flatten(g)[0])]
    return value, pytree.unflatten(tree, leaves)


def _stats():
    """This process's counters (for tests and benchmarks): plans loaded per token, blocks
    replayed from a shipped tape, blocks recorded on the worker."""
    return dict(_STATS)


# --- where batch_grad's dask.array path plugs in ---------------------------------------------
# tg.batch_grad / tg.batch_value_and_grad (tapegrad/batch.py) on dask arrays: validate and
# rechunk the batched arguments with ``row_blocked`` (chunks along the batch axis only), ship
# the batched tape(s) as one graph key exactly as ``SumOverRows.delayed`` ships ``_Plan``, and
# map one task per block over the chunks (``da.map_blocks`` with the plan key as a dependency),
# returning lazy dask arrays with the input's row chunks.  It is not written yet: it needs the
# batch API, and until then dask arrays are not accepted there.
def _batch_over_blocks(batched, args, batch_axis=0):
    """(Private placeholder: the dask.array path of ``batch_grad``; not exposed.)"""
    raise NotImplementedError("batch_grad on dask arrays is not implemented yet")
