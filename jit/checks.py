"""What an entry's integer attributes must satisfy for its kernels to stay inside the arena.

The kernels run without bounds checks and trust each entry's integer attributes (``ints``)
to keep every read and write inside its operands and its output.  A tape recorded in this
process satisfies that by construction; a tape read from a file or unpickled is checked
first (``tapegrad.tapefile``), op by op, with the check named in the op's row
(``Op.check``, set by the family modules ``ops_*``), so a new op gets its check with its row.

A check is vectorised over all entries of one op::

    check(ints, iarg, out, *operands) -> None, or (i, reason) for the first bad entry i

``ints`` is the tape's integer arena, ``iarg`` the entries' attribute offsets, ``out`` the
sizes of their outputs (0 for an entry without output) and ``operands`` one column of sizes
per operand position (the row's ``arity`` of them).  The caller has already checked node
indices, offsets, operand lists and sizes, so sizes are non-negative and inside the value
arena; everything read from ``ints`` is untrusted.  The checks accept exactly the
layouts the front end records (C-ordered blocks, canonical broadcast strides), which is
stricter than memory safety alone: the program builder's adjoint shortcuts assume them.
"""
import numpy as np

_BIG = 2.0 ** 62  # products above this might overflow int64: treated as invalid


def product(*cols):
    """Elementwise product of int64 columns, -1 where it is too large to be a size."""
    exact, approx = np.ones(len(cols[0]), np.int64), np.ones(len(cols[0]))
    for c in cols:
        approx = approx * np.asarray(c, np.float64)
        exact = exact * c  # wraps silently where approx flags it
    return np.where(np.abs(approx) > _BIG, -1, exact)


def attributes(ints, iarg, k):
    """(the k attributes of each entry as k columns, mask of entries whose attributes are
    not inside ``ints``); the columns hold zeros for those entries."""
    inside = (iarg >= 0) & (iarg <= len(ints) - k)
    if len(ints) < k:
        return np.zeros((k, len(iarg)), np.int64), np.ones(len(iarg), bool)
    idx = np.where(inside, iarg, 0)[:, None] + np.arange(k)
    return np.where(inside, ints[idx].T, 0), ~inside


def first(*conditions):
    """(first bad entry, reason) of the first ``(bad mask, reason)`` that flags any entry."""
    for bad, reason in conditions:
        hit = np.flatnonzero(bad)
        if len(hit):
            return int(hit[0]), reason
    return None


def elementwise(ints, iarg, out, a):
    """A map op has no integer attributes and its operand is as large as its output."""
    return first((iarg != -1, "an elementwise map op has no integer attributes (iarg must be -1)"),
                 (a != out, "operand size differs from the output size"))


def same_size(ints, iarg, out, *operands):
    """An n-ary elementwise op (WHERE): no integer attributes, every operand as large as
    the output (the front end broadcasts them first)."""
    return first((iarg != -1, "an elementwise op has no integer attributes (iarg must be -1)"),
                 *((size != out, f"operand {k} size differs from the output size")
                   for k, size in enumerate(operands)))


def _broadcast_operand(d0, d1, s0, s1, size, out):
    """Bad rows of a zip operand: strides that are not a broadcast of a C-ordered block
    exactly as large as the operand."""
    step = np.where(s1 == 1, d1, 1)
    strides = ((s1 == 0) | (s1 == 1)) & ((s0 == 0) | (s0 == step))
    extent = product(np.where(s0 != 0, d0, 1), np.where(s1 != 0, d1, 1))
    return ~strides | ((out > 0) & (extent != size))


