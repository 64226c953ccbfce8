"""``check_grads``: compare tapegrad's derivatives with central finite differences.

Modelled on ``jax.test_util.check_grads`` and ``autograd.test_util.check_grads``: instead
of building the whole finite-difference gradient (two evaluations of ``f`` per input
element), it checks the gradient along a few random directions ``v``, using the identity
that defines the gradient,

    <grad F(x), v>  =  d/dh F(x + h v) at h = 0  ~  (F(x + h v) - F(x - h v)) / 2h,

so the cost does not grow with the number of inputs: a few evaluations of ``f`` per
direction (central differences at shrinking steps, extrapolated to step 0).  A
non-scalar ``f`` is projected onto a random output cotangent ``u``: ``F = <u, f>``, whose
gradient is the vector-Jacobian product ``J^T u``, so the check reads ``<J^T u, v> =
<u, J v>`` (the "dot-product test").  A wrong Jacobian passes only if its error is
orthogonal to every random ``u v^T`` drawn, which has probability zero.

How the two sides are computed
------------------------------
* tapegrad's side: one ``tapegrad.value_and_grad(F, argnums, cache=False)`` call at the
  arguments as given (float32 leaves stay float32), so recording, the forward replay and
  the backward sweep of the interpreter are all exercised.
* the reference side: ``f`` called on plain numpy values, every float leaf of every
  argument converted to float64 (``tapegrad.numpy`` functions fall back to numpy), so the
  finite differences never depend on tapegrad.

Invariants
----------
* Never a silent pass: a check that cannot be made (second order, forward mode, an
  unknown mode, no float argument, a non-finite value of ``f`` at the point) raises.
* Deterministic: directions and cotangents come from ``numpy.random.default_rng(seed)``.
* Each argument (each one in ``argnums``) is checked on its own, along its own directions,
  so a failure names the argument, the direction's index, the leaf (for a pytree argument)
  and both numbers.
* Besides the directional derivatives, the value replayed from the tape must equal the
  plain call, and each gradient must have its argument's structure, shapes and dtypes.
"""
import numbers

import numpy as np

from tapegrad import pytree

__all__ = ["check_grads"]

_MACHINE_EPS = float(np.finfo(np.float64).eps)
# Default tolerances by the lowest float precision among an argument's leaves.  The
# finite differences are float64 with a step of 1e-6 (relative), accurate to about 1e-9;
# rtol is measured against sum_i |g_i v_i|, so a gradient component that is wrong by more
# than ~rtol of the inner product's own size fails.  A float32 argument's gradient carries
# float32 rounding (today only the final conversion, later float32 arithmetic through the
# whole tape), hence 1e-4, room for a few hundred float32 roundings.
_RTOL = {np.dtype(np.float64): 1e-6, np.dtype(np.float32): 1e-4, np.dtype(np.float16): 1e-2}
_ATOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-6, np.dtype(np.float16): 1e-3}
# the extrapolated finite difference must be known to this fraction of the inner product's
# size, or the check fails: a derivative the differences cannot pin down (a kink, noise)
# would otherwise pass under the widened tolerance
_UNSETTLED = 1e-3
_EPS = 1e-3  # the first step of the extrapolation (see _compare); it shrinks from there
_UNSUPPORTED = "second order / forward mode are not supported yet (issue 11)"


