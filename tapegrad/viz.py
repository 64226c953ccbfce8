"""Printing and pictures of a tape: its printout, Graphviz DOT text, rendered SVG/PNG, and
Jupyter's rich display.

The graph has one node per entry output and one per input, constant or view node that
the tape uses, named as in the tape's printout (``n7`` is node 7, so ``3: MUL(3, 5) -> 7``
draws edges n3 -> n7 and n5 -> n7).  A view (a reshape or a contiguous slice: same
storage as another node, no entry) is drawn as its own dashed box with a dashed edge from
the node whose storage it shows.  Inputs are blue boxes, constants grey notes, the output
has a double border and says "output"; entries the output does not depend on (never
replayed) are grey and dashed.  Labels can carry each node's value and, from a
``trace_grad_table`` trace, its grad_table entry.

Invariants
----------
* The tape is read only through the accessors at the top of this module (``op_name``,
  ``operands``, ...), so a change of the entry format is absorbed there.
* Nothing here imports the optional ``graphviz`` package until a picture is actually
  rendered, and displaying a tape in Jupyter never fails for want of it.
"""
import html
import os

import numpy as np

import tapegrad.jit as J
from tapegrad.program import replayed
from tapegrad.recorder import ALIAS, CONST, INPUT

INSTALL_HINT = ("install the graphviz Python package (pip install graphviz) and the Graphviz "
                "'dot' program (apt-get install graphviz, brew install graphviz, or "
                "conda install graphviz)")
_HTML_MAX_ROWS = 1000  # a longer tape shows its first rows; print(tape) lists them all
_SVG_MAX_ENTRIES = 200  # larger graphs are unreadable inline; render() still draws them


# --- reading the tape ---------------------------------------------------------------------
def op_name(tape, i):
    """The name of entry ``i``'s operation (a row of ``tapegrad.jit.OPS``)."""
    return J.NAMES[tape.op[i]]


def operands(tape, i):
    """The nodes entry ``i`` reads, in order (a node read twice appears twice)."""
    return tape.operands(i)


def entry_call(tape, i):
    """Entry ``i`` as the printout writes its operation, e.g. ``POWC(0; p=2)``."""
    return entry_str(tape, i).split(": ", 1)[1].rsplit(" -> ", 1)[0]


def output_node(tape, i):
    """The node entry ``i`` writes, or -1 if it writes none (a row with ``outputs = 0``)."""
    return int(tape.out[i])


def storage_owner(tape, node):
    """The node whose storage ``node`` lives in: itself, or the source of a view."""
    return int(tape.base[node])


def window(tape, node):
    """(start, stop): where ``node``'s values sit in its owner's flat storage."""
    start = int(tape.offset[node] - tape.offset[tape.base[node]])
    return start, start + int(tape.size[node])


def node_role(tape, node):
    """'input', 'constant', 'view' or 'op' (the output of an entry)."""
    return {INPUT: "input", CONST: "constant", ALIAS: "view"}.get(int(tape.kind[node]), "op")


def input_leaves(tape):
    """[(input node, index of its argument leaf)]: the traced leaves, in argument order."""
    traced = [i for i, spec in enumerate(tape.specs) if spec[0] == "f"]
    return list(zip(tape.inputs.tolist(), traced))


def differentiated_inputs(tape):
    """The input nodes of the arguments named by ``argnums``."""
    return {node for node, i in input_leaves(tape) if tape.leaf_arg[i] in tape.argnums}


def is_replayed(tape, i):
    """Whether replays run entry ``i``: the output depends on it, or it writes no node."""
    return bool(tape.out[i] < 0 or tape.live[tape.out[i]])


def program_entries(tape):
    """The tape entry of each row of the interpreter's program (the replayed entries)."""
    rows = np.flatnonzero(replayed(tape))
    assert len(rows) == len(tape._prog), "the program no longer holds one row per live entry"
    return rows


def operand_label(k):
    """The name of operand position ``k`` in pictures and traces: a, b, c, ..."""
    return "abcdefghijklmnopqrstuvwxyz"[k] if k < 26 else str(k)


def shape_str(shape):
    return "(" + ",".join(map(str, shape)) + ")"


