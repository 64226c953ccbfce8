"""The emitters, one module per op family: each function records one tape entry (or a free
alias node) for one operation on traced values.

Importing this package fills :data:`tapegrad.tracer.EMIT`, through which the operators and
methods of :class:`~tapegrad.tracer.Traced` reach the emitters (the emitters import the
tracer, so it cannot import them).  ``tapegrad.numpy`` is the public face of the same
functions.  ``stats``, ``arrays`` and ``indexing`` (reductions, array building and layouts,
take and ``at``) build on these emitters and are reached through ``tapegrad.numpy_arrays``.

Invariants
----------
* Every check happens in an emitter, at record time, before any kernel runs.
* Emitters only append: a node or entry, once made, is never changed.
"""
from tapegrad.emit import contract, elementwise, guard, linalg, reductions, scalar, shape  # noqa: F401 - registers EMIT
