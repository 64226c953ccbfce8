"""Reduction emitters: SUM (and mean), MAX, LOGSUMEXP over axes, and SOFTMAX.

Invariants
----------
* One entry per run of consecutive reduced axes; the kernels see a C-ordered (pre, m, post)
  block.  A reduction over no axes is the identity.
"""
import numpy as np

from tapegrad import shapes as S
from tapegrad.jit import CODES as C
from tapegrad.tracer import EMIT, Traced, _as_float_array, _emit, _recorder, is_number, lift
from tapegrad.emit.elementwise import affine, unary



_EAGER_REDUCE = {"SUM": np.sum, "MAX": np.max,
                 "LOGSUMEXP": lambda v, axis, keepdims: np_logsumexp(v, axis, keepdims)}


def np_logsumexp(v, axis, keepdims):
    """log(sum(exp(v))) over ``axis`` with numpy, shifted by the max; -inf over no elements."""
    top = np.max(v, axis=axis, keepdims=True, initial=-np.inf)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(v - top), axis=axis, keepdims=True)) + top
    return out if keepdims else np.squeeze(out, axis=axis)


def reduce(name, x, axis=None, keepdims=False, mean=False):
    """SUM / MAX / LOGSUMEXP over ``axis``; one entry per run of consecutive axes."""
    op = "mean" if mean else name.lower()
    if not isinstance(x, Traced):
        raise TypeError(f"{op}: expected a traced value")
    axes = S.normalize_axes(op, axis, x.ndim)
    count = int(np.prod([x.shape[ax] for ax in axes], dtype=np.int64))
    if name == "MAX" and count == 0:
        raise ValueError(f"max: zero-size reduction over axis {axis!r} of shape {x.shape} has no identity")
    runs = S.axis_runs(axes)
    if not runs:
        return affine(x, 1.0, 0.0)  # a reduction over no axes is the identity
    for i, run in enumerate(runs):
        last = i == len(runs) - 1
        q = (1.0 / count if count else np.nan) if (mean and last) else 1.0
        with np.errstate(all="ignore"):
            value = _EAGER_REDUCE[name](x._value, axis=run, keepdims=keepdims) * q
        x = _emit(x._rec, name, (x._node,), value, ints=S.reduce_block(x.shape, run),
                  floats=(q,) if name == "SUM" else ())
    return x


def softmax(x, axis=-1):
    """exp(x - logsumexp(x, axis, keepdims=True)) over ``axis`` (an int, a tuple of ints,
    or None for all axes); an empty ``x`` gives an empty result.

    Axes that form one run of consecutive axes are one SOFTMAX entry (the kernel sees a C
    ordered (pre, m, post) block whatever the run's length); any other choice of axes is
    recorded as that formula, a LOGSUMEXP per run, a SUB and an EXP."""
    axes = S.normalize_axes("softmax", axis, x.ndim)
    runs = S.axis_runs(axes)
    if len(runs) != 1:
        return unary("EXP", np.exp, x - reduce("LOGSUMEXP", x, axes, keepdims=True))
    lse = np_logsumexp(x._value, runs[0], True)
    with np.errstate(all="ignore"):
        value = np.exp(x._value - lse)
    return _emit(x._rec, "SOFTMAX", (x._node,), value, ints=S.reduce_block(x.shape, runs[0]))


EMIT.reduce = reduce
EMIT.softmax = softmax