def entry_str(tape, i):
    """``i: OP(operands; attributes) -> out (shape)``: the operand list (an operand BLAS
    reads transposed as ``k.T``), then the float attributes by name (a SUM's scale only
    when not 1), or else a reduction's (pre, m, post), a MATMUL's first six integers, a
    decomposition's (batch, m, n, r) or a variadic entry's (k, pre, widths); an entry
    without output ends at the parenthesis."""
    row = J.OPS[tape.op[i]]
    ops = [str(k) for k in tape.operands(i)]
    if row.name == "MATMUL":
        flags = tape.ints[tape.iarg[i] + 6:tape.iarg[i] + 8]
        ops = [k + (".T" if t else "") for k, t in zip(ops, flags)]
    shown = [f"{name}={v:g}" for name, v in tape.entry_floats(i).items()
             if not (name == "scale" and v == 1.0)]
    if not shown and row.family in ("reduce", "linalg"):
        k = 6 if row.family == "linalg" else 3
        shown = [",".join(str(v) for v in tape.ints[tape.iarg[i]:tape.iarg[i] + k])]
    if row.family == "decomp":  # (batch, m, n, r) after PINV's rcond
        shown.append(",".join(str(v) for v in tape.ints[tape.iarg[i]:tape.iarg[i] + 4]))
    if row.family == "guard":
        shown = [f"took={bool(tape.ints[tape.iarg[i]])}"]
    if row.family == "variadic":  # (k, pre, w_0 .. w_{k-1}): the count first
        start = tape.iarg[i]
        shown = [",".join(str(v) for v in tape.ints[start:start + 2 + tape.ints[start]])]
    attrs = "; " + ", ".join(shown) if shown else ""
    head = f"{i}: {row.name}({', '.join(ops)}{attrs})"
    out = tape.out[i]
    return head if out < 0 else f"{head} -> {out} {shape_str(tape.shape(out))}"


def tape_str(tape):
    """The printout: a summary line, the inputs, constants and output, then every entry."""
    leaves = ", ".join(f"{n} {shape_str(tape.shape(n))}" for n in tape.inputs)
    consts = int(np.sum(tape.kind == CONST))
    head = (f"Tape: {len(tape)} entries, {tape.n_nodes} nodes, {len(tape.values)} floats\n"
            f"inputs: {leaves or '-'}; constants: {consts}; output: {tape.output} "
            f"{shape_str(tape.shape(tape.output))}")
    return "\n".join([head] + [entry_str(tape, i) for i in range(len(tape))])


def summary(value, digits=4):
    """A number for a scalar, a short list for a few values, else shape and norm."""
    value = np.asarray(value, dtype=np.float64)
    if value.size == 1:
        return f"{float(value.ravel()[0]):.{digits}g}"
    if value.size <= 4:
        return "[" + " ".join(f"{float(v):.{digits}g}" for v in value.ravel()) + "]"
    return f"{shape_str(value.shape)} norm {float(np.linalg.norm(value)):.{digits}g}"


# --- the graph ----------------------------------------------------------------------------
def graph_nodes(tape):
    """The tape nodes the graph draws, in increasing order: entry outputs, inputs, the
    output, every operand, and the storage owner of every view among these."""
    used = {output_node(tape, i) for i in range(len(tape))} - {-1}
    used |= {int(n) for n in tape.inputs} | {int(tape.output)}
    for i in range(len(tape)):
        used.update(operands(tape, i))
    used |= {storage_owner(tape, n) for n in used}
    return sorted(used)


def graph_edges(tape):
    """(source node, target node, operand label or 'view') for every edge of the graph; an
    entry without output is its own graph node, named by the target ``"e<i>"``."""
    edges = []
    for node in graph_nodes(tape):
        if node_role(tape, node) == "view":
            edges.append((storage_owner(tape, node), node, "view"))
    for i in range(len(tape)):
        ops = operands(tape, i)
        dst = output_node(tape, i)
        for k, src in enumerate(ops):
            edges.append((src, dst if dst >= 0 else f"e{i}", operand_label(k) if len(ops) > 1 else ""))
    return edges


