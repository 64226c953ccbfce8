"""The op table: every opcode of the tape is one row here, and only here.

``OPS`` is assembled from the family modules, each a tuple ``ROWS`` of short rule rows:

* ``ops_elementwise``  map rows (one operand), zip rows (two, broadcast), select (WHERE)
* ``ops_unary``        more map rows (abs, rounding, hyperbolic, inverse trig, ...)
* ``ops_binary``       more zip rows (minimum, fmin/fmax, remainder, arctan2, ...)
* ``ops_reduce``       SUM, MAX, LOGSUMEXP, SOFTMAX over the middle axis of (pre, m, post)
* ``ops_linalg``       MATMUL by BLAS
* ``ops_index``        GATHER
* ``ops_guard``        GUARD_LT ... GUARD_NE: the outcome of a comparison that decided a branch
* ``ops_shape``        CONCAT: a variadic row (any number of operands, the count in its ints)
* ``ops_decomp``       SOLVE, INV, DET, SLOGDET, CHOLESKY by LAPACK (family ``decomp``: one
                       packed output node, see ``lapack``)
* ``ops_spectral``     EIGH, SVD, PINV (family ``decomp``)

The opcode is the row's position in ``OPS``.  ``NAMES``, ``CODES``, the module constants
(``ADD``, ``EXP``, ...), the generated sweeps (``dispatch``, written by ``gen_dispatch``),
the tape printer and the per-op tests are all derived from ``OPS``, so an op cannot exist
without a row.  Tape files store op *names*, never these numbers.

Row fields (``oprow.Op``)
-------------------------
``name``        upper-case name, unique; the module constant and the file's op name
``family``      how the interpreter applies the rules, one call template per family in
                ``gen_dispatch``: ``map`` forward(a, p, q) -> y, backward(g, a, y, p, q)
                -> da on floats; ``zip`` forward(a, b) -> y, backward(g, a, b, y) ->
                (da, db) on floats, broadcast by a d0 x d1 block; ``select`` whole-entry
                kernels reading n operand offsets from the program's operand table;
                ``reduce``/``linalg``/``index``/``decomp`` whole-entry kernels with the
                fixed signatures documented in ``oprow``
``arity``       the number of operands an entry reads (its operand list's length); 0 for
                a ``variadic`` row, whose entries store their operand count first in ints
``forward``     the forward rule or kernel (numba, compiled with ``compile.rule``)
``backward``    the vector-Jacobian product: the lecture's grad_table[u_i] * du_i/du_j
``doc``         one line: what the op computes and what its attributes mean
``check``       ``checks.*``: which integer attributes (and operand sizes) keep the
                kernels inside the arena, applied to tapes read from files
``overwrites``  the backward kernel can assign a whole operand's adjoint instead of adding
                to it (``SET``; the program decides when, see ``program.assignable``)
``outputs``     1, or 0 for an entry that writes no node (its ``out`` is -1), such as the
                guard rows (``ops_guard``)
``floats``      names of the entry's float attributes, passed to the rules as p, q
``jvp``         reserved for the tangent (forward-mode) rule of issue 11: None for now
``batch``       reserved for the batching rule of issue 9: None for now
"""
from . import (ops_binary, ops_decomp, ops_elementwise, ops_guard, ops_index, ops_linalg, ops_reduce, ops_shape,
               ops_spectral, ops_unary)
from .oprow import FAMILIES, Op  # noqa: F401 - re-exported for the family modules' readers

OPS = (ops_elementwise.ROWS + ops_unary.ROWS + ops_binary.ROWS + ops_reduce.ROWS + ops_linalg.ROWS + ops_index.ROWS + ops_guard.ROWS
       + ops_shape.ROWS + ops_decomp.ROWS + ops_spectral.ROWS)

NAMES = tuple(row.name for row in OPS)
CODES = {name: code for code, name in enumerate(NAMES)}
if len(CODES) != len(OPS):
    raise ValueError("two rows of the op table share a name")
# ADD = 10, ... : the generated sweeps compare against these; numba freezes them as constants.
globals().update(CODES)
