"""asv suite: what checking a cached tape's guards costs per ``grad`` call.

``grad(f)`` checks, before replaying a cached tape, that what ``f`` read from its globals,
closures and defaults is unchanged (``tapegrad.capture``).  The scalar lecture function
(MML eq. 5.109, wrapped as the bench wraps it: a lambda reading a module global and a
closure variable) is where a per-call cost shows most, since its replay is a few hundred
nanoseconds.

* ``track_guard_overhead_ns``: the same ``grad`` object, the same cached tape, timed with
  guard checks on and off (the private switch ``tapegrad.api._CHECK_GUARDS``), in this
  process, interleaved; the median difference in ns per call.  The target is < 500 ns.
* ``time_grad_guarded`` / ``time_grad_unguarded``: the two sides on their own.
"""
import statistics
import timeit

import tapegrad as tg
import tapegrad.api as api
import tapegrad.numpy as tnp
from tapegrad.bench.models import lecture as _lecture_of


def lecture_grad():
    """``tg.grad`` of the lecture function as ``tapegrad.bench.systems.Tapegrad.lecture``
    builds it: a lambda that reads a module global and a closed-over module."""
    np_like = tnp
    return tg.grad(lambda x: _lecture_of(x, np_like))


def guard_overhead_ns(rounds=41, number=4000):
    """Median over interleaved rounds of (time with guard checks - time without), in ns
    per call, for one cached ``grad`` of the lecture function."""
    grad, x = lecture_grad(), 0.7
    grad(x)
    assert len(grad._tapes) == 1, "the lecture function should be cached, not re-recorded"
    call = lambda: grad(x)  # noqa: E731
    diffs = []
    try:
        for _ in range(rounds):
            api._CHECK_GUARDS = True
            on = timeit.timeit(call, number=number)
            api._CHECK_GUARDS = False
            off = timeit.timeit(call, number=number)
            diffs.append((on - off) / number * 1e9)
    finally:
        api._CHECK_GUARDS = True
    return statistics.median(diffs)


class Guards:
    def setup(self):
        self.grad = lecture_grad()
        self.grad(0.7)

    def teardown(self):
        api._CHECK_GUARDS = True

    def time_grad_guarded(self):
        api._CHECK_GUARDS = True
        self.grad(0.7)

    def time_grad_unguarded(self):
        api._CHECK_GUARDS = False
        self.grad(0.7)

    def track_guard_overhead_ns(self):
        return guard_overhead_ns()

    track_guard_overhead_ns.unit = "ns"


if __name__ == "__main__":
    print(f"guard checks add {guard_overhead_ns():.0f} ns per call of grad(lecture)")
