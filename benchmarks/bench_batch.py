"""asv suite: batched gradients (``tg.batch_grad``) at many points, on numba's threads and on one.

* ``time_lecture``: the lecture function (MML eq. 5.109) at 1e5 points.
* ``time_rosenbrock10``: the vectorised Rosenbrock function of 10 variables at 1e4 points.
* ``time_per_example``: per-example gradients of the user-style MLP 64-32-10 on 256 examples.
* ``track_thread_speedup``: time on one thread over time on numba's threads, lecture at 1e5
  points (the issue's target is >= 1.7 on 2 cores).

Each is parametrised by the thread count (``numba.set_num_threads`` around the call).
"""
import timeit

import numba
import numpy as np

import tapegrad as tg
import tapegrad.numpy as tnp
from tapegrad.bench.models import lecture, mlp_loss, rosenbrock
from tapegrad.bench.workloads import mlp_data


def _with_threads(n, call):
    before = numba.get_num_threads()
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        return call()
    finally:
        numba.set_num_threads(before)


class BatchGrad:
    params = [1, 2]
    param_names = ["threads"]

    def setup(self, threads):
        rng = np.random.default_rng(0)
        self.x = rng.uniform(-1.0, 1.0, 100_000)
        self.X = rng.uniform(-1.0, 1.0, (10_000, 10))
        self.params_, self.Xm, self.Ym = mlp_data("64-32-10x256")
        self.lecture = tg.batch_grad(lambda x: lecture(x, tnp))
        self.rosenbrock = tg.batch_grad(lambda x: rosenbrock(x, tnp))
        self.per_example = tg.batch_grad(lambda p, x, y: mlp_loss(p, x[None], y[None], tnp),
                                         in_axes=(None, 0, 0))
        self.lecture(self.x[:10])  # compile / load the kernels outside the timings
        self.rosenbrock(self.X[:10])
        self.per_example(self.params_, self.Xm[:4], self.Ym[:4])

    def time_lecture(self, threads):
        _with_threads(threads, lambda: self.lecture(self.x))

    def time_rosenbrock10(self, threads):
        _with_threads(threads, lambda: self.rosenbrock(self.X))

    def time_per_example(self, threads):
        _with_threads(threads, lambda: self.per_example(self.params_, self.Xm, self.Ym))


def track_thread_speedup():
    grad, x = tg.batch_grad(lambda x: lecture(x, tnp)), np.random.default_rng(1).uniform(-1, 1, 100_000)
    grad(x)
    one = min(timeit.repeat(lambda: _with_threads(1, lambda: grad(x)), number=5, repeat=7))
    many = min(timeit.repeat(lambda: _with_threads(2, lambda: grad(x)), number=5, repeat=7))
    return one / many


track_thread_speedup.unit = "x"
