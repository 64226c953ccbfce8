"""Tape files: round trips by file, pickle and copy; exact encoding of the argument
description; the per-op attribute checks; refusal of unsavable values and of other
format versions.  Damaged files are tested in ``test_tapefile_damage``."""
import copy
import dataclasses
import io
import json
import pickle
import sys

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.jit as J
import tapegrad.numpy as tnp
from tapegrad import tapeargs, tapefile
from tape_cases import CASES, Params, assert_same_tree, record, roundtrip_file


# --- round trips -----------------------------------------------------------------------------

@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("how", ["file", "pickle", "deepcopy"])
def test_round_trip_replays_equal(tmp_path, case, how):
    tape, make = record(case)
    loaded = {"file": lambda: roundtrip_file(tape, tmp_path),
              "pickle": lambda: pickle.loads(pickle.dumps(tape)),
              "deepcopy": lambda: copy.deepcopy(tape)}[how]()
    assert str(loaded) == str(tape)
    for name in ("op", "out", "arg_start", "args", "iarg", "floats", "offset", "ndim", "size",
                 "shape_start", "base", "need", "live", "values"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(tape, name))
    assert (loaded.in_tree, loaded.specs, loaded.argnums) == (tape.in_tree, tape.specs, tape.argnums)
    for seed in (1, 2):
        args = make(np.random.default_rng(seed))
        assert loaded.forward(*args) == tape.forward(*args)
        assert_same_tree(loaded.gradient(*args), tape.gradient(*args))


EDGES = {"identity": (lambda x: x, (np.arange(3.0),)),
         "constant output": (lambda x: 5.0, (1.0,)),
         "empty array": (lambda x: tnp.sum(tnp.exp(x)) + tnp.sum(x.reshape(0, 2), axis=0), (np.zeros(0),)),
         "no differentiated leaves used": (lambda x, y: tnp.sum(y * 2.0), (np.ones(2), np.ones(2)))}


@pytest.mark.parametrize("name", sorted(EDGES))
def test_edge_tapes_round_trip(name):
    f, args = EDGES[name]
    tape = tg.record(f, *args)
    buf = io.BytesIO()
    tape.save(buf)
    buf.seek(0)
    loaded = tg.Tape.load(buf)
    assert str(loaded) == str(tape)
    np.testing.assert_array_equal(loaded.forward(*args), tape.forward(*args))
    np.testing.assert_array_equal(loaded.jacobian(*args), tape.jacobian(*args))


def test_file_holds_plain_arrays_only(tmp_path):
    tape, _ = record("mlp")
    tape.save(tmp_path / "t.npz")
    with np.load(tmp_path / "t.npz", allow_pickle=False) as data:
        assert set(data.files) == tapefile.KEYS
        assert all(data[k].dtype != object for k in data.files)
        assert str(data["format"]) == "tapegrad-tape" and int(data["version"]) == 2
        names = data["op_names"].tolist()
        assert {J.NAMES[c] for c in tape.op} == set(names)
        args = json.loads(data["interface"].tobytes())
    assert args["in_tree"][0] == "tuple" and args["argnums"] == [0]


def test_float32_arguments_and_static_leaves_round_trip(tmp_path):
    def f(x, n, idx, flag, label, z, k):
        return tnp.sum(x[idx] ** n) * (2.0 if flag else 1.0) * len(label) + k * 0.0 + tnp.sum(x)

    x = np.arange(1.0, 5.0, dtype=np.float32)
    args = (x, 3, np.array([3, 0, 1]), True, "ab", complex(-0.0, 0.0), np.int16(7))
    tape = tg.record(f, *args)
    loaded = roundtrip_file(tape, tmp_path)
    assert loaded.specs == tape.specs
    g = loaded.gradient(*args)
    assert g.dtype == np.float32
    np.testing.assert_array_equal(g, tape.gradient(*args))
    with pytest.raises(ValueError, match="baked into"):  # -0.0 and 0.0 are different keys
        loaded.gradient(x, 3, np.array([3, 0, 1]), True, "ab", complex(0.0, 0.0), np.int16(7))
    with pytest.raises(ValueError, match="baked into"):
        loaded.gradient(x, 3, np.array([3, 0, 2]), True, "ab", complex(-0.0, 0.0), np.int16(7))


