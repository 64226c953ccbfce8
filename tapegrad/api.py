"""The user-facing transformations: record, grad, value_and_grad, jacobian.

``grad(f)`` records ``f`` into a tape on the first call and replays that tape on every
later call whose arguments have the same structure, shapes and dtypes (and equal values for
the non-float leaves, which are baked in), and whose guards hold: what ``f`` read from its
globals, closures and defaults is unchanged (:mod:`tapegrad.capture`).  A replay gives what
a fresh run of ``f`` would give, or there is no replay:

* a branch on a comparison of traced values is a guard entry of the tape: the forward
  sweep checks it, and a key keeps one tape per branch pattern (``tapegrad.variants``);
  a call whose branches no cached variant takes records a new one (results are always
  those of a fresh recording);
* a recording that used a comparison of traced values as a constant (a mask) is value
  dependent: it is used for the call that made it and never cached;
* a recording that read something no guard can check (an object among the arguments or
  the captured values), or that changed a random state or a value it reads (impure), is
  never cached either, and a :class:`~tapegrad.capture.TapegradWarning` says so once.

Argument leaves: floats and float arrays are traced (inputs of the tape); in the arguments
named by ``argnums`` nothing else is allowed.  In the other arguments any other leaf (an
int, a string, an integer array) is passed to ``f`` as it is and baked into the tape.
"""
import functools
import threading
import types
from collections import OrderedDict

import numpy as np

from tapegrad import capture, pytree, variants
from tapegrad.keys import TracedLeaf, leaf_spec, static_key
from tapegrad.recorder import ALIAS, CONST, INPUT, Recorder
from tapegrad.tape import Tape, check_scalar_output
from tapegrad.tracer import ConversionError, Traced, is_number

_CACHE_SIZE = 64
_WARN_STREAK = 20  # recordings in a row for want of a variant before the warning
_ONE = np.ones(1)
_CHECK_GUARDS = True  # private switch for measuring what guard checks cost (bench_guards)


def _normalize_argnums(argnums, nargs):
    is_int = isinstance(argnums, (int, np.integer)) and not isinstance(argnums, bool)
    if not is_int and not isinstance(argnums, (tuple, list)):
        raise TypeError(f"argnums must be an int or a tuple of ints, got {argnums!r}")
    nums = (argnums,) if is_int else tuple(argnums)
    if not nums:
        raise ValueError("argnums is empty: name at least one argument to differentiate")
    for k in nums:
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool):
            raise TypeError(f"argnums must be an int or a tuple of ints, got {argnums!r}")
        if nargs is not None and not -nargs <= k < nargs:
            raise ValueError(f"argnums {k} is out of range for a call with {nargs} positional "
                             "argument(s)")
    if nargs is None:
        if len(set(nums)) < len(nums):
            raise ValueError(f"argnums {argnums!r} names the same argument twice")
        return nums, is_int
    normal = tuple(int(k) % nargs for k in nums)
    if len(set(normal)) < len(normal):
        raise ValueError(f"argnums {argnums!r} names the same argument twice")
    return normal, is_int


_FLOAT_SPEC = ("f", (), "<f8", "float")


def _plain_spec(x):
    """``leaf_spec`` of a plain float or float array (the common leaves, without its type
    tests), or None for any other leaf."""
    if type(x) is float:
        return _FLOAT_SPEC
    if type(x) is np.ndarray and x.dtype.kind == "f":
        return ("f", x.shape, x.dtype.str, "array")
    return None


def _signature(args, argnums):
    """(leaves, treedef, specs, leaf_arg) of the arguments; raises on bad float arguments."""
    specs = []  # every argument plain: no walk needed (_plain_spec inlined: 0.2 us a call)
    for x in args:
        if type(x) is float:
            specs.append(_FLOAT_SPEC)
        elif type(x) is np.ndarray and x.dtype.kind == "f":
            specs.append(("f", x.shape, x.dtype.str, "array"))
        else:
            break
    else:
        n = len(args)
        return list(args), ("tuple", ("*",) * n), tuple(specs), tuple(range(n))
    leaves, leaf_arg, children = [], [], []
    for k, arg in enumerate(args):
        before = len(leaves)
        children.append(pytree.walk(arg, leaves))
        leaf_arg += [k] * (len(leaves) - before)
    specs = tuple(_plain_spec(x) or leaf_spec(x, k in argnums, k) for x, k in zip(leaves, leaf_arg))
    return leaves, ("tuple", tuple(children)), specs, tuple(leaf_arg)


