"""Pictures of a tape (tapegrad.viz) and the step-by-step grad_table trace (tapegrad.gradtable).

* DOT text: parsed by a small parser for the subset ``to_dot`` emits; node and edge counts,
  labels and marks checked against the tape; ``dot -Tsvg`` run on it where installed.
* HTML display: escaped, one row per entry, no failure without Graphviz.
* render: the helpful errors when the package or the program is missing (simulated).
* trace: every node's sum of terms is the adjoint the interpreter computed, the inputs'
  sums are the gradient (and match finite differences), on scalar lecture functions, an
  MLP-like array program, views (``x * x[1]``), and matmuls reading inputs by reference.
"""
import doctest
import os
import re
import shutil
import subprocess
import sys
import types
from collections import Counter

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.jit as J
import tapegrad.numpy as tnp
from tapegrad import viz
from conftest import numerical_grad

# --- a parser for the DOT subset to_dot writes ---------------------------------------------
_ID = r"n(\d+)"
_ATTR = re.compile(r'\s*(\w+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\]\s]+)\s*(,|$)')


def _attrs(text):
    out, pos = {}, 0
    while pos < len(text):
        m = _ATTR.match(text, pos)
        assert m, f"bad attribute list at {text[pos:]!r}"
        value = m.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", lambda g: "\n" if g.group(1) == "n" else g.group(1),
                           value[1:-1])
        out[m.group(1)] = value
        pos = m.end()
    return out


def parse_dot(text):
    """({node: attrs}, [(src, dst, attrs)]) of a DOT digraph in to_dot's subset; anything
    outside that subset fails the test."""
    lines = text.strip().split("\n")
    assert lines[0] == "digraph tape {" and lines[-1] == "}"
    nodes, edges = {}, []
    for line in lines[1:-1]:
        line = line.strip()
        if re.fullmatch(r"rankdir=\w+;|(node|edge) \[.*\];", line):
            continue
        m = re.fullmatch(_ID + r" -> " + _ID + r"(?: \[(.*)\])?;", line)
        if m:
            edges.append((int(m.group(1)), int(m.group(2)), _attrs(m.group(3) or "")))
            continue
        m = re.fullmatch(_ID + r" \[(.*)\];", line)
        assert m, f"not in the DOT subset: {line!r}"
        assert int(m.group(1)) not in nodes
        nodes[int(m.group(1))] = _attrs(m.group(2))
    for src, dst, _ in edges:
        assert src in nodes and dst in nodes
    return nodes, edges


def expected_graph(tape):
    """The nodes and edges the graph should have, from the tape's columns directly."""
    ends = np.append(tape.arg_start[1:], len(tape.args))
    lists = [(tape.args[s:e].tolist(), int(o)) for s, e, o in zip(tape.arg_start, ends, tape.out)]
    nodes = set(tape.out.tolist()) | set(tape.args.tolist()) | set(tape.inputs.tolist()) | {tape.output}
    nodes |= {int(tape.base[n]) for n in nodes}
    views = [n for n in nodes if tape.kind[n] == 3]
    edges = Counter((int(a), o) for operands, o in lists for a in operands)
    edges += Counter((int(tape.base[n]), n) for n in views)
    return nodes, edges


def mlp_loss(W1, b1, W2, X, Y):
    h = tnp.tanh(X @ W1.T + b1)
    return tnp.mean((tnp.softmax(h @ W2, axis=1) - Y) ** 2) + 0.01 * tnp.sum(W1 ** 2)


def _mlp_args(rng):
    return (rng.normal(size=(5, 3)), rng.normal(size=5), rng.normal(size=(5, 2)),
            rng.normal(size=(4, 3)), np.eye(2)[[0, 1, 1, 0]])