@pytest.mark.parametrize("value", [-0.0, 0.0, float("nan"), float("inf"), 1e-310, 2.5, True, 3,
                                   None, "s", b"\x00\xff", complex(-0.0, -1.5), (1, (2.0, b"")),
                                   frozenset({1, 2}), int, float, type(None), tuple])
def test_values_encode_exactly(value):
    text = json.dumps(tapeargs._value(value))
    back = tapeargs._unvalue(json.loads(text))
    assert type(back) is type(value) and repr(back) == repr(value)


def test_unsavable_static_values_raise_at_save(tmp_path):
    class Config:
        pass

    def f(x, obj):
        return tnp.sum(x)

    for obj, what in ((Config(), "without a key"), (len, "cannot store")):
        tape = tg.record(f, np.ones(2), obj)
        with pytest.raises(ValueError, match=f"cannot save this tape.*{what}"):
            tape.save(tmp_path / "t.npz")
        with pytest.raises(ValueError, match="cannot save"):
            pickle.dumps(tape)
        assert not (tmp_path / "t.npz").exists()


def test_dataclass_defined_in_a_function_cannot_be_saved(tmp_path):
    @dataclasses.dataclass
    class Local:
        w: np.ndarray

    tape = tg.record(lambda p: tnp.sum(p.w), Local(np.ones(2)))
    with pytest.raises(ValueError, match="dataclass .*Local"):
        tape.save(tmp_path / "t.npz")


def _edited_args(tape, edit):
    """The tape's encoded state with its JSON argument description edited, resealed."""
    state = tapefile.encode(tape)
    doc = json.loads(state["interface"].tobytes())
    edit(doc)
    state["interface"] = np.frombuffer(json.dumps(doc).encode(), np.uint8)
    state["sha256"] = tapefile.checksum(state)
    return state


def test_classes_are_found_only_among_imported_modules():
    tape, make = record("namedtuple")

    def rename(doc):  # the namedtuple now lives in a module nobody imported
        doc["in_tree"][1][0][1]["module"] = "no_such_module_tapegrad_test"
    kwargs = tapefile.decode(_edited_args(tape, rename))
    assert "no_such_module_tapegrad_test" not in sys.modules
    fallback = kwargs["in_tree"][1][0][1]
    assert fallback is not Params and fallback.__name__ == "Params" and fallback._fields == ("W", "b")
    loaded = tg.Tape.from_recording(**kwargs)
    params, x = make(np.random.default_rng(3))
    g = loaded.gradient(fallback(*params), x)
    assert type(g) is fallback
    assert_same_tree(tuple(g), tuple(tape.gradient(params, x)))

    dc, _ = record("dataclass")

    def move(doc):
        doc["in_tree"][1][0][1]["module"] = "no_such_module_tapegrad_test"
    with pytest.raises(ValueError, match="dataclass Layer .*import that module"):
        tapefile.decode(_edited_args(dc, move))

    def refield(doc):
        doc["in_tree"][1][0][1]["fields"] = ["W", "c"]
        doc["in_tree"][1][0][2] = ["W", "c"]
    with pytest.raises(ValueError, match="dataclass Layer"):
        tapefile.decode(_edited_args(dc, refield))


