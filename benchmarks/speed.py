"""The core engine's speed targets, each measured against a baseline in the same run.

    python benchmarks/speed.py [--quick]

1. Scalar-loop Rosenbrock, n = 1000 (~11k scalar tape entries): forward + backward replay
   time per tape entry, for the interpreter alone and for a whole ``grad`` call; baseline:
   one plain-Python evaluation of the same loop on floats.
2. MLP 784-256-128-10, batch 64, sigmoid, softmax cross-entropy, written as users write it
   (weights ``(out, in)``, ``h @ W.T + b``, sigmoid and log-sum-exp written out): a ``grad``
   call against hand-written numpy backprop (same gradients, checked).  The functions and
   baselines are those of ``tapegrad bench`` (``tapegrad.bench.models``, ``.workloads``).
3. First-gradient latency: a fresh process with a warm numba cache that imports tapegrad
   and computes one gradient; baseline: a fresh process that imports numpy.

Times are the median of repeated, calibrated batches; systems alternate within each
repeat so that drift in machine speed hits both alike.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np

import tapegrad as tg
import tapegrad.numpy as tnp
from tapegrad.bench.models import mlp_loss, rosenbrock_loop
from tapegrad.bench.workloads import mlp_data, mlp_numpy_grad, rosenbrock_grad


def per_call(fn, repeats, min_time=0.05):
    """Median seconds per call over ``repeats`` batches sized to last about ``min_time``."""
    fn()
    n = 1
    while True:
        t = time.perf_counter()
        for _ in range(n):
            fn()
        if time.perf_counter() - t > min_time:
            break
        n *= 2
    samples = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - t) / n)
    return samples


def interleaved(fns, repeats):
    """{name: samples} with the systems alternating inside each repeat."""
    out = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            out[name] += per_call(fn, 1)
    return out


def bench_scalar_loop(repeats):
    x = np.random.default_rng(0).uniform(-1, 1, 1000)
    grad = tg.grad(rosenbrock_loop)
    assert np.allclose(grad(x), rosenbrock_grad(x), rtol=1e-12, atol=1e-12)
    tape = tg.record(rosenbrock_loop, x)
    bound = tape._load([x])
    xs = [float(v) for v in x]
    t = interleaved({"python": lambda: rosenbrock_loop(xs),
                     "kernel": lambda: tape._sweep(bound, np.ones(1), True),
                     "grad": lambda: grad(x)}, repeats)
    med = {k: statistics.median(v) for k, v in t.items()}
    n = len(tape)
    return [("scalar Rosenbrock n=1000: replay fwd+bwd per entry (interpreter)", med["kernel"] / n * 1e9, "ns",
             med["kernel"] / med["python"], "one plain-Python evaluation of the loop", 10.0),
            ("scalar Rosenbrock n=1000: whole grad() call per entry", med["grad"] / n * 1e9, "ns",
             med["grad"] / med["python"], "one plain-Python evaluation of the loop", None)]


def bench_mlp(repeats):
    params, X, Y = mlp_data("784-256-128-10x64")
    grad = tg.grad(lambda params, X, Y: mlp_loss(params, X, Y, tnp))
    assert all(np.allclose(a, b, rtol=1e-9, atol=1e-12)
               for a, b in zip(grad(params, X, Y), mlp_numpy_grad(params, X, Y)))
    t = interleaved({"numpy": lambda: mlp_numpy_grad(params, X, Y), "tapegrad": lambda: grad(params, X, Y)}, repeats)
    med = {k: statistics.median(v) for k, v in t.items()}
    return [("MLP 784-256-128-10 batch 64: grad call", med["tapegrad"] * 1e6, "us",
             med["tapegrad"] / med["numpy"], "hand-written numpy backprop", 1.2)]


FIRST_GRADIENT = """
import numpy as np, tapegrad as tg, tapegrad.numpy as tnp
g = tg.grad(lambda x: tnp.sqrt(x**2 + tnp.exp(x**2)) + tnp.cos(x**2 + tnp.exp(x**2)))(0.7)
import time; print(time.time())
"""


def _process_seconds(code):
    """Wall time from launching a fresh interpreter to the end of ``code`` (which prints
    time.time() last); the interpreter's shutdown afterwards is not counted."""
    start = time.time()
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(out.stdout.split()[-1]) - start


def bench_first_gradient(repeats):
    _process_seconds(FIRST_GRADIENT)  # warm the numba cache
    t = {"numpy": [], "tapegrad": []}
    for _ in range(repeats):  # the child's own clock: its exit is not part of the latency
        t["numpy"].append(_process_seconds("import numpy, time; print(time.time())"))
        t["tapegrad"].append(_process_seconds(FIRST_GRADIENT))
    med = {k: statistics.median(v) for k, v in t.items()}
    return [("fresh process, warm cache: start to first gradient", med["tapegrad"], "s",
             med["tapegrad"] / med["numpy"], "a fresh process importing numpy", 0.6)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (about 20 s)")
    args = parser.parse_args(argv)
    repeats = 5 if args.quick else 15
    rows = bench_scalar_loop(repeats) + bench_mlp(repeats) + bench_first_gradient(max(3, repeats // 3))
    print(f"# tapegrad core speed | numpy {np.__version__} | {os.cpu_count()} cpus | median of {repeats}")
    print(f"| {'measurement':58s} | {'value':>10s} | {'ratio':>7s} | {'baseline (same run)':42s} | target |")
    print(f"|{'-' * 60}|{'-' * 12}|{'-' * 9}|{'-' * 44}|--------|")
    for name, value, unit, ratio, baseline, target in rows:
        tgt = "" if target is None else f"<= {target:g} {'x' if unit == 'us' else unit}"
        print(f"| {name:58s} | {value:7.3g} {unit:2s} | {ratio:6.2f}x | {baseline:42s} | {tgt:6s} |")


if __name__ == "__main__":
    main()