def check_grads(f, args, order=1, modes=("rev",), eps=None, rtol=None, atol=None,
                argnums=None, *, directions=2, seed=0):
    """Check tapegrad's reverse-mode derivatives of ``f`` at ``args`` against central
    finite differences in float64, along random directions; raise ``AssertionError`` if
    they disagree.

    >>> import numpy as np, tapegrad as tg, tapegrad.numpy as tnp
    >>> tg.check_grads(lambda w, x: tnp.sum(tnp.tanh(x @ w) ** 2), (np.ones(3), np.eye(3)))
    >>> tg.check_grads(lambda x: tnp.exp(x), (np.zeros(4),))  # non-scalar: <u, J v>

    Parameters
    ----------
    f : the function, ``f(*args)`` a float or a float array (any shape).
    args : tuple of the positional arguments; each may be a pytree (tuples, lists, dicts,
        namedtuples, dataclasses) of floats and float arrays.
    order : 1.  Higher orders raise ``NotImplementedError`` (issue 11).
    modes : ``("rev",)`` (or ``"rev"``).  ``"fwd"`` raises ``NotImplementedError``.
    eps : the first finite-difference step, default 1e-3.  Element i of a direction is
        scaled by ``max(1, |x_i|)``, so steps are relative for large entries; the step
        shrinks by halves from ``eps`` (or from less, where F varies fast compared with
        its size) and the central differences are extrapolated to step 0 (Ridders).
    rtol, atol : tolerances of ``|<g, v> - FD| <= atol + rtol * max(sum |g_i v_i|, |FD|)``
        plus the extrapolation's own error estimate and a bound on rounding.  Defaults by
        the argument's dtype: float64 1e-6 and 1e-10, float32 1e-4 and 1e-6.
    argnums : int or tuple of ints: the arguments to check.  Default: every argument
        whose leaves are all floats (the others are passed unchanged).
    directions : random directions per argument (keyword only, default 2).
    seed : seed of the random directions and cotangent (keyword only, default 0).

    Finite differences need a neighbourhood where ``f`` is smooth: a kink closer to
    ``args`` than the smallest step (about ``eps * 1e-4``) is seen as a kink, and the
    check fails there even though tapegrad's subgradient convention holds (see
    docs/conventions.md).  Check away from kinks, ties and the edges of domains.

    Raises
    ------
    AssertionError : a derivative, the replayed value, or a gradient's structure, shape
        or dtype is wrong.  The message names the argument, the direction and both numbers.
    NotImplementedError : ``order > 1`` or forward mode.
    TypeError, ValueError : bad arguments, or ``f`` not finite at ``args``.
    """
    modes = _check_supported(order, modes)
    if not isinstance(args, (tuple, list)):
        raise TypeError(f"check_grads: args must be a tuple of positional arguments, as for "
                        f"jax.test_util.check_grads, got {type(args).__name__}")
    args = tuple(args)
    if not isinstance(directions, numbers.Integral) or isinstance(directions, bool) or directions < 1:
        raise ValueError(f"check_grads: directions must be a positive int, got {directions!r}")
    nums = _argnums(args, argnums)
    name = getattr(f, "__qualname__", None) or type(f).__name__
    rng = np.random.default_rng(seed)

    plain = tuple(_map_floats(a, _to_float64) for a in args)
    y0 = _evaluate(f, plain, name)
    u = None if y0.ndim == 0 else rng.standard_normal(y0.shape)
    target = f if u is None else _project(f, u)        # recorded by tapegrad
    reference = f if u is None else _project_plain(f, u)  # evaluated on plain float64 values

    import tapegrad  # here, not at import time: tapegrad/__init__ imports this module
    value, grads = tapegrad.value_and_grad(target, argnums=nums, cache=False)(*args)
    what = f"f = {name}" if u is None else f"F = sum(u * {name}(...)), u a random cotangent of shape {y0.shape}"
    _check_value(what, value, y0, u, args, nums, rtol, atol)

    for k, g in zip(nums, grads):
        arg_leaves, arg_tree = pytree.flatten(args[k])
        g_leaves, g_tree = pytree.flatten(g)
        paths = _paths(arg_tree)
        _check_structure(k, arg_leaves, arg_tree, g_leaves, g_tree, paths)
        dtype = min((np.result_type(x) for x in arg_leaves), key=lambda d: d.itemsize)
        r = _RTOL.get(dtype, 1e-6) if rtol is None else rtol
        a = _ATOL.get(dtype, 1e-10) if atol is None else atol
        x64 = [np.asarray(x, dtype=np.float64) for x in arg_leaves]
        g64 = [np.asarray(x, dtype=np.float64) for x in g_leaves]
        for j in range(directions):
            v = [rng.standard_normal(x.shape) * np.maximum(1.0, np.abs(x)) for x in x64]
            bad = _compare(reference, plain, k, arg_tree, x64, g64, v, eps or _EPS, r, a)
            if bad is None:
                continue
            where = ""
            if len(x64) > 1:  # find the leaves that disagree on their own
                culprits = []
                for i in range(len(x64)):
                    only = [vi if i == m else np.zeros_like(vi) for m, vi in enumerate(v)]
                    if _compare(reference, plain, k, arg_tree, x64, g64, only, eps or _EPS, r,
                                a) is not None:
                        culprits.append(f"argument {k}{paths[i]}")
                if culprits:
                    where = f" (the leaves that disagree on their own: {', '.join(culprits)})"
            analytic, numeric, tol, h, err = bad
            raise AssertionError(
                f"check_grads: the reverse-mode derivative of {what} does not match central "
                f"finite differences for argument {k}{where}, direction {j} (of {directions}, "
                f"seed {seed}): tapegrad's <gradient, v> = {analytic!r}, but "
                f"(F(x + h v) - F(x - h v)) / 2h extrapolated to h = 0 = {numeric!r} "
                f"(estimated error {err:.3g}, first h {h:.3g}); difference "
                f"{abs(analytic - numeric):.3g}, tolerance {tol:.3g}"
                + ("" if err <= _UNSETTLED * max(abs(analytic), abs(numeric)) + a else
                   "; the finite differences did not settle, so f may not be differentiable "
                   "along v here (a kink) or too noisy: try another point or a larger eps"))