def zip_block(ints, iarg, out, a, b):
    """(d0, d1, sa0, sa1, sb0, sb1): the output as a d0 x d1 block, each operand's strides.
    No attributes (iarg = -1) means both operands have the output's size: the program then
    synthesises the trivial block itself, so nothing about it is read from the tape."""
    trivial = iarg == -1
    (d0, d1, sa0, sa1, sb0, sb1), outside = attributes(ints, iarg, 6)
    d0, d1 = np.where(trivial, 1, d0), np.where(trivial, out, d1)
    sa0, sa1, sb0, sb1 = (np.where(trivial, v, s) for v, s in ((0, sa0), (1, sa1), (0, sb0), (1, sb1)))
    return first((trivial & ((a != out) | (b != out)), "an operand's size differs from the output "
                  "size, but the entry has no broadcast pattern (iarg = -1)"),
                 (outside & ~trivial, "attributes outside the ints arena"),
                 ((d0 < 0) | (d1 < 0) | (product(d0, d1) != out), "block d0 x d1 is not the output size"),
                 (_broadcast_operand(d0, d1, sa0, sa1, a, out), "operand a's strides do not fit it"),
                 (_broadcast_operand(d0, d1, sb0, sb1, b, out), "operand b's strides do not fit it"))


def _block(ints, iarg, a):
    (pre, m, post), outside = attributes(ints, iarg, 3)
    return (pre, m, post), [(outside, "attributes outside the ints arena"),
                            ((pre < 0) | (m < 0) | (post < 0), "negative block dimension"),
                            (product(pre, m, post) != a, "block (pre, m, post) is not the operand size")]


def reduce(ints, iarg, out, a):
    """(pre, m, post): the operand as a C-ordered block, reduced over m."""
    (pre, m, post), conditions = _block(ints, iarg, a)
    return first(*conditions, (product(pre, post) != out, "output size is not pre * post"))


def reduce_nonempty(ints, iarg, out, a):
    """As :func:`reduce`, for a reduction without identity: m >= 1 unless nothing is reduced."""
    (pre, m, post), conditions = _block(ints, iarg, a)
    return first(*conditions, (product(pre, post) != out, "output size is not pre * post"),
                 ((m < 1) & (out > 0), "reduction over an empty axis"))


def along_axis(ints, iarg, out, a):
    """(pre, m, post) of an op that keeps its operand's shape (softmax)."""
    _, conditions = _block(ints, iarg, a)
    return first(*conditions, (out != a, "output size differs from the operand size"))


def matmul(ints, iarg, out, a, b):
    """(m, k, n, batch, sa, sb, ta, tb): batch products op(A) (m, k) @ op(B) (k, n); sa, sb
    are 0 (one matrix for the whole batch) or the matrix size (a stack of matrices); ta, tb
    are 0 or 1 (the operand is stored transposed)."""
    (m, k, n, batch, sa, sb, ta, tb), outside = attributes(ints, iarg, 8)
    mk, kn = product(m, k), product(k, n)
    return first((outside, "attributes outside the ints arena"),
                 ((m < 0) | (k < 0) | (n < 0) | (batch < 0), "negative dimension"),
                 (((sa != 0) & (sa != mk)) | ((sb != 0) & (sb != kn)), "batch strides are not 0 or the matrix size"),
                 (((ta != 0) & (ta != 1)) | ((tb != 0) & (tb != 1)), "transpose flags are not 0 or 1"),
                 (product(np.where(sa != 0, batch, 1), mk) != a, "operand a's size does not fit (m, k)"),
                 (product(np.where(sb != 0, batch, 1), kn) != b, "operand b's size does not fit (k, n)"),
                 (product(batch, m, n) != out, "output size is not batch * m * n"))


def gather(ints, iarg, out, a):
    """One flat index into the operand per output element, each in [0, size(a))."""
    inside = (iarg >= 0) & (out <= len(ints) - iarg)
    bad = first((~inside, "indices outside the ints arena"))
    if bad is not None:
        return bad
    if out.sum() > len(ints):
        return first((out > 0, "gather entries share their indices"))
    offsets = np.cumsum(out) - out
    pos = np.arange(out.sum()) - np.repeat(offsets, out) + np.repeat(iarg, out)
    idx = ints[pos]
    wrong = (idx < 0) | (idx >= np.repeat(a, out))
    entry = np.zeros(len(iarg), bool)
    entry[np.repeat(np.arange(len(iarg)), out)[wrong]] = True
    return first((entry, "index outside its operand"))


