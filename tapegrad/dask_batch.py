"""``tg.batch_grad`` / ``tg.batch_value_and_grad`` called with dask arrays.

The results are lazy dask arrays chunked like the batch axis, equal to the in-memory call
bit for bit.  The tape travels as :mod:`tapegrad.dask`'s does (the payload of
:mod:`tapegrad.shipping`): recorded at the first point on the client, or found from the
arguments' shapes among the cached variants, packed once, one graph key that every block
task depends on; each block is evaluated batched from it on its worker.
"""
import operator
import uuid

import numpy as np

from tapegrad import api, batch, pytree, shipping
from tapegrad.dask import _chunk_ref, _dask
from tapegrad.keys import static_key


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
