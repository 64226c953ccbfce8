"""Guards: what a function reads from outside its arguments, checked before a tape is reused.

A tape holds the values ``f`` read from its globals, closure cells and defaults as
constants.  Before ``f`` is recorded, :func:`guards_for` reads its bytecode (and that of
its nested code objects, and of the Python functions it reaches that way, to a bounded
depth) for the names it loads (``LOAD_GLOBAL``, ``LOAD_DEREF``, ...) and the attributes it
reads from modules and classes, as TorchDynamo does for a frame, and classifies each value:

* module, class, function, builtin, ufunc, dtype, enum member: the same object (identity);
  a Python function outside the libraries is also analysed in turn;
* immutable scalar, slice or range (or tuple/frozenset of them): the same value key
  (:func:`tapegrad.keys.static_key`: ``0.0`` is not ``-0.0``, ``2`` is not ``2.0``);
* numpy array: the same shape, dtype and bits, compared on every call (O(size));
* dict or list of up to 32 items: the same keys (or length) and each item guarded;
* anything else (an object, a set, a random generator): *unguardable*.

The checks are compiled into one generated function (one ``and`` chain of identity and
equality tests), so a cached call pays one Python call plus a few tens of ns per guard.

Invariants
----------
* Guards are built before ``f`` runs, so they describe the state ``f`` saw.  ``check()``
  is true only if every guarded value is still what it was; it never raises.
* A tape whose :class:`Guards` lists anything ``unguardable`` must not be reused.
* Attributes of library modules (numpy, tapegrad, the standard library) and the internals
  of library functions are not guarded: only user code is expected to be rebound.
* :func:`random_state` fingerprints numpy's and Python's global random state and the given
  generators; a change across a recording means ``f`` is impure.

Guards on traced values (the outcome of a comparison that decided a branch) are of
another kind: they depend on the call's inputs, so they are tape entries, checked by the
forward sweep on intermediate values, which picks among a key's variants
(``tapegrad.variants``, ``jit/ops_guard.py``).  These guards stay the gate in front of all
of a key's variants: an entry of the cache is ``(variants, check)``.
"""
import ctypes
import dis
import functools
import os
import pickle
import random
import sys
import sysconfig
import types
import warnings

import numpy as np

from tapegrad.keys import HIGHER_ORDER, static_key
from tapegrad.tracer import Traced


class TapegradWarning(UserWarning):
    """A warning from tapegrad: a function is recorded again on every call, or its output
    does not depend on the differentiated input."""


_LIBRARY = frozenset({"tapegrad", "numpy", "scipy", "numba", "builtins"}) | frozenset(
    getattr(sys, "stdlib_module_names", ()))
_INSTALLED = tuple({os.sep + "site-packages" + os.sep, os.sep + "dist-packages" + os.sep,
                    sysconfig.get_paths()["stdlib"] + os.sep})
_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_MAX_DEPTH = 8
_MAX_TERMS = 512
_MAX_ITEMS = 32  # dicts and lists up to this size are guarded item by item
_GLOBAL_OPS = frozenset({"LOAD_GLOBAL", "LOAD_NAME"})
_DEREF_OPS = frozenset({"LOAD_DEREF", "LOAD_CLOSURE", "LOAD_CLASSDEREF", "LOAD_FROM_DICT_OR_DEREF"})
_ATTR_OPS = frozenset({"LOAD_ATTR", "LOAD_METHOD"})
_RNG_TYPES = (np.random.Generator, np.random.RandomState, np.random.BitGenerator)
_IDENTITY = (type, types.BuiltinFunctionType, np.ufunc, np.dtype, types.MethodWrapperType,
             types.WrapperDescriptorType, types.MethodDescriptorType)


@functools.lru_cache(maxsize=4096)
def is_library(module_name):
    """True for tapegrad, numpy, the standard library and installed packages: code whose
    internals are not guarded (as Dynamo's skip files: user code is what gets rebound)."""
    top = (module_name or "").partition(".")[0]
    if top in _LIBRARY:
        return True
    if module_name == "__main__":  # a script, or code run by a tool (doctests): user code
        return False
    module = sys.modules.get(module_name) or sys.modules.get(top)
    return _library_file(getattr(module, "__file__", None) or "")


@functools.lru_cache(maxsize=4096)
def _library_file(filename):
    return filename.startswith(_PACKAGE) or filename.startswith("<frozen") or \
        any(part in filename for part in _INSTALLED)


def _library_function(fn):
    return _library_file(fn.__code__.co_filename)


