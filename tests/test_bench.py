"""The benchmark runner's pieces, on tiny problems, and one end-to-end run."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tapegrad import cli
from tapegrad.bench import report, timing
from tapegrad.bench import workloads as W
from tapegrad.bench.systems import Numpy, System, Tapegrad, Unsupported
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
    f = lambda x: W.lecture_value(x, np.exp, np.sqrt, np.cos)
    for x in (-1.3, 0.0, 0.7, 2.0):
        assert np.isclose(W.lecture_derivative(x), _fd(f, x), rtol=1e-7, atol=1e-9)


def test_rosenbrock_reference_matches_finite_differences_and_loop_value():
    x = np.random.default_rng(0).uniform(-1, 1, 7)
    vec = lambda x: np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
    assert np.isclose(W.rosenbrock_loop(list(x)), vec(x), rtol=1e-14)
    np.testing.assert_allclose(W.rosenbrock_grad(x), _fd(vec, x), rtol=1e-7, atol=1e-8)


def test_mlp_reference_matches_finite_differences():
    params, X, Y = W.mlp_data("5-4-3x6")

    def loss(k, value):
        p = list(params)
        p[k] = value
        h = X
        for Wk, bk in zip(p[0:-2:2], p[1:-2:2]):
            h = 1 / (1 + np.exp(-(h @ Wk + bk)))
        z = h @ p[-2] + p[-1]
        lse = np.log(np.exp(z).sum(1, keepdims=True))
        return -np.sum(Y * (z - lse)) / X.shape[0]

    grads = W.mlp_numpy_grad(params, X, Y)
    for k, g in enumerate(grads):
        np.testing.assert_allclose(g, _fd(lambda v: loss(k, v), params[k]), rtol=1e-6, atol=1e-9)


def test_many_points_references():
    p = W.WORKLOADS["many-points"].make("rosenbrock10-1e4")
    assert p.reference.shape == (10_000, 10)
    np.testing.assert_allclose(p.reference[17], W.rosenbrock_grad(p.data["X"][17]))
    got = Numpy().prepare(p)()
    assert timing.max_error(got, p.reference, p.rtol, p.atol) is None


# --- checking and timing ----------------------------------------------------------------------

def test_max_error_reports_wrong_values_and_structure():
    ref = [np.ones(3), np.zeros(2)]
    assert timing.max_error([np.ones(3), np.zeros(2)], ref, 1e-9, 1e-12) is None
    assert "off by" in timing.max_error([np.ones(3) * 1.001, np.zeros(2)], ref, 1e-9, 1e-12)
    assert "shape" in timing.max_error([np.ones(4), np.zeros(2)], ref, 1e-9, 1e-12)
    assert "returned 1" in timing.max_error([np.ones(3)], ref, 1e-9, 1e-12)


class _Missing(System):
    name, module, install = "missing", "no_such_module_for_tapegrad_tests", "pip install nothing"


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


def test_tapegrad_reports_many_points_as_not_supported():
    with pytest.raises(Unsupported, match="batch"):
        Tapegrad().prepare(W.WORKLOADS["many-points"].make("lecture-1e5"))


def test_calibrate_reaches_the_target():
    inner = timing.calibrate(lambda: sum(range(100)), 0.01)
    assert inner > 1 and timing.sample(lambda: sum(range(100)), inner) * inner > 0.005


def test_ratios_to_numpy_and_to_the_fastest_peer():
    rs = [Result("w", "1", "numpy", OK, samples_s=[2.0, 2.0]), Result("w", "1", "tapegrad", OK, samples_s=[1.0]),
          Result("w", "1", "jax", OK, samples_s=[4.0]), Result("w", "1", "torch", OK, samples_s=[8.0]),
          Result("w", "1", "autograd", WRONG), Result("w", "2", "tapegrad", OK, samples_s=[3.0])]
    timing.add_ratios(rs)
    assert rs[1].ratio_numpy == 0.5 and rs[1].ratio_best_peer == 0.25
    assert rs[3].ratio_best_peer == 2.0 and rs[0].ratio_numpy == 1.0
    assert rs[4].ratio_numpy is None
    assert rs[5].ratio_numpy is None and rs[5].ratio_best_peer is None  # no baseline at size 2


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
    assert any("UNSUPPORTED" in line and "many-points" in line for line in table)
    assert all("WRONG" not in line and "ERROR" not in line for line in table)
