"""The user-facing transformations: record, grad, value_and_grad, jacobian.

``grad(f)`` records ``f`` into a tape on the first call and replays that tape on every
later call whose arguments have the same structure, shapes and dtypes (and equal values for
the non-float leaves, which are baked in).  A recording that turned a traced value into a
Python value (a branch on it) is value dependent: it is used for the call that made it
and never cached, so no call can get a gradient of the wrong branch.

Argument leaves: floats and float arrays are traced (inputs of the tape); in the arguments
named by ``argnums`` nothing else is allowed.  In the other arguments any other leaf (an
int, a string, an integer array) is passed to ``f`` as it is and baked into the tape.
"""
import functools
from collections import OrderedDict

import numpy as np

from tapegrad import pytree
from tapegrad.recorder import CONST, INPUT, Recorder
from tapegrad.tape import Tape, check_scalar_output, leaf_spec, static_key
from tapegrad.tracer import Traced, is_number

_CACHE_SIZE = 64
_ONE = np.ones(1)


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
        if not -nargs <= k < nargs:
            raise ValueError(f"argnums {k} is out of range for a call with {nargs} positional "
                             "argument(s)")
    return tuple(int(k) % nargs for k in nums), is_int


def _signature(args, argnums):
    """(leaves, treedef, specs, leaf_arg) of the arguments; raises on bad float arguments."""
    leaves, leaf_arg, children = [], [], []
    for k, arg in enumerate(args):
        before = len(leaves)
        children.append(pytree.walk(arg, leaves))
        leaf_arg += [k] * (len(leaves) - before)
    specs = tuple(leaf_spec(x, k in argnums, k) for x, k in zip(leaves, leaf_arg))
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
        value = np.array(leaves[i], dtype=np.float64)
        node_of[i] = rec.node(value, INPUT)
        traced[i] = Traced(rec, node_of[i], value)
    inputs = [node_of[i] for i in sorted(node_of)]
    out = f(*pytree.unflatten(treedef, traced), **kwargs)
    if isinstance(out, Traced):
        if out._rec is not rec:
            raise ValueError("the function returned a value traced by another recording")
        root = out._node
    elif is_number(out) or (isinstance(out, np.ndarray) and out.dtype.kind in "biuf"):
        root = rec.node(np.asarray(out, dtype=np.float64), CONST)  # does not depend on the inputs
    else:
        raise TypeError(f"the function must return a float or a float array (traced or not), "
                        f"got {type(out).__name__}")
    if scalar_for is not None:
        check_scalar_output(rec.shape(root), scalar_for)
    return Tape.from_recording(rec.columns(), inputs, root, treedef, specs, leaf_arg, argnums,
                               is_int, rec.value_dependent)


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
    """f wrapped by grad / value_and_grad / jacobian, with its cache of recorded tapes."""

    def __init__(self, f, argnums, mode):
        functools.update_wrapper(self, f)
        self._f, self._argnums, self._mode = f, argnums, mode
        self._tapes = OrderedDict()
        self._argnums_for = functools.lru_cache(maxsize=8)(
            functools.partial(_normalize_argnums, argnums))

    def __call__(self, *args, **kwargs):
        nums, is_int = self._argnums_for(len(args))
        leaves, treedef, specs, leaf_arg = _signature(args, nums)
        try:
            key = (nums, treedef, specs,
                   tuple((k, static_key(v)) for k, v in sorted(kwargs.items())))
            hash(key)
        except TypeError:
            key = None
        if key is not None and all(s[1] is not None for s in specs if s[0] == "s") \
                and all(k[1] is not None for k in key[3]):
            tape = self._tapes.get(key)
        else:
            key = tape = None
        if tape is None:
            tape = _record(self._f, kwargs, nums, is_int, leaves, treedef, specs, leaf_arg,
                           scalar_for=None if self._mode == "jacobian" else self._mode)
            if key is not None and not tape.value_dependent:
                self._tapes[key] = tape
                if len(self._tapes) > _CACHE_SIZE:
                    self._tapes.popitem(last=False)
        bound = tape._load(leaves)
        if self._mode == "jacobian":
            tape._replay(bound)
            return tape._jacobian_rows(bound)
        tape._sweep(bound, _ONE, True)
        grads = tape._gradients(bound.adj)
        return (tape._output(bound.vals), grads) if self._mode == "value_and_grad" else grads

    def __repr__(self):
        return f"<tapegrad.{self._mode} of {getattr(self._f, '__qualname__', self._f)!r}>"


def grad(f, argnums=0):
    """The gradient of scalar-valued ``f`` with respect to the argument(s) ``argnums``.

    >>> import tapegrad as tg
    >>> tg.grad(lambda x, y: x * y + y, argnums=(0, 1))(3.0, 4.0)
    (4.0, 4.0)
    """
    return _Transformed(f, argnums, "grad")


def value_and_grad(f, argnums=0):
    """Like :func:`grad` but returns ``(f(*args), gradient)`` from the same sweep."""
    return _Transformed(f, argnums, "value_and_grad")


def jacobian(f, argnums=0):
    """The Jacobian of ``f``: shape ``output.shape + argument.shape``, one backward sweep per
    output element (reverse mode, so best for few outputs)."""
    return _Transformed(f, argnums, "jacobian")
