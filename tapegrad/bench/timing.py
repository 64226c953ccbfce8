"""Measuring: setup apart from steady state, calibrated inner loops, interleaved systems.

For each problem every system is first *set up* (its gradient function built and called
once: recording, tracing, compiling), and its answer checked against the reference; a
wrong answer is reported and never timed.  Then each repeat times every ready system in
turn, rotating the order, so that a drift in machine speed affects all of them alike.  A
sample is the mean time of ``inner`` back-to-back calls, ``inner`` calibrated so a sample
lasts at least ``target`` seconds (timer resolution and call overhead stay negligible).
Each sample follows untimed calls of the same function, for at least ``settle`` seconds:
BLAS and OpenMP worker threads keep spinning for a while after a call (OpenBLAS, about
0.1 s), and without the pause the thread pools of the system timed just before compete
for the cores (numpy's and scipy's OpenBLAS were seen to double each other's times on a
2-core machine).
"""
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from tapegrad.bench.base import Timed, Unsupported
from tapegrad.bench.workloads import WORKLOADS

OK, SKIPPED, UNSUPPORTED, WRONG, ERROR = "ok", "skipped", "unsupported", "wrong", "error"


@dataclass
class Result:
    workload: str
    size: str
    system: str
    status: str
    reason: str = ""
    scale: float = 0.0
    setup_s: float = None
    inner: int = 0
    samples_s: list = field(default_factory=list)
    ratio_numpy: float = None
    ratio_best_peer: float = None
    peer: bool = False    # counts for "x best peer" (not tapegrad's rows, not the baseline)
    entries: int = None   # record: entries (operations, nodes) of the system's recording
    nbytes: int = None    # record: bytes of one recording, None if the system does not say
    program_nbytes: int = None  # record: tapegrad's derived interpreter program, in bytes

    @property
    def median(self):
        return statistics.median(self.samples_s) if self.samples_s else None

    @property
    def spread(self):
        """(max - min) / median of the samples: how noisy the figure is."""
        return (max(self.samples_s) - min(self.samples_s)) / self.median if self.samples_s else None


def max_error(got, reference, rtol, atol):
    """None if ``got`` matches ``reference`` (same structure) within tolerance, otherwise a
    description of the worst mismatch."""
    refs = reference if isinstance(reference, (list, tuple)) else [reference]
    gots = got if isinstance(got, (list, tuple)) else [got]
    if len(gots) != len(refs):
        return f"returned {len(gots)} arrays, expected {len(refs)}"
    for k, (g, r) in enumerate(zip(gots, refs)):
        g, r = np.asarray(g, dtype=np.float64), np.asarray(r, dtype=np.float64)
        if g.shape != r.shape:
            return f"gradient {k} has shape {g.shape}, expected {r.shape}"
        if not np.allclose(g, r, rtol=rtol, atol=atol):
            err = np.max(np.abs(g - r) / (atol + rtol * np.abs(r)))
            return f"gradient {k} is off by {err:.3g} x the tolerance (rtol {rtol:g})"
    return None


def calibrate(fn, target):
    """How many back-to-back calls of ``fn`` take at least ``target`` seconds."""
    inner = 1
    while True:
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        elapsed = time.perf_counter() - t
        if elapsed >= target or inner >= 1 << 20:
            return inner
        inner = max(inner * 2, int(inner * target / max(elapsed, 1e-9) * 1.2))


def sample(fn, inner):
    t = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - t) / inner


def warm_up(system):
    """Import and initialise ``system`` once, on a tiny problem, so that no workload's
    setup time includes loading the library itself (the first-gradient workload measures
    that, in fresh processes)."""
    workload = next((w for w in ("lecture", "mlp") if system.covers(w)), None)
    if system.available() and workload:
        try:
            system.prepare(WORKLOADS[workload].make("scalar" if workload == "lecture" else "3-2x2"))()
        except Exception:  # reported properly when the real workloads run
            pass


