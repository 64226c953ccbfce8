"""A tape's argument description as JSON, for its file: no pickle, no import on load.

The description is ``output``, ``in_tree`` (the pytree treedef of the arguments),
``specs`` (one per argument leaf: ``("f", shape, dtype, kind)`` traced or ``("s", key)``
baked in), ``leaf_arg``, ``argnums``, ``argnums_is_int``, ``value_dependent`` and ``guard_sites``
(``[entry, file, line, source text]`` per guard entry: for messages only; absent from
files written before guards existed).

JSON has no tuples, bytes, exact floats or types, so values are tagged:

* ``null``, ``true``/``false``, integers and strings are themselves;
* ``{"tuple": [...]}``, ``{"frozenset": [...]}``, ``{"bytes": base64}``,
  ``{"float": float.hex()}`` (exact: -0.0, inf and NaN survive), ``{"complex": [re, im]}``,
  ``{"type": name}`` for the builtin value types of static keys.

Treedef nodes are lists: ``"*"``, ``["none"]``, ``["tuple", children]``, ``["list",
children]``, ``["dict", keys, children]``, ``["namedtuple", class, children]``,
``["dataclass", class, field_names, children]``.  A class is ``{"module", "qualname",
"fields"}``; loading finds it only among modules already imported (``sys.modules``, looked
up without ``getattr`` hooks) and only if its fields match.  Otherwise a namedtuple becomes
a plain namedtuple with the same fields, and a dataclass is an error that says which module
to import.

Static keys (``tapegrad.keys.static_key``) are stored if made of the values above, arrays
and numpy scalars (as dtype and bytes); any other baked-in value (an object keyed by
identity, a user class) cannot be saved: :func:`dumps` raises ValueError naming it.
"""
import base64
import dataclasses
import json
import sys
from collections import namedtuple

import numpy as np

from tapegrad.tapecheck import invalid

FIELDS = ("output", "in_tree", "specs", "leaf_arg", "argnums", "argnums_is_int", "value_dependent",
          "guard_sites")  # guard_sites: absent from files written before guards existed
_TYPES = {t.__name__: t for t in (bool, int, float, complex, str, bytes, type(None), tuple, list,
                                  dict, frozenset)}
_SPEC_KINDS = ("float", "array", "scalar")
_MAX_NDIM = 64


class _Unsavable(Exception):
    pass


# --- encoding ---------------------------------------------------------------------------

def _value(x):
    t = type(x)
    if x is None or t in (bool, int, str):
        return x
    if t is float:
        return {"float": x.hex()}
    if t is complex:
        return {"complex": [x.real.hex(), x.imag.hex()]}
    if t is bytes:
        return {"bytes": base64.b64encode(x).decode()}
    if t is tuple:
        return {"tuple": [_value(c) for c in x]}
    if t is frozenset:
        return {"frozenset": [_value(c) for c in x]}
    if isinstance(x, type) and _TYPES.get(x.__name__) is x:
        return {"type": x.__name__}
    raise _Unsavable(f"{t.__name__} {x!r}"[:200])


def _class(cls, fields):
    return {"module": cls.__module__, "qualname": cls.__qualname__, "fields": list(fields)}


def _tree(d):
    if d == "*":
        return d
    kind = d[0]
    if kind == "none":
        return ["none"]
    if kind in ("tuple", "list"):
        return [kind, [_tree(c) for c in d[1]]]
    if kind == "dict":
        return [kind, [_value(k) for k in d[1]], [_tree(c) for c in d[2]]]
    if kind == "namedtuple":
        return [kind, _class(d[1], d[1]._fields), [_tree(c) for c in d[2]]]
    if kind == "dataclass":
        if _resolve(_class(d[1], d[2]), _dataclass_fits) is None:
            raise _Unsavable(f"dataclass {d[1].__qualname__} (it could not be found again by "
                             "module and name when loading: define it at the top level of a module)")
        return [kind, _class(d[1], d[2]), list(d[2]), [_tree(c) for c in d[3]]]
    raise _Unsavable(f"argument structure node {kind!r}")


def _spec(i, spec, leaf_arg):
    if spec[0] == "f":
        return ["f", list(spec[1]), spec[2], spec[3]]
    if spec[1] is None:
        raise ValueError(f"cannot save this tape: leaf {i} of argument {leaf_arg[i]} is a value "
                         "without a key (an object whose contents the tape cannot check) baked "
                         "into the tape")
    try:
        return ["s", _value(spec[1])]
    except _Unsavable as err:
        raise ValueError(f"cannot save this tape: leaf {i} of argument {leaf_arg[i]} holds a "
                         f"value baked into the tape that the file format cannot store: {err}") from None