def _check_supported(order, modes):
    """The modes as a tuple; raise for what check_grads cannot check (never a silent pass)."""
    if isinstance(modes, str):
        modes = (modes,)
    modes = tuple(modes)
    if not modes:
        raise ValueError("check_grads: modes is empty, so nothing would be checked; use "
                         "modes=('rev',)")
    unknown = [m for m in modes if m not in ("rev", "fwd")]
    if unknown:
        raise ValueError(f"check_grads: unknown mode(s) {unknown!r}; tapegrad has 'rev'")
    if not isinstance(order, numbers.Integral) or isinstance(order, bool) or order < 1:
        raise ValueError(f"check_grads: order must be a positive int, got {order!r}")
    if order > 1 or "fwd" in modes:
        raise NotImplementedError(f"check_grads(order={order}, modes={modes!r}): tapegrad "
                                  f"checks first-order reverse mode only; {_UNSUPPORTED}")
    return modes


def _is_float_leaf(x):
    if isinstance(x, (bool, np.bool_)):
        return False
    if isinstance(x, (float, np.floating)):
        return True
    return isinstance(x, np.ndarray) and x.dtype.kind == "f"


def _argnums(args, argnums):
    """The checked arguments, as a sorted tuple of non-negative ints."""
    n = len(args)
    if argnums is None:
        nums = tuple(k for k, a in enumerate(args)
                     if (leaves := pytree.flatten(a)[0]) and all(map(_is_float_leaf, leaves)))
        if not nums:
            raise ValueError("check_grads: no argument is made of floats only, so there is "
                             "nothing to differentiate; pass float arguments or argnums")
        return nums
    single = isinstance(argnums, numbers.Integral) and not isinstance(argnums, bool)
    raw = (argnums,) if single else tuple(argnums)
    if not raw or not all(isinstance(k, numbers.Integral) and not isinstance(k, bool) for k in raw):
        raise TypeError(f"check_grads: argnums must be an int or a non-empty tuple of ints, "
                        f"got {argnums!r}")
    if not all(-n <= k < n for k in raw):
        raise ValueError(f"check_grads: argnums {argnums!r} out of range for {n} argument(s)")
    nums = tuple(sorted({int(k) % n for k in raw}))
    if len(nums) < len(raw):
        raise ValueError(f"check_grads: argnums {argnums!r} names an argument twice")
    for k in nums:
        leaves = pytree.flatten(args[k])[0]
        bad = [type(x).__name__ for x in leaves if not _is_float_leaf(x)]
        if not leaves or bad:
            raise TypeError(f"check_grads: argument {k} must be made of floats and float "
                            f"arrays to be differentiated{'; it has ' + ', '.join(bad) if bad else ''}")
    return nums


def _to_float64(x):
    if isinstance(x, np.ndarray):
        return x.astype(np.float64)
    return float(x)


def _map_floats(tree, fn):
    leaves, tree_def = pytree.flatten(tree)
    return pytree.unflatten(tree_def, [fn(x) if _is_float_leaf(x) else x for x in leaves])


def _evaluate(f, args, name):
    """f(*args) on plain float64 values, as a float64 array; it must be finite."""
    with np.errstate(all="ignore"):
        y = f(*args)
    try:
        y = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"check_grads: {name} must return a float or a float array, "
                        f"got {type(y).__name__}") from None
    if not np.all(np.isfinite(y)):
        raise ValueError(f"check_grads: {name} is not finite at these arguments (value {y}); "
                         "finite differences cannot check a derivative there")
    return y


def _project(f, u):
    """F(*a) = sum(u * f(*a)), recorded by tapegrad: its gradient is J^T u."""
    import tapegrad.numpy as tnp

    def projected(*a):
        return tnp.sum(u * f(*a))
    projected.__qualname__ = f"sum(u * {getattr(f, '__qualname__', 'f')}(...))"
    return projected


def _project_plain(f, u):
    def projected(*a):
        return float(np.sum(u * np.asarray(f(*a), dtype=np.float64)))
    return projected


def _check_value(what, value, y0, u, args, nums, rtol, atol):
    """The value replayed from the tape must be the plain float64 call's."""
    ref = float(y0) if u is None else float(np.sum(u * y0))
    scale = abs(ref) if u is None else float(np.sum(np.abs(u * y0)))
    dtype = min((np.result_type(x) for k in nums for x in pytree.flatten(args[k])[0]),
                key=lambda d: d.itemsize)
    r = _RTOL.get(dtype, 1e-6) if rtol is None else rtol
    a = _ATOL.get(dtype, 1e-10) if atol is None else atol
    if not abs(float(value) - ref) <= a + r * scale:
        raise AssertionError(f"check_grads: the value of {what} replayed from tapegrad's tape "
                             f"is {float(value)!r}, but a plain numpy call gives {ref!r}")


