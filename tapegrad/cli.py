"""The ``tapegrad`` command line (also ``python -m tapegrad``).

    tapegrad bench [--quick] [--workloads W,..] [--systems S,..] [--sizes N,..]
                   [--format auto|rich|plain|markdown] [--json PATH] [--plot PATH.png]
                   [--compare OLD.json [--fail-above 1.10]]

Exit status: 0 done, 1 a tapegrad figure regressed beyond --fail-above, 2 bad arguments.
"""
import argparse
import importlib.util
import os
import sys

from tapegrad.bench import report, timing
from tapegrad.bench.registry import all_systems
from tapegrad.bench.workloads import WORKLOADS


def _names(text):
    return [t.strip() for t in text.split(",") if t.strip()]


def _parser():
    parser = argparse.ArgumentParser(prog="tapegrad", description="tapegrad command line")
    commands = parser.add_subparsers(dest="command", required=True)
    bench = commands.add_parser("bench", help="time gradients: tapegrad, a numpy baseline and peer AD systems",
                                description="Time gradients of benchmark workloads with tapegrad, a "
                                "hand-written numpy baseline and any installed peer AD systems.")
    bench.add_argument("--workloads", type=_names, metavar="W,..",
                       help=f"workloads to run (default all): {', '.join(WORKLOADS)}")
    bench.add_argument("--systems", type=_names, metavar="S,..",
                       help="systems to run (default all; each one not installed is named once, under the table)")
    bench.add_argument("--sizes", type=_names, metavar="N,..",
                       help="only these sizes, for workloads that have them (see --list)")
    bench.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats: about a minute")
    bench.add_argument("--repeats", type=int, help="timed samples per system (default 15, quick 5)")
    bench.add_argument("--format", choices=("auto", "rich", "plain", "markdown"), default="auto")
    bench.add_argument("--json", metavar="PATH", help="save all results, samples, machine and versions")
    bench.add_argument("--plot", metavar="PATH.png", help="plot time against size (needs matplotlib)")
    bench.add_argument("--compare", metavar="OLD.json", help="compare tapegrad's times with an earlier --json")
    bench.add_argument("--fail-above", type=float, default=1.10, metavar="RATIO",
                       help="with --compare: exit 1 if a tapegrad time grew by more than this factor (1.10)")
    bench.add_argument("--list", action="store_true", help="list workloads, sizes and systems, then exit")
    return parser, bench


def _select(parser, args, systems):
    """(workloads, sizes per workload, systems) from the arguments; parser.error (exit 2)
    on an unknown name, listing the valid ones."""
    names = args.workloads or list(WORKLOADS)
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(unknown)}; valid: {', '.join(WORKLOADS)}")
    chosen = args.systems or list(systems)
    unknown = [n for n in chosen if n not in systems]
    if unknown:
        parser.error(f"unknown system(s) {', '.join(unknown)}; valid: {', '.join(systems)}")
    sizes = {}
    for name in names:
        w = WORKLOADS[name]
        sizes[name] = [str(s) for s in (w.quick_sizes if args.quick else w.sizes)]
    if args.sizes:
        every = {str(s) for w in names for s in WORKLOADS[w].sizes}
        unknown = [s for s in args.sizes if s not in every]
        if unknown:
            valid = "; ".join(f"{w}: {', '.join(map(str, WORKLOADS[w].sizes))}" for w in names)
            parser.error(f"unknown size(s) {', '.join(unknown)}; valid: {valid}")
        for w in names:  # a workload that has none of the sizes keeps its own
            picked = [s for s in map(str, WORKLOADS[w].sizes) if s in args.sizes]
            sizes[w] = picked or sizes[w]
    return names, sizes, [systems[n] for n in chosen]


class _Progress:
    """A one-line progress bar on stderr when it is a terminal; silent otherwise."""

    def __init__(self, total, stream=sys.stderr):
        self.total, self.done, self.stream = max(total, 1), 0, stream
        self.live = stream.isatty()

    def __call__(self, label):
        self.done += 1
        if self.live:
            filled = int(30 * min(self.done / self.total, 1.0))
            self.stream.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {label[:60]:60s}")
            self.stream.flush()

    def close(self):
        if self.live:
            self.stream.write("\r" + " " * 100 + "\r")


def bench(parser, args):
    systems = all_systems()
    if args.list:
        for w in WORKLOADS.values():
            print(f"workload {w.name:16s} sizes {', '.join(map(str, w.sizes))}  ({w.title})")
        for s in systems.values():
            state = "installed" if s.available() else "not installed: " + s.install
            print(f"system   {s.name:16s} {state}" + (f" ({s.note})" if s.note else ""))
        return 0
    if args.compare:  # fail early on a bad file, before minutes of timing
        try:
            _, old = report.load_json(args.compare)
        except (OSError, ValueError) as err:
            parser.error(f"--compare: {err}")
    names, sizes, chosen = _select(parser, args, systems)
    missing = [s for s in chosen if not s.available()]
    chosen = [s for s in chosen if s.available()]
    for flag, module, extra in (("--format rich", "rich", "rich"), ("--plot", "matplotlib", "plot")):
        wanted = args.format == "rich" if module == "rich" else args.plot
        if wanted and importlib.util.find_spec(module) is None:
            parser.error(f"{flag} needs {module}: pip install {module}  (or the '{extra}' extra)")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > 0.5 * (os.cpu_count() or 1):  # multi-threaded BLAS, JAX, torch suffer most
        print(f"warning: load average {load:.1f} before starting: other work is running, so "
              "times will be noisy (multi-threaded kernels suffer most)", file=sys.stderr)
    repeats = args.repeats or (5 if args.quick else 15)
    target = 0.005 if args.quick else 0.02
    steps = sum(len(sizes[w]) * (len(chosen) + repeats) for w in names)
    tick = _Progress(steps + len(chosen))
    for system in chosen:
        timing.warm_up(system)
        tick(f"loading {system.name}")
    results = []
    for name in names:
        for size in sizes[name]:
            problem = WORKLOADS[name].make(size)
            if name == "first-gradient":
                results += timing.measure_first_gradient(problem, chosen, max(3, repeats // 3), tick)
            else:
                results += timing.measure(problem, chosen, repeats, target, tick,
                                          settle=0.0 if args.quick else 0.2)
    tick.close()
    timing.add_ratios(results)
    report.print_table(results, args.format, sys.stdout, missing, chosen)
    versions = {s.name: s.version() for s in chosen}
    if args.json:
        config = {"workloads": names, "sizes": sizes, "systems": [s.name for s in chosen],
                  "repeats": repeats, "target_s": target, "quick": args.quick}
        report.save_json(args.json, report.to_json(results, versions, config, missing))
    if args.plot:
        report.plot(results, args.plot, series={w for w in names if WORKLOADS[w].series})
    if args.compare:
        lines, regressions = report.compare(old, results, args.fail_above)
        print(f"\ntapegrad against {args.compare} (fail above {args.fail_above:.2f}x):")
        print("\n".join(lines) if lines else "no problem was timed in both runs")
        if regressions:
            return 1
    return 0


def main(argv=None):
    parser, bench_parser = _parser()
    args = parser.parse_args(argv)
    return bench(bench_parser, args)