def dumps(tape):
    """The argument description of ``tape`` as a JSON string."""
    try:
        tree = _tree(tape.in_tree)
    except _Unsavable as err:
        raise ValueError(f"cannot save this tape: its arguments contain {err}") from None
    doc = {"output": int(tape.output), "in_tree": tree,
           "specs": [_spec(i, s, tape.leaf_arg) for i, s in enumerate(tape.specs)],
           "leaf_arg": [int(k) for k in tape.leaf_arg], "argnums": [int(k) for k in tape.argnums],
           "argnums_is_int": bool(tape.argnums_is_int), "value_dependent": bool(tape.value_dependent),
           "guard_sites": [[int(e), str(name), int(line), str(text)]
                           for e, name, line, text in tape.guard_sites]}
    return json.dumps(doc, allow_nan=False, separators=(",", ":"))


# --- decoding: everything is untrusted ----------------------------------------------------

def _need(ok, what):
    if not ok:
        raise invalid(f"argument description: {what}")


def _int(x, what):
    _need(type(x) is int, f"{what} is not an integer")
    return x


def _hex_float(s):
    _need(type(s) is str, "a float is not a hex string")
    try:
        return float.fromhex(s)
    except (ValueError, OverflowError):
        raise invalid("argument description: a float is not a hex string") from None


def _unvalue(x):
    if x is None or type(x) in (bool, int, str):
        return x
    _need(type(x) is dict and len(x) == 1, "a value is neither plain nor tagged")
    (tag, body), = x.items()
    if tag == "float":
        return _hex_float(body)
    if tag == "complex":
        _need(type(body) is list and len(body) == 2, "a complex is not [re, im]")
        return complex(_hex_float(body[0]), _hex_float(body[1]))
    if tag == "bytes":
        _need(type(body) is str, "bytes are not base64 text")
        try:
            return base64.b64decode(body.encode("ascii"), validate=True)
        except (ValueError, UnicodeEncodeError):
            raise invalid("argument description: bytes are not base64 text") from None
    if tag in ("tuple", "frozenset"):
        _need(type(body) is list, f"a {tag} is not a list")
        items = [_unvalue(c) for c in body]
        try:
            return tuple(items) if tag == "tuple" else frozenset(items)
        except TypeError:
            raise invalid("argument description: a frozenset holds an unhashable value") from None
    if tag == "type":
        _need(body in _TYPES, f"unknown value type {body!r}")
        return _TYPES[body]
    raise invalid(f"argument description: unknown value tag {tag!r}")


def _namedtuple_fits(cls, fields):
    return issubclass(cls, tuple) and getattr(cls, "_fields", None) == fields


def _dataclass_fits(cls, fields):
    return dataclasses.is_dataclass(cls) and tuple(f.name for f in dataclasses.fields(cls)) == fields


def _resolve(desc, fits):
    """The class named by ``desc`` if it is already imported and ``fits`` its fields."""
    obj = sys.modules.get(desc["module"])
    for part in desc["qualname"].split("."):
        namespace = getattr(obj, "__dict__", None)  # no getattr: no lazy-import hooks
        obj = namespace.get(part) if isinstance(namespace, (dict, type(type.__dict__))) else None
    return obj if isinstance(obj, type) and fits(obj, tuple(desc["fields"])) else None


def _unclass(x):
    _need(type(x) is dict and set(x) == {"module", "qualname", "fields"}, "a class is not described")
    _need(type(x["module"]) is str and type(x["qualname"]) is str, "a class name is not text")
    fields = x["fields"]
    _need(type(fields) is list and all(type(f) is str and f.isidentifier() for f in fields),
          "a class's fields are not identifiers")
    return x


def _untree(x):
    if x == "*":
        return x
    _need(type(x) is list and x and type(x[0]) is str, "a structure node is not a tagged list")
    kind, n = x[0], len(x)
    if kind == "none" and n == 1:
        return ("none",)
    if kind in ("tuple", "list") and n == 2 and type(x[1]) is list:
        return (kind, tuple(_untree(c) for c in x[1]))
    if kind == "dict" and n == 3 and type(x[1]) is list and type(x[2]) is list and len(x[1]) == len(x[2]):
        keys = tuple(_unvalue(k) for k in x[1])
        return (kind, keys, tuple(_untree(c) for c in x[2]))
    if kind == "namedtuple" and n == 3 and type(x[2]) is list:
        desc = _unclass(x[1])
        _need(len(desc["fields"]) == len(x[2]), "a namedtuple's fields and children differ in number")
        cls = _resolve(desc, _namedtuple_fits) or _plain_namedtuple(desc)
        return (kind, cls, tuple(_untree(c) for c in x[2]))
    if kind == "dataclass" and n == 4 and type(x[2]) is list and type(x[3]) is list:
        desc = _unclass(x[1])
        _need(x[2] == desc["fields"] and len(x[2]) == len(x[3]), "a dataclass's fields do not match")
        cls = _resolve(desc, _dataclass_fits)
        if cls is None:
            raise ValueError(f"this tape's arguments include the dataclass {desc['qualname']} of "
                             f"module {desc['module']}, with fields {tuple(desc['fields'])}, which is "
                             "not defined in this process: import that module before loading the tape")
        return (kind, cls, tuple(desc["fields"]), tuple(_untree(c) for c in x[3]))
    raise invalid(f"argument description: unknown structure node {kind!r}")


