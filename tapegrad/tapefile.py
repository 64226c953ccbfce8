"""The tape file format: a Tape as named plain arrays, versioned and validated on the way in.

A file is an ``.npz`` archive (``numpy.savez``) of these arrays, read back with
``allow_pickle=False``; nothing in it is ever unpickled or imported.  Pickling a Tape
goes through the same encoding (:func:`encode`) and the same checks (:func:`decode`).

==============  ===========================================================================
``format``      the string ``"tapegrad-tape"``
``version``     the format version, an integer (this module writes and reads ``VERSION``)
``sha256``      32 bytes: sha256 of every other array (name, dtype, shape, bytes), so a
                damaged file is refused even where the damage would still look like a tape
``op_names``    the names of the ops the tape uses; ``op`` holds positions in this list.
                Names are mapped to this process's op table on load, so tables may differ
                in order; a tape using an op this tapegrad does not have is refused
``op`` (int16), ``out`` (int32, -1: no output), ``arg_start`` ``iarg`` (int64): the entries
``offset`` (int64), ``ndim`` ``kind`` (int8), ``base`` (int32): the nodes
``args`` (int32): the operand lists; ``floats`` (float64): the float attributes
``ints`` ``shapes`` (int64), ``values`` (float64): the arenas; ``inputs`` (int64)
``interface``   UTF-8 JSON (as uint8) of the argument description: ``output``,
                ``in_tree``, ``specs``, ``leaf_arg``, ``argnums``, ``argnums_is_int``,
                ``value_dependent``, ``guard_sites`` (see :mod:`tapegrad.tapeargs`)
==============  ===========================================================================

``need`` and ``live`` are not stored: they are recomputed from the validated columns, and so
are each node's ``size`` and ``shape_start`` (from ``ndim`` and ``shapes``) and the trivial
broadcast patterns of elementwise entries (synthesised by the program, never read).

Version 1 (int64 columns ``a``, ``b``, ``p``, ``q``, ``size``, ``shape_start``) is refused
with a message that asks to record the tape again.

Invariants
----------
* Loading never runs a kernel, and never builds a Tape, before :func:`tapecheck.validate`
  has accepted every column; every way a file can be wrong (foreign, truncated, damaged,
  tampered with, another version) is a ``ValueError`` whose message starts with
  ``"not a valid tapegrad tape:"``, except a file from a newer tapegrad, which says so.
* A new format version bumps ``VERSION``; a reader keeps reading the older versions it can
  (version 1 cannot be: its columns are gone).
"""
import contextlib
import hashlib
from dataclasses import fields

import numpy as np

import tapegrad.jit as J
from tapegrad import tapeargs
from tapegrad.tapecheck import invalid, validate

FORMAT, VERSION = "tapegrad-tape", 2

ENTRY_COLUMNS = {"op": np.int16, "out": np.int32, "arg_start": np.int64, "iarg": np.int64}
NODE_COLUMNS = {"offset": np.int64, "ndim": np.int8, "kind": np.int8, "base": np.int32}
ARENAS = {"args": np.int32, "floats": np.float64, "ints": np.int64, "shapes": np.int64,
          "values": np.float64}
ARRAYS = {**ARENAS, "inputs": np.int64}
STORED = {**ENTRY_COLUMNS, **NODE_COLUMNS, **ARRAYS}  # Tape fields that go into the file
KEYS = {"format", "version", "sha256", "op_names", "interface", *STORED}
# Tape fields the format recomputes instead of storing
DERIVED = {"need", "live"}

__all__ = ["FORMAT", "VERSION", "checksum", "encode", "decode", "save", "read", "validate"]


def checksum(state):
    """The ``sha256`` entry of an encoded tape: a digest of all its other arrays."""
    h = hashlib.sha256()
    for name in sorted(state):
        if name != "sha256":
            arr = np.ascontiguousarray(state[name])
            h.update(f"{name}|{arr.dtype.str}|{arr.shape}|".encode())
            h.update(arr.tobytes())
    return np.frombuffer(h.digest(), np.uint8)


def encode(tape):
    """The tape as a dict of plain numpy arrays: the contents of its file, and its pickled
    state.  Raises ValueError if the tape holds a baked-in value the format cannot store."""
    known = set(STORED) | set(tapeargs.FIELDS) | DERIVED
    unknown = [f.name for f in fields(tape) if f.name not in known]
    if unknown:
        raise ValueError(f"cannot save this tape: the file format has no place for Tape "
                         f"field(s) {', '.join(unknown)}")
    used = np.unique(tape.op)
    position = np.zeros(len(J.OPS), np.int16)
    position[used] = np.arange(len(used))
    state = {"format": np.array(FORMAT), "version": np.array(VERSION, np.int64),
             "op_names": np.array([J.NAMES[c] for c in used], dtype=str).reshape(-1),
             "interface": np.frombuffer(tapeargs.dumps(tape).encode(), np.uint8)}
    for name, dtype in STORED.items():
        state[name] = np.ascontiguousarray(getattr(tape, name), dtype=dtype)
    state["op"] = position[tape.op]
    state["sha256"] = checksum(state)
    return state


