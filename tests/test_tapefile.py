"""Tape files: round trips, and damaged, tampered and foreign files.

Damaged files are loaded, and if they load replayed and differentiated, in a subprocess
(:data:`WORKER`), so that a crash of a kernel (which runs without bounds checks) fails a
test instead of killing the run.  Many files go to one subprocess; the worker prints one
JSON line per file and the name of each file before touching it, so a crash names it.
"""
import copy
import dataclasses
import io
import json
import pickle
import subprocess
import sys
import textwrap
import zipfile
from collections import namedtuple

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.jit as J
import tapegrad.numpy as tnp
from tapegrad import pytree, tapeargs, tapefile

Params = namedtuple("Params", "W b")


@dataclasses.dataclass
class Layer:
    W: np.ndarray
    b: np.ndarray


def mixed(x, W, idx, scale):
    """Every op of the table, aliases, constants, broadcasts and a static integer array."""
    h = tnp.tanh(x[1:] @ W) + tnp.sin(x[:2]) * tnp.cos(x[1:]) - tnp.exp(-x[0]) / (1.0 + x[2] ** 2)
    h = tnp.maximum(h, tnp.sigmoid(x[1:])) ** x[:2] + tnp.sqrt(x[1:] * x[1:] + 1.0)
    g = x[idx] + tnp.log(1.0 + x[1:] ** 2) + tnp.log1p(x[:2] ** 2)
    M = W.T @ W + np.ones((2, 2)) + W * x[:2].reshape(2, 1) + (W + x[1:])
    return (tnp.sum(h * g) * scale + tnp.max(M) + tnp.sum(tnp.logsumexp(M, axis=0))
            + tnp.sum(tnp.softmax(M, axis=1)[0] * tnp.mean(M, axis=1))
            + tnp.sum(tnp.where(np.array([True, False]), g, h))
            + tnp.sum(tnp.cumprod(tnp.cumsum(g)) * tnp.concatenate([g, h, np.ones(1)])[1:3]))


def mixed_args(rng):
    return rng.normal(size=3), rng.normal(size=(2, 2)), np.array([2, 0]), 1.5


def mlp(params, x, y):
    h = x
    for layer in params[:-1]:
        h = tnp.sigmoid(h @ layer["W"] + layer["b"])
    logits = h @ params[-1]["W"] + params[-1]["b"]
    return tnp.mean(tnp.logsumexp(logits, axis=1) - tnp.sum(logits * y, axis=1))


def mlp_args(rng):
    params = [{"W": rng.normal(size=(4, 5)), "b": rng.normal(size=5)},
              {"W": rng.normal(size=(5, 3)), "b": rng.normal(size=3)}]
    return params, rng.normal(size=(6, 4)), np.eye(3)[rng.integers(0, 3, size=6)]


def params_fn(p, x):
    return tnp.sum(tnp.tanh(x @ p.W + p.b))


def layer_fn(layer, x):
    return tnp.sum(tnp.tanh(x @ layer.W + layer.b))


CASES = {"mixed": (mixed, mixed_args), "mlp": (mlp, mlp_args),
         "namedtuple": (params_fn, lambda rng: (Params(rng.normal(size=(3, 2)), rng.normal(size=2)),
                                                rng.normal(size=(4, 3)))),
         "dataclass": (layer_fn, lambda rng: (Layer(rng.normal(size=(3, 2)), rng.normal(size=2)),
                                              rng.normal(size=(4, 3))))}


def record(case, seed=0):
    f, make = CASES[case]
    return tg.record(f, *make(np.random.default_rng(seed))), make


def assert_same_tree(a, b):
    la, ta = pytree.flatten(a)
    lb, tb = pytree.flatten(b)
    assert ta == tb
    for u, v in zip(la, lb):
        assert type(u) is type(v) and np.shape(u) == np.shape(v)
        np.testing.assert_array_equal(u, v)


def roundtrip_file(tape, tmp_path):
    path = tmp_path / "t.npz"
    tape.save(path)
    return tg.Tape.load(path)


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


# --- damaged, tampered and foreign files, in subprocesses ---------------------------------