def _record(f, kwargs, argnums, is_int, leaves, treedef, specs, leaf_arg, scalar_for=None):
    rec = Recorder()
    # Differentiated leaves get the first input nodes, so their values - and adjoints -
    # form one block at the start of the arena (see Tape._gradients).
    traced = list(leaves)
    diff_first = sorted((spec[0] == "f" and arg not in argnums, i)
                        for i, (spec, arg) in enumerate(zip(specs, leaf_arg)) if spec[0] == "f")
    node_of = {}
    for _, i in diff_first:
        value = np.array(leaves[i], dtype=np.float64, order="C")
        node_of[i] = rec.node(value, INPUT)
        traced[i] = Traced(rec, node_of[i], value)
    inputs = [node_of[i] for i in sorted(node_of)]
    try:
        out = f(*pytree.unflatten(treedef, traced), **kwargs)
    except ValueError as err:  # numpy turns the TypeError of a[i] = x into a ValueError
        if isinstance(err.__cause__, ConversionError):
            raise err.__cause__.with_traceback(err.__traceback__) from None
        raise
    if isinstance(out, Traced):
        if out._rec is not rec:
            raise ValueError("the function returned a value traced by another recording")
        root = out._node
    elif is_number(out) or isinstance(out, (bool, np.bool_)) or \
            (isinstance(out, np.ndarray) and out.dtype.kind in "biuf"):
        root = rec.node(np.asarray(out, dtype=np.float64), CONST)  # does not depend on the inputs
    else:
        raise TypeError(f"the function must return a float or a float array (traced or not), "
                        f"got {type(out).__name__}")
    if scalar_for is not None and rec.shape(root) != () and int(np.prod(rec.shape(root))) == 1:
        root = rec.node(np.zeros(()), ALIAS, base=root)  # any size-1 output is a scalar (autograd)
    if scalar_for is not None:
        check_scalar_output(rec.shape(root), scalar_for)
    return Tape.from_recording(rec.columns(), inputs, root, treedef, specs, leaf_arg, argnums,
                               is_int, rec.value_dependent or rec.unresolved > 0,
                               guard_sites=tuple(rec.guard_sites))


def record(f, *args, argnums=0, **kwargs):
    """Run ``f(*args, **kwargs)`` on traced arguments and return the flat :class:`Tape`.

    >>> import tapegrad as tg, tapegrad.numpy as tnp
    >>> tape = tg.record(lambda x: tnp.exp(x) * x, 1.0)
    >>> print(tape)
    Tape: 2 entries, 3 nodes, 3 floats
    inputs: 0 (); constants: 0; output: 2 ()
    0: EXP(0) -> 1 ()
    1: MUL(1, 0) -> 2 ()
    >>> tape.gradient(2.0) == 3 * float(tnp.exp(2.0))
    True
    """
    nums, is_int = _normalize_argnums(argnums, len(args))
    leaves, treedef, specs, leaf_arg = _signature(args, nums)
    return _record(f, kwargs, nums, is_int, leaves, treedef, specs, leaf_arg)