def test_newer_and_older_files_say_so(tmp_path):
    tape, _ = record("mixed")
    state = tapefile.encode(tape)
    state["version"] = np.array(3)
    np.savez(tmp_path / "new.npz", **state)
    with pytest.raises(ValueError, match="written by a newer tapegrad, format version 3"):
        tg.Tape.load(tmp_path / "new.npz")
    state["version"] = np.array(1)
    np.savez(tmp_path / "v1.npz", **state)
    with pytest.raises(ValueError, match="not a valid tapegrad tape: format version 1 .*record the tape again"):
        tg.Tape.load(tmp_path / "v1.npz")
    old = {k: v for k, v in state.items() if k not in ("format", "version", "sha256")}
    np.savez(tmp_path / "old.npz", **old, meta=np.frombuffer(pickle.dumps({}), np.uint8))
    with pytest.raises(ValueError, match="not a valid tapegrad tape: no 'format' entry"):
        tg.Tape.load(tmp_path / "old.npz")
    with pytest.raises(FileNotFoundError):
        tg.Tape.load(tmp_path / "missing.npz")


def test_unpickling_validates(no_replay_kernels):
    tape, _ = record("mixed")
    state = tapefile.encode(tape)
    state["args"] = state["args"].copy()
    state["args"][-1] = 10 ** 6
    state["sha256"] = tapefile.checksum(state)
    blank = object.__new__(tg.Tape)
    with pytest.raises(ValueError, match="not a valid tapegrad tape: entry .* operand that is not an earlier node"):
        blank.__setstate__(state)


# (check, ints of one entry, output size, a size, b size (None: one operand), reason or None)
CHECKS = [
    ("elementwise", None, 3, 3, None, None), ("elementwise", None, 3, 2, None, "operand size"),
    ("elementwise", (0,), 3, 3, None, "no integer attributes"),
    ("zip_block", None, 6, 6, 6, None),                       # no pattern: both full size
    ("zip_block", None, 6, 6, 3, "no broadcast pattern"),      # a pattern is never synthesised for b
    ("zip_block", None, 6, 1, 6, "no broadcast pattern"),
    ("same_size", None, 4, 4, 4, None), ("same_size", None, 4, 4, 1, "operand 1 size"),
    ("same_size", (0,), 4, 4, 4, "no integer attributes"),
    ("zip_block", (2, 3, 3, 1, 0, 1), 6, 6, 3, None),        # a full, b a broadcast row
    ("zip_block", (2, 3, 1, 0, 0, 0), 6, 2, 1, None),        # a column, b a scalar
    ("zip_block", (2, 3, 3, 1, 0, 1), 6, 5, 3, "operand a"),  # a one element short
    ("zip_block", (2, 3, 2, 1, 0, 1), 6, 6, 3, "operand a"),  # overlapping rows
    ("zip_block", (2, 3, 3, 2, 0, 1), 6, 6, 3, "operand a"),  # a stride the kernel ignores
    ("zip_block", (2, 2, 2, 1, 0, 1), 6, 6, 3, "block"),
    ("reduce", (2, 3, 4), 8, 24, None, None), ("reduce", (2, 3, 4), 6, 24, None, "pre * post"),
    ("reduce", (2, 0, 4), 8, 0, None, None), ("reduce_nonempty", (2, 0, 4), 8, 0, None, "empty axis"),
    ("reduce", (2, -3, -4), 8, 24, None, "negative"), ("along_axis", (2, 3, 4), 24, 24, None, None),
    ("along_axis", (2, 3, 4), 8, 24, None, "output size"),
    ("matmul", (2, 3, 4, 5, 6, 0, 0, 1), 40, 30, 12, None),
    ("matmul", (2, 3, 4, 5, 5, 0, 0, 0), 40, 30, 12, "batch strides"),
    ("matmul", (2, 3, 4, 5, 6, 0, 2, 0), 40, 30, 12, "transpose flags"),
    ("matmul", (2, 3, 4, 5, 0, 0, 0, 0), 40, 30, 12, "operand a"),
    ("matmul", (2 ** 40, 2 ** 40, 1, 1, 0, 0, 0, 0), 2 ** 40, 1, 2 ** 40, "operand a"),  # m*k overflows
    ("gather", (0, 2, 2), 3, 3, None, None), ("gather", (0, 3, 2), 3, 3, None, "outside its operand"),
    ("gather", (0, -1, 2), 3, 3, None, "outside its operand"), ("gather", (0, 1), 3, 3, None, "ints arena"),
]