WORKER = textwrap.dedent("""
    import json, pickle, sys
    import numpy as np
    import tapegrad as tg
    from tapegrad import pytree

    def results(tape, args):
        value, grad = tape.value_and_gradient(*args)
        return [value] + pytree.flatten(grad)[0]

    def same(u, v):
        return len(u) == len(v) and all(np.shape(a) == np.shape(b) and
                                        np.array_equal(a, b, equal_nan=True) for a, b in zip(u, v))

    manifest = json.load(open(sys.argv[1]))
    refs = {}
    for item in manifest:
        print("LOADING " + item["file"], file=sys.stderr, flush=True)
        with open(item["args"], "rb") as f:
            args = pickle.load(f)
        if item["original"] not in refs:
            refs[item["original"]] = results(tg.Tape.load(item["original"]), args)
        try:
            tape = tg.Tape.load(item["file"])
        except ValueError as err:
            outcome, msg = "invalid", str(err)
        except Exception as err:
            outcome, msg = "error", f"{type(err).__name__}: {err}"
        else:
            try:
                got = results(tape, args)
                outcome, msg = ("equal" if same(got, refs[item["original"]]) else "different"), ""
            except (ValueError, TypeError) as err:
                outcome, msg = "call-error", f"{type(err).__name__}: {err}"
            except Exception as err:
                outcome, msg = "error", f"{type(err).__name__}: {err}"
        print(json.dumps({"file": item["file"], "outcome": outcome, "msg": msg[:300]}), flush=True)
""")

ALLOWED = {"invalid": {"invalid"}, "equal": {"equal"}, "invalid_or_equal": {"invalid", "equal"},
           # a tampered file that passes validation is a different tape: it must not crash
           "safe": {"invalid", "equal", "different", "call-error"}}


class Files:
    """Damaged variants of saved tapes, and what loading each must give."""

    def __init__(self, folder):
        self.folder, self.items, self.originals = folder, [], {}
        folder.mkdir(exist_ok=True)

    def original(self, case, seed=0):
        if case not in self.originals:
            tape, make = record(case, seed)
            path = self.folder / f"{case}.npz"
            tape.save(path)
            args_path = self.folder / f"{case}.args"
            args_path.write_bytes(pickle.dumps(make(np.random.default_rng(seed + 1))))
            self.originals[case] = (tape, path, args_path)
        return self.originals[case]

    def state(self, case):
        with np.load(self.original(case)[1], allow_pickle=False) as data:
            return {k: data[k].copy() for k in data.files}

    def add_bytes(self, case, name, blob, expect):
        path = self.folder / f"{case}-{len(self.items)}-{name}.npz"
        path.write_bytes(blob)
        _, original, args = self.original(case)
        self.items.append({"file": str(path), "original": str(original), "args": str(args),
                           "expect": expect, "what": f"{case}: {name}"})

    def add_state(self, case, name, state, expect, reseal=True):
        if reseal and "sha256" in state:
            state["sha256"] = tapefile.checksum(state)
        buf = io.BytesIO()
        np.savez(buf, **state)
        self.add_bytes(case, name, buf.getvalue(), expect)

    def run(self, worker=WORKER):
        manifest = self.folder / "manifest.json"
        manifest.write_text(json.dumps(self.items))
        proc = subprocess.run([sys.executable, "-c", worker, str(manifest)], capture_output=True,
                              text=True, timeout=240)
        lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        last = [l for l in proc.stderr.splitlines() if l.startswith("LOADING")][-1:]
        assert proc.returncode == 0, f"worker died ({proc.returncode}) at {last}: {proc.stderr[-2000:]}"
        assert len(lines) == len(self.items)
        wrong = [(item["what"], line["outcome"], line["msg"]) for item, line in zip(self.items, lines)
                 if line["outcome"] not in ALLOWED[item["expect"]]]
        assert not wrong, f"{len(wrong)} of {len(lines)} files: {wrong[:10]}"
        return lines


def _flip(arr, rng):
    """A copy of ``arr`` with one random bit flipped."""
    raw = bytearray(np.ascontiguousarray(arr).tobytes())
    i = int(rng.integers(len(raw)))
    raw[i] ^= 1 << int(rng.integers(8))
    return np.frombuffer(bytes(raw), arr.dtype).reshape(arr.shape)


COLUMNS = sorted(set(tapefile.STORED) | {"interface", "op_names"})