def _programs(rng):
    """(name, tape) pairs covering entry kinds, constants, views, dead entries, by-reference."""
    def with_dead(x):
        tnp.exp(x)  # recorded but not used: never replayed
        return tnp.sin(x) * x
    yield "chain", tg.record(lambda x: tnp.exp(tnp.sin(x ** 2)), 0.5)
    yield "constant", tg.record(lambda x: 1.0 / tnp.exp(x ** 2), 0.5)
    yield "view", tg.record(lambda x: tnp.sum(x * x[1]), np.array([1.0, 2.0, 3.0]))
    yield "reshape", tg.record(lambda x: tnp.sum(tnp.sin(x.reshape(2, 2) @ x.reshape(2, 2))),
                               np.arange(4.0))
    yield "dead", tg.record(with_dead, 0.3)
    yield "where", tg.record(lambda x: tnp.sum(tnp.where(np.array([True, False, True]), x * x, tnp.sin(x))),
                             np.arange(3.0))
    yield "mlp", tg.record(mlp_loss, *_mlp_args(rng), argnums=(0, 1, 2))


# --- DOT ----------------------------------------------------------------------------------
@pytest.mark.parametrize("values", [False, True])
def test_dot_has_one_node_per_value_and_one_edge_per_operand(rng, values):
    for name, tape in _programs(rng):
        nodes, edges = parse_dot(tape.to_dot(values=values))
        want_nodes, want_edges = expected_graph(tape)
        assert set(nodes) == want_nodes, name
        assert Counter((s, d) for s, d, _ in edges) == want_edges, name
        for i in range(len(tape)):
            assert J.NAMES[tape.op[i]] in nodes[tape.out[i]]["label"], name
        diff = {int(tape.inputs[k]) for k in range(len(tape.inputs))
                if tape.leaf_arg[k] in tape.argnums}
        for n in tape.inputs:  # (these programs' arguments are single leaves)
            assert nodes[n]["label"].startswith("differentiated input" if n in diff else "input")
            assert nodes[n]["shape"] == "box"
        out = nodes[tape.output]
        assert "output" in out["label"] and out["peripheries"] == "2"
        assert sum("output" in a["label"] for a in nodes.values()) == 1
        for s, d, a in edges:  # view edges are dashed and lead to a view node
            assert (a.get("style") == "dashed") == (tape.kind[d] == 3 and tape.base[d] == s)


def test_dot_marks_views_constants_dead_entries_and_values(rng):
    progs = dict(_programs(rng))
    nodes, _ = parse_dot(progs["view"].to_dot())
    assert nodes[1]["label"].startswith("view 0[1:2]") and nodes[1]["style"] == "dashed"
    nodes, _ = parse_dot(progs["constant"].to_dot(values=True))
    assert nodes[3]["label"].startswith("constant") and nodes[3]["label"].endswith("= 1")
    assert "= 0.25" in nodes[1]["label"]
    nodes, _ = parse_dot(progs["dead"].to_dot())
    assert nodes[1]["label"].startswith("0: EXP") and nodes[1]["color"] == "gray"
    assert "color" not in nodes[2]  # the live SIN
    mlp = progs["mlp"]
    nodes, _ = parse_dot(mlp.to_dot(values=True))
    first_matmul = list(mlp.op).index(J.CODES["MATMUL"])
    assert re.search(r"\(4,5\) norm \d", nodes[mlp.out[first_matmul]]["label"])


@pytest.mark.skipif(shutil.which("dot") is None, reason="the Graphviz dot program is not installed")
def test_dot_program_accepts_the_text_and_draws_every_node_and_edge(rng):
    for name, tape in _programs(rng):
        svg = subprocess.run(["dot", "-Tsvg"], input=tape.to_dot(values=True), text=True,
                             capture_output=True, check=True).stdout
        want_nodes, want_edges = expected_graph(tape)
        assert svg.count('class="node"') == len(want_nodes), name
        assert svg.count('class="edge"') == sum(want_edges.values()), name


# --- HTML and rendering -------------------------------------------------------------------
def test_html_lists_every_entry_escaped(rng, monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)  # no graph: the table alone
    tape = dict(_programs(rng))["mlp"]
    page = tape._repr_html_()
    assert page.count("<tr") == len(tape) + 1
    for i in range(len(tape)):
        assert tape.entry_str(i).replace(">", "&gt;") in page
    assert "->" not in page and "<svg" not in page
    monkeypatch.setattr(viz, "op_name", lambda t, i: "<b>&x")
    page = tape._repr_html_()
    assert "&lt;b&gt;&amp;x" in page and "<b>" not in page


