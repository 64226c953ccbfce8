"""asv suite: guarded replay of a function whose branch on a traced value flips every call.

``models.branchy`` (Rosenbrock, n = 100, plus a term whose sign ``if x[0] > 0`` picks)
against ``models.branch_free`` (the same work, no branch), each timed as two gradients at
points on either side of the branch, so with the branch every gradient replays the other
cached variant than the one before (the forward sweep stops at the failed guard and the
other variant runs).  The target of issue 9: flip / free <= 1.5.

* ``time_flip`` / ``time_free``: the two sides.
* ``track_flip_over_free``: their ratio, interleaved in this process (median of rounds).
"""
import statistics
import timeit

import numpy as np

import tapegrad as tg
import tapegrad.numpy as tnp
from tapegrad.bench.models import branch_free, branchy


def pair(model, n=100):
    grad = tg.grad(lambda x: model(x, tnp))
    x = np.random.default_rng(0).uniform(-1.0, 1.0, n)
    x[0] = 0.5
    x2 = x.copy()
    x2[0] = -0.5
    call = lambda: (grad(x), grad(x2))  # noqa: E731
    call()
    return call


def flip_over_free(rounds=21, number=500):
    flip, free = pair(branchy), pair(branch_free)
    ratios = [timeit.timeit(flip, number=number) / timeit.timeit(free, number=number)
              for _ in range(rounds)]
    return statistics.median(ratios)


class Branches:
    def setup(self):
        self.flip, self.free = pair(branchy), pair(branch_free)

    def time_flip(self):
        self.flip()

    def time_free(self):
        self.free()

    def track_flip_over_free(self):
        return flip_over_free()

    track_flip_over_free.unit = "ratio"


if __name__ == "__main__":
    print(f"branch flipping every call / no branch: {flip_over_free():.2f}x")