def _paths(tree_def):
    """The path of each leaf of ``tree_def`` ('' for a bare leaf, ``['w']``, ``[0].b``)."""
    out = []

    def walk(d, path):
        if d == "*":
            out.append(path)
        elif d[0] in ("tuple", "list"):
            for i, c in enumerate(d[1]):
                walk(c, f"{path}[{i}]")
        elif d[0] == "dict":
            for key, c in zip(d[1], d[2]):
                walk(c, f"{path}[{key!r}]")
        elif d[0] == "namedtuple":
            for field, c in zip(d[1]._fields, d[2]):
                walk(c, f"{path}.{field}")
        elif d[0] == "dataclass":
            for field, c in zip(d[2], d[3]):
                walk(c, f"{path}.{field}")
    walk(tree_def, "")
    return out


def _check_structure(k, arg_leaves, arg_tree, g_leaves, g_tree, paths):
    """The gradient of argument k has its structure, shapes and dtypes."""
    if g_tree != arg_tree:
        raise AssertionError(f"check_grads: the gradient of argument {k} has structure "
                             f"{g_tree!r}, the argument {arg_tree!r}")
    for x, g, path in zip(arg_leaves, g_leaves, paths):
        if np.shape(g) != np.shape(x) or np.result_type(g) != np.result_type(x):
            raise AssertionError(f"check_grads: the gradient of argument {k}{path} has shape "
                                 f"{np.shape(g)} and dtype {np.result_type(g)}, the argument "
                                 f"shape {np.shape(x)} and dtype {np.result_type(x)}")


def _compare(F, plain, k, arg_tree, x64, g64, v, h, rtol, atol):
    """None if <g, v> matches the derivative of F along v in argument k, else
    (analytic, numeric, tolerance, h).

    The derivative is estimated by Ridders' method: central differences at steps h,
    h/2, h/4, ... extrapolated to step 0 (Richardson) in a Neville tableau, keeping the
    estimate whose neighbours agree best; that agreement is the estimate's error, which
    is added to the tolerance.  Large steps are accurate on smooth functions after
    extrapolation, and the shrinking steps resolve functions that vary fast (a single
    central difference at a fixed small step is neither)."""
    analytic = float(sum(np.sum(g * vi) for g, vi in zip(g64, v)))
    scale = float(sum(np.sum(np.abs(g * vi)) for g, vi in zip(g64, v)))

    def at(t):
        moved = [x + t * vi for x, vi in zip(x64, v)]
        leaves = [m if np.ndim(x) else float(m) for m, x in zip(moved, x64)]
        new = list(plain)
        new[k] = pytree.unflatten(arg_tree, leaves)
        with np.errstate(all="ignore"):
            return float(F(*new))

    # a first step small enough that the first-order change of F, about scale * h, is a
    # thousandth of |F| + 1: F varies faster than its size suggests when scale is large
    f0 = abs(at(0.0))
    h = min(h, h * (f0 + 1.0) / scale) if scale > 0 and np.isfinite(scale) else h
    numeric, err, size, step = _ridders(at, h)
    # each evaluation is rounded at about 16 ulp of its size: the difference quotient at
    # the smallest step used inherits that divided by 2 * step
    rounding = 16.0 * _MACHINE_EPS * size / step
    tol = atol + rtol * max(scale, abs(numeric)) + err + rounding
    settled = err <= _UNSETTLED * max(scale, abs(numeric)) + atol
    if settled and abs(analytic - numeric) <= tol:  # False for NaN on either side
        return None
    return analytic, numeric, tol, h, err


def _ridders(at, h, shrink=2.0, steps=14):
    """(derivative, error estimate, largest |F| seen, smallest step) of t -> at(t) at 0."""
    def central(step):
        up, down = at(step), at(-step)
        return (up - down) / (2.0 * step), max(abs(up), abs(down))

    table = [[0.0] * steps for _ in range(steps)]
    table[0][0], size = central(h)
    best, err, step = table[0][0], np.inf, h
    for i in range(1, steps):
        step /= shrink
        table[0][i], s = central(step)
        size = max(size, s)
        factor = shrink * shrink
        for j in range(1, i + 1):
            table[j][i] = (table[j - 1][i] * factor - table[j - 1][i - 1]) / (factor - 1.0)
            factor *= shrink * shrink
            e = max(abs(table[j][i] - table[j - 1][i]), abs(table[j][i] - table[j - 1][i - 1]))
            if e <= err:
                best, err = table[j][i], e
        if abs(table[i][i] - table[i - 1][i - 1]) >= 2.0 * err:
            break  # higher orders are getting worse: rounding has taken over
    if not np.isfinite(err):
        err = abs(best) if np.isfinite(best) else np.inf
    return best, err, size, step