def test_html_of_a_long_tape_is_cut_and_says_so(monkeypatch):
    monkeypatch.setattr(viz, "_HTML_MAX_ROWS", 2)
    tape = tg.record(lambda x: tnp.exp(tnp.sin(x ** 2)), 0.5)
    page = tape._repr_html_()
    assert page.count("<td>") == 2 * 6 and "... and 1 more entry" in page


def test_display_without_graphviz_does_not_fail(monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)
    tape = tg.record(lambda x: tnp.sin(x) * x, 0.3)
    assert tape._repr_svg_() is None
    assert "SIN" in tape._repr_html_()


def test_jupyter_shows_a_table_and_a_graph_only_with_graphviz(monkeypatch):
    formatters = pytest.importorskip("IPython.core.formatters")
    tape = tg.record(lambda x: tnp.sin(x) * x, 0.3)
    have_graphviz = shutil.which("dot") is not None and viz_package_installed()
    data, _ = formatters.DisplayFormatter().format(tape)
    assert "text/html" in data and ("image/svg+xml" in data) == have_graphviz
    monkeypatch.setitem(sys.modules, "graphviz", None)
    data, _ = formatters.DisplayFormatter().format(tape)
    assert "text/html" in data and "image/svg+xml" not in data


def viz_package_installed():
    try:
        import graphviz  # noqa: F401
    except ImportError:
        return False
    return True


def test_render_without_the_package_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "graphviz", None)
    tape = tg.record(lambda x: tnp.sin(x) * x, 0.3)
    with pytest.raises(ImportError, match="pip install graphviz.*apt-get install graphviz"):
        tape.render(tmp_path / "t.svg")
    assert not (tmp_path / "t.svg").exists()


def test_render_without_the_dot_program_says_how_to_install(monkeypatch, tmp_path):
    fake = types.ModuleType("graphviz")

    class ExecutableNotFound(RuntimeError):
        pass

    class Source:
        def __init__(self, text):
            self.text = text

        def pipe(self, format):
            raise ExecutableNotFound("failed to execute 'dot'")

    fake.ExecutableNotFound, fake.Source = ExecutableNotFound, Source
    monkeypatch.setitem(sys.modules, "graphviz", fake)
    tape = tg.record(lambda x: tnp.sin(x) * x, 0.3)
    with pytest.raises(RuntimeError, match="'dot' program.*conda install graphviz"):
        tape.render(tmp_path / "t.png")
    assert tape._repr_svg_() is None and "<svg" not in tape._repr_html_()


def test_render_writes_svg_and_png(tmp_path):
    pytest.importorskip("graphviz")
    if shutil.which("dot") is None:
        pytest.skip("the Graphviz dot program is not installed")
    tape = tg.record(lambda x: tnp.sum(x * x[1]), np.array([1.0, 2.0, 3.0]))
    tape.render(tmp_path / "t.svg")
    tape.render(tmp_path / "t.png", values=True)
    tape.render(tmp_path / "t", format="svg")
    assert "<svg" in (tmp_path / "t.svg").read_text()
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in (tmp_path / "t").read_text()
    assert tape._repr_svg_().lstrip().startswith("<?xml")
    trace = tg.trace_grad_table(lambda x: tnp.sum(x * x[1]), np.array([1.0, 2.0, 3.0]), show=False)
    assert "grad [2 8 2]" in open(trace.render(tmp_path / "trace.svg")).read()
    assert "<svg" in tape._repr_html_()


# --- the grad_table trace -----------------------------------------------------------------
def check_trace(f, args, argnums=0):
    """The trace's sums are the interpreter's adjoints and gradient, and match finite
    differences; every scalar-consumer term is upstream * local."""
    trace = tg.trace_grad_table(f, *args, argnums=argnums, show=False)
    assert str(trace)  # prints
    for s in trace:
        np.testing.assert_allclose(s.total, s.adjoint, rtol=1e-12, atol=1e-14)
        for t in s.terms:
            if t.local is not None:
                np.testing.assert_allclose(t.block, t.upstream * t.local, rtol=1e-12, atol=1e-14)
    nums = (argnums,) if isinstance(argnums, int) else argnums
    tape = tg.record(f, *args, argnums=argnums)
    grads = tg.grad(f, argnums=nums)(*args)
    by_input = {}
    for s in trace:
        if s.role == "input":
            by_input[s.node] = s.total
    for k, g in zip(nums, grads):
        node = int(tape.inputs[k])  # single-leaf arguments: one input node each
        np.testing.assert_allclose(by_input[node], g, rtol=1e-12, atol=1e-14)
        fd = numerical_grad(lambda v: f(*args[:k], v, *args[k + 1:]), args[k])
        np.testing.assert_allclose(by_input[node], fd, rtol=1e-6, atol=1e-8)
    return trace