@functools.lru_cache(maxsize=2048)
def _reads(code):
    """({(name, attribute chain)} loaded as globals, the same for closure cells) of ``code``
    and the code objects nested in it (lambdas, comprehensions, inner functions)."""
    glob, deref, stack = set(), set(), [code]
    while stack:
        c = stack.pop()
        ins = list(dis.get_instructions(c))
        for i, op in enumerate(ins):
            kind = glob if op.opname in _GLOBAL_OPS else deref if op.opname in _DEREF_OPS else None
            if kind is None:
                continue
            chain = []
            for nxt in ins[i + 1:]:
                if nxt.opname not in _ATTR_OPS:
                    break
                chain.append(nxt.argval)
            kind.add((op.argval, tuple(chain)))
        stack.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
    return frozenset(glob), frozenset(deref)


def _same_array(x, spec):
    shape, dtype, data = spec
    return type(x) is np.ndarray and x.shape == shape and x.dtype == dtype and x.tobytes() == data


def _is_scalar(v):
    if isinstance(v, (tuple, frozenset)) and type(v) in (tuple, frozenset):
        return all(_is_scalar(c) for c in v)
    return isinstance(v, (bool, int, float, complex, str, bytes, type(None), np.generic, slice,
                          range, type(Ellipsis))) \
        and not isinstance(v, np.ndarray) and static_key(v) is not None


def _name(fn):
    return getattr(fn, "__qualname__", None) or type(fn).__name__


class Guards:
    """The guards of one recording: ``check()``, the terms behind it, and what could not be
    guarded (``unguardable``: (description, value) pairs) or may draw random numbers (``rngs``)."""

    __slots__ = ("check", "terms", "unguardable", "rngs", "_namespace")

    def __init__(self, check, terms, unguardable, rngs, namespace):
        self.check, self.terms, self.unguardable, self.rngs = check, terms, unguardable, rngs
        self._namespace = namespace

    def holds(self):
        return self.check is None or self.check()

    def failing(self):
        """Descriptions of the guards that fail now (for messages; slow)."""
        bad = []
        for desc, expr in self.terms:
            try:
                ok = eval(expr, self._namespace)  # noqa: S307 - expressions built by _Builder
            except Exception:
                ok = False
            if not ok:
                bad.append(desc)
        return bad


