"""Showing, saving, comparing and plotting benchmark results.

JSON schema ``tapegrad-bench/1``: ``{"schema", "created", "machine", "versions", "commit",
"config", "not_installed": {system: how to install}, "results": [Result fields...,
"median_s", "spread"]}``; times in seconds.  Under the table, one line per system that is
not installed, and for ``record`` the time per operation and the bytes per entry.
"""
import dataclasses
import datetime
import json
import os
import platform
import subprocess

from tapegrad.bench.timing import OK, Result

SCHEMA = "tapegrad-bench/1"
COLUMNS = ("workload", "size", "system", "setup", "median", "min .. max", "spread", "x numpy", "x best peer")


def _time(s):
    if s is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"


def _ratio(x):
    return "-" if x is None else f"{x:.2f}x"


def rows(results):
    """Table rows (lists of strings), one per result."""
    out = []
    for r in results:
        if r.status == OK:
            timed = [_time(r.median), f"{_time(min(r.samples_s))} .. {_time(max(r.samples_s))}",
                     f"{100 * r.spread:.0f}%", _ratio(r.ratio_numpy), _ratio(r.ratio_best_peer)] \
                if r.samples_s else ["-"] * 5
            out.append([r.workload, r.size, r.system, _time(r.setup_s), *timed])
        else:
            out.append([r.workload, r.size, r.system, r.status.upper(), r.reason, "", "", "", ""])
    return out


_UNTIMED = ("SKIPPED", "UNSUPPORTED", "WRONG", "ERROR")


def plain_table(results):
    table = [list(COLUMNS)] + rows(results)
    widths = [max(len(row[i]) for row in table if i < 3 or row[3] not in _UNTIMED)
              for i in range(len(COLUMNS))]
    lines = []
    for k, row in enumerate(table):
        if row[3] in _UNTIMED:
            lines.append("  ".join(c.ljust(w) for c, w in zip(row[:3], widths)) + f"  {row[3]}: {row[4]}")
        else:
            lines.append("  ".join(c.ljust(w) if i < 3 else c.rjust(w)
                                   for i, (c, w) in enumerate(zip(row, widths))).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(results):
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows(results):
        lines.append("| " + " | ".join(c.replace("|", "/") for c in row) + " |")
    return "\n".join(lines)


def notes(results, missing=(), systems=()):
    """Lines shown under the table: the ``note`` of each of ``systems`` that has a row, each
    system in ``missing`` (not installed) once, then for each recording timed (``record``)
    its time per operation of the program and its size per entry.  The operation count is
    the program's (the problem's ``scale``), the same for every system; entries are each
    system's own (tape entries, CasADi graph nodes)."""
    shown = {r.system for r in results}
    lines = [f"{s.name}: {s.note}" for s in systems if s.note and s.name in shown]
    lines += [f"{s.name}: not installed - {s.install}" for s in missing]
    for r in results:
        if r.workload != "record" or r.status != OK or not r.samples_s:
            continue
        per_op = f"{_time(r.median / r.scale)} per operation ({r.scale:.0f} operations)"
        size = "" if r.entries is None else f"; {r.entries} entries, " + (
            "bytes not exposed" if r.nbytes is None else f"{r.nbytes / r.entries:.1f} bytes per entry"
            + ("" if r.program_nbytes is None else
               f" stored, {r.program_nbytes / r.entries:.1f} in the derived program"))
        what = " (evaluating the program on floats)" if r.system == "numpy" else ""
        lines.append(f"record {r.size}: {r.system}{what}: {per_op}{size}")
    return lines


def print_table(results, fmt, stream, missing=(), systems=()):
    """``fmt``: rich (needs the rich package), markdown, plain, or auto (rich on a
    terminal when rich is installed, plain otherwise); the :func:`notes` follow it."""
    if fmt == "auto":
        fmt = "plain"
        if stream.isatty():
            try:
                import rich  # noqa: F401
                fmt = "rich"
            except ImportError:
                pass
    if fmt == "rich":
        from rich.console import Console
        from rich.table import Table
        table = Table(*COLUMNS, title="tapegrad bench")
        for row in rows(results):
            table.add_row(*row)
        Console(file=stream, width=None if stream.isatty() else 160).print(table)
    else:
        print(markdown_table(results) if fmt == "markdown" else plain_table(results), file=stream)
    lines = notes(results, missing, systems)
    if lines:
        print("\n" + "\n".join(lines), file=stream)


# --- JSON ----------------------------------------------------------------------------------

def machine_info():
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"platform": platform.platform(), "machine": platform.machine(), "cpu": cpu,
            "cores": os.cpu_count(), "python": platform.python_version(), "load_average_1min": load}


