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
(:func:`batch_over_blocks`): the same payload, holding the tape recorded at the first
point, one graph key that every block task depends on; each block is evaluated batched
from it on its worker and gives that block of the lazy dask results, which equal the
in-memory call bit for bit.
"""
import collections
import operator
import threading
import uuid

import numpy as np

from tapegrad import api, batch, pytree, shipping
from tapegrad.keys import static_key

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


# --- batch_grad / batch_value_and_grad on dask arrays --------------------------------------------
def batch_over_blocks(batched, args, in_axes, kwargs):
    """``batched(*args, **kwargs)`` for a ``tapegrad.batch_grad`` or ``batch_value_and_grad``
    called with dask arrays: its results as lazy dask arrays chunked like the batch axis.

    * The batch chunks are those of the first batched dask array; the other batched
      arguments are rechunked to them, with one chunk on every other axis (numpy ones are
      sliced).  Shared (``in_axes`` None) dask arrays are computed here, as is the first
      point, where ``batched`` records (or finds) its tape, exactly as in memory.
    * The tape travels as :func:`_graph`'s does: one payload key
      (``tapegrad-tape-<token>``) that every block task depends on, loaded once per
      process; a block task runs ``evaluate`` from the loaded tape, one thread per task,
      and records on its worker the variants of its points whose guards fail.  A tape
      that may not run batched is not shipped: each point goes through
      ``value_and_grad`` on the workers, after the in-memory warning here.
    """
    dask, da = _dask()
    _refuse_unknown_sizes(args, da)
    points = batch._Points(args, in_axes, arrays=(np.ndarray, da.Array))
    nums, _ = api._normalize_argnums(batched._vg._argnums, len(args))
    chunks, leaves = _batch_chunks(points, da)
    first = [leaf[:1] if b else leaf for leaf, b in zip(leaves, points.batched)]
    lazy = [j for j, leaf in enumerate(first) if isinstance(leaf, da.Array)]
    if points.n == 0:  # the in-memory result's shapes, from stand-ins of the arrays
        first = [np.empty(leaf.shape, leaf.dtype) if j in lazy else leaf for j, leaf in enumerate(leaves)]
        result = batched._empty(batch._Points.of(points.trees, first, points.batched, points.leaf_arg, 0), nums)
        out, tree = pytree.flatten(result)
        return pytree.unflatten(tree, [da.from_array(leaf) for leaf in out])
    tape, reason = _known_tape(batched, points, first, lazy, kwargs), None
    if tape is None:
        for j, value in zip(lazy, dask.compute(*(first[j] for j in lazy))):
            first[j] = np.asarray(value)
            if not points.batched[j]:
                leaves[j] = first[j]
        tape, reason, _ = batched._first(batch._Points.of(points.trees, first, points.batched,
                                                          points.leaf_arg, 1), kwargs)
    if reason is not None and batched._vg._cache:
        batched._warn_once("pointwise", reason + "; on the Dask workers too", stacklevel=5)
    specs = [((), np.dtype(np.float64))] + [(plan[4], plan[5]) for plan in tape._grad_plan]
    wanted = list(range(0 if batched._with_value else 1, len(specs)))  # values, gradient leaves
    call = (points.trees, points.batched, points.leaf_arg,
            [None if b else leaf for leaf, b in zip(leaves, points.batched)], specs,
            wanted[0] if len(wanted) == 1 else None, batched._vg._cache)
    token = uuid.uuid4().hex[:12]
    outs = _batch_graph(token, _batch_payload(batched, tape, reason, kwargs), call, wanted,
                        chunks, leaves, da)
    result = tape._assemble([outs[k] for k in range(1, len(specs))])
    return (outs[0], result) if batched._with_value else result


def _refuse_unknown_sizes(args, da):
    for k, arg in enumerate(args):
        leaves = []
        pytree.walk(arg, leaves)
        for leaf in leaves:
            if isinstance(leaf, da.Array) and any(np.isnan(n) for n in leaf.shape):
                raise ValueError(f"argument {k} has unknown chunk sizes {leaf.chunks}: call "
                                 "x.compute_chunk_sizes() first")


def _batch_chunks(points, da):
    """``(batch chunks, leaves)``: the batched dask leaves rechunked to the first one's
    chunks along the batch axis (first, as ``_Points`` moved it) and to one chunk along
    the others; numpy leaves as they are (cut at those chunks, or one block if no batched
    leaf is a dask array)."""
    lazy = [leaf for leaf, b in zip(points.leaves, points.batched) if b and isinstance(leaf, da.Array)]
    chunks = lazy[0].chunks[0] if lazy else (points.n,)  # only shared ones lazy: one block
    leaves = []
    for leaf, b in zip(points.leaves, points.batched):
        if b and isinstance(leaf, da.Array):
            want = (chunks,) + tuple((n,) for n in leaf.shape[1:])
            leaf = leaf if leaf.chunks == want else leaf.rechunk(want)
        leaves.append(leaf)
    return chunks, leaves


def _known_tape(batched, points, first, lazy, kwargs):
    """The tape a call at the first point would replay, found from the dask arrays' shapes
    and dtypes alone (no round trip to the cluster), or None.  Only when every lazy
    argument is batched and the tape may run batched: the workers check its guards at
    every point and record the points where they fail, so which cached variant travels
    does not change any result."""
    if not lazy or not all(points.batched[j] for j in lazy):
        return None
    stand_ins = [np.zeros((1,) + tuple(leaf.shape[1:]), leaf.dtype) if j in lazy else leaf
                 for j, leaf in enumerate(first)]
    at = batch._Points.of(points.trees, stand_ins, points.batched, points.leaf_arg, 1)
    tape = batched._vg._known_tape(at.at(0), kwargs)
    return tape if tape is not None and batched._reason(tape, at) is None else None


def _batch_payload(batched, tape, reason, kwargs):
    """The payload of ``tape`` (none if it may not run batched), kept on the tape for
    later calls that replay it (``batched`` records again if what ``f`` reads changed)."""
    f, argnums = batched._vg._f, batched._vg._argnums
    if reason is not None:
        return shipping.pack([], None, f, argnums, kwargs)
    kw = tuple((k, static_key(v)) for k, v in sorted(kwargs.items()))
    kept = getattr(tape, "_dask_payload", None)
    if kept is None or kept[0] != kw:
        kept = tape._dask_payload = (kw, shipping.pack([((), shipping.shipped_file(tape))], None,
                                                       f, argnums, kwargs))
    return kept[1]


def _batch_graph(token, payload, call, wanted, chunks, leaves, da):
    """``{k: output array}`` for the outputs ``wanted`` (0: the values, k: gradient leaf
    k - 1): a layer holding the payload task, the call's shared data and a task per block
    (``_batch_block``), and one layer per output taking its part of each block's result
    (or, for a single output, its blocks' results themselves: one task per block)."""
    from dask.highlevelgraph import HighLevelGraph
    from dask.task_spec import DataNode, Task, TaskRef

    plan, data, common = f"tapegrad-tape-{token}", f"tapegrad-call-{token}", f"tapegrad-{token}"
    layer = {plan: Task(plan, shipping.load_plan, payload), data: DataNode(data, call)}
    specs, pick = call[4], call[5]
    names = {k: f"tapegrad-out{k}-{token}" for k in wanted}
    parts = {k: {} for k in wanted}
    for i, stop in enumerate(np.cumsum(chunks)):
        refs = [_chunk_ref(layer, token, j, a, i, stop - chunks[i], stop)
                for j, (a, b) in enumerate(zip(leaves, call[1])) if b]
        out = {k: (names[k], i) + (0,) * len(specs[k][0]) for k in wanted}
        block = out[pick] if pick is not None else f"tapegrad-batch-{token}-{i}"
        (parts[pick] if pick is not None else layer)[block] = Task(
            block, _batch_block, TaskRef(plan), TaskRef(data), *refs)
        if pick is None:
            for k in wanted:
                parts[k][out[k]] = Task(out[k], operator.getitem, TaskRef(block), k)
    base = HighLevelGraph.from_collections(common, layer, dependencies=[
        a for a in leaves if isinstance(a, da.Array)])
    outs = {}
    for k in wanted:
        shape, dtype = specs[k]
        graph = HighLevelGraph({**base.layers, names[k]: parts[k]},
                               {**base.dependencies, names[k]: {common}})
        outs[k] = da.Array(graph, names[k], (chunks,) + tuple((n,) for n in shape), dtype=dtype,
                           meta=np.empty((0,) * (1 + len(shape)), dtype))
    return outs


def _chunk_ref(layer, token, j, a, i, start, stop):
    """A reference to block ``i`` (rows ``start:stop``) of ``a``: a dask array's chunk, or a
    key holding a view of a numpy array's rows."""
    from dask.task_spec import DataNode, TaskRef
    if isinstance(a, np.ndarray):
        key = f"tapegrad-data-{token}-{j}-{i}"
        layer[key] = DataNode(key, a[start:stop])
        return TaskRef(key)
    return TaskRef((a.name, i) + (0,) * (a.ndim - 1))


def _batch_block(plan, call, *blocks):
    """The task run for each block of the batch path: ``(values, gradient leaves...)`` at
    the block's points, from the shipped tape (:meth:`tapegrad.batch._Batched.evaluate`);
    only output ``pick`` of them if the call says so."""
    trees, batched, leaf_arg, shared, specs, pick, cache = call
    it = iter(blocks)
    leaves = [np.asarray(next(it)) if b else leaf for leaf, b in zip(shared, batched)]
    n = len(leaves[batched.index(True)])
    if n == 0:
        out = tuple(np.empty((0,) + shape, dtype) for shape, dtype in specs)
    else:
        points = batch._Points.of(trees, leaves, batched, leaf_arg, n)
        values, grads = plan.batched(cache).evaluate(plan.tapes.get(()), points, plan.kwargs,
                                                     threads=1)
        shipping.STATS["batch blocks"] += 1
        out = (values, *grads)
    return out if pick is None else out[pick]
