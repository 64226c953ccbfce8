"""The variants of one cached recording: one tape per branch pattern.

A function that branches on traced values (``if x > 0``) records a guard for each branch
it took (``tapegrad.emit.guard``).  ``tapegrad.grad`` keeps, per argument key, the tapes
recorded so far, each identified by its guards' outcomes in tape order.  A call replays
the variant that served the previous call; when one of its guards fails (the forward
sweep stops there), the next candidate is the variant whose outcomes agree with the
failed tape's before that guard and differ at it: exactly the branch pattern the
arguments follow up to there.  When there is none, the caller records again.

Invariants
----------
* A variant's result is returned only after its forward sweep checked all of its guards
  at these arguments, so it is what a fresh recording would compute (a deterministic
  function that took the same branches recorded the same entries).
* Each candidate agrees with the arguments on strictly more guards than the previous one,
  so a lookup tries at most one tape per guard of the longest variant.
* At most ``MAX_VARIANTS`` tapes per key (the oldest recorded goes first); two variants
  never have the same outcomes.  ``tapes`` is replaced, never mutated, under a lock, so
  threads can read it without one.
"""
import threading

import numpy as np

MAX_VARIANTS = 16
_ONE = np.ones(1)


class Variants:
    """The tapes of one cache key, newest first, and the one that served last."""

    __slots__ = ("tapes", "last", "_lock")

    def __init__(self):
        self.tapes, self.last, self._lock = (), None, threading.Lock()

    def add(self, tape):
        with self._lock:
            others = tuple(t for t in self.tapes if t.guard_outcomes != tape.guard_outcomes)
            self.tapes = ((tape,) + others)[:MAX_VARIANTS]
            self.last = tape

    def find(self, outcomes):
        """The variant whose first guards have these outcomes, or None."""
        k = len(outcomes)
        for tape in self.tapes:
            if tape.guard_outcomes[:k] == outcomes:
                return tape
        return None

    def replay(self, leaves, backward):
        """Run the variant whose guards hold at ``leaves``: its forward sweep, and its
        backward sweep too if ``backward``.  Returns ``(tape, bound, None)``, or ``(None,
        None, (tape, entry))`` naming the guard that failed where no variant takes the
        other way (then the caller records)."""
        tape = self.last or self.tapes[0]
        while True:
            bound = tape._load(leaves)
            failed = tape._sweep(bound, _ONE, True) if backward else tape._replay(bound)
            if failed < 0:
                self.last = tape
                return tape, bound, None
            k = tape._guard_index[failed]
            other = self.find(tape.guard_outcomes[:k] + (not tape.guard_outcomes[k],))
            if other is None:
                return None, None, (tape, failed)
            tape = other
