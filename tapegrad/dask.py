"""Data-parallel gradients on Dask: the sum over row blocks of ``value_and_grad(f)``.

``value_and_grad_sum(f, argnums)(params, *data)`` treats every positional argument not in
``argnums`` as data: float arrays (numpy, or ``dask.array`` chunked along rows) with the
same number of rows.  It cuts them into blocks of rows, computes
``value_and_grad(f, argnums)(params, *block)`` for each block as a Dask task, adds the
blocks' values and gradients in a tree of Dask tasks (``split_every`` at a time, left to
right within a group), and returns numpy.  When ``f`` is a sum over rows this is the
whole-data ``value_and_grad``, up to the order of the float additions.

How the tape travels (the invariants the tests check; the payload and what workers do
with it are :mod:`tapegrad.shipping`):

* The client records ``f`` once per distinct block shape (at the first block of that
  shape; a short last block is the usual second shape), never once per block, and packs
  the tapes (tape file format, constants only) and ``f`` into one bytes payload.  A later
  call with the same shapes reuses the payload while what ``f`` reads is unchanged.
* The payload is one literal of the graph, read by one task (``tapegrad-tape-<token>``)
  that every block task depends on; so a worker receives the payload (or the loaded plan,
  which pickles back into the payload) once and validates it once, whatever the number
  of blocks.  A lost worker's copy is rebuilt from the graph, as any Dask result is.
* Workers import tapegrad and load its numba kernels from their own cache
  (``NUMBA_CACHE_DIR``); nothing compiled crosses the wire.
* A block whose guards fail on the worker (``f`` branches the other way there) is
  recorded there, so a block never returns another branch's gradient.
* ``import tapegrad`` does not import this module, and this module imports dask only when
  it is called.

``tg.batch_grad`` / ``tg.batch_value_and_grad`` called with dask arrays come here too
(:mod:`tapegrad.dask_batch`): the same payload, holding the tape recorded at the first
point, one graph key that every block task depends on; each block is evaluated batched
from it on its worker and gives that block of the lazy dask results, which equal the
in-memory call bit for bit.
"""
import collections
import threading
import uuid

import numpy as np

from tapegrad import api, pytree, shipping

DEFAULT_BLOCK_ROWS = 4096
_KEEP_PAYLOADS = 16

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
    """``f`` wrapped by :func:`value_and_grad_sum`: call it, or ``.delayed(...)`` it.  Keeps
    the payloads of its last calls (see :mod:`tapegrad.shipping`) by their key."""

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
        self._payloads, self._lock = collections.OrderedDict(), threading.Lock()

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
        chunks, arrays = row_blocked(args, data_pos, self._block_rows, da)
        payload = self._payload(args, nums, data_pos, chunks, arrays, kwargs)
        statics = tuple(args[k] for k in nums)
        return _graph(uuid.uuid4().hex[:12], payload, statics, chunks, arrays, self._split_every)

    def _payload(self, args, nums, data_pos, chunks, arrays, kwargs):
        """The cached payload of an earlier call with this key if what ``f`` reads is
        unchanged, else a new recording (kept if it may be reused)."""
        specs = tuple(tuple(((n,) + a.shape[1:], a.dtype) for a in arrays)
                      for n in dict.fromkeys(chunks))
        key = shipping.payload_key(args, nums, data_pos, specs, kwargs)
        with self._lock:
            hit = self._payloads.get(key) if key is not None else None
        if hit is not None and hit[1]():
            return hit[0]
        samples = _sample_blocks(chunks, arrays, _dask()[0])
        payload, check = shipping.record_payload(self._f, self._argnums, args, data_pos,
                                                 samples, kwargs)
        if key is not None and check is not None:
            with self._lock:
                self._payloads[key] = (payload, check)
                self._payloads.move_to_end(key)
                while len(self._payloads) > _KEEP_PAYLOADS:
                    self._payloads.popitem(last=False)
        return payload

    def __repr__(self):
        return f"<tapegrad.dask.value_and_grad_sum of {shipping.name(self._f)!r}>"


