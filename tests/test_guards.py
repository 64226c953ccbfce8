"""Guarded replay (issue 9): comparisons that decide Python control flow become guard
entries, checked on every replay; ``grad`` keeps one variant per branch pattern."""
import pickle
import threading
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tapegrad as tg
import tapegrad.api as api
import tapegrad.jit as J
import tapegrad.numpy as tnp
from tapegrad import tapefile
from tapegrad.replay import GuardFailed
from tapegrad.variants import MAX_VARIANTS

from conftest import numerical_grad


@pytest.fixture
def recordings(monkeypatch):
    """The number of recordings ``grad`` made (calls of ``api._record``)."""
    count = [0]
    real = api._record

    def counting(*args, **kwargs):
        count[0] += 1
        return real(*args, **kwargs)
    monkeypatch.setattr(api, "_record", counting)
    return count


def relu_square(x):
    if x > 0:
        return x * x
    return -3.0 * x


def test_a_branch_records_a_guard_with_its_outcome():
    tape = tg.record(relu_square, 2.0)
    assert [J.NAMES[o] for o in tape.op] == ["GUARD_GT", "MUL"]
    assert tape.out[0] == -1 and tape.guard_outcomes == (True,) and not tape.value_dependent
    assert tape.entry_str(0) == "0: GUARD_GT(0, 1; took=True)"
    assert tg.record(relu_square, -2.0).entry_str(0) == "0: GUARD_GT(0, 1; took=False)"
    entry, name, line, text = tape.guard_sites[0]
    assert (entry, name, text) == (0, "test_guards.py", "if x > 0:")


def test_guard_flips_both_ways_and_replays_each_variant(recordings):
    d = tg.grad(relu_square)
    for x, want in [(2.0, 4.0), (-1.0, -3.0), (3.0, 6.0), (-5.0, -3.0), (0.5, 1.0), (-0.5, -3.0)]:
        assert d(x) == want
    assert recordings[0] == 2  # one per branch; every later call replays a cached variant


def test_tape_refuses_a_failed_guard_naming_its_line():
    tape = tg.record(relu_square, 2.0)
    assert tape.gradient(3.0) == 6.0 and tape.forward(1.5) == 2.25
    for method in ("forward", "gradient", "value_and_gradient", "jacobian"):
        with pytest.raises(GuardFailed, match=r"test_guards.py:\d+: if x > 0:"):
            getattr(tape, method)(-1.0)


def three_branches(x):
    s = x[0] * 1.0
    s = s + (tnp.sin(x[1]) if x[0] > 0 else tnp.cos(x[1]))
    if x[1] < 0.5:
        s = s * x[2]
    if x[2] >= -0.25:
        s = s + x[0] * x[2]
    return s


def test_many_patterns_each_recorded_once(recordings):
    d = tg.grad(three_branches)
    points = [np.array([a, b, c]) for a in (-1.0, 1.0) for b in (0.0, 1.0) for c in (-1.0, 1.0)]
    for _ in range(2):
        for x in points:
            np.testing.assert_array_equal(d(x), tg.grad(three_branches, cache=False)(x))
    assert recordings[0] == 8 + 16  # 8 patterns once each, and cache=False every call
    (variants, _), = d._tapes.values()
    assert len({t.guard_outcomes for t in variants.tapes}) == 8


def halve_below(x, eps=0.1):
    while x > eps:
        x = x / 2.0
    return x


@pytest.mark.parametrize("x, halvings", [(1.0, 4), (0.05, 0), (3.0, 5), (0.15, 1), (0.8, 3)])
def test_trip_count_loop(x, halvings):
    d = tg.grad(halve_below)
    assert d(x) == 0.5 ** halvings
    assert len(tg.record(halve_below, x).guards) == halvings + 1


def test_trip_count_loop_replays_from_cache(recordings):
    d = tg.grad(halve_below)
    xs = [1.0, 0.05, 3.0, 0.15, 0.8, 1.5, 0.09, 2.5]
    for x in xs + xs:
        assert d(x) == 0.5 ** len([k for k in range(10) if x / 2 ** k > 0.1])
    assert recordings[0] == 5  # trip counts 4, 0, 5, 1, 3 (1.5 takes 4, 0.09 0, 2.5 5)


def test_builtin_max_and_min_on_scalars():
    f = lambda a, b: max(a, b) * 2.0 + min(a, b) ** 2  # noqa: E731
    d = tg.grad(f, argnums=(0, 1))
    for a, b in [(1.0, 2.0), (3.0, -1.0), (1.0, 2.0), (-2.0, -1.0)]:
        ga, gb = d(a, b)
        want_a = 2.0 if a >= b else 2.0 * a
        want_b = 2.0 if b > a else 2.0 * b
        assert (ga, gb) == (want_a, want_b)
    assert {J.NAMES[o] for o in tg.record(f, 1.0, 2.0).op} >= {"GUARD_GT", "GUARD_LT"}


