"""debug_nans: a replay that makes a NaN from operands without one raises FloatingPointError
naming the first tape entry (as the tape prints it) and its source line; NaN in, NaN out
is not an error; the switch is off by default and changes no result."""
import os
import subprocess
import sys

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.numpy as tnp


@pytest.fixture
def debug_nans(monkeypatch):
    monkeypatch.setattr(tg.config, "debug_nans", True)


def where_trap(x):
    return tnp.sum(tnp.where(x > 0, tnp.log(x), 0.0))  # the where trap


def root(x):
    return tnp.sum(tnp.sqrt(x - 1.0) * 2.0)  # NaN below 1


def test_off_by_default_nothing_is_checked():
    assert not tg.config.debug_nans
    assert np.isnan(tg.grad(where_trap)(np.array([0.0, 2.0]))[0])


def test_a_forward_nan_names_the_entry_and_its_line(debug_nans):
    tape = tg.record(root, np.array([2.0, 3.0]))
    with pytest.raises(FloatingPointError) as err:
        tape.forward(np.array([0.0, 3.0]))
    entry = [i for i in range(len(tape)) if "SQRT" in tape.entry_str(i)][0]
    message = str(err.value)
    assert "forward" in message and tape.entry_str(entry) in message
    assert "test_debug_nans.py" in message and "tnp.sqrt(x - 1.0)" in message


def test_a_backward_nan_names_the_entry_whose_rule_made_it(debug_nans):
    with pytest.raises(FloatingPointError, match=r"backward sweep made a NaN at entry \d+: LOG\(0\)") as err:
        tg.grad(where_trap)(np.array([0.0, 2.0]))
    assert "tnp.log(x)" in str(err.value)
    with pytest.raises(FloatingPointError, match="LOG"):  # one sweep per row of a Jacobian
        tg.jacobian(lambda x: tnp.where(x > 0, tnp.log(x), 0.0))(np.array([0.0, 2.0]))


def test_nan_in_is_nan_out_not_an_error(debug_nans):
    x = np.array([np.nan, 2.0])
    value, g = tg.value_and_grad(lambda x: tnp.sum(tnp.exp(x) * x))(x)
    assert np.isnan(value) and np.isnan(g[0]) and g[1] == pytest.approx(3 * np.exp(2.0))
    constant = np.array([np.nan, 1.0])
    assert np.isnan(tg.grad(lambda x: tnp.sum(x * constant))(np.ones(2))[0])


def test_results_are_unchanged_with_the_switch_on(debug_nans, monkeypatch):
    rng = np.random.default_rng(0)
    W, X = rng.normal(size=(3, 4)), rng.normal(size=(5, 4))  # W is read by reference
    f = lambda W, X: tnp.sum(tnp.tanh(X @ W.T) ** 2)  # noqa: E731
    on = tg.grad(f)(W, X)
    monkeypatch.setattr(tg.config, "debug_nans", False)
    np.testing.assert_array_equal(tg.grad(f)(W, X), on)


def test_inputs_read_by_reference_are_checked_in_place(debug_nans):
    tape = tg.record(lambda W, X: tnp.sum(tnp.log(X @ W)), np.ones((2, 2)), np.ones((2, 2)))
    assert tape._slots  # W and X are read by BLAS where the caller keeps them
    with pytest.raises(FloatingPointError, match="LOG"):
        tape.forward(-np.ones((2, 2)), np.ones((2, 2)))
    assert np.isnan(tape.forward(np.full((2, 2), np.nan), np.ones((2, 2))))  # NaN in: no error


def test_a_tape_recorded_without_the_switch_says_how_to_get_lines(monkeypatch):
    tape = tg.record(root, np.array([2.0, 3.0]))
    monkeypatch.setattr(tg.config, "debug_nans", True)
    with pytest.raises(FloatingPointError, match="source line unknown: record the tape with debug_nans on"):
        tape.forward(np.array([0.0, 3.0]))


def test_a_failed_decomposition_is_named(debug_nans):
    tape = tg.record(tnp.linalg.inv, np.eye(2))
    with pytest.raises(FloatingPointError, match=r"INV\(0; 1,2,2,0\)"):
        tape.forward(np.ones((2, 2)))


def test_config_update_and_the_environment_variable():
    with pytest.raises(KeyError, match="debug_nans"):
        tg.config.update("debug_infs", True)
    code = "import tapegrad as tg; print(tg.config.debug_nans)"
    env = dict(os.environ, TAPEGRAD_DEBUG_NANS="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "True"