def _graph(token, payload, statics, chunks, arrays, split_every):
    """The lazy result: one task loading the payload (``tapegrad-tape-<token>``), one key
    holding the parameters, a task per block reading both and the block's chunks (a dask
    array's chunk, or a key holding a view of a numpy array's rows), and the tree of sums.
    Written as task specs, not one ``dask.delayed`` call per block, which would cost
    ~0.2 ms of graph building per block."""
    from dask.delayed import Delayed
    from dask.highlevelgraph import HighLevelGraph
    from dask.task_spec import DataNode, Task, TaskRef

    plan, params = f"tapegrad-tape-{token}", f"tapegrad-params-{token}"
    layer = {plan: Task(plan, shipping.load_plan, payload), params: DataNode(params, statics)}
    parts, stops = [], np.cumsum(chunks)
    for i, stop in enumerate(stops):
        refs = [_chunk_ref(layer, token, j, a, i, stop - chunks[i], stop) for j, a in enumerate(arrays)]
        key = f"tapegrad-block-{token}-{i}"
        layer[key] = Task(key, shipping.block_value_and_grad, TaskRef(plan), TaskRef(params), *refs)
        parts.append(key)
    level = 0
    while len(parts) > 1:
        level += 1
        groups = [parts[i:i + split_every] for i in range(0, len(parts), split_every)]
        parts = []
        for j, group in enumerate(groups):
            key = f"tapegrad-sum-{token}-{level}-{j}"
            layer[key] = Task(key, _sum_parts, *map(TaskRef, group))
            parts.append(key)
    lazy = [a for a in arrays if not isinstance(a, np.ndarray)]
    graph = HighLevelGraph.from_collections(f"tapegrad-{token}", layer, dependencies=lazy)
    return Delayed(parts[0], graph, layer=f"tapegrad-{token}")


def row_blocked(args, data_pos, block_rows, da):
    """``(row chunks, data arguments)``: numpy arrays as they are (their blocks are views,
    sliced when the graph is built), dask arrays rechunked to those rows if needed; one
    chunk on every other axis.  TypeError or ValueError (naming the argument) for anything
    else."""
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
        if isinstance(x, da.Array) and np.isnan(x.shape[0]):
            raise ValueError(f"argument {k} has unknown chunk sizes {x.chunks[0]}: call "
                             "x.compute_chunk_sizes() first")
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
            out.append(np.asarray(x))
    return chunks, out


def _sample_blocks(chunks, arrays, dask):
    """The first block of each distinct number of rows, as numpy: numpy rows sliced here,
    dask blocks computed (one compute for all of them)."""
    stops, firsts = np.cumsum(chunks), {}
    for i, n in enumerate(chunks):
        firsts.setdefault(n, i)
    blocks = [[a[stops[i] - n:stops[i]] if isinstance(a, np.ndarray) else a.blocks[i] for a in arrays]
              for n, i in firsts.items()]
    lazy = [(b, j) for b in blocks for j, x in enumerate(b) if not isinstance(x, np.ndarray)]
    for (b, j), value in zip(lazy, dask.compute(*(b[j] for b, j in lazy))):
        b[j] = np.asarray(value)
    return [tuple(b) for b in blocks]


def _sum_parts(*parts):
    """The sum of ``(value, gradients)`` pairs, added left to right, leaf by leaf."""
    value, grads = parts[0]
    leaves, tree = pytree.flatten(grads)
    for v, g in parts[1:]:
        value = value + v
        leaves = [a + b for a, b in zip(leaves, pytree.flatten(g)[0])]
    return value, pytree.unflatten(tree, leaves)


def _chunk_ref(layer, token, j, a, i, start, stop):
    """A reference to block ``i`` (rows ``start:stop``) of ``a``: a dask array's chunk, or a
    key holding a view of a numpy array's rows."""
    from dask.task_spec import DataNode, TaskRef
    if isinstance(a, np.ndarray):
        key = f"tapegrad-data-{token}-{j}-{i}"
        layer[key] = DataNode(key, a[start:stop])
        return TaskRef(key)
    return TaskRef((a.name, i) + (0,) * (a.ndim - 1))