def mml(x):
    a = x ** 2
    c = a + tnp.exp(a)
    return tnp.sqrt(c) + tnp.cos(c)


@pytest.mark.parametrize("f", [lambda x: tnp.exp(tnp.sin(x ** 2)),
                               lambda x: tnp.exp(tnp.exp(x ** 2)),
                               lambda x: 1.0 / tnp.exp(x ** 2), mml, lambda x: x * x])
def test_trace_sums_are_the_gradient_on_lecture_functions(f):
    trace = check_trace(f, (0.7,))
    assert trace[0].seed is not None and trace[-1].role == "input"
    for s in trace:  # scalar terms added in the sweep's order: the very same floats
        assert float(s.total) == float(s.adjoint)


def test_trace_shows_each_consumer_of_a_shared_node():
    trace = check_trace(mml, (0.7,))
    a, c = trace.step(1), trace.step(3)  # a = x**2 feeds EXP and ADD; c feeds SQRT and COS
    assert sorted(t.consumer for t in a.terms) == [2, 3]
    assert sorted(t.consumer for t in c.terms) == [4, 5]
    x, e = 0.7, np.exp(0.49)
    c_val = 0.49 + e
    assert c.total == pytest.approx(1 / (2 * np.sqrt(c_val)) - np.sin(c_val), rel=1e-12)
    assert a.total == pytest.approx(c.total * (1 + e), rel=1e-12)
    text = str(trace)
    assert "grad_table[3] * d3/d1" in text and "grad_table[2] * d2/d1" in text


def test_trace_of_x_times_x_shows_two_terms():
    trace = check_trace(lambda x: x * x, (3.0,))
    assert [t.position for t in trace.step(0).terms] == [0, 1]  # a first, as the sweep does
    assert [float(t.block) for t in trace.step(0).terms] == [3.0, 3.0]


def test_trace_on_an_mlp_like_array_program(rng):
    args = _mlp_args(rng)
    for k in range(3):
        check_trace(lambda *a, k=k: mlp_loss(*a), args, argnums=k)
    trace = tg.trace_grad_table(mlp_loss, *args, argnums=(0, 1, 2), show=False)
    assert all(s.role != "input" or s.node < 3 for s in trace)  # X, Y: not differentiated
    assert "norm" in str(trace)


def test_trace_of_where_gives_each_branch_its_term():
    """WHERE reads three operands (the condition a constant): the trace runs the n-ary
    entry once per differentiated operand, and x's two consumers are both shown."""
    mask = np.array([True, False, True])
    trace = check_trace(lambda x: tnp.sum(tnp.where(mask, x * x, tnp.sin(x))), (np.arange(1.0, 4.0),))
    where_terms = [t for s in trace for t in s.terms if "WHERE" in trace._consumers[t.entry]]
    assert sorted(t.position for t in where_terms) == [1, 2]
    np.testing.assert_array_equal(where_terms[0].block + where_terms[1].block, np.ones(3))


def test_trace_attributes_terms_through_views_to_the_owner():
    x = np.array([1.0, 2.0, 3.0])
    trace = check_trace(lambda x: tnp.sum(x * x[1]), (x,))
    owner = trace.step(0)
    assert [(t.operand, t.window) for t in owner.terms] == [(0, (0, 3)), (1, (1, 2))]
    np.testing.assert_array_equal(owner.terms[1].value, [0.0, 6.0, 0.0])
    assert owner.total.tolist() == [2.0, 8.0, 2.0]
    assert "into [1:2]" in str(trace) and "through view 1" in str(trace)
    with pytest.raises(KeyError):
        trace.step(1)  # a view has no step of its own


