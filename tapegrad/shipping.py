"""What travels to the Dask workers for :mod:`tapegrad.dask`, and what they do with it.

The client records ``f`` at the first block of each distinct block shape and packs a
*payload*: bytes holding the tapes in the tape file format (:mod:`tapegrad.tapefile`),
``f`` pickled by cloudpickle, and where the data goes among the arguments.  A worker turns
the payload into a :class:`Plan` once (:func:`load_plan`), and runs every block it is given
with it (:func:`block_value_and_grad`).

Invariants
----------
* A tape travels with the values of its constants only (:func:`shipped_file`): a replay
  writes every input and every replayed entry's output before reading it (that is what
  lets one thread's buffers serve replay after replay at other inputs), so the recorded
  block's data, the recorded parameters and the intermediates are zeros in the file, and
  the archive is compressed.  So the payload does not depend on the parameters' or the
  data's values, only on ``f``, the shapes and what ``f`` reads.
* A payload is reused for a later call only under :func:`payload_key`'s key (argument
  structure, parameter and block shapes and dtypes, keyword constants) and while the
  guards of what ``f`` read (:mod:`tapegrad.capture`) hold, as ``tapegrad.grad`` reuses
  a tape; a recording whose reads cannot be guarded is never reused.
* Loading validates every tape (``Tape.load``) before any kernel runs; a :class:`Plan`
  pickles as its payload, so a worker that receives one from another worker loads and
  validates it itself.  Each process keeps the last few plans by payload digest, so a
  payload is loaded at most once per process while it stays among them.
* A block is a replay of a shipped tape only if its guards held at that block; otherwise
  (or with no tape for its shapes) the worker records ``f`` with ``tapegrad.value_and_grad``,
  which gives what a fresh run of ``f`` gives.
"""
import collections
import hashlib
import io
import pickle
import sys
import threading

import numpy as np

from tapegrad import api, capture, tapefile
from tapegrad.keys import static_key
from tapegrad.recorder import CONST
from tapegrad.replay import GuardFailed
from tapegrad.tape import Tape

STATS = collections.Counter()  # this process: plans loaded (by digest), blocks replayed / recorded
_PLANS = collections.OrderedDict()  # digest -> Plan, the last few loaded in this process
_KEEP_PLANS = 4  # each holds its tapes, and each worker thread a copy of their arenas
_LOCK = threading.Lock()


def with_blocks(statics, data_pos, blocks):
    """The positional arguments: ``statics`` in the argnums places, ``blocks`` in the rest."""
    args, s, b = [], iter(statics), iter(blocks)
    for k in range(len(statics) + len(blocks)):
        args.append(next(b) if k in data_pos else next(s))
    return args


def payload_key(args, nums, data_pos, block_specs, kwargs):
    """The key under which a call's payload may be reused, or None (a keyword argument
    that has no key).  ``block_specs``: per distinct block shape, (shape, dtype) of each
    data argument's block."""
    kw = tuple((k, static_key(v)) for k, v in sorted(kwargs.items()))
    if any(key is None for _, key in kw):
        return None
    statics = tuple(args[k] for k in nums)
    first = [np.broadcast_to(np.zeros((), dtype), shape) for shape, dtype in block_specs[0]]
    _, treedef, specs, _ = api._signature(with_blocks(statics, data_pos, first), nums)
    key = (nums, data_pos, treedef, specs, tuple(block_specs), kw)
    try:
        hash(key)
    except TypeError:
        return None
    return key


def record_payload(f, argnums, args, data_pos, samples, kwargs):
    """Record ``f`` at each of ``samples`` (the first block of each shape) and pack the
    payload.  Returns ``(payload, check)``: ``check()`` is true while the payload may be
    reused (None: never).  No tapes when a replay could not reproduce the recording (a
    mask, random draws, ``f`` changing what it reads): a warning says that every block is
    then recorded on its worker."""
    nums, is_int = api._normalize_argnums(argnums, len(args))
    statics = [args[k] for k in nums]
    guards = capture.guards_for(f, desc=f"the function {name(f)}")
    before = capture.random_state(list(guards.rngs))
    tapes, reason = [], None
    for block in samples:
        call = with_blocks(statics, data_pos, block)
        tape = api._record(f, kwargs, nums, is_int, *api._signature(call, nums),
                           scalar_for="value_and_grad")
        if tape.value_dependent:
            reason = "used a comparison of traced values as a constant (a mask)"
            break
        tapes.append((tuple(np.shape(x) for x in block), shipped_file(tape)))
    if reason is None and capture.random_state(list(guards.rngs)) != before:
        reason = "changed a random state (it draws random numbers)"
    elif reason is None and not guards.holds():
        reason = f"changed a value it reads ({', '.join(guards.failing()[:3])})"
    if reason is not None:
        tapes = []
        capture.warn(f"{name(f)} {reason} while it was recorded, so its tape cannot be "
                     "replayed on other blocks: every block is recorded on its worker "
                     "(correct, but slower)", stacklevel=5)
    payload = pack(tapes, data_pos, f, argnums, kwargs)
    reusable = reason is None and not guards.unguardable
    return payload, ((guards.check or _always) if reusable else None)