def guard(ints, iarg, out, a, b):
    """One attribute, the recorded outcome (0 or 1); both operands one float, no output."""
    inside = (iarg >= 0) & (iarg < len(ints))
    took = ints[np.where(inside, iarg, 0)] if len(ints) else np.zeros(len(iarg), np.int64)
    return first((~inside, "attributes outside the ints arena"),
                 ((took != 0) & (took != 1), "a guard's outcome is not 0 or 1"),
                 ((a != 1) | (b != 1), "a guard compares operands that are not single floats"),
                 (out != 0, "a guard writes no output"))


def concat(ints, iarg, out, count, sizes):
    """A variadic CONCAT: (k, pre, w_0 .. w_{k-1}) with k the entry's operand count,
    pre * w_t each operand's size and pre * sum(w_t) the output's.  ``count`` is each
    entry's operand count and ``sizes`` all their operands' sizes, entry after entry."""
    inside = (iarg >= 0) & (count >= 1) & (iarg + 2 + count <= len(ints))
    bad = first((~inside, "attributes outside the ints arena"))
    if bad is not None:
        return bad
    k, pre = ints[iarg], ints[iarg + 1]
    entry = np.repeat(np.arange(len(iarg)), count)
    w = ints[np.repeat(iarg + 2, count) + np.arange(len(entry)) - np.repeat(np.cumsum(count) - count, count)]
    total = np.zeros(len(iarg), np.int64)
    np.add.at(total, entry, w)
    wrong = np.zeros(len(iarg), bool)
    wrong[entry[(w < 0) | (product(pre[entry], w) != sizes)]] = True
    return first((k != count, "the operand count differs from the count in the attributes"),
                 (pre < 0, "negative block dimension"),
                 (wrong, "an operand's size is not pre * its width"),
                 (product(pre, total) != out, "output size is not pre * the sum of the widths"))


def packed(sizes, square=False, rhs=False):
    """The check of a decomposition row (``ops_decomp``, ``ops_spectral``): ints
    ``(batch, m, n, r)``, non-negative; m = n for a ``square`` op; r = 0 unless the op takes
    right-hand sides (``rhs``: operand b is ``batch`` matrices of ``(n, r)``); operand a is
    ``batch`` matrices of ``(m, n)``, and the output is the packed node of ``sizes(m, n, r)``
    (``batch * sum(components) + scratch``, see ``lapack``).  Sizes are computed with Python integers: they cannot overflow."""
    def check(ints, iarg, out, a, b=None):
        (batch, m, n, r), outside = attributes(ints, iarg, 4)
        wrong = np.zeros(len(iarg), bool)
        for i in np.flatnonzero(~outside & (batch >= 0) & (m >= 0) & (n >= 0) & (r >= 0)):
            t, mi, ni, ri = int(batch[i]), int(m[i]), int(n[i]), int(r[i])
            comps, scratch = sizes(mi, ni, ri)
            wrong[i] = (t * sum(comps) + scratch != out[i] or t * mi * ni != a[i]
                        or (rhs and t * ni * ri != b[i]))
        return first((outside, "attributes outside the ints arena"),
                     ((batch < 0) | (m < 0) | (n < 0) | (r < 0), "negative dimension"),
                     ((m != n) if square else np.zeros(len(iarg), bool), "the matrices are not square"),
                     ((r != 0) if not rhs else np.zeros(len(iarg), bool), "r must be 0 for this op"),
                     (wrong, "operand or output sizes do not fit (batch, m, n, r)"))
    check.__name__ = check.__qualname__ = f"packed_{sizes.__name__}"
    check.__doc__ = packed.__doc__
    return check
