"""Damaged, tampered and foreign tape files.

Damaged files are loaded, and if they load replayed and differentiated, in a subprocess
(:data:`WORKER`), so that a crash of a kernel (which runs without bounds checks) fails a
test instead of killing the run.  Many files go to one subprocess; the worker prints one
JSON line per file and the name of each file before touching it, so a crash names it.
"""
import io
import json
import pickle
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

import tapegrad.jit as J
from tapegrad import tapefile
from tape_cases import record


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