def pack(tapes, data_pos, f, argnums, kwargs):
    """The payload: ``tapes`` (pairs of block shapes and :func:`shipped_file` bytes; the
    batch path of :mod:`tapegrad.dask` ships one tape, under ``()``), where the data goes
    among the arguments, and ``(f, argnums, kwargs)`` pickled as :func:`_pickle_by_value` says."""
    state = {"tapes": tapes, "data_pos": data_pos,
             "f": _pickle_by_value((f, argnums, kwargs), getattr(f, "__module__", None))}
    return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)


def _always():
    return True


def shipped_file(tape):
    """The tape file of ``tape`` as bytes, with every value but the constants' zeroed
    (see the module docstring) and the archive compressed."""
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
    with _LOCK:
        added = by_value and module_name not in cloudpickle.list_registry_pickle_by_value()
        if added:
            cloudpickle.register_pickle_by_value(module)
        try:
            return cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        finally:
            if added:
                cloudpickle.unregister_pickle_by_value(module)


def name(f):
    return getattr(f, "__qualname__", None) or type(f).__name__


def load_plan(payload):
    """This process's :class:`Plan` of ``payload``: loaded (and validated) on first use."""
    digest = hashlib.sha256(payload).hexdigest()[:16]
    with _LOCK:
        plan = _PLANS.get(digest)
        if plan is not None:
            _PLANS.move_to_end(digest)
            return plan
    plan = Plan(payload, digest)
    with _LOCK:
        _PLANS[digest] = plan
        while len(_PLANS) > _KEEP_PLANS:
            _PLANS.popitem(last=False)
    return plan


class Plan:
    """A worker's copy of a payload: the tapes (loaded, hence validated) by block shapes,
    and ``f`` to record the blocks no tape serves."""

    def __init__(self, payload, digest):
        import cloudpickle
        state = pickle.loads(payload)
        self._payload, self.digest = payload, digest
        self.tapes = {shapes: Tape.load(io.BytesIO(data)) for shapes, data in state["tapes"]}
        self.data_pos = state["data_pos"]
        self.f, self.argnums, self.kwargs = cloudpickle.loads(state["f"])
        self._recorder, self._batched, self._lock = None, {}, threading.Lock()
        STATS["plans loaded", digest] += 1

    def __reduce__(self):
        return load_plan, (self._payload,)

    def value_and_grad(self, statics, blocks):
        args = with_blocks(statics, self.data_pos, blocks)
        tape = self.tapes.get(tuple(np.shape(b) for b in blocks))
        if tape is not None:
            try:
                result = tape.value_and_gradient(*args)
            except GuardFailed:
                pass
            else:
                STATS["blocks replayed"] += 1
                return result
        with self._lock:
            if self._recorder is None:
                self._recorder = api.value_and_grad(self.f, self.argnums)
        STATS["blocks recorded"] += 1
        return self._recorder(*args, **self.kwargs)


    def batched(self, cache=True):
        """This process's ``batch_value_and_grad`` of ``f`` (batch axis first; ``cache`` as
        the client's): it runs the blocks of ``tapegrad.dask``'s batch path, and records
        (and, with ``cache``, keeps) the variants of the points whose guards fail."""
        with self._lock:
            if cache not in self._batched:
                from tapegrad.batch import _Batched
                self._batched[cache] = _Batched(self.f, self.argnums, 0, True, cache)
        return self._batched[cache]


def block_value_and_grad(plan, statics, *blocks):
    """The task run for each block: ``(value, gradients)`` of ``f`` at the block."""
    return plan.value_and_grad(statics, blocks)


def stats():
    """This process's counters (for tests and benchmarks): plans loaded per payload digest,
    blocks replayed from a shipped tape, blocks recorded on the worker."""
    return dict(STATS)