class _Transformed:
    """f wrapped by grad / value_and_grad / jacobian, with its cache of recorded tapes.

    The cache maps a key (argnums, argument structure, leaf specs, keyword keys) to
    ``(variants, check)``; ``check`` is the compiled guard function of the captured state
    (None: no guards), ``variants`` the key's tapes, one per branch pattern.  A call
    replays a cached variant only if its key matches, ``check()`` holds and the variant's
    own guards hold (checked in its forward sweep); otherwise it records, and caches the
    new tape only if the recording can be trusted at a later call (see the module
    docstring).
    """

    _tapegrad_transform = True  # capture.py guards what the wrapped function reads
    _extra_frames = 0  # frames a subclass's __call__ adds between the user and ours

    def __init__(self, f, argnums, mode, cache):
        if not callable(f):
            raise TypeError(f"tapegrad.{mode} needs a callable (the function to differentiate), "
                            f"got {type(f).__name__} {f!r}")
        _normalize_argnums(argnums, None)
        try:
            functools.update_wrapper(self, f)
        except (AttributeError, TypeError):  # a callable object without a __name__
            pass
        self._f, self._argnums, self._mode, self._cache = f, argnums, mode, bool(cache)
        self._tapes = OrderedDict()
        self._warned = set()
        self._branchy = set()  # keys whose last recording was value dependent
        self._lock = threading.Lock()
        self._streak = 0  # calls in a row recorded because no variant's guards held
        self.last_reason = None  # why the last recording happened (tapegrad.explain)
        self._last = threading.local()  # .tape: the tape this thread's last call ran (batch)
        self._argnums_for = functools.lru_cache(maxsize=8)(
            functools.partial(_normalize_argnums, argnums))

    def __call__(self, *args, **kwargs):
        nums, is_int = self._argnums_for(len(args))
        try:
            leaves, treedef, specs, leaf_arg = _signature(args, nums)
        except TracedLeaf:  # called inside another recording: inline (tapegrad.higher)
            from tapegrad.higher import call_traced
            return call_traced(self, args, kwargs)
        kw = tuple((k, static_key(v)) for k, v in sorted(kwargs.items())) if kwargs else ()
        key = (nums, treedef, specs, kw)
        try:
            entry = self._tapes.get(key)
        except TypeError:  # an unhashable class or identity-keyed object: never cached
            entry = key = None
        jacobian = self._mode == "jacobian"
        tape, keep = None, False
        if entry is not None and (entry[1] is None or not _CHECK_GUARDS or entry[1]()):
            tape, bound, missed = entry[0].replay(leaves, not jacobian)
            if tape is None:
                keep = True
                self._missed(missed)
            else:
                self._streak = 0
        elif entry is not None:
            self.last_reason = "what the function reads (globals, closures, defaults) changed"
        else:
            self.last_reason = "no tape was recorded for these argument shapes and statics yet"
        if tape is None:
            tape = self._record(key, args, kwargs, nums, is_int, leaves, treedef, specs, leaf_arg,
                                keep=keep)
            bound = tape._load(leaves)
            # recorded at these very arguments: its branches are theirs (guards unchecked)
            if jacobian:
                tape._replay(bound, check=False)
            else:
                tape._sweep(bound, _ONE, True, check=False)
        self._last.tape = tape
        if jacobian:
            return tape._jacobian_rows(bound)
        grads = tape._gradients(bound.adj)
        return (tape._output(bound.vals), grads) if self._mode == "value_and_grad" else grads

    def _known_tape(self, args, kwargs):
        """The tape a call with arguments shaped like ``args`` would start replaying (the
        last variant it ran), without running anything; None if a call would record.  The
        values of float leaves do not matter (a replay checks its guards), those of
        everything else do, as for any call."""
        nums, _ = self._argnums_for(len(args))
        try:
            _, treedef, specs, _ = _signature(args, nums)
            kw = tuple((k, static_key(v)) for k, v in sorted(kwargs.items())) if kwargs else ()
            entry = self._tapes.get((nums, treedef, specs, kw))
        except (TypeError, TracedLeaf):
            return None
        if entry is None or not (entry[1] is None or not _CHECK_GUARDS or entry[1]()):
            return None
        return entry[0].last or entry[0].tapes[0]

    def _cached(self, tape):
        """Whether ``tape`` is one of the cached variants (a later call may replay it)."""
        return any(t is tape for entry in list(self._tapes.values()) for t in entry[0].tapes)

    def _missed(self, missed):
        """A cached key whose variants all branch otherwise here: note why, and warn once
        when the function keeps being recorded again."""
        tape, entry = missed
        self._streak += 1
        self.last_reason = (f"guard {tape.entry_str(entry)} at {tape.guard_site(entry)} went the "
                            "other way, and no cached variant takes that branch")
        if self._streak >= _WARN_STREAK:
            self._warn_once("rerecord", f"{self._name()} was recorded again on {self._streak} "
                            f"calls in a row: its branches keep changing. Last time the {self.last_reason}"
                            f" ({variants.MAX_VARIANTS} variants are kept per argument key). "
                            "Branch-free code (tnp.where, tnp.maximum) records once")

    def _record(self, key, args, kwargs, nums, is_int, leaves, treedef, specs, leaf_arg,
                keep=False):
        """Record at these arguments; cache the tape with its guards if a later call may
        reuse it (as a new variant of the key's tapes if ``keep``), else say once why it
        is recorded again on every call."""
        scalar_for = None if self._mode == "jacobian" else self._mode
        record = functools.partial(_record, self._f, kwargs, nums, is_int, leaves, treedef, specs,
                                   leaf_arg, scalar_for)
        if not self._cache:
            return record()
        reasons = self._unkeyable(args, kwargs, leaves, specs, leaf_arg)
        if reasons or key is None or key in self._branchy:
            # not cacheable whatever f reads (or last time it used a comparison of traced
            # values as a mask, which no guard checks): guards would be wasted work
            tape = record()
        else:
            tape = self._record_guarded(key, record, kwargs, leaves, reasons, keep)
        if key is not None and tape.value_dependent:
            if len(self._branchy) >= _CACHE_SIZE:
                self._branchy.clear()
            self._branchy.add(key)
        elif key is not None:
            self._branchy.discard(key)
        for what, message in reasons:
            self._warn_once(what, message)
        if tape._grad_plan and not any(plan[3] for plan in tape._grad_plan):
            self._warn_once("independent", f"Output seems independent of input: the output of "
                            f"{self._name()} does not depend on the differentiated argument(s) "
                            f"{', '.join(map(str, nums))}, so the gradient is zero")
        return tape

    def _record_guarded(self, key, record, kwargs, leaves, reasons, keep):
        """Build the guards (before f runs), record, and cache the tape with its guard
        check unless the recording was impure, unguardable or value dependent; append the
        reasons to ``reasons``."""
        statics = list(leaves) + list(kwargs.values())
        functions = [v for v in statics if isinstance(v, types.FunctionType)]
        guards = capture.guards_for(self._f, functions, f"the function {self._name()}")
        gens = list(guards.rngs) + [v for v in statics if isinstance(v, capture._RNG_TYPES)]
        before = capture.random_state(gens)
        tape = record()
        if capture.random_state(gens) != before:
            reasons.append(("random", f"{self._name()} changed a random state while it was recorded "
                            "(it draws random numbers: numpy's global random state, Python's "
                            "random module or a numpy Generator), so a replay would repeat the "
                            "same draws; it is recorded again on every call. Draw the random "
                            "values outside and pass them as an argument to get replay speed"))
        elif not guards.holds():
            what = ", ".join(guards.failing()[:3])
            reasons.append(("mutates", f"{self._name()} changed a value it reads ({what}) while "
                            "it was recorded, so every call may differ; it is recorded again "
                            "on every call"))
        for desc, value in guards.unguardable:
            reasons.append((desc, f"{self._name()} reads {desc}"
                            f"{'' if value is None else f', a {type(value).__name__}'}, which "
                            "tapegrad cannot check for changes between calls, so it records the "
                            "function again on every call. Pass the arrays it holds as an "
                            "argument instead (dataclasses, namedtuples and dicts of arrays are "
                            "pytrees), or use cache=False to record every call without this "
                            "warning"))
        with self._lock:
            if not reasons and not tape.value_dependent:
                old = self._tapes.get(key)
                # the captured state held for the old variants: they stay valid beside it
                found = old[0] if keep and old is not None else variants.Variants()
                found.add(tape)
                self._tapes[key] = (found, guards.check)
                self._tapes.move_to_end(key)
                if len(self._tapes) > _CACHE_SIZE:
                    self._tapes.popitem(last=False)
            else:
                self._tapes.pop(key, None)
        return tape

    def _unkeyable(self, args, kwargs, leaves, specs, leaf_arg):
        """(warning key, message) for each argument or keyword with no cache key."""
        reasons = []
        for leaf, spec, k in zip(leaves, specs, leaf_arg):
            if spec[0] == "s" and spec[1] is None:
                reasons.append((_warn_key(("arg", k), leaf), _unkeyable_message(
                    f"argument {k} of {self._name()} is or contains a {type(leaf).__name__}", leaf)))
        for name, value in kwargs.items():
            if static_key(value) is None:
                reasons.append((_warn_key(("kw", name), value), _unkeyable_message(
                    f"keyword argument {name!r} of {self._name()} is or contains a "
                    f"{type(value).__name__}", value)))
        return reasons

    def _warn_once(self, what, message):
        if what not in self._warned:
            self._warned.add(what)
            capture.warn(message, stacklevel=5 + self._extra_frames)

    def _name(self):
        return getattr(self._f, "__qualname__", None) or type(self._f).__name__

    def __repr__(self):
        return f"<tapegrad.{self._mode} of {getattr(self._f, '__qualname__', self._f)!r}>"