def save(tape, path):
    """Write ``tape`` to ``path`` (a name or a binary file object) as an ``.npz`` archive."""
    state = encode(tape)
    if hasattr(path, "write"):
        np.savez(path, **state)
        return
    with open(path, "wb") as f:  # a file object: numpy would append .npz to a name
        np.savez(f, **state)


def read(path):
    """The keyword arguments of ``Tape.from_recording`` for the tape saved at ``path`` (a
    name or a binary file object), validated.  OSError if the file cannot be opened;
    ValueError if it is not a valid tape."""
    with (contextlib.nullcontext(path) if hasattr(path, "read") else open(path, "rb")) as f:
        try:
            data = np.load(f, allow_pickle=False)
        except Exception as err:
            raise invalid(f"not an .npz archive ({type(err).__name__}: {err})") from None
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise invalid("a single .npy array, not an .npz archive of a tape")
        with data:
            try:
                state = {name: data[name] for name in data.files}
            except Exception as err:
                raise invalid(f"damaged archive ({type(err).__name__}: {err})") from None
    return decode(state)


def _scalar(state, name, kind):
    arr = state[name]
    if not isinstance(arr, np.ndarray) or arr.shape != () or arr.dtype.kind not in kind:
        raise invalid(f"'{name}' is not a scalar")
    return arr.item()


def _column(state, name, dtype):
    arr = state[name]
    if not isinstance(arr, np.ndarray) or arr.ndim != 1:
        raise invalid(f"'{name}' is not a one-dimensional array")
    want = np.dtype(dtype)
    if arr.dtype.kind != want.kind or arr.dtype.itemsize != want.itemsize:
        raise invalid(f"'{name}' has dtype {arr.dtype}, expected {want}")
    return np.ascontiguousarray(arr, dtype=want)  # native byte order, owned, contiguous


def decode(state):
    """The keyword arguments of ``Tape.from_recording`` for an encoded tape (see
    :func:`encode`), after checking all of it; ValueError if it is not a valid tape."""
    if not isinstance(state, dict):
        raise invalid("the state is not a dict of arrays")
    if "format" not in state:
        raise invalid("no 'format' entry (not a tape file, or one saved by a tapegrad "
                      "older than format version 1: record it again)")
    if _scalar(state, "format", "U") != FORMAT:
        raise invalid(f"format is {_scalar(state, 'format', 'U')!r}, not {FORMAT!r}")
    if "version" not in state:
        raise invalid("no 'version' entry")
    version = _scalar(state, "version", "iu")
    if version > VERSION:
        raise ValueError(f"this tape was written by a newer tapegrad, format version {version}; "
                         f"this tapegrad reads format version {VERSION} and older")
    if version == 1:
        raise invalid("format version 1 (written by an older tapegrad, whose columns this "
                      "tapegrad no longer reads): record the tape again and save it anew")
    if version not in _DECODERS:
        raise invalid(f"unknown format version {version}")
    if any(not isinstance(v, np.ndarray) or v.dtype.hasobject for v in state.values()):
        raise invalid("an entry is not a plain array")
    digest = state.get("sha256")
    if digest is None or digest.dtype != np.uint8 or not np.array_equal(digest, checksum(state)):
        raise invalid("checksum mismatch (the file is damaged)" if digest is not None
                      else "missing entries ['sha256']")
    return _DECODERS[version](state)


def _decode_v2(state):
    missing, extra = sorted(KEYS - set(state)), sorted(set(state) - KEYS)
    if missing or extra:
        raise invalid(f"missing entries {missing}" if missing else f"unexpected entries {extra}")
    entries = {name: _column(state, name, dtype) for name, dtype in ENTRY_COLUMNS.items()}
    nodes = {name: _column(state, name, dtype) for name, dtype in NODE_COLUMNS.items()}
    arrays = {name: _column(state, name, dtype) for name, dtype in ARRAYS.items()}
    for group, columns in (("entry", entries), ("node", nodes)):
        if len({len(c) for c in columns.values()}) != 1:
            raise invalid(f"the {group} columns differ in length")
    names = state["op_names"]
    if not isinstance(names, np.ndarray) or names.ndim != 1 or (names.size and names.dtype.kind != "U"):
        raise invalid("'op_names' is not an array of strings")
    names = names.tolist()
    if len(set(names)) != len(names):
        raise invalid("'op_names' repeats a name")
    op = entries["op"]
    if np.any((op < 0) | (op >= len(names))):
        raise invalid("an opcode is not a position in 'op_names'")
    unknown = sorted(set(names[int(c)] for c in np.unique(op)) - set(J.CODES))
    if unknown:
        raise invalid(f"it uses op(s) {', '.join(unknown)}, which this tapegrad does not "
                      "have (written by another version?)")
    entries["op"] = np.array([J.CODES.get(name, -1) for name in names], np.int16)[op]
    meta = tapeargs.loads(_column(state, "interface", np.uint8).tobytes(), len(nodes["kind"]))
    inputs = arrays.pop("inputs")
    derived = validate(entries, nodes, arrays, inputs, meta["output"])
    tapeargs.check_inputs(meta, inputs, {**nodes, **derived}, arrays["shapes"])
    return dict(columns=dict(entries=entries, nodes=nodes, **arrays), inputs=inputs, **meta)


# format version -> reader; a new version adds its reader here and keeps the old ones
# (version 1 is refused above: its tapes must be recorded again)
_DECODERS = {2: _decode_v2}