@pytest.mark.parametrize("check, attrs, out, a, b, reason", CHECKS)
def test_op_checks(check, attrs, out, a, b, reason):
    ints = np.array([9, 9] + list(attrs or ()), np.int64)
    iarg = np.array([2 if attrs else -1], np.int64)
    sizes = (out, a) if b is None else (out, a, b)
    found = getattr(J.checks, check)(ints, iarg, *(np.array([v], np.int64) for v in sizes))
    assert found is None if reason is None else reason in found[1]


def test_every_op_names_a_check():
    assert all(callable(row.check) for row in J.OPS)
    with pytest.raises(TypeError, match="must name the check"):
        J.optable.Op("NEW", "reduce", 1, None, None, "doc", None)
    with pytest.raises(ValueError, match="unknown family"):
        J.optable.Op("NEW", "array", 1, None, None, "doc", J.checks.gather)
    with pytest.raises(ValueError, match="outputs must be 0 or 1"):
        J.optable.Op("NEW", "map", 1, None, None, "doc", J.checks.elementwise, outputs=2)


def _with_entry_without_output(tape, name, operand, out=-1):
    """The encoded ``tape`` with one more entry: op ``name`` reading ``operand``, writing ``out``."""
    state = tapefile.encode(tape)
    names = state["op_names"].tolist() + [name]
    state["op_names"] = np.array(names)
    state["op"] = np.append(state["op"], len(names) - 1).astype(np.int16)
    state["out"] = np.append(state["out"], out).astype(np.int32)
    state["arg_start"] = np.append(state["arg_start"], len(state["args"]))
    state["iarg"] = np.append(state["iarg"], -1)
    state["args"] = np.append(state["args"], operand).astype(np.int32)
    state["sha256"] = tapefile.checksum(state)
    return state


def test_an_entry_without_output_is_validated_printed_and_replayed(monkeypatch):
    """Any row with ``outputs = 0`` (the guards are such rows): the format, the validator,
    the printer, activity and the program handle such an entry.  Here
    SIN's row is patched to ``outputs = 0`` and one SIN entry reading node 1 is appended."""
    tape = tg.record(lambda x: tnp.exp(x) * 2.0, 0.5)
    state = _with_entry_without_output(tape, "SIN", 1)
    with pytest.raises(ValueError, match="entry 2's output is not a node"):
        tapefile.decode(state)  # SIN writes a node: out = -1 is refused
    def guard_check(ints, iarg, out, a):  # what a guard's check would say: no attributes
        return J.checks.first((iarg != -1, "a guard has no integer attributes"))
    rows = tuple(row._replace(outputs=0, check=guard_check) if row.name == "SIN" else row for row in J.OPS)
    monkeypatch.setattr(J, "OPS", rows)
    loaded = tg.Tape.from_recording(**tapefile.decode(state))
    assert str(loaded).splitlines()[-1] == "2: SIN(1)"
    assert loaded.out.tolist()[-1] == -1 and loaded.operands(2) == (1,)
    assert loaded.live.tolist() == [1, 1, 1] and len(loaded._prog) == 3
    assert loaded.value_and_gradient(0.7) == tape.value_and_gradient(0.7)
    assert "e2 [label=\"2: SIN(1)\", shape=diamond]" in loaded.to_dot() and "n1 -> e2;" in loaded.to_dot()
    with pytest.raises(ValueError, match="entry 2 has an output, but its op writes none"):
        tapefile.decode(_with_entry_without_output(tape, "SIN", 1, out=2))
    with pytest.raises(ValueError, match="entry 2 has an operand that is not an earlier node"):
        tapefile.decode(_with_entry_without_output(tape, "SIN", 3))