class _Builder:
    def __init__(self):
        self.consts, self.terms, self.unguardable, self.rngs = [], [], [], []
        self.seen = set()

    def const(self, value):
        self.consts.append(value)
        return f"c{len(self.consts) - 1}"

    def add(self, desc, expr):
        self.terms.append((desc, expr))

    def root(self, f, desc):
        """``f`` itself: a function, a bound method, a partial or a callable object."""
        if isinstance(f, types.FunctionType):
            self.function(f, 0)
        elif isinstance(f, types.MethodType):
            self.value(f"the object {_name(f)} is bound to", self.const(f.__self__), f.__self__,
                       (), 0)
            self.function(f.__func__, 0)
        elif isinstance(f, functools.partial):
            self.value(desc, self.const(f), f, (), 0)
        elif getattr(type(f), "_tapegrad_transform", False):  # grad(grad(f)): f's reads
            self.root(f._f, desc)
        elif not isinstance(f, _IDENTITY) and not is_library(type(f).__module__):
            self.unguardable.append((f"the attributes of the callable {type(f).__name__} object",
                                     None))

    def function(self, fn, depth):
        if id(fn) in self.seen or depth > _MAX_DEPTH or _library_function(fn):
            return
        self.seen.add(id(fn))
        F, code, qual, g = self.const(fn), fn.__code__, _name(fn), fn.__globals__
        self.add(f"the code of {qual}", f"{F}.__code__ is {self.const(code)}")
        globs, derefs = _reads(code)
        G = self.const(g)
        for name, chain in sorted(globs):
            desc = f"global {name!r} read by {qual}"
            if name in g:
                self.value(desc, f"{G}[{name!r}]", g[name], chain, depth)
            else:  # a builtin, or a name not defined yet (builtins themselves are not guarded)
                self.add(desc, f"{name!r} not in {G}")
        free = code.co_freevars
        for name, chain in sorted(derefs):
            if name not in free:
                continue  # a local of fn shared with a nested function
            cell = fn.__closure__[free.index(name)]
            desc = f"closure variable {name!r} of {qual}"
            try:
                value = cell.cell_contents
            except ValueError:
                self.unguardable.append((desc + " (empty when recorded)", None))
                continue
            self.value(desc, f"{self.const(cell)}.cell_contents", value, chain, depth)
        if fn.__defaults__ is not None or fn.__kwdefaults__ is not None:
            self.add(f"the defaults of {qual}", f"{F}.__defaults__ is {self.const(fn.__defaults__)}")
            names = code.co_varnames[:code.co_argcount]
            for i, v in enumerate(fn.__defaults__ or ()):
                arg = names[len(names) - len(fn.__defaults__) + i]
                self.value(f"default of argument {arg!r} of {qual}", f"{F}.__defaults__[{i}]",
                           v, (), depth)
            if fn.__kwdefaults__ is not None:
                self.add(f"the keyword defaults of {qual}",
                         f"{F}.__kwdefaults__ is {self.const(fn.__kwdefaults__)}")
                for k, v in fn.__kwdefaults__.items():
                    self.value(f"default of argument {k!r} of {qual}",
                               f"{F}.__kwdefaults__[{k!r}]", v, (), depth)

    def value(self, desc, expr, v, chain, depth):
        if isinstance(v, Traced):
            if v._rec.closed:  # escaped from an earlier recording: using it raises there
                self.unguardable.append((desc, v))
                return
            raise NotImplementedError(HIGHER_ORDER)
        if isinstance(v, (types.ModuleType, type)):
            self.add(desc, f"{expr} is {self.const(v)}")
            owner = v.__name__ if isinstance(v, types.ModuleType) else v.__module__
            if is_library(owner):
                return
            if chain:
                self.attribute(desc, v, chain, depth)
            if isinstance(v, type):  # methods of a user class run when f uses the class
                for klass in v.__mro__:
                    if not is_library(klass.__module__):
                        self.methods(klass, depth)
        elif isinstance(v, types.FunctionType):
            self.add(desc, f"{expr} is {self.const(v)}")
            self.function(v, depth + 1)
        elif isinstance(v, types.MethodType):
            self.add(desc, f"{expr} is {self.const(v)}")
            self.value(f"the object of {desc}", f"{expr}.__self__", v.__self__, (), depth)
            self.function(v.__func__, depth + 1)
        elif isinstance(v, functools.partial):
            self.add(desc, f"{expr} is {self.const(v)}")
            self.value(desc, f"{expr}.func", v.func, (), depth)
            for i, a in enumerate(v.args):
                self.value(f"{desc}, argument {i}", f"{expr}.args[{i}]", a, (), depth)
            self.add(desc, f"{expr}.keywords == {self.const(dict(v.keywords))}")
            for k, a in v.keywords.items():
                self.value(f"{desc}, argument {k!r}", f"{expr}.keywords[{k!r}]", a, (), depth)
        elif getattr(type(v), "_tapegrad_transform", False):  # tg.grad(g) called by f: g's reads
            self.add(desc, f"{expr} is {self.const(v)}")
            self.value(f"the function of {desc}", f"{expr}._f", v._f, (), depth + 1)
        elif _is_scalar(v):
            same, key = self.const(v), self.const(static_key(v))
            self.add(desc, f"((v := {expr}) is {same} or _key(v) == {key})")
        elif type(v) is np.ndarray and not v.dtype.hasobject:
            self.add(desc, f"_same_array({expr}, {self.const((v.shape, v.dtype, v.tobytes()))})")
        elif type(v) is tuple:
            self.add(desc, f"{expr} is {self.const(v)}")
            for i, c in enumerate(v):
                self.value(f"{desc}[{i}]", f"{expr}[{i}]", c, (), depth)
        elif type(v) in (dict, list) and len(v) <= _MAX_ITEMS and \
                (type(v) is list or all(_is_scalar(k) for k in v)):
            # Dynamo's dict/list guards: the same keys in the same order, each item guarded
            items = v.items() if type(v) is dict else enumerate(v)
            keys = tuple(v) if type(v) is dict else len(v)
            self.add(desc, f"type(v := {expr}) is {type(v).__name__} and "
                           f"{'tuple(v)' if type(v) is dict else 'len(v)'} == {self.const(keys)}")
            for k, c in list(items):
                self.value(f"{desc}[{k!r}]", f"{expr}[{self.const(k)}]", c, (), depth)
        elif isinstance(v, _RNG_TYPES):
            self.rngs.append(v)
            self.unguardable.append((desc, v))
        elif isinstance(v, _IDENTITY) or static_key(v) is not None and static_key(v)[0] == "id":
            self.add(desc, f"{expr} is {self.const(v)}")
        else:
            self.unguardable.append((desc, v))

    def methods(self, klass, depth):
        """The functions defined in a user class: the same objects, and analysed."""
        if id(klass) in self.seen:
            return
        self.seen.add(id(klass))
        K = self.const(klass)
        for name, item in vars(klass).items():
            fn = item.__func__ if isinstance(item, (staticmethod, classmethod)) else item
            if isinstance(fn, types.FunctionType):
                self.add(f"method {klass.__qualname__}.{name}",
                         f"{K}.__dict__[{name!r}] is {self.const(item)}")
                self.function(fn, depth + 1)

    def attribute(self, desc, owner, chain, depth):
        """``owner.name`` (then ``.rest``) read from a user module or class."""
        name, rest = chain[0], chain[1:]
        O = self.const(owner)
        desc = f"{getattr(owner, '__name__', owner)}.{name}"
        if isinstance(owner, type):
            raw = next((vars(k)[name] for k in owner.__mro__ if name in vars(k)), None)
            if isinstance(raw, (types.FunctionType, staticmethod, classmethod, property)):
                return  # a method: analysed with the class (value()), where it is looked up
        try:
            v = getattr(owner, name)
        except AttributeError:  # not there when recorded (a branch not taken)
            self.add(desc, f"not hasattr({O}, {name!r})")
            return
        self.value(desc, f"{O}.{name}", v, rest, depth)