def test_bit_flips_truncations_and_foreign_files(tmp_path):
    files, rng = Files(tmp_path / "damaged"), np.random.default_rng(7)
    for case in ("mixed", "mlp"):
        blob = files.original(case)[1].read_bytes()
        files.add_bytes(case, "intact", blob, "equal")
        for cut in (0, 1, 21, 100, len(blob) // 3, len(blob) // 2, len(blob) - 30, len(blob) - 1):
            files.add_bytes(case, f"truncated at {cut}", blob[:cut], "invalid")
        for i in range(40):  # damage anywhere in the archive: zip CRCs, headers, our checksum
            raw = bytearray(blob)
            raw[int(rng.integers(len(raw)))] ^= 1 << int(rng.integers(8))
            files.add_bytes(case, f"byte flip {i}", bytes(raw), "invalid_or_equal")
        for name in COLUMNS:  # damage inside each array: the checksum refuses it
            for i in range(3):
                state = files.state(case)
                if state[name].size:
                    state[name] = _flip(state[name], rng)
                    files.add_state(case, f"bit flip in {name} {i}", state, "invalid", reseal=False)
    foreign = io.BytesIO()
    np.savez(foreign, op=np.arange(3), values=np.ones(3))
    files.add_bytes("mixed", "foreign npz", foreign.getvalue(), "invalid")
    npy = io.BytesIO()
    np.save(npy, np.arange(10))
    files.add_bytes("mixed", "plain npy", npy.getvalue(), "invalid")
    files.add_bytes("mixed", "random bytes", rng.bytes(5000), "invalid")
    files.add_bytes("mixed", "empty", b"", "invalid")
    files.add_bytes("mixed", "pickle", pickle.dumps({"op": np.arange(3)}), "invalid")
    text_zip = io.BytesIO()
    with zipfile.ZipFile(text_zip, "w") as z:
        z.writestr("format.npy", "hello")
    files.add_bytes("mixed", "zip of text", text_zip.getvalue(), "invalid")
    files.run()


def test_resealed_bit_flips_never_crash(tmp_path):
    """A random bit flipped in a column with the checksum recomputed (a tampered file):
    refused, or a tape that replays without crashing."""
    files, rng = Files(tmp_path / "tampered"), np.random.default_rng(11)
    for case in ("mixed", "mlp"):
        for name in COLUMNS:
            for i in range(12):
                state = files.state(case)
                if state[name].size:
                    state[name] = _flip(state[name], rng)
                    files.add_state(case, f"resealed flip in {name} {i}", state, "safe")
    lines = files.run()
    assert sum(line["outcome"] == "invalid" for line in lines) > len(lines) // 2


def _tampered(files):
    """(name, edit) pairs: each sets one column of the 'mixed' tape to an out-of-range value."""
    tape, _, _ = files.original("mixed")
    n, nv, e, na = tape.n_nodes, len(tape.values), len(tape), len(tape.args)
    codes = {name: i for i, name in enumerate(files.state("mixed")["op_names"].tolist())}
    first = {name: int(np.flatnonzero(tape.op == J.CODES[name])[0]) for name in codes}
    alias = int(np.flatnonzero(tape.kind == 3)[0])
    const = int(np.flatnonzero(tape.kind == 0)[0])
    owner = int(tape.out[0])
    gather_bound = int(tape.size[tape.operands(first["GATHER"])[0]])
    binary, unary, where = first["MUL"], first["EXP"], first["WHERE"]
    broadcast = int(np.flatnonzero((tape.op == J.CODES["MUL"]) & (tape.iarg >= 0))[0])
    first["MUL"] = broadcast  # its attributes: a stored broadcast pattern

    def at(col, i, v):
        def edit(s):
            s[col] = s[col].copy()
            s[col][i] = v
        return edit

    def attr(op, k, v):
        return at("ints", int(tape.iarg[first[op]]) + k, v)

    def operand(i, k):
        return int(tape.arg_start[i]) + k

    edits = [(f"offset {v}", at("offset", owner, v)) for v in (-1, nv, 2 ** 62, nv - 1)]
    edits += [(f"alias offset {v}", at("offset", alias, v)) for v in (-8, nv, 2 ** 40)]
    edits += [(f"ndim {v}", at("ndim", 1, v)) for v in (-1, 65, 127, 3)]
    edits += [(f"alias ndim {v}", at("ndim", alias, v)) for v in (0, 2)]
    edits += [(f"shapes {v}", at("shapes", 0, v)) for v in (-3, 2 ** 62, 0, 1000)]
    edits += [(f"kind {v}", at("kind", 1, v)) for v in (-1, 4, 127)]
    edits += [("kind const->input", at("kind", const, 1)), ("kind input->const", at("kind", 0, 0))]
    edits += [(f"base {v}", at("base", alias, v)) for v in (-1, n, alias, n - 1)]
    edits += [("base of an owner", at("base", owner, 0))]
    edits += [(f"out {v}", at("out", e - 1, v)) for v in (-1, n, int(tape.out[e - 2]), 0)]
    edits += [(f"first operand {v}", at("args", operand(e - 1, 0), v))
              for v in (-1, n, int(tape.out[e - 1]), 2 ** 31 - 1)]
    edits += [(f"second operand of binary {v}", at("args", operand(binary, 1), v))
              for v in (-1, n, int(tape.out[binary]))]
    edits += [(f"WHERE operand {k} {v}", at("args", operand(where, k), v))
              for k in range(3) for v in (-1, int(tape.out[where]))]
    edits += [("WHERE condition of another size", at("args", operand(where, 0), 0))]
    edits += [("unary given two operands", at("arg_start", unary + 1, int(tape.arg_start[unary + 1]) + 1)),
              ("binary given one operand", at("arg_start", binary + 1, int(tape.arg_start[binary + 1]) - 1)),
              ("first operand list not at 0", at("arg_start", 0, 1))]
    edits += [(f"arg_start {v}", at("arg_start", e - 1, v)) for v in (-1, na, na + 1, 2 ** 62)]
    edits += [(f"iarg of {op} {v}", at("iarg", first[op], v))
              for op in ("SUM", "MATMUL", "GATHER", "MUL") for v in (-1, len(tape.ints), 2 ** 62, -2 ** 62)]
    edits += [("iarg of a map op", at("iarg", unary, 0)), ("iarg of WHERE", at("iarg", where, 0))]
    edits += [(f"op {v}", at("op", 0, v)) for v in (-1, len(codes), 2 ** 14)]
    edits += [(f"gather index {v}", attr("GATHER", 0, v)) for v in (-1, gather_bound, 2 ** 62)]
    for k, name in enumerate(("d0", "d1", "sa0", "sa1", "sb0", "sb1")):
        edits += [(f"zip {name} {v}", attr("MUL", k, v)) for v in (-1, 2 ** 62, 3, 99)]
    for k, name in enumerate(("m", "k", "n", "batch", "sa", "sb", "ta", "tb")):
        edits += [(f"matmul {name} {v}", attr("MATMUL", k, v)) for v in (-1, 2 ** 31, 2 ** 62, 7)]
    for op in ("SUM", "MAX", "LOGSUMEXP", "SOFTMAX"):
        edits += [(f"{op} block {k} {v}", attr(op, k, v)) for k in range(3) for v in (-1, 0, 2 ** 62)]
    edits += [(f"inputs {v}", at("inputs", 0, v)) for v in (-1, n, const, 3)]
    return edits


def _structural(files):
    """(name, edit) pairs that change a whole array, a key or the argument description."""
    def put(key, value):
        def edit(s):
            s[key] = value
        return edit

    def drop(key):
        def edit(s):
            del s[key]
        return edit

    def args(change):
        def edit(s):
            doc = json.loads(s["interface"].tobytes())
            change(doc)
            s["interface"] = np.frombuffer(json.dumps(doc).encode(), np.uint8)
        return edit

    s = files.state("mixed")
    edits = [(f"missing {k}", drop(k)) for k in sorted(tapefile.KEYS - {"format", "version"})]
    edits += [("extra key", put("extra", np.zeros(1))),
              ("format", put("format", np.array("numpy"))), ("version 0", put("version", np.array(0))),
              ("values short", put("values", s["values"][:-1])),
              ("values long", put("values", np.append(s["values"], 1.0))),
              ("op as float", put("op", s["op"].astype(np.float64))),
              ("op as int64", put("op", s["op"].astype(np.int64))),
              ("out as int64", put("out", s["out"].astype(np.int64))),
              ("kind as int64", put("kind", s["kind"].astype(np.int64))),
              ("base as int64", put("base", s["base"].astype(np.int64))),
              ("args 2-d", put("args", s["args"].reshape(1, -1))), ("arg_start short", put("arg_start", s["arg_start"][:-1])),
              ("args short", put("args", s["args"][:-1])), ("args long", put("args", np.append(s["args"], 0).astype(np.int32))),
              ("floats short", put("floats", s["floats"][:-1])), ("floats long", put("floats", np.append(s["floats"], 1.0))),
              ("ndim short", put("ndim", s["ndim"][:-1])),
              ("offset short", put("offset", s["offset"][:-1])),
              ("ints empty", put("ints", np.zeros(0, np.int64))),
              ("shapes empty", put("shapes", np.zeros(0, np.int64))),
              ("unknown op name", put("op_names", np.array(["FOO"] + s["op_names"].tolist()[1:]))),
              ("repeated op name", put("op_names", np.array([s["op_names"][0]] * len(s["op_names"])))),
              ("op names not strings", put("op_names", np.arange(len(s["op_names"])))),
              ("interface not json", put("interface", np.frombuffer(b"{]", np.uint8))),
              ("interface not utf-8", put("interface", np.frombuffer(b"\xff\xfe", np.uint8)))]
    changes = {
        "output -1": lambda d: d.update(output=-1), "output huge": lambda d: d.update(output=10 ** 9),
        "output float": lambda d: d.update(output=1.5),
        "argnums out of range": lambda d: d.update(argnums=[9]),
        "argnums repeated": lambda d: d.update(argnums=[0, 0]),
        "spec shape": lambda d: d["specs"][0].__setitem__(1, [4]),
        "spec dtype": lambda d: d["specs"][0].__setitem__(2, "<i8"),
        "spec dtype garbage": lambda d: d["specs"][0].__setitem__(2, "zz"),
        "spec kind": lambda d: d["specs"][0].__setitem__(3, "tensor"),
        "spec count": lambda d: d["specs"].pop(),
        "leaf_arg": lambda d: d["leaf_arg"].reverse(),
        "tree tag": lambda d: d["in_tree"].__setitem__(0, "set"),
        "tree leaves": lambda d: d["in_tree"][1].pop(),
        "static key tag": lambda d: d["specs"][2].__setitem__(1, {"pickle": "x"}),
        "static key type": lambda d: d["specs"][2].__setitem__(1, {"tuple": [{"type": "object"}, 1]}),
        "fields": lambda d: d.pop("value_dependent"),
    }
    edits += [(f"args {k}", args(v)) for k, v in changes.items()]

    def deep(s):
        text = json.dumps(dict(json.loads(s["interface"].tobytes()), in_tree="DEEP"))
        s["interface"] = np.frombuffer(text.replace('"DEEP"', "[" * 10 ** 5 + "]" * 10 ** 5).encode(), np.uint8)
    edits.append(("args nested too deeply", deep))
    return edits


def test_tampered_columns_and_descriptions_are_refused(tmp_path):
    files = Files(tmp_path / "tampered")
    for name, edit in _tampered(files) + _structural(files):
        state = files.state("mixed")
        edit(state)
        files.add_state("mixed", name, state, "invalid")
    lines = files.run()
    assert all("not a valid tapegrad tape" in line["msg"] for line in lines)
    assert len(lines) > 150


def test_op_names_map_to_this_table(tmp_path):
    """A file written with another order of the op table replays the same function."""
    files = Files(tmp_path / "renamed")
    for case in ("mixed", "mlp"):
        state = files.state(case)
        names = state["op_names"].tolist()
        order = np.arange(len(names))[::-1]  # the writer's table had the ops reversed
        state["op_names"] = np.array([names[i] for i in order])
        inverse = np.argsort(order)
        state["op"] = inverse[state["op"]].astype(np.int16)
        files.add_state(case, "reversed op table", state, "equal")
        extra = files.state(case)  # names the file lists but does not use are not looked up
        extra["op_names"] = np.array(extra["op_names"].tolist() + ["NOT_AN_OP"])
        files.add_state(case, "unused unknown name", extra, "equal")
        unknown = files.state(case)
        unknown["op_names"] = np.array(["NOT_AN_OP"] + unknown["op_names"].tolist()[1:])
        files.add_state(case, "used unknown name", unknown, "invalid")
    lines = files.run()
    assert "NOT_AN_OP, which this tapegrad does not have" in lines[-1]["msg"]


def test_a_crashing_worker_fails_the_test(tmp_path):
    """The harness itself: a worker that dies is reported with the file it was loading."""
    files = Files(tmp_path / "crash")
    files.add_bytes("mixed", "intact", files.original("mixed")[1].read_bytes(), "equal")
    crash = WORKER.replace("tape = tg.Tape.load(item[\"file\"])", "import os; os.abort()")
    assert crash != WORKER
    with pytest.raises(AssertionError, match="worker died .*intact"):
        files.run(crash)