def _warn_key(where, value):
    # one warning about random numbers per function, whether seen in an argument or not
    return "random" if isinstance(value, capture._RNG_TYPES) else (where, type(value))


def _unkeyable_message(what, value):
    if isinstance(value, capture._RNG_TYPES):
        return (f"{what}: a random generator changes with every draw, so {what.split()[0]} is "
                "recorded again on every call. Draw the random values outside and pass them as "
                "an argument to get replay speed")
    return (f"{what}, an object tapegrad cannot compare between calls (it may have changed "
            "since the last one), so the function is recorded again on every call. Pass its "
            "arrays as an argument instead: dataclasses, namedtuples and dicts of arrays are "
            "pytrees whose float leaves are traced")


def grad(f, argnums=0, cache=True):
    """The gradient of scalar-valued ``f`` with respect to the argument(s) ``argnums``.

    With ``cache=False`` ``f`` is recorded again on every call (for functions with side
    effects tapegrad cannot see, such as appending to a list).

    >>> import tapegrad as tg
    >>> tg.grad(lambda x, y: x * y + y, argnums=(0, 1))(3.0, 4.0)
    (4.0, 4.0)
    """
    return _Transformed(f, argnums, "grad", cache)


def value_and_grad(f, argnums=0, cache=True):
    """Like :func:`grad` but returns ``(f(*args), gradient)`` from the same sweep."""
    return _Transformed(f, argnums, "value_and_grad", cache)


def jacobian(f, argnums=0, cache=True):
    """The Jacobian of ``f``: shape ``output.shape + argument.shape``, one backward sweep per
    output element (reverse mode, so best for few outputs)."""
    return _Transformed(f, argnums, "jacobian", cache)