_MAKERS = {}


def _compile(terms, consts):
    """One function ``check()`` that is the ``and`` of all terms, with the constants bound."""
    params = ", ".join(f"c{i}" for i in range(len(consts)))
    body = " and\n                ".join(f"({expr})" for _, expr in terms)
    source = (f"def make({params}):\n    def check():\n        try:\n"
              f"            return ({body})\n        except Exception:\n            return False\n"
              "    return check\n")
    make = _MAKERS.get(source)
    if make is None:
        namespace = {"_key": static_key, "_same_array": _same_array}
        exec(compile(source, "<tapegrad guards>", "exec"), namespace)  # noqa: S102
        make = _MAKERS[source] = namespace["make"]
        if len(_MAKERS) > 1024:
            _MAKERS.pop(next(iter(_MAKERS)))
    return make(*consts)


def guards_for(f, extra=(), desc="the function"):
    """The :class:`Guards` of ``f`` (and of the Python functions in ``extra``, passed as
    static arguments), describing the state it would read now."""
    b = _Builder()
    b.root(f, desc)
    for fn in extra:
        b.function(fn, 1)
    if len(b.terms) > _MAX_TERMS:  # checking would cost more than it saves
        b.unguardable.append((f"more than {_MAX_TERMS} values read by {_name(f)}", None))
    namespace = {"_key": static_key, "_same_array": _same_array, "getattr": getattr,
                 **{f"c{i}": c for i, c in enumerate(b.consts)}}
    check = _compile(b.terms, b.consts) if b.terms and not b.unguardable else None
    return Guards(check, tuple(b.terms), tuple(b.unguardable), tuple(b.rngs), namespace)


def _raw(obj, skip=16):
    """The bytes of ``obj``'s own C struct past its reference count and type pointer."""
    return ctypes.string_at(id(obj) + skip, type(obj).__basicsize__ - skip)


def _global_states():
    # numpy's get_state and random.getstate copy the whole state into new objects
    # (~30 us); the raw bytes of the objects holding it say the same in ~2 us.  Only
    # equality is used, so a spurious difference would cost a recording, never a result.
    try:
        legacy = np.random.mtrand._rand
        mt = legacy._bit_generator
        return (_raw(legacy), ctypes.string_at(mt.ctypes.state_address, 624 * 4 + 8),
                _raw(random._inst), getattr(random._inst, "gauss_next", None))
    except Exception:  # another numpy layout: the slow, documented way
        state = np.random.get_state(legacy=True)
        return (state[1].tobytes(), state[2:], random.getstate())


def random_state(generators=()):
    """A fingerprint of numpy's and Python's global random state and of ``generators``."""
    parts = [_global_states()]
    for g in generators:
        bit = g if isinstance(g, np.random.BitGenerator) else getattr(g, "bit_generator", None)
        parts.append(pickle.dumps(bit.state if bit is not None else g.get_state(legacy=False)))
    return parts


def warn(message, stacklevel=3):
    warnings.warn(message, TapegradWarning, stacklevel=stacklevel)
