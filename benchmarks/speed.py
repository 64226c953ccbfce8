"""The core engine's speed targets, each measured against a baseline in the same run.

    python benchmarks/speed.py [--quick]

1. Scalar-loop Rosenbrock, n = 1000 (~11k scalar tape entries): forward + backward replay
   time per tape entry, for the interpreter alone and for a whole ``grad`` call; baseline:
   one plain-Python evaluation of the same loop on floats.
2. MLP 784-256-128-10, batch 64, sigmoid, softmax cross-entropy, written as users write it
   (weights ``(out, in)``, ``h @ W.T + b``, sigmoid and log-sum-exp written out): a ``grad``
   call against hand-written numpy backprop (same gradients, checked).  The functions and
   baselines are those of ``tapegrad bench`` (``tapegrad.bench.models``, ``.workloads``).
3. First-gradient latency: a fresh process with warm caches that imports tapegrad and
   computes one gradient, of the lecture function and of a small user-style MLP (64-32-10,
   batch 16: its matrix products look BLAS up through scipy.linalg); baseline: a fresh
   process that imports numpy.  Time runs from launching the interpreter to the child's
   clock after the gradient (its exit is not counted).  One untimed run first fills the
   caches a user's installation has: numba's kernel cache and Python's bytecode cache
   (the children run without ``PYTHONDONTWRITEBYTECODE``, else every sample would compile
   tapegrad's sources again, ~30 ms that an installed package never pays).

Times are the median of repeated, calibrated batches; systems alternate within each
repeat so that drift in machine speed hits both alike.
"""
import argparse
import inspect
import os
import statistics
import subprocess
import sys
import time

import numpy as np

import tapegrad as tg
import tapegrad.numpy as tnp
from tapegrad.bench.models import mlp_loss, rosenbrock_loop
from tapegrad.bench.workloads import lecture_derivative, mlp_data, mlp_numpy_grad, rosenbrock_grad

# The small MLP's data, built alike in the fresh process and here (for the reference).
MLP_DATA = ("rng = np.random.default_rng(0)\n"
            "params = [rng.normal(size=(32, 64)) / 8, rng.normal(size=32) * 0.1,\n"
            "          rng.normal(size=(10, 32)) / 32 ** 0.5, rng.normal(size=10) * 0.1]\n"
            "X, Y = rng.normal(size=(16, 64)), np.eye(10)[rng.integers(0, 10, 16)]\n")


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
             med["kernel"] / med["python"], "one plain-Python evaluation of the loop", "<= 10 ns"),
            ("scalar Rosenbrock n=1000: whole grad() call per entry", med["grad"] / n * 1e9, "ns",
             med["grad"] / med["python"], "one plain-Python evaluation of the loop", "")]


def bench_mlp(repeats):
    params, X, Y = mlp_data("784-256-128-10x64")
    grad = tg.grad(lambda params, X, Y: mlp_loss(params, X, Y, tnp))
    assert all(np.allclose(a, b, rtol=1e-9, atol=1e-12)
               for a, b in zip(grad(params, X, Y), mlp_numpy_grad(params, X, Y)))
    t = interleaved({"numpy": lambda: mlp_numpy_grad(params, X, Y), "tapegrad": lambda: grad(params, X, Y)}, repeats)
    med = {k: statistics.median(v) for k, v in t.items()}
    return [("MLP 784-256-128-10 batch 64: grad call", med["tapegrad"] * 1e6, "us",
             med["tapegrad"] / med["numpy"], "hand-written numpy backprop", "<= 1.2x")]


FIRST_GRADIENT = {
    "lecture": ("import tapegrad as tg, tapegrad.numpy as tnp\n"
                "g = tg.grad(lambda x: tnp.sqrt(x**2 + tnp.exp(x**2)) + tnp.cos(x**2 + tnp.exp(x**2)))(0.7)\n"
                "print(repr(float(g)))"),
    "MLP 64-32-10 batch 16": ("import numpy as np, tapegrad as tg, tapegrad.numpy as tnp\n"
                              + inspect.getsource(mlp_loss) + MLP_DATA +
                              "g = tg.grad(lambda params, X, Y: mlp_loss(params, X, Y, tnp))(params, X, Y)\n"
                              "print(repr(float(sum(np.sum(a * a) for a in g))))"),
}


def _child_env():
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # see the module docstring, item 3
    return env


def _process_seconds(code):
    """(wall time from launching a fresh interpreter to the end of ``code``, the last line
    ``code`` printed before the clock); the interpreter's shutdown is not counted."""
    start = time.time()
    out = subprocess.run([sys.executable, "-c", code + "\nimport time; print(time.time())"], check=True,
                         capture_output=True, text=True, env=_child_env())
    lines = out.stdout.split()
    return float(lines[-1]) - start, lines[-2] if len(lines) > 1 else ""


def bench_first_gradient(repeats):
    scope = {"np": np}
    exec(MLP_DATA, scope)
    expected = {"lecture": lecture_derivative(0.7),
                "MLP 64-32-10 batch 16": sum(np.sum(a * a) for a in mlp_numpy_grad(scope["params"], scope["X"],
                                                                                   scope["Y"]))}
    for name, code in FIRST_GRADIENT.items():  # fills the caches, and checks the answer
        got = float(_process_seconds(code)[1])
        assert np.isclose(got, expected[name], rtol=1e-9, atol=1e-12), (name, got, expected[name])
    codes = {"numpy": "import numpy", **FIRST_GRADIENT}
    t = {name: [] for name in codes}
    for r in range(repeats):  # rotating the order, so that drift hits every row alike
        names = list(codes)[r % len(codes):] + list(codes)[:r % len(codes)]
        for name in names:
            t[name].append(_process_seconds(codes[name])[0])
    med = {k: statistics.median(v) for k, v in t.items()}
    return [(f"fresh process, warm caches: start to first gradient, {name}", med[name], "s",
             med[name] / med["numpy"], "a fresh process importing numpy", "<= 3x" if name == "lecture" else "")
            for name in FIRST_GRADIENT]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (about 20 s)")
    args = parser.parse_args(argv)
    repeats = 5 if args.quick else 15
    rows = bench_scalar_loop(repeats) + bench_mlp(repeats) + bench_first_gradient(repeats)
    print(f"# tapegrad core speed | numpy {np.__version__} | {os.cpu_count()} cpus | median of {repeats}")
    print(f"| {'measurement':78s} | {'value':>10s} | {'ratio':>7s} | {'baseline (same run)':42s} | target   |")
    print(f"|{'-' * 80}|{'-' * 12}|{'-' * 9}|{'-' * 44}|----------|")
    for name, value, unit, ratio, baseline, target in rows:
        print(f"| {name:78s} | {value:7.3g} {unit:2s} | {ratio:6.2f}x | {baseline:42s} | {target:8s} |")


if __name__ == "__main__":
    main()