def _plain_namedtuple(desc):
    name = desc["qualname"].rpartition(".")[2]
    try:
        return namedtuple(name if name.isidentifier() else "Record", desc["fields"])
    except ValueError as err:
        raise invalid(f"argument description: {err}") from None


def _unspec(x):
    _need(type(x) is list and x and x[0] in ("f", "s"), "a leaf spec is not 'f' or 's'")
    if x[0] == "s":
        _need(len(x) == 2, "a static spec is not ['s', key]")
        key = _unvalue(x[1])
        _need(key is not None, "a static spec has no key")
        return ("s", key)
    _need(len(x) == 4 and type(x[1]) is list and len(x[1]) <= _MAX_NDIM, "a traced spec is not ['f', shape, dtype, kind]")
    shape = tuple(_int(d, "a dimension") for d in x[1])
    _need(all(d >= 0 for d in shape), "a negative dimension")
    _need(type(x[2]) is str and x[3] in _SPEC_KINDS, "a traced spec's dtype or kind is wrong")
    try:
        dtype = np.dtype(x[2])
    except Exception:  # numpy parses some strings as code (SyntaxError), others TypeError
        raise invalid(f"argument description: unknown dtype {x[2]!r}") from None
    _need(dtype.kind == "f" and dtype.str == x[2], f"dtype {x[2]!r} is not a float dtype")
    _need(x[3] == "array" or shape == (), "a scalar spec has a shape")
    _need(x[3] != "float" or dtype == np.float64, "a Python float spec is not float64")
    return ("f", shape, x[2], x[3])


def _leaf_args(tree):
    """leaf_arg as the tree implies it: the argument each leaf lies in."""
    out = []
    for k, child in enumerate(tree[1]):
        out += [k] * _count_leaves(child)
    return tuple(out)


def _count_leaves(d):
    if d == "*":
        return 1
    return sum(_count_leaves(c) for c in d[-1]) if d[0] != "none" else 0


def _reject_constant(name):
    raise ValueError(f"non-standard JSON constant {name}")


def loads(data, n_nodes):
    """The argument description from its JSON bytes, checked for consistency; ValueError
    ``"not a valid tapegrad tape: ..."`` if it is malformed."""
    try:
        doc = json.loads(data.decode("utf-8"), parse_constant=_reject_constant,
                         parse_float=lambda s: _reject_constant(s))
    except (ValueError, RecursionError) as err:
        raise invalid(f"argument description is not JSON ({err})"[:300]) from None
    _need(type(doc) is dict and set(doc) | {"guard_sites"} == set(FIELDS), "wrong fields")
    sites = _list(doc.get("guard_sites", []))
    _need(all(type(site) is list and [type(v) for v in site] == [int, str, int, str]
              for site in sites), "guard_sites are not (entry, file, line, text)")
    sites = tuple(tuple(site) for site in sites)
    try:
        tree = _untree(doc["in_tree"])
        specs = tuple(_unspec(s) for s in _list(doc["specs"]))
        _need(tree != "*" and tree[0] == "tuple", "the arguments are not a tuple")
        implied = _leaf_args(tree)
    except RecursionError:
        raise invalid("argument description: nested too deeply") from None
    leaf_arg = tuple(_int(k, "leaf_arg") for k in _list(doc["leaf_arg"]))
    _need(leaf_arg == implied and len(specs) == len(leaf_arg), "leaves do not match the structure")
    argnums = tuple(_int(k, "argnums") for k in _list(doc["argnums"]))
    _need(argnums and len(set(argnums)) == len(argnums) and all(0 <= k < len(tree[1]) for k in argnums),
          "argnums are not distinct argument positions")
    _need(type(doc["argnums_is_int"]) is bool and (len(argnums) == 1 or not doc["argnums_is_int"]),
          "argnums_is_int is wrong")
    _need(type(doc["value_dependent"]) is bool, "value_dependent is not a bool")
    _need(all(s[0] == "f" for s, k in zip(specs, leaf_arg) if k in argnums),
          "a differentiated argument has a leaf that is not traced")
    output = _int(doc["output"], "output")
    _need(0 <= output < n_nodes, "output is not a node")
    return dict(output=output, in_tree=tree, specs=specs, leaf_arg=leaf_arg, argnums=argnums,
                argnums_is_int=doc["argnums_is_int"], value_dependent=doc["value_dependent"],
                guard_sites=sites)


def _list(x):
    _need(type(x) is list, "a list was expected")
    return x


def check_inputs(meta, inputs, nodes, shapes):
    """One input node per traced leaf, with the leaf's shape (validated nodes)."""
    traced = [s for s in meta["specs"] if s[0] == "f"]
    _need(len(traced) == len(inputs), f"{len(traced)} traced leaves but {len(inputs)} inputs")
    for spec, node in zip(traced, inputs):
        start, ndim = nodes["shape_start"][node], nodes["ndim"][node]
        _need(tuple(int(d) for d in shapes[start:start + ndim]) == spec[1],
              f"input node {int(node)} does not have the shape {spec[1]} of its argument")