def masked(x):
    return tnp.sum(tnp.where(x > 0, x ** 2, -x))


def test_comparisons_used_as_masks_stay_masks():
    tape = tg.record(masked, np.array([-1.0, 3.0]))
    assert not tape.guards and "WHERE" in [J.NAMES[o] for o in tape.op]
    assert tape.value_dependent  # a mask is a constant no guard checks: never replayed elsewhere
    d = tg.grad(masked)
    for x in ([-1.0, 3.0], [2.0, -3.0], [1.0, 1.0]):
        x = np.array(x)
        np.testing.assert_array_equal(d(x), np.where(x > 0, 2 * x, -1.0))
    assert not d._tapes
    np.testing.assert_array_equal(tg.grad(lambda x: tnp.sum(x[x > 0] ** 2))(np.array([-1.0, 2.0])),
                                  [0.0, 4.0])


def test_a_mask_that_is_also_a_guard_is_pinned_by_it():
    def f(x):
        m = x > 0
        return tnp.where(m, x, -x) * 2.0 if m else x * 0.0
    tape = tg.record(f, 1.0)
    assert tape.guards and not tape.value_dependent
    assert tg.grad(f)(-2.0) == 0.0


def test_what_cannot_be_a_guard_stays_value_dependent():
    assert tg.record(lambda x: x * 2.0 if (x > 0) & (x < 5) else x, 1.0).value_dependent
    assert tg.record(lambda x: x * 2.0 if x != None else x, 1.0).value_dependent  # noqa: E711
    assert tg.record(lambda x: x * 2.0 if x < 2 ** 60 + 1 else x, 1.0).value_dependent
    with pytest.raises(ValueError, match="truth value"):
        tg.record(lambda x: x * 2.0 if x > 0 else x, np.ones(3))


def test_bool_of_a_size_one_array_and_of_a_traced_value():
    f = lambda x: tnp.sum(x * 2.0) if bool(x) else tnp.sum(x * 3.0)  # noqa: E731
    d = tg.grad(f)
    assert d(np.array([1.0]))[0] == 2.0 and d(np.array([0.0]))[0] == 3.0
    assert d(np.array([np.nan]))[0] == 2.0  # bool(nan) is True, as nan != 0
    assert [J.NAMES[o] for o in tg.record(f, np.array([1.0])).op][0] == "GUARD_NE"


def loss_with_branches(x):
    s = tnp.sum(x ** 2)
    if s > 2.0:
        s = tnp.sqrt(s)
    for i in range(len(x)):
        if x[i] < 0:
            s = s + tnp.sin(x[i]) * x[0]
    return s


def test_results_equal_a_fresh_recording_and_finite_differences(rng):
    d = tg.value_and_grad(loss_with_branches)
    fresh = tg.value_and_grad(loss_with_branches, cache=False)
    for _ in range(30):
        x = rng.normal(size=4)
        (v, g), (v0, g0) = d(x), fresh(x)
        assert v == v0
        np.testing.assert_array_equal(g, g0)
        np.testing.assert_allclose(g, numerical_grad(lambda z: loss_with_branches(z), x),
                                   rtol=1e-6, atol=1e-8)


def test_jacobian_uses_variants():
    f = lambda x: tnp.sin(x) * 2.0 if x[0] > 0 else x ** 2  # noqa: E731
    jac = tg.jacobian(f)
    for x in ([1.0, 2.0], [-1.0, 2.0], [1.0, -2.0], [-3.0, 1.0]):
        x = np.array(x)
        want = np.diag(2 * np.cos(x)) if x[0] > 0 else np.diag(2 * x)
        np.testing.assert_array_equal(jac(x), want)


def test_eight_threads_share_one_gradient_function():
    d = tg.grad(loss_with_branches)
    rng = np.random.default_rng(7)
    points = [rng.normal(size=4) for _ in range(64)]
    wanted = [tg.grad(loss_with_branches, cache=False)(x) for x in points]
    errors = []

    def work(k):
        try:
            for j in range(200):
                i = (k * 13 + j * 7) % len(points)
                if not np.array_equal(d(points[i]), wanted[i]):
                    errors.append((k, i))
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)
    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_rerecording_warning_fires_once_naming_the_line():
    def halvings(x):
        while x > 1.0:
            x = x * 0.5
        return x
    d = tg.grad(halvings)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for k in range(1, 45):
            assert d(2.0 ** k + 0.5) == 0.5 ** (k + 1)
    mine = [w for w in caught if issubclass(w.category, tg.TapegradWarning)]
    assert len(mine) == 1
    assert "recorded again on 20 calls in a row" in str(mine[0].message)
    assert "test_guards.py:" in str(mine[0].message) and "while x > 1.0" in str(mine[0].message)
    (variants, _), = d._tapes.values()
    assert len(variants.tapes) == MAX_VARIANTS


