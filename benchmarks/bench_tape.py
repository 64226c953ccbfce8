"""asv suites: tapegrad's record, forward replay, backward sweep and whole ``grad`` call.

One class per workload, parametrised by problem size:

* ``LectureFunction``: MML eq. 5.109, ``sqrt(x^2 + exp(x^2)) + cos(x^2 + exp(x^2))`` at a
  scalar (6 tape entries: the cost of a call, not of arithmetic).
* ``RosenbrockVectorised``: the Rosenbrock function written with whole-array operations
  (11 entries on arrays of n - 1 floats).
* ``RosenbrockLoop``: the same function as a Python loop over scalars (~11 entries per
  element), the case a tape interpreter exists for.
* ``MLP``: sigmoid multilayer perceptron, softmax cross-entropy via logsumexp.

Every class has the same benchmarks:

* ``time_record``: ``tg.record(f, *args)``, tracing the function in Python;
* ``time_forward``: the forward replay kernel alone (``tape._replay``), arguments bound;
* ``time_backward``: the backward sweep kernel alone (``tape._sweep`` without replay);
* ``time_grad``: a whole ``tg.grad(f)(*args)`` call on a cached tape;
* ``track_ratio_to_numpy``: ``grad`` call time / hand-written numpy gradient time, both
  measured in this process, interleaved (median of paired ratios);
* ``track_bytes_per_entry``: bytes of the tape's numpy columns and arenas per entry.

``setup`` records the tape, checks the gradient against the hand-written one and runs
every kernel once, so numba's compilation (or its cache load) is never timed.
"""
import statistics
import timeit
from dataclasses import fields

import numpy as np

import tapegrad as tg
import tapegrad.numpy as tnp
from tapegrad import pytree

from tapegrad.bench.systems import tapegrad_mlp_loss
from tapegrad.bench.workloads import (lecture_derivative, lecture_value, mlp_data, mlp_numpy_grad,
                                      rosenbrock_grad, rosenbrock_loop)

_ONE = np.ones(1)


# workloads: the bench runner's, as tapegrad functions with their hand-written gradients -----
def lecture(x):
    """MML eq. 5.109."""
    return lecture_value(x, tnp.exp, tnp.sqrt, tnp.cos)


def rosenbrock_vectorised(x):
    return tnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def mlp_loss(params, X, Y):
    return tapegrad_mlp_loss(params, X, Y, tnp)


# measuring -----------------------------------------------------------------------------------
def calls_per_batch(fn, min_time):
    """The number of calls of ``fn`` (doubling from 1) that lasts at least ``min_time`` s."""
    number = 1
    while timeit.Timer(fn).timeit(number) < min_time:
        number *= 2
    return number


def paired_ratio(fn, baseline, repeats=9, min_time=0.03):
    """Median over ``repeats`` of time(fn) / time(baseline), the two timed back to back in
    each repeat so that drift in machine speed hits both alike."""
    fn(), baseline()
    n_fn, n_base = calls_per_batch(fn, min_time), calls_per_batch(baseline, min_time)
    ratios = []
    for _ in range(repeats):
        t_fn = timeit.Timer(fn).timeit(n_fn) / n_fn
        t_base = timeit.Timer(baseline).timeit(n_base) / n_base
        ratios.append(t_fn / t_base)
    return statistics.median(ratios)


def tape_bytes(tape):
    """Bytes of every numpy column and arena of a Tape (entries, nodes, ints, shapes,
    values, inputs); the compiled program derived from them is not counted."""
    return sum(getattr(tape, f.name).nbytes for f in fields(tape)
               if isinstance(getattr(tape, f.name), np.ndarray))


def assert_same_gradient(got, expected):
    got, expected = pytree.flatten(got)[0], pytree.flatten(expected)[0]
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-12)


# suites --------------------------------------------------------------------------------------
class _TapeSuite:
    """The benchmarks every workload shares; a subclass sets ``params``/``param_names`` and
    ``problem(*params) -> (f, args, numpy_gradient)``."""

    timeout = 300  # seconds, per benchmark; recording n = 1e6 takes about a second

    def setup(self, *params):
        self.f, self.args, self.numpy_gradient = self.problem(*params)
        self.grad = tg.grad(self.f)
        assert_same_gradient(self.grad(*self.args), self.numpy_gradient(*self.args))
        self.tape = tg.record(self.f, *self.args)
        self.bound = self.tape._load(pytree.flatten(self.args)[0])
        self.tape._sweep(self.bound, _ONE, True)  # forward then backward: both kernels warm

    def time_record(self, *params):
        tg.record(self.f, *self.args)

    def time_forward(self, *params):
        self.tape._replay(self.bound)

    def time_backward(self, *params):
        self.tape._sweep(self.bound, _ONE, False)

    def time_grad(self, *params):
        self.grad(*self.args)

    def track_ratio_to_numpy(self, *params):
        return paired_ratio(lambda: self.grad(*self.args), lambda: self.numpy_gradient(*self.args))

    track_ratio_to_numpy.unit = "ratio"

    def track_bytes_per_entry(self, *params):
        return tape_bytes(self.tape) / len(self.tape)

    track_bytes_per_entry.unit = "bytes"


def _uniform(n):
    return np.random.default_rng(0).uniform(-1.0, 1.0, n)


class LectureFunction(_TapeSuite):
    """MML eq. 5.109 at x = 0.7; baseline: its derivative written out by hand."""

    def problem(self):
        return lecture, (0.7,), lecture_derivative


class RosenbrockVectorised(_TapeSuite):
    """Whole-array Rosenbrock; baseline: its gradient written with numpy slices."""

    params = (100, 10_000, 1_000_000)
    param_names = ("n",)

    def problem(self, n):
        return rosenbrock_vectorised, (_uniform(n),), rosenbrock_grad


class RosenbrockLoop(_TapeSuite):
    """Rosenbrock as a scalar Python loop; baseline: the same numpy gradient as above."""

    params = (10, 100, 1000)
    param_names = ("n",)

    def problem(self, n):
        return rosenbrock_loop, (_uniform(n),), rosenbrock_grad


class MLP(_TapeSuite):
    """Sigmoid MLP, softmax cross-entropy; baseline: hand-written numpy backprop."""

    params = ("784-256-128-10/64", "64-32-10/16")
    param_names = ("layers/batch",)

    def problem(self, shape):
        layers, batch = shape.split("/")
        params, X, Y = mlp_data(f"{layers}x{batch}")
        return mlp_loss, (params, X, Y), mlp_numpy_grad
