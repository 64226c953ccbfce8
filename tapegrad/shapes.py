"""Shape logic: turn numpy's shape rules into the few integers a kernel needs.

Everything here runs once, at record time, on shapes only.  Errors are raised here, in
Python, naming the op and the shapes, before anything reaches a kernel.
"""
import numpy as np


def broadcast(op, *shapes):
    """numpy's broadcast shape of ``shapes``, or a ValueError naming ``op`` and the shapes."""
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise ValueError(f"{op}: shapes {' and '.join(map(str, shapes))} cannot be broadcast "
                         "together") from None


def _broadcast_strides(shape, out):
    """C-order element strides of ``shape`` inside ``out`` (0 along broadcast axes)."""
    shape = (1,) * (len(out) - len(shape)) + tuple(shape)
    strides, step = [], 1
    for d, o in zip(reversed(shape), reversed(out)):
        strides.append(step if d == o and d != 1 else 0)
        step *= d
    return strides[::-1]


def zip_pattern(shape_a, shape_b, out):
    """The (d0, d1, sa0, sa1, sb0, sb1) block pattern of a broadcast binary op, or None.

    Axes of length 1 are dropped and neighbouring axes along which both operands step
    contiguously are merged.  Almost every broadcast ends up with at most two axes (a bias
    row, a keepdims column, a scalar); None means more were left.
    """
    sa, sb = _broadcast_strides(shape_a, out), _broadcast_strides(shape_b, out)
    axes = []
    for d, x, y in zip(out, sa, sb):
        if d == 1:
            continue
        if axes and axes[-1][1] == x * d and axes[-1][2] == y * d:
            axes[-1] = (axes[-1][0] * d, x, y)
        else:
            axes.append((d, x, y))
    if len(axes) > 2:
        return None
    while len(axes) < 2:
        axes.insert(0, (1, 0, 0))
    (d0, a0, b0), (d1, a1, b1) = axes
    return (d0, d1, a0, a1, b0, b1)


def normalize_axes(op, axis, ndim):
    """``axis`` (None, int or tuple) as a sorted tuple of distinct non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, tuple) else (axis,)
    out = []
    for ax in axes:
        if not isinstance(ax, (int, np.integer)) or isinstance(ax, bool):
            raise TypeError(f"{op}: axis must be an int or a tuple of ints, got {axis!r}")
        if not -ndim <= ax < ndim:
            raise ValueError(f"{op}: axis {ax} is out of bounds for an array of dimension {ndim}")
        out.append(int(ax) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axis!r}")
    return tuple(sorted(out))


def axis_runs(axes):
    """Split sorted axes into runs of consecutive axes, last run first: (1, 2, 4) -> [(4,), (1, 2)]."""
    runs = []
    for ax in axes:
        if runs and runs[-1][-1] == ax - 1:
            runs[-1].append(ax)
        else:
            runs.append([ax])
    return [tuple(r) for r in reversed(runs)]


def reduce_block(shape, run):
    """(pre, m, post) for reducing a C-ordered array of ``shape`` over consecutive ``run``."""
    pre = int(np.prod(shape[:run[0]], dtype=np.int64))
    m = int(np.prod(shape[run[0]:run[-1] + 1], dtype=np.int64))
    post = int(np.prod(shape[run[-1] + 1:], dtype=np.int64))
    return pre, m, post


def index_map(shape, select):
    """Flat source index of every element of ``select(positions)``: the ints of a GATHER."""
    positions = np.arange(int(np.prod(shape, dtype=np.int64)), dtype=np.int64).reshape(shape)
    picked = np.asarray(select(positions))
    return picked.shape, np.ascontiguousarray(picked, dtype=np.int64).ravel()


def matmul_shapes(shape_a, shape_b):
    """Shapes for ``a @ b`` with numpy's rules: (m, k, n, batch shape, result shape)."""
    if len(shape_a) == 0 or len(shape_b) == 0:
        raise ValueError(f"matmul: operands must be at least 1-d, got shapes {shape_a} and {shape_b} "
                         "(use * for scalars)")
    a2 = (1,) + tuple(shape_a) if len(shape_a) == 1 else tuple(shape_a)
    b2 = tuple(shape_b) + (1,) if len(shape_b) == 1 else tuple(shape_b)
    (m, k), (k2, n) = a2[-2:], b2[-2:]
    if k != k2:
        raise ValueError(f"matmul: shapes {shape_a} and {shape_b} do not align "
                         f"(inner dimensions {k} and {k2} differ)")
    try:
        batch = tuple(np.broadcast_shapes(a2[:-2], b2[:-2]))
    except ValueError:
        raise ValueError(f"matmul: shapes {tuple(shape_a)} and {tuple(shape_b)} have batch "
                         f"dimensions {a2[:-2]} and {b2[:-2]} that cannot be broadcast together") from None
    result = batch + ((m,) if len(shape_a) > 1 else ()) + ((n,) if len(shape_b) > 1 else ())
    return m, k, n, batch, result