def git_commit():
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        return (out.stdout.strip() or None) if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def to_json(results, versions, config, missing=()):
    return {"schema": SCHEMA, "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "machine": machine_info(), "versions": versions, "commit": git_commit(), "config": config,
            "not_installed": {s.name: s.install for s in missing},
            "results": [dict(dataclasses.asdict(r), median_s=r.median, spread=r.spread) for r in results]}


def save_json(path, document):
    with open(path, "w") as f:
        json.dump(document, f, indent=1)


def load_json(path):
    with open(path) as f:
        document = json.load(f)
    if document.get("schema") != SCHEMA:
        raise ValueError(f"{path}: not a tapegrad bench result (schema {document.get('schema')!r}, "
                         f"expected {SCHEMA!r})")
    names = {f.name for f in dataclasses.fields(Result)}
    return document, [Result(**{k: v for k, v in r.items() if k in names}) for r in document["results"]]


# --- regressions ----------------------------------------------------------------------------

def compare(old, new, threshold, system="tapegrad"):
    """(lines, regressions): ``system``'s median time now over before, per problem both
    runs timed; a regression is a ratio above ``threshold``."""
    before = {(r.workload, r.size): r for r in old if r.system == system and r.status == OK and r.samples_s}
    lines, regressions = [], []
    for r in new:
        key = (r.workload, r.size)
        if r.system != system or r.status != OK or not r.samples_s or key not in before:
            continue
        ratio = r.median / before[key].median
        flag = "REGRESSED" if ratio > threshold else "ok"
        lines.append(f"{r.workload:16s} {r.size:20s} {_time(before[key].median):>10s} -> "
                     f"{_time(r.median):>10s}  {ratio:5.2f}x  {flag}")
        if ratio > threshold:
            regressions.append((key, ratio))
    return lines, regressions


# --- plot -----------------------------------------------------------------------------------

def plot(results, path, series=None):
    """Time per gradient against problem size, log-log, one panel per workload timed at
    more than one size (and named in ``series``, if given), one line per system, each
    system in the same colour everywhere.  Needs matplotlib (pip install matplotlib)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timed = [r for r in results if r.status == OK and r.samples_s]
    workloads = [w for w in dict.fromkeys(r.workload for r in timed)
                 if len({r.scale for r in timed if r.workload == w}) > 1 and (series is None or w in series)]
    colours = {s: f"C{i}" for i, s in enumerate(dict.fromkeys(r.system for r in results))}
    if not workloads:
        raise ValueError("nothing to plot: no workload was timed at more than one size")
    fig, axes = plt.subplots(1, len(workloads), figsize=(5 * len(workloads), 4), squeeze=False)
    for ax, w in zip(axes[0], workloads):
        for system in dict.fromkeys(r.system for r in timed if r.workload == w):
            pts = sorted((r.scale, r.median) for r in timed if r.workload == w and r.system == system)
            ax.loglog([p[0] for p in pts], [p[1] for p in pts], marker="o", label=system, color=colours[system])
        ax.set_title(w)
        ax.set_xlabel("problem size (parameters or points)")
        ax.set_ylabel("seconds per gradient")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