def setup(system, problem):
    """(Result, timed function or None) for one system on one problem.  The answer checked
    is the function's result, or for a :class:`Timed` that of its ``check``."""
    res = Result(problem.workload, problem.size, system.name, OK, scale=problem.scale, peer=system.peer)
    if not system.available():
        res.status, res.reason = SKIPPED, f"not installed ({system.install})"
        return res, None
    try:
        t = time.perf_counter()
        fn = system.prepare(problem)
        if isinstance(fn, Timed):
            res.entries, res.nbytes, res.program_nbytes = fn.entries, fn.nbytes, fn.program_nbytes
            fn, check = fn.call, fn.check
            fn()
        else:
            check = fn
        got = check()
        res.setup_s = time.perf_counter() - t
    except Unsupported as err:
        res.status, res.reason = UNSUPPORTED, str(err)
        return res, None
    except Exception as err:  # a peer failing must not stop the run
        res.status, res.reason = ERROR, f"{type(err).__name__}: {err}"
        return res, None
    wrong = max_error(got, problem.reference, problem.rtol, problem.atol)
    if wrong:
        res.status, res.reason = WRONG, wrong
        return res, None
    return res, fn


def measure(problem, systems, repeats, target, tick=lambda label: None, settle=0.0):
    """Results of the ``systems`` that cover ``problem``'s workload; ``tick`` is called
    after each step.  Untimed calls run for at least ``settle`` seconds before each sample."""
    results, ready = [], []
    for system in systems:
        if not system.covers(problem.workload):
            continue
        res, fn = setup(system, problem)
        tick(f"{problem.workload} {problem.size}: set up {system.name}")
        results.append(res)
        if fn is not None:
            ready.append((res, fn))
    for res, fn in ready:
        res.inner = calibrate(fn, target)
    for r in range(repeats):
        k = r % len(ready) if ready else 0
        for res, fn in ready[k:] + ready[:k]:
            until = time.perf_counter() + settle
            sample(fn, res.inner)  # untimed: lets the previous system's thread pools go idle
            while time.perf_counter() < until:
                sample(fn, res.inner)
            res.samples_s.append(sample(fn, res.inner))
        tick(f"{problem.workload} {problem.size}: repeat {r + 1}/{repeats}")
    return results


def _fresh_process_seconds(source):
    """(seconds from launch to the end of ``source``, its output before the clock).  The
    child may write Python's bytecode cache, as an installed package has one (see
    :func:`measure_first_gradient`)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    start = time.time()
    out = subprocess.run([sys.executable, "-c", source + "\nimport time\nprint(time.time())"],
                         capture_output=True, text=True, timeout=600, env=env)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed")
    lines = out.stdout.split()
    return float(lines[-1]) - start, lines[-2] if len(lines) > 1 else ""


def measure_first_gradient(problem, systems, repeats, tick=lambda label: None):
    """First-gradient latency: each sample is a fresh process, after one warm-up run that
    fills on-disk caches (numba's, JAX's compilation cache if enabled, and Python's bytecode
    cache, which a pip-installed package has and ``PYTHONDONTWRITEBYTECODE`` would leave
    empty: compiling tapegrad's sources in every sample, ~30 ms)."""
    results, ready = [], []
    for system in systems:
        if not system.covers(problem.workload):
            continue
        res = Result(problem.workload, problem.size, system.name, OK, scale=problem.scale, inner=1,
                     peer=system.peer)
        results.append(res)
        if not system.available():
            res.status, res.reason = SKIPPED, f"not installed ({system.install})"
            continue
        try:
            source = system.prepare(problem)
            res.setup_s, printed = _fresh_process_seconds(source)
            wrong = max_error(float(printed), problem.reference, 1e-9, 1e-12)
        except Unsupported as err:
            res.status, res.reason = UNSUPPORTED, str(err)
            continue
        except Exception as err:
            res.status, res.reason = ERROR, f"{type(err).__name__}: {err}"
            continue
        if wrong:
            res.status, res.reason = WRONG, wrong
            continue
        ready.append((res, source))
        tick(f"{problem.workload}: warm-up {system.name}")
    for r in range(repeats):
        k = r % len(ready) if ready else 0
        for res, source in ready[k:] + ready[:k]:
            res.samples_s.append(_fresh_process_seconds(source)[0])
        tick(f"{problem.workload}: repeat {r + 1}/{repeats}")
    return results


def add_ratios(results):
    """Fill ratio_numpy and ratio_best_peer, comparing within each (workload, size)."""
    by_problem = {}
    for res in results:
        by_problem.setdefault((res.workload, res.size), []).append(res)
    for group in by_problem.values():
        timed = [r for r in group if r.status == OK and r.samples_s]
        base = next((r.median for r in timed if r.system == "numpy"), None)
        peers = [r.median for r in timed if r.peer]
        for r in timed:
            r.ratio_numpy = r.median / base if base else None
            r.ratio_best_peer = r.median / min(peers) if peers else None
    return results