def test_trace_draws_values_and_grad_table_entries(rng):
    args = _mlp_args(rng)
    trace = tg.trace_grad_table(mlp_loss, *args, argnums=(0, 1, 2), show=False)
    nodes, edges = parse_dot(trace.to_dot())
    want_nodes, want_edges = expected_graph(trace.tape)
    assert set(nodes) == want_nodes and len(edges) == sum(want_edges.values())
    for s in trace:
        label = nodes[s.node]["label"].split("\n")
        assert "= " + viz.summary(s.value) in label and "grad " + viz.summary(s.total) in label
    x = np.array([1.0, 2.0, 3.0])
    trace = tg.trace_grad_table(lambda x: tnp.sum(x * x[1]), x, show=False)
    nodes, _ = parse_dot(trace.to_dot())
    assert nodes[1]["label"].endswith("= 2\ngrad 8")  # the view x[1] shows its window


def test_trace_of_a_scalar_loop_over_views():
    def f(x):
        s = 0.0
        for i in range(len(x) - 1):
            s = s + (x[i + 1] - x[i] ** 2) ** 2
        return s
    trace = check_trace(f, (np.array([0.5, -1.0, 2.0, 0.3]),))
    assert len(trace.step(0).terms) == 6  # x[1], x[2] twice each, x[0], x[3] once


def test_trace_of_an_output_that_is_a_view():
    trace = check_trace(lambda x: (x * x)[1], (np.array([1.0, 2.0, 3.0]),))
    assert trace[0].seed.tolist() == [0.0, 1.0, 0.0]


@pytest.mark.parametrize("transposed", [False, True])
def test_trace_through_matmul_with_inputs_read_by_reference(rng, transposed):
    W, X = rng.normal(size=(3, 2)), rng.normal(size=(4, 3))
    if transposed:  # W stored (out, in) and used as W.T, as models are often written
        W = W.T.copy()
        f = lambda W, X: tnp.sum(tnp.tanh(X @ W.T))  # noqa: E731
    else:
        f = lambda W, X: tnp.sum(tnp.tanh(X @ W))  # noqa: E731
    tape = tg.record(f, W, X, argnums=(0, 1))
    assert tape._slots  # both inputs are read where the caller keeps them
    trace = check_trace(f, (W, X), argnums=(0, 1))
    np.testing.assert_allclose(trace.step(0).value, W)  # values of by-reference inputs
    np.testing.assert_allclose(trace.step(1).value, X)
    np.testing.assert_allclose(trace.step(1).total, tg.grad(f, argnums=1)(W, X), rtol=1e-12)


def test_trace_of_a_tape_at_new_arguments():
    tape = tg.record(mml, 0.3)
    trace = tg.trace_grad_table(tape, 1.1, show=False)
    assert trace[-1].total == pytest.approx(tape.gradient(1.1), rel=1e-12)
    assert trace[-1].value == pytest.approx(1.1)
    assert trace[-1].label == "input argument 0"


def test_trace_of_a_function_that_branches():
    def relu_square(x):
        return x * x if x > 0 else 0.0 * x
    assert tg.trace_grad_table(relu_square, 3.0, show=False).step(0).total == 6.0
    assert tg.trace_grad_table(relu_square, -2.0, show=False).step(0).total == 0.0
    tape = tg.record(relu_square, 3.0)
    assert tg.trace_grad_table(tape, 2.0, show=False).step(0).total == 4.0  # its guard holds
    with pytest.raises(ValueError, match="does not hold"):  # the other branch is not replayed
        tg.trace_grad_table(tape, -2.0, show=False)


def test_trace_prints_and_names_nodes(capsys):
    trace = tg.trace_grad_table(lambda x: tnp.exp(tnp.sin(x ** 2)), 0.5,
                                names={1: "h1", 2: "h2", 3: "y"}, digits=3)
    printed = capsys.readouterr().out
    assert printed.strip() == str(trace)
    assert "node 2 (h2) = SIN(1), value 0.247" in printed
    assert "grad_table[y] * dy/dh2 = 1 * 1.28 = 1.28" in printed
    assert printed.strip().endswith("grad_table[0] = 1.24")


def test_trace_needs_a_scalar_output():
    with pytest.raises(TypeError, match="scalar output"):
        tg.trace_grad_table(lambda x: x * 2.0, np.ones(3), show=False)


def test_docs_page_runs():
    path = os.path.join(os.path.dirname(__file__), "..", "docs", "backprop.md")
    result = doctest.testfile(path, module_relative=False, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 10