def test_explain(capsys):
    d = tg.grad(relu_square)
    text = tg.explain(d, 1.0)
    assert "no tape is cached" in text
    d(1.0)
    d(-1.0)
    text = tg.explain(d, 2.0)
    assert capsys.readouterr().out.strip().endswith(text.splitlines()[-1])
    assert "0: GUARD_GT(0, 1; took=True)  at test_guards.py:" in text and "if x > 0:" in text
    assert "variants cached for these argument shapes (2, newest first)" in text
    assert "outcomes (T), 2 entries  <- these arguments" in text
    assert "last recording: guard 0: GUARD_GT(0, 1; took=True)" in text and "went the other way" in text
    plain = tg.explain(relu_square, -1.0)
    assert "took=False" in plain


def test_saved_tape_with_guards_round_trips(tmp_path):
    tape = tg.record(three_branches, np.array([1.0, 0.0, -1.0]))
    path = tmp_path / "t.npz"
    tape.save(path)
    back = tg.Tape.load(path)
    assert str(back) == str(tape) and back.guard_sites == tape.guard_sites
    assert back.guard_outcomes == tape.guard_outcomes == (True, True, False)
    np.testing.assert_array_equal(back.gradient(np.array([2.0, 0.1, -2.0])),
                                  tape.gradient(np.array([2.0, 0.1, -2.0])))
    with pytest.raises(GuardFailed, match="test_guards.py"):
        back.gradient(np.array([-2.0, 0.1, -2.0]))
    assert pickle.loads(pickle.dumps(tape)).guard_outcomes == tape.guard_outcomes


def _tampered(tape, change):
    state = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in tapefile.encode(tape).items()}
    change(state)
    state["sha256"] = tapefile.checksum(state)
    return state


def test_tampered_guards_are_refused():
    tape = tg.record(relu_square, 2.0)
    took = int(tape.iarg[0])

    def outcome(s):
        s["ints"][took] = 2

    def output(s):
        s["out"][0] = 1

    def no_attribute(s):
        s["iarg"][0] = -1

    def one_operand(s):
        s["arg_start"][1] = 1

    cases = [(outcome, "outcome is not 0 or 1"), (output, "op writes none"),
             (no_attribute, "outside the ints arena"),
             (one_operand, "entry 0 does not have its op's number of operands")]
    for change, message in cases:
        with pytest.raises(ValueError, match=message):
            tapefile.decode(_tampered(tape, change))
    arr = tg.record(lambda x: tnp.sum(x) * 2.0 if x[0] > 0 else x[1], np.ones(3))
    bad = _tampered(arr, lambda s: s["args"].__setitem__(0, 0))
    with pytest.raises(ValueError, match="not single floats"):
        tapefile.decode(bad)


# --- random programs with random branches ------------------------------------------------

_UNARY = {"sin": tnp.sin, "cos": tnp.cos, "tanh": tnp.tanh, "half": lambda v: v * 0.5}
_CMP = {"<": lambda a, b: a < b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b,
        ">=": lambda a, b: a >= b}


def run_program(program, x, margins=None):
    """Evaluate a program on a 3-vector (traced or plain); ``margins`` collects how far
    each decided comparison was from its threshold (on plain values)."""
    nodes = [x[0], x[1], x[2]]
    for step in program:
        kind = step[0]
        if kind == "unary":
            nodes.append(_UNARY[step[1]](nodes[step[2]]))
        elif kind == "binary":
            a, b = nodes[step[2]], nodes[step[3]]
            nodes.append(a + b if step[1] == "add" else a * b)
        elif kind == "branch":
            _, op, i, c, f, g, j = step
            if margins is not None:
                margins.append(abs(float(nodes[i]) - c))
            nodes.append(_UNARY[f](nodes[j]) if _CMP[op](nodes[i], c) else _UNARY[g](nodes[j]))
        elif kind == "max":
            if margins is not None:
                margins.append(abs(float(nodes[step[1]]) - float(nodes[step[2]])))
            nodes.append(max(nodes[step[1]], nodes[step[2]]))
        else:  # a loop whose trip count depends on the value
            v = nodes[step[1]] * nodes[step[1]] + 0.01
            while v > step[2]:
                if margins is not None:
                    margins.append(abs(float(v) - step[2]))
                v = v * 0.5
            if margins is not None:
                margins.append(abs(float(v) - step[2]))
            nodes.append(v)
    return nodes[-1] + nodes[-2] * 0.5


