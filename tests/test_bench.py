"""The benchmark runner's pieces, on tiny problems, and one end-to-end run."""
import ast
import json
import os
import pathlib
import shutil
import subprocess
import sys
from dataclasses import fields

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.numpy as tnp
from tapegrad import cli, tapefile
from tapegrad.bench import models as M
from tapegrad.bench import registry, report, timing
from tapegrad.bench import workloads as W
from tapegrad.bench.base import System, Timed, Unsupported
from tapegrad.bench.systems import Numpy, Tapegrad
from tapegrad.bench.timing import OK, SKIPPED, UNSUPPORTED, WRONG, Result


def _fd(f, x, h=1e-6):
    x = np.array(x, dtype=float)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h * max(1.0, abs(x[i]))
        g[i] = (f(x + e) - f(x - e)) / (2 * e[i])
    return g


# --- workload references ----------------------------------------------------------------------

def test_lecture_reference_matches_finite_differences():
    f = lambda x: M.lecture(x, np)
    for x in (-1.3, 0.0, 0.7, 2.0):
        assert np.isclose(W.lecture_derivative(x), _fd(f, x), rtol=1e-7, atol=1e-9)


def test_rosenbrock_reference_matches_finite_differences_and_loop_value():
    x = np.random.default_rng(0).uniform(-1, 1, 7)
    vec = lambda x: M.rosenbrock(x, np)
    assert np.isclose(M.rosenbrock_loop(list(x)), vec(x), rtol=1e-14)
    assert np.isclose(M.rosenbrock_rows(np.stack([x, 2 * x]), np), vec(x) + vec(2 * x), rtol=1e-14)
    np.testing.assert_allclose(W.rosenbrock_grad(x), _fd(vec, x), rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("name", ["einsum", "tensordot", "dot"])
def test_contraction_references_match_finite_differences_and_tapegrad(name):
    p = W.WORKLOADS[name].make("5")
    model = {"einsum": M.einsum_loss, "tensordot": M.tensordot_loss, "dot": M.dot_loss}[name]
    A, B, R = p.data["A"], p.data["B"], p.data["R"]
    np.testing.assert_allclose(p.reference[0], _fd(lambda a: model(a, B, R, np), A), rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(p.reference[1], _fd(lambda b: model(A, b, R, np), B), rtol=1e-7, atol=1e-8)
    for got, want in zip(Tapegrad().prepare(p)(), p.reference):
        np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("name", ["branch-flip", "branch-free"])
def test_branch_references_match_finite_differences_and_tapegrad_flips_between_variants(name):
    p = W.WORKLOADS[name].make("12")
    model = M.branchy if name == "branch-flip" else M.branch_free
    for x, want in zip((p.data["x"], p.data["x2"]), p.reference):
        np.testing.assert_allclose(want, _fd(lambda v: model(v, np), x), rtol=1e-7, atol=1e-8)
    call = Tapegrad().prepare(p)
    for _ in range(3):
        for got, want in zip(call(), p.reference):
            np.testing.assert_allclose(got, want, rtol=1e-12)
    for got, want in zip(Numpy().prepare(p)(), p.reference):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_mlp_reference_matches_finite_differences_of_the_user_style_model():
    params, X, Y = W.mlp_data("5-4-3x6")
    assert [a.shape for a in params] == [(4, 5), (4,), (3, 4), (3,)]  # weights (out, in)

    def loss(k, value):
        p = list(params)
        p[k] = value
        return M.mlp_loss(p, X, Y, np)

    fused = [a.T for a in params]
    assert np.isclose(M.mlp_loss_fused(fused, X, Y, tnp), M.mlp_loss(params, X, Y, np), rtol=1e-13)
    grads = W.mlp_numpy_grad(params, X, Y)
    for k, g in enumerate(grads):
        np.testing.assert_allclose(g, _fd(lambda v: loss(k, v), params[k]), rtol=1e-6, atol=1e-9)


def test_many_points_references():
    p = W.WORKLOADS["many-points"].make("rosenbrock10-1e4")
    assert p.reference.shape == (10_000, 10)
    np.testing.assert_allclose(p.reference[17], W.rosenbrock_grad(p.data["X"][17]))
    got = Numpy().prepare(p)()
    assert timing.max_error(got, p.reference, p.rtol, p.atol) is None


def test_headline_mlp_row_records_the_user_style_model_and_the_extra_row_the_fused_one():
    params, X, Y = W.mlp_data("5-4-3x6")
    user = str(tg.record(lambda p, X, Y: M.mlp_loss(p, X, Y, tnp), params, X, Y))
    fused = str(tg.record(lambda p, X, Y: M.mlp_loss_fused(p, X, Y, tnp), [a.T for a in params], X, Y))
    assert "SIGMOID" not in user and "LOGSUMEXP" not in user and "MAX" in user and "EXP" in user
    assert "SIGMOID" in fused and "LOGSUMEXP" in fused
    systems = registry.all_systems()
    assert systems["tapegrad"].mlp.__func__ is Tapegrad.mlp and not systems["tapegrad-fused"].peer
    assert list(systems)[:2] == ["tapegrad", "numpy"] and list(systems)[-2:] == ["tapegrad-fused", "tapegrad-1thread"]
    # the one-thread row has only the batched workloads, where the thread count matters
    assert [w for w in W.WORKLOADS if systems["tapegrad-1thread"].covers(w)] == ["many-points", "per-example"]
    assert [n for n, s in systems.items() if s.covers("record")] == ["tapegrad", "numpy", "casadi"]


# --- recording cost and size ------------------------------------------------------------------

def test_tape_nbytes_counts_the_stored_arrays_and_program_nbytes_the_derived_ones():
    x = np.linspace(-1, 1, 50)
    tape = tg.record(M.rosenbrock_loop, x)
    state = tapefile.encode(tape)
    stored = sum(state[name].nbytes for name in tapefile.STORED)
    assert tape.nbytes == stored
    derived = {f.name for f in fields(tape) if isinstance(getattr(tape, f.name), np.ndarray)} - set(tapefile.STORED)
    assert derived == {"need", "live"}
    program = tape._prog.nbytes + tape._attrs.nbytes + tape._zero.nbytes + tape._ints.nbytes
    assert program > 0 and tape.program_nbytes > program + tape.need.nbytes + tape.size.nbytes
    assert tg.record(M.rosenbrock_loop, np.linspace(-1, 1, 500)).nbytes > 5 * tape.nbytes


def test_the_stored_scalar_loop_tape_takes_at_most_64_bytes_per_entry():
    tape = tg.record(M.rosenbrock_loop, np.linspace(-1, 1, 10 ** 4))
    assert len(tape) == M.loop_ops(10 ** 4) - 1
    assert tape.nbytes / len(tape) <= 64.0


def test_record_workload_times_recording_and_checks_the_recorded_gradient():
    p = W.WORKLOADS["record"].make("40")
    assert p.scale == M.loop_ops(40) == 8 * 39
    prepared = Tapegrad().prepare(p)
    assert isinstance(prepared, Timed) and prepared.entries == len(tg.record(M.rosenbrock_loop, p.data["x"]))
    assert type(prepared.call()).__name__ == "Tape"
    results = timing.measure(p, [Tapegrad(), Numpy(), _Wrong()], repeats=2, target=1e-4)
    by = {r.system: r for r in results}
    assert set(by) == {"tapegrad", "numpy"}  # a system without a record method has no row
    assert by["tapegrad"].status == OK and by["tapegrad"].nbytes == prepared.nbytes
    lines = report.notes(timing.add_ratios(results))
    assert len(lines) == 2 and "bytes per entry stored" in lines[0] and "in the derived program" in lines[0] and "per operation (312 operations)" in lines[0]
    assert "evaluating the program on floats" in lines[1]
    bad = Timed(lambda: None, lambda: p.reference * 2)
    res, fn = timing.setup(type("Bad", (System,), {"name": "bad", "module": "numpy",
                                                   "record": lambda self, p: bad})(), p)
    assert res.status == WRONG and fn is None


# --- checking and timing ----------------------------------------------------------------------

def test_max_error_reports_wrong_values_and_structure():
    ref = [np.ones(3), np.zeros(2)]
    assert timing.max_error([np.ones(3), np.zeros(2)], ref, 1e-9, 1e-12) is None
    assert "off by" in timing.max_error([np.ones(3) * 1.001, np.zeros(2)], ref, 1e-9, 1e-12)
    assert "shape" in timing.max_error([np.ones(4), np.zeros(2)], ref, 1e-9, 1e-12)
    assert "returned 1" in timing.max_error([np.ones(3)], ref, 1e-9, 1e-12)


class _Missing(System):
    name, module, install = "missing", "no_such_module_for_tapegrad_tests", "pip install nothing"

    def lecture(self, p):
        raise AssertionError("never called: the system is not installed")


class _Wrong(System):
    name, module = "wrong", "numpy"

    def lecture(self, p):
        return lambda: 2.0 * W.lecture_derivative(p.data["x"])


class _Fails(System):
    name, module = "fails", "numpy"

    def lecture(self, p):
        raise Unsupported("no lecture here")


def test_setup_statuses_and_wrong_results_are_not_timed():
    p = W.WORKLOADS["lecture"].make("scalar")
    results = timing.measure(p, [Numpy(), _Missing(), _Wrong(), _Fails()], repeats=3, target=1e-4)
    by = {r.system: r for r in results}
    assert by["numpy"].status == OK and len(by["numpy"].samples_s) == 3 and by["numpy"].inner >= 1
    assert by["missing"].status == SKIPPED and "pip install nothing" in by["missing"].reason
    assert by["wrong"].status == WRONG and by["wrong"].samples_s == []
    assert by["fails"].status == UNSUPPORTED and by["fails"].reason == "no lecture here"


def test_batched_rows_give_the_reference_gradients():
    """many-points and per-example through batch_grad, on numba's threads and on one."""
    from tapegrad.bench.systems import TapegradOneThread
    for name, size in (("many-points", "rosenbrock10-1e4"), ("per-example", "64-32-10x256")):
        problem = W.WORKLOADS[name].make(size)
        for system in (Tapegrad(), TapegradOneThread()):
            got = system.prepare(problem)()
            for g, want in zip(got if isinstance(got, list) else [got],
                               problem.reference if isinstance(problem.reference, list) else [problem.reference]):
                np.testing.assert_allclose(g, want, rtol=1e-8, atol=1e-10)


def test_calibrate_reaches_the_target():
    inner = timing.calibrate(lambda: sum(range(100)), 0.01)
    assert inner > 1 and timing.sample(lambda: sum(range(100)), inner) * inner > 0.005


def test_ratios_to_numpy_and_to_the_fastest_peer():
    rs = [Result("w", "1", "numpy", OK, samples_s=[2.0, 2.0]), Result("w", "1", "tapegrad", OK, samples_s=[1.0]),
          Result("w", "1", "jax", OK, samples_s=[4.0], peer=True),
          Result("w", "1", "torch", OK, samples_s=[8.0], peer=True),
          Result("w", "1", "autograd", WRONG, peer=True), Result("w", "2", "tapegrad", OK, samples_s=[3.0]),
          Result("w", "1", "tapegrad-fused", OK, samples_s=[0.5])]
    timing.add_ratios(rs)
    assert rs[1].ratio_numpy == 0.5 and rs[1].ratio_best_peer == 0.25
    assert rs[3].ratio_best_peer == 2.0 and rs[0].ratio_numpy == 1.0
    assert rs[4].ratio_numpy is None
    assert rs[5].ratio_numpy is None and rs[5].ratio_best_peer is None  # no baseline at size 2
    assert rs[6].ratio_best_peer == 0.125  # tapegrad's extra row is compared, never the best peer


def test_compare_flags_regressions_above_the_threshold():
    old = [Result("w", "1", "tapegrad", OK, samples_s=[1.0]), Result("w", "2", "tapegrad", OK, samples_s=[1.0])]
    new = [Result("w", "1", "tapegrad", OK, samples_s=[1.05]), Result("w", "2", "tapegrad", OK, samples_s=[1.2]),
           Result("w", "3", "tapegrad", OK, samples_s=[9.0]), Result("w", "2", "numpy", OK, samples_s=[9.0])]
    lines, regressions = report.compare(old, new, 1.10)
    assert regressions == [(("w", "2"), pytest.approx(1.2))]
    assert len(lines) == 2 and "REGRESSED" in lines[1]


# --- the command line -------------------------------------------------------------------------

ARGS = ["bench", "--workloads", "lecture", "--systems", "tapegrad,numpy", "--repeats", "3", "--format", "plain"]


def test_json_output_schema(tmp_path, capsys):
    path = tmp_path / "run.json"
    assert cli.main(ARGS + ["--json", str(path)]) == 0
    doc, results = report.load_json(path)
    assert doc["schema"] == report.SCHEMA
    assert {"platform", "cpu", "cores", "python"} <= set(doc["machine"])
    assert {"tapegrad", "numpy"} == set(doc["versions"]) and doc["config"]["repeats"] == 3
    assert [(r.system, r.status, len(r.samples_s)) for r in results] == [("tapegrad", OK, 3), ("numpy", OK, 3)]
    raw = json.loads(path.read_text())["results"][0]
    assert raw["median_s"] == pytest.approx(np.median(raw["samples_s"]))
    assert "tapegrad" in capsys.readouterr().out


def _old_run(tmp_path, median):
    doc = report.to_json([Result("lecture", "scalar", "tapegrad", OK, samples_s=[median])], {}, {})
    path = tmp_path / "old.json"
    report.save_json(path, doc)
    return str(path)


def test_compare_exit_codes(tmp_path):
    assert cli.main(ARGS + ["--compare", _old_run(tmp_path, 1e3)]) == 0      # much faster now
    assert cli.main(ARGS + ["--compare", _old_run(tmp_path, 1e-12)]) == 1    # much slower now


@pytest.mark.parametrize("args, valid", [
    (["bench", "--workloads", "nope"], "lecture, rosenbrock"),
    (["bench", "--systems", "tapegrad,nope"], "tapegrad, numpy"),
    (["bench", "--sizes", "12345"], "rosenbrock: 100"),
])
def test_unknown_names_exit_2_listing_the_valid_ones(args, valid, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(args)
    assert exc.value.code == 2
    assert valid in capsys.readouterr().err


def test_bad_compare_file_exits_2(tmp_path, capsys):
    (tmp_path / "x.json").write_text('{"schema": "other"}')
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "--compare", str(tmp_path / "x.json")])
    assert exc.value.code == 2 and "schema" in capsys.readouterr().err


def test_a_system_not_installed_is_one_line_under_the_table(monkeypatch, tmp_path, capsys):
    systems = {**registry.all_systems(), "missing": _Missing()}
    monkeypatch.setattr(cli, "all_systems", lambda: systems)
    path = tmp_path / "run.json"
    assert cli.main(["bench", "--workloads", "lecture,rosenbrock", "--sizes", "100", "--systems",
                     "numpy,missing", "--repeats", "2", "--format", "plain", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.count("missing") == 1 and "\nmissing: not installed - pip install nothing" in out
    rows = [line.split() for line in out.splitlines() if line.startswith(("lecture", "rosenbrock"))]
    assert "SKIPPED" not in out and [row[2] for row in rows] == ["numpy", "numpy"]
    doc, results = report.load_json(path)
    assert doc["not_installed"] == {"missing": "pip install nothing"}
    assert {r.system for r in results} == {"numpy"}


def test_an_extra_row_is_labelled_under_the_table_when_shown():
    fused = registry.all_systems()["tapegrad-fused"]
    shown = [Result("mlp", "64-32-10x16", "tapegrad-fused", OK, samples_s=[1.0])]
    assert report.notes(shown, (), [fused]) == [f"tapegrad-fused: {fused.note}"]
    assert "not the headline" in fused.note and report.notes([], (), [fused]) == []


def test_plot_draws_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    rs = [Result("rosenbrock", str(n), s, OK, scale=n, samples_s=[n * k]) for n in (10, 100) for s, k in
          (("tapegrad", 1e-8), ("numpy", 2e-8))]
    report.plot(rs, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_quick_run_end_to_end_in_a_subprocess():
    """The README's command, as a user would run it (console script when installed)."""
    exe = shutil.which("tapegrad")
    cmd = [exe] if exe else [sys.executable, "-m", "tapegrad"]
    out = subprocess.run(cmd + ["bench", "--quick", "--systems", "tapegrad,numpy", "--format", "markdown"],
                         capture_output=True, text=True, timeout=600, env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    table = [line for line in out.stdout.splitlines() if line.startswith("| ")]
    workloads = {line.split("|")[1].strip() for line in table[1:]}
    assert workloads == set(W.WORKLOADS)
    assert all("WRONG" not in line and "ERROR" not in line and "UNSUPPORTED" not in line
               for line in table)


# --- module structure -------------------------------------------------------------------------

BENCH = pathlib.Path(W.__file__).parent
ORDER = ["models", "workloads", "base", "systems", "peers", "registry", "timing", "report"]


def _bench_imports(name):
    """The bench modules ``name`` imports, at top level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse((BENCH / f"{name}.py").read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "tapegrad.bench":
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tapegrad.bench."):
            found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[2] for a in node.names if a.name.startswith("tapegrad.bench.")}
    return found


def test_bench_modules_import_one_way_only():
    """No import circle: each module imports only modules before it in ORDER (the order
    the package docstring gives), counting imports inside functions too."""
    assert sorted(ORDER) == sorted(p.stem for p in BENCH.glob("*.py") if p.stem != "__init__")
    for k, name in enumerate(ORDER):
        later = _bench_imports(name) & set(ORDER[k:])
        assert not later, f"bench/{name}.py imports {later}, which come after it"


@pytest.mark.parametrize("name", ORDER)
def test_each_bench_module_imports_alone_in_a_fresh_interpreter(name):
    out = subprocess.run([sys.executable, "-c", f"import tapegrad.bench.{name}"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