def _quote(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _node_label(tape, node, producer, values, grads, diff):
    role, shape = node_role(tape, node), shape_str(tape.shape(node))
    if role == "op":
        i = producer[node]
        lines = [f"{i}: {entry_call(tape, i)}", f"node {node} {shape}"]
    elif role == "input":
        lines = [f"{'differentiated ' if node in diff else ''}input, node {node}", shape]
    elif role == "constant":
        lines = [f"constant, node {node}", shape]
    else:
        start, stop = window(tape, node)
        lines = [f"view {storage_owner(tape, node)}[{start}:{stop}]", f"node {node} {shape}"]
    if isinstance(values, dict):
        lines.append("= " + summary(values[node]))
    elif values:
        lines.append("= " + summary(tape.recorded_value(node)))
    owner = storage_owner(tape, node)
    if grads is not None and owner in grads:
        start, stop = window(tape, node)
        mine = np.ravel(grads[owner])[start:stop].reshape(tape.shape(node))
        lines.append("grad " + summary(mine))
    if node == tape.output:
        lines.append("output")
    return "\n".join(lines)


def _node_attrs(tape, node, producer):
    role = node_role(tape, node)
    attrs = {"input": 'shape=box, style=filled, fillcolor="#cfe2ff"',
             "constant": 'shape=note, style=filled, fillcolor="#eeeeee"',
             "view": "shape=box, style=dashed"}.get(role, "shape=ellipse")
    if role == "op" and not is_replayed(tape, producer[node]):
        attrs += ", style=dashed, color=gray, fontcolor=gray"
    if node == tape.output:
        attrs += ', peripheries=2, penwidth=1.5, color="#b02020"'
    return attrs


def to_dot(tape, values=False, grads=None):
    """The tape as Graphviz DOT text (see the module docstring for what is drawn).

    ``values=True`` adds each node's recorded value: the number for a scalar, a few values
    for a small array, shape and norm for a larger one; a dict {node: value} for every
    drawn node gives other values (a replay's).  ``grads`` {storage owner: adjoint} adds
    each node's grad_table entry (a view shows its window of its owner's).
    """
    producer = {output_node(tape, i): i for i in range(len(tape))}
    diff = differentiated_inputs(tape)
    lines = ["digraph tape {", "  rankdir=TB;", '  node [fontname="Helvetica", fontsize=10];',
             '  edge [fontname="Helvetica", fontsize=9];']
    for node in graph_nodes(tape):
        label = _quote(_node_label(tape, node, producer, values, grads, diff))
        lines.append(f"  n{node} [label={label}, {_node_attrs(tape, node, producer)}];")
    for i in range(len(tape)):
        if output_node(tape, i) < 0:  # a guard is drawn with the line of code that branched
            guard = J.OPS[tape.op[i]].family == "guard"
            label = f"{i}: {entry_call(tape, i)}" + (f"\nat {tape.guard_site(i)}" if guard else "")
            lines.append(f"  e{i} [label={_quote(label)}, shape=diamond];")
    for src, dst, kind in graph_edges(tape):
        attrs = " [style=dashed]" if kind == "view" else (f' [label="{kind}"]' if kind else "")
        lines.append(f"  n{src} -> {dst if isinstance(dst, str) else f'n{dst}'}{attrs};")
    lines.append("}")
    return "\n".join(lines) + "\n"


# --- rendering ----------------------------------------------------------------------------
def _graphviz():
    try:
        import graphviz
    except ImportError as err:
        raise ImportError(f"drawing a tape needs Graphviz: {INSTALL_HINT}") from err
    return graphviz


def dot_bytes(dot, format="svg"):
    """DOT text drawn by the ``dot`` program, as bytes in ``format`` (svg, png, pdf, ...)."""
    graphviz = _graphviz()
    try:
        return graphviz.Source(dot).pipe(format=format)
    except graphviz.ExecutableNotFound as err:
        raise RuntimeError(f"the Graphviz 'dot' program was not found: {INSTALL_HINT}") from err


def write_dot(dot, path, format=None):
    """Draw DOT text into the file ``path``; the format defaults to the file's suffix, else
    SVG.  Returns the path."""
    path = os.fspath(path)
    if format is None:
        format = os.path.splitext(path)[1].lstrip(".").lower() or "svg"
    data = dot_bytes(dot, format)
    with open(path, "wb") as f:
        f.write(data)
    return path


def render(tape, path, format=None, values=False):
    """Draw the tape into ``path`` (see :func:`write_dot`)."""
    return write_dot(to_dot(tape, values), path, format)


def svg_or_none(tape):
    """The graph as SVG text, or None when Graphviz is missing, fails, or the tape is too
    large to be worth drawing inline.  Never raises: this backs Jupyter's display."""
    if len(tape) > _SVG_MAX_ENTRIES:
        return None
    try:
        return dot_bytes(to_dot(tape), "svg").decode("utf-8")
    except Exception:  # noqa: BLE001 - a display hook must not fail
        return None


def html_table(tape, with_graph=True):
    """An HTML table of the tape's entries (escaped), followed by the graph as inline SVG
    when Graphviz is installed."""
    esc = html.escape
    text = str(tape) if len(tape) <= _HTML_MAX_ROWS else repr(tape)
    head = "<br>".join(esc(line) for line in text.split("\n")[:2])
    rows = ["<tr><th>entry</th><th>op</th><th>operands</th><th>output</th><th>shape</th>"
            "<th>printed</th></tr>"]
    for i in range(min(len(tape), _HTML_MAX_ROWS)):
        out = output_node(tape, i)
        cells = [str(i), op_name(tape, i), ", ".join(map(str, operands(tape, i))),
                 str(out) if out >= 0 else "-", shape_str(tape.shape(out)) if out >= 0 else "-",
                 tape.entry_str(i)]
        style = "" if is_replayed(tape, i) else ' style="color:gray"'
        rows.append(f"<tr{style}>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>")
    more = len(tape) - _HTML_MAX_ROWS
    tail = (f"<p>... and {more} more {'entry' if more == 1 else 'entries'} (print(tape) lists "
            "them all)</p>" if more > 0 else "")
    graph = svg_or_none(tape) if with_graph else None
    if graph:  # inline SVG in HTML: drop the XML prolog and doctype before <svg
        graph = graph[graph.find("<svg"):]
    return (f"<div class=\"tapegrad-tape\"><p>{head}</p><table>{''.join(rows)}</table>{tail}"
            + (f"<div>{graph}</div>" if graph else "") + "</div>")
