"""asv suites: tapegrad's record, forward replay, backward sweep and whole ``grad`` call.

One class per workload, parametrised by problem size:

* ``LectureFunction``: MML eq. 5.109, ``sqrt(x^2 + exp(x^2)) + cos(x^2 + exp(x^2))`` at a
  scalar (6 tape entries: the cost of a call, not of arithmetic).
* ``RosenbrockVectorised``: the Rosenbrock function written with whole-array operations
  (11 entries on arrays of n - 1 floats).
* ``RosenbrockLoop``: the same function as a Python loop over scalars (~11 entries per
  element), the case a tape interpreter exists for.
* ``MLP``: sigmoid multilayer perceptron, softmax cross-entropy, as users write it
  (``style="user"``: weights ``(out, in)``, ``h @ W.T + b``, sigmoid and log-sum-exp written
  out) and in tapegrad's favourite form (``style="fused"``: weights ``(in, out)``,
  ``tnp.sigmoid``, ``tnp.logsumexp``).
* ``Recording``: recording the scalar loop at n = 1e4 (about 8e4 entries), against
  evaluating it once on Python floats, and (``RecordingAgainstCasadi``, when CasADi is
  installed) against building the same program as a CasADi SX graph and ``Function``.

The workload functions are those of ``tapegrad bench`` (``tapegrad.bench.models``), the
hand-written gradients its baselines (``tapegrad.bench.workloads``).  Every class above
``Recording`` has the same benchmarks:

* ``time_record``: ``tg.record(f, *args)``, tracing the function in Python;
* ``time_forward``: the forward replay kernel alone (``tape._replay``), arguments bound;
* ``time_backward``: the backward sweep kernel alone (``tape._sweep`` without replay);
* ``time_grad``: a whole ``tg.grad(f)(*args)`` call on a cached tape;
* ``track_ratio_to_numpy``: ``grad`` call time / hand-written numpy gradient time, both
  measured in this process, interleaved (median of paired ratios);
* ``track_bytes_per_entry``: ``Tape.nbytes`` (the stored tape: columns and arenas) per
  entry; ``track_program_bytes_per_entry``: ``Tape.program_nbytes`` (what is derived to
  run it: the interpreter's program, node sizes, activity) per entry.

``setup`` records the tape, checks the gradient against the hand-written one and runs
every kernel once, so numba's compilation (or its cache load) is never timed.
"""
import statistics
import timeit

import numpy as np

import tapegrad as tg
import tapegrad.numpy as tnp
from tapegrad import pytree

from tapegrad.bench import models
from tapegrad.bench.peers import Casadi
from tapegrad.bench.workloads import WORKLOADS, lecture_derivative, mlp_data, mlp_numpy_grad, rosenbrock_grad

_ONE = np.ones(1)
rosenbrock_loop = models.rosenbrock_loop


# workloads: the bench runner's, as tapegrad functions with their hand-written gradients -----
def lecture(x):
    """MML eq. 5.109."""
    return models.lecture(x, tnp)


def rosenbrock_vectorised(x):
    return models.rosenbrock(x, tnp)


def mlp_loss(params, X, Y):
    return models.mlp_loss(params, X, Y, tnp)


def mlp_loss_fused(params, X, Y):
    return models.mlp_loss_fused(params, X, Y, tnp)


def mlp_numpy_grad_fused(params, X, Y):
    """The hand-written gradient for weights stored ``(in, out)``: the same, transposed."""
    return [g.T for g in mlp_numpy_grad([a.T for a in params], X, Y)]


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
        return self.tape.nbytes / len(self.tape)

    track_bytes_per_entry.unit = "bytes"

    def track_program_bytes_per_entry(self, *params):
        return self.tape.program_nbytes / len(self.tape)

    track_program_bytes_per_entry.unit = "bytes"


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

    params = (("784-256-128-10/64", "64-32-10/16"), ("user", "fused"))
    param_names = ("layers/batch", "style")

    def problem(self, shape, style):
        layers, batch = shape.split("/")
        params, X, Y = mlp_data(f"{layers}x{batch}")
        if style == "user":
            return mlp_loss, (params, X, Y), mlp_numpy_grad
        params = [np.ascontiguousarray(a.T) for a in params]
        return mlp_loss_fused, (params, X, Y), mlp_numpy_grad_fused


class Recording:
    """Recording a long scalar program: the Rosenbrock loop at n = 1e4 (~8e4 entries)."""

    timeout = 300
    n = 10_000

    def setup(self):
        self.x = WORKLOADS["record"].make(str(self.n)).data["x"]
        self.xs = [float(v) for v in self.x]
        self.tape = tg.record(rosenbrock_loop, self.x)
        assert_same_gradient(self.tape.gradient(self.x), rosenbrock_grad(self.x))

    def time_record(self):
        tg.record(rosenbrock_loop, self.x)

    def track_record_ratio_to_python(self):
        """Recording / one evaluation of the same loop on Python floats."""
        return paired_ratio(lambda: tg.record(rosenbrock_loop, self.x), lambda: rosenbrock_loop(self.xs),
                            repeats=5, min_time=0.2)

    track_record_ratio_to_python.unit = "ratio"

    def track_bytes_per_entry(self):
        return self.tape.nbytes / len(self.tape)

    track_bytes_per_entry.unit = "bytes"

    def track_program_bytes_per_entry(self):
        return self.tape.program_nbytes / len(self.tape)

    track_program_bytes_per_entry.unit = "bytes"


class RecordingAgainstCasadi:
    """The same recording against building the program as a CasADi SX graph and
    ``casadi.Function`` from Python (the bench's ``casadi`` ``record`` row); skipped when
    CasADi is not installed."""

    timeout = 300

    def setup(self):
        if not Casadi().available():
            raise NotImplementedError("casadi is not installed")
        problem = WORKLOADS["record"].make(str(Recording.n))
        self.x, self.build = problem.data["x"], Casadi().prepare(problem).call

    def track_record_ratio_to_casadi(self):
        return paired_ratio(lambda: tg.record(rosenbrock_loop, self.x), self.build, repeats=5, min_time=0.2)

    track_record_ratio_to_casadi.unit = "ratio"
