"""Cache keys: how an argument leaf enters a tape, and a key for every value baked into one.

A tape is reused only for a call whose key equals the recording's.  ``static_key`` is the
part of the key for a value that is baked in (a non-float leaf of a non-differentiated
argument, a keyword value, a captured scalar).

Invariants
----------
* Two values get equal keys only if ``f`` cannot tell them apart: ``0.0`` and ``-0.0``,
  ``2`` and ``2.0``, ``1`` and ``True`` get different keys; a NaN's key equals itself;
  arrays compare by shape, dtype and bits.  Containers are keyed by their contents, in
  order, recursively.
* Objects whose behaviour can change without their identity changing (class instances,
  sets, random generators, bound methods of objects) have no key: ``static_key`` returns
  None and the caller must record again rather than reuse a tape.  Objects that cannot
  change in a way a tape could depend on (modules, classes, functions, builtins, numpy
  ufuncs, dtypes, enum members) are keyed by identity; a Python function's own globals and
  closure are then guarded by :mod:`tapegrad.capture`.
"""
import dataclasses
import enum
import types

import numpy as np

from tapegrad.tracer import Traced

HIGHER_ORDER = ("a function differentiated inside another recording reads a value traced by "
                "that recording from its closure, globals or defaults (as grad(lambda y: x * y) "
                "inside a function of x): pass the value as an argument instead, "
                "grad(lambda y, x: x * y)(y, x), so that its derivative is followed")


class TracedLeaf(NotImplementedError):
    """An argument leaf is a value traced by a live recording: the call is itself being
    differentiated (``tapegrad.grad`` inlines its tape then; ``tapegrad.record`` cannot)."""

_PLAIN = frozenset({bool, int, str, bytes, type(None), type(Ellipsis)})
_BY_IDENTITY = (type, types.ModuleType, types.FunctionType, np.ufunc, np.dtype, enum.Enum)
_LIBRARY_CALLABLES = frozenset({"builtins", "numpy"})


def check_not_traced(x):
    """Raise if ``x`` is a traced value: of a live recording (grad of grad) or escaped."""
    if isinstance(x, Traced):
        if x._rec.closed:
            raise ValueError("this traced value belongs to a finished recording; a Traced "
                             "value must not escape the function being differentiated")
        raise NotImplementedError(HIGHER_ORDER)


def leaf_spec(x, differentiable, argpos):
    """How an argument leaf enters the tape: ('f', shape, dtype, kind) traced, or ('s', key) static.

    A static leaf (int, string, integer array of a non-differentiated argument, ...) is
    baked into the recording; its key is part of the replay cache key, None if it has none
    (then the tape must not be reused).
    """
    if isinstance(x, float) and not isinstance(x, np.floating):
        return ("f", (), "<f8", "float")
    if isinstance(x, (np.ndarray, np.generic)) and x.dtype.kind == "f":
        return ("f", x.shape, x.dtype.str, "array" if isinstance(x, np.ndarray) else "scalar")
    if isinstance(x, Traced) and not x._rec.closed:
        raise TracedLeaf("tapegrad.record was given a value traced by an enclosing recording: "
                         "a tape cannot be recorded from traced values (tapegrad.grad, "
                         "value_and_grad and jacobian can be called on them)")
    check_not_traced(x)
    if differentiable:
        dtype = np.asarray(x).dtype if isinstance(x, (int, complex, np.ndarray, np.generic)) else type(x).__name__
        raise TypeError(f"argument {argpos} has a leaf of dtype {dtype}: gradients are taken "
                        "with respect to float arguments only (Python floats or float arrays; "
                        "use x.astype(float) or pass the value as a non-differentiated argument)")
    return ("s", static_key(x))


def _children(tag, items):
    keys = tuple(static_key(c) for c in items)
    return None if any(k is None for k in keys) else (tag, keys)


def static_key(x):
    """A hashable stand-in for a value baked into a tape, equal only for values that act
    alike, or None if there is none (see the module docstring)."""
    t = type(x)
    if t in _PLAIN:
        return (t, x)
    if t is float:
        return (float, x.hex())
    check_not_traced(x)
    if isinstance(x, np.ndarray):
        return None if x.dtype.hasobject else ("ndarray", x.shape, x.dtype.str, x.tobytes())
    if isinstance(x, np.generic):
        return None if x.dtype.hasobject else ("generic", x.dtype.str, x.tobytes())
    if isinstance(x, _BY_IDENTITY):
        return ("id", x)
    if isinstance(x, float):
        return (t, float(x).hex())
    if isinstance(x, complex):
        return (t, x.real.hex(), x.imag.hex())
    if isinstance(x, (int, str, bytes)):  # subclasses: the type is part of the key
        return (t, x)
    if t is tuple or t is list or (isinstance(x, tuple) and hasattr(x, "_fields")):
        return _children(t, x)
    if t is slice or t is range:  # index expressions kept in closures: keyed by value
        return _children(t, (x.start, x.stop, x.step))
    if t is frozenset:
        keys = frozenset(static_key(c) for c in x)
        return None if None in keys else (frozenset, keys)
    if t is dict:  # in insertion order: iterating two equal dicts can still differ
        return _children(dict, [k for item in x.items() for k in item])
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return _children(t, [getattr(x, f.name) for f in dataclasses.fields(x)])
    if (isinstance(x, types.BuiltinFunctionType) or callable(x)) and \
            type(x).__module__.partition(".")[0] in _LIBRARY_CALLABLES and \
            isinstance(getattr(x, "__self__", None), (type(None), types.ModuleType, type)):
        return ("id", x)  # a builtin or numpy function, not a method bound to a mutable object
    return None