@st.composite
def programs(draw):
    program = []
    for k in range(draw(st.integers(2, 10))):
        n = 3 + k
        idx = st.integers(0, n - 1)
        kind = draw(st.sampled_from(["unary", "binary", "branch", "branch", "max", "loop"]))
        if kind == "unary":
            program.append(("unary", draw(st.sampled_from(sorted(_UNARY))), draw(idx)))
        elif kind == "binary":
            program.append(("binary", draw(st.sampled_from(["add", "mul"])), draw(idx), draw(idx)))
        elif kind == "branch":
            program.append(("branch", draw(st.sampled_from(sorted(_CMP))), draw(idx),
                            draw(st.sampled_from([-0.5, 0.0, 0.3])), draw(st.sampled_from(sorted(_UNARY))),
                            draw(st.sampled_from(sorted(_UNARY))), draw(idx)))
        elif kind == "max":
            program.append(("max", draw(idx), draw(idx)))
        else:
            program.append(("loop", draw(idx), draw(st.sampled_from([0.05, 0.2]))))
    return tuple(program)


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(programs(), st.lists(st.lists(st.floats(-2.0, 2.0), min_size=3, max_size=3),
                            min_size=1, max_size=5))
def test_random_branchy_programs(program, points):
    f = lambda x: run_program(program, x)  # noqa: E731
    d = tg.value_and_grad(f)
    for point in points + points[::-1]:
        x = np.array(point)
        v, g = d(x)
        v0, g0 = tg.value_and_grad(f, cache=False)(x)
        assert v == v0 or (np.isnan(v) and np.isnan(v0))
        np.testing.assert_array_equal(g, g0)
        margins = []
        run_program(program, x, margins)
        if min(margins, default=1.0) > 1e-4 and np.all(np.isfinite(g)):
            np.testing.assert_allclose(g, numerical_grad(lambda z: run_program(program, z), x),
                                       rtol=1e-5, atol=1e-6)


def test_guards_are_drawn_with_their_line():
    dot = tg.record(relu_square, 2.0).to_dot()
    assert "e0 [label=\"0: GUARD_GT(0, 1; took=True)\\nat test_guards.py:" in dot
    assert "shape=diamond" in dot and "n0 -> e0" in dot and "n1 -> e0" in dot


def test_numpy_scalars_on_the_left_compare_too():
    f = lambda x: x * 2.0 if np.float64(0.5) < x else x * 3.0  # noqa: E731
    d = tg.grad(f)
    assert (d(1.0), d(0.0), d(2.0)) == (2.0, 3.0, 2.0)
    assert J.NAMES[tg.record(f, 1.0).op[0]] == "GUARD_GT"
    assert tg.grad(lambda x: tnp.sum(x) if np.less(x, 3.0)[0] else x[0])(np.ones(1))[0] == 1.0


def test_malformed_guard_sites_are_refused():
    import json
    tape = tg.record(relu_square, 2.0)

    def sites(value):
        def change(s):
            doc = json.loads(s["interface"].tobytes().decode())
            doc["guard_sites"] = value
            s["interface"] = np.frombuffer(json.dumps(doc).encode(), np.uint8)
        return change
    for value in (3, [3], [[0, "f.py", "1", ""]]):
        with pytest.raises(ValueError, match="not a valid tapegrad tape: argument description"):
            tapefile.decode(_tampered(tape, sites(value)))

    def drop(s):
        doc = json.loads(s["interface"].tobytes().decode())
        del doc["guard_sites"]
        s["interface"] = np.frombuffer(json.dumps(doc).encode(), np.uint8)
    back = tg.Tape.from_recording(**tapefile.decode(_tampered(tape, drop)))  # an older file
    assert back.guard_site(0) == "source line unknown" and back.gradient(3.0) == 6.0


def test_nan_decides_as_numpy_does():
    d = tg.grad(relu_square)
    assert d(2.0) == 4.0
    assert d(float("nan")) == -3.0  # nan > 0 is false: the replay agrees with a fresh run
    tape = tg.record(lambda x: x * 2.0 if x != x else x * 3.0, 1.0)  # x != x: only NaN
    assert tape.gradient(5.0) == 3.0
    with pytest.raises(GuardFailed):
        tape.gradient(float("nan"))
