"""Derivatives of derivatives: grad of grad, jvp, hvp, hessian, forward-mode jacobian.

A transformed function (``grad``, ``value_and_grad``, ``jacobian``) called on values traced
by an enclosing recording does not run the numba sweeps: :func:`call_traced` records the
function at the concrete values and inlines that tape, forward and symbolic backward, into
the enclosing recording (:mod:`tapegrad.inline`).  The gradient is then an ordinary traced
value, so everything composes: ``grad(grad(f))``, ``jacobian(grad(f))``, any depth.

The functions here are built from that one mechanism, each as a ``tapegrad.grad`` or
``tapegrad.jacobian`` of a small function that calls a transformed ``f``: so each records
its whole computation (forward, backward and the sweep over the backward) as one tape on
the first call, with guards, and replays it on later calls with the numba interpreter.

* ``hvp(f)(x, v)``: reverse over reverse, the gradient of <grad f(x), v> with respect to x.
* ``jvp(f, primals, tangents)``: J v as the gradient of <vjp(u), v> with respect to the
  cotangent u, where vjp(u) = grad of <f(x), u>: linear in u, so its gradient is exact
  whatever u is (the linear-transpose trick; tapegrad has no tangent sweep).
* ``hessian(f)(x)``: the Jacobian of grad f, one backward sweep of the recorded gradient
  tape per argument element.
* ``jacobian(f, mode="fwd")``: the Jacobian of the jvp map, one sweep per output element of
  a tape whose output is J^T u's transpose: it pays when there are more outputs than
  inputs.

Invariants
----------
* A traced call never reads or fills the transformed function's cache: the inner tape is
  recorded at this call's values; the enclosing recording is what gets cached and guarded.
* Traced leaves must all belong to one live recording; a value of a finished recording
  raises as it does anywhere else.
"""
import numpy as np

import tapegrad.numpy as tnp
from tapegrad import pytree
from tapegrad.api import _normalize_argnums, _record, _signature, _Transformed, jacobian as _rev_jacobian
from tapegrad.emit.arrays import const
from tapegrad.emit.shape import reshape
from tapegrad.inline import Inlined
from tapegrad.tracer import Traced, _recorder


def call_traced(transformed, args, kwargs):
    """``transformed(*args, **kwargs)`` where some argument leaves are traced values of an
    enclosing recording: the inner tape inlined into that recording (module docstring)."""
    leaves, treedef = pytree.flatten(tuple(args))
    traced = [leaf for leaf in leaves if isinstance(leaf, Traced)]
    rec = _recorder(*traced)
    concrete = pytree.unflatten(treedef, [np.array(leaf._value) if isinstance(leaf, Traced) else leaf
                                          for leaf in leaves])
    nums, is_int = _normalize_argnums(transformed._argnums, len(args))
    cleaves, ctree, specs, leaf_arg = _signature(concrete, nums)
    mode = transformed._mode
    tape = _record(transformed._f, kwargs, nums, is_int, cleaves, ctree, specs, leaf_arg,
                   None if mode == "jacobian" else mode)
    inlined = Inlined(tape, rec, leaves)
    if mode == "jacobian":
        return _jacobian_rows(inlined)
    grads = tape._assemble(_shaped(inlined.backward(1.0), tape, rec))
    return (inlined.output, grads) if mode == "value_and_grad" else grads


def _contracted(transformed, args, v):
    """<transformed(*args), v> for a ``grad`` transform called on traced ``args``: as
    ``_vdot(transformed(*args), v)``, but contracted piece by piece in the inlined backward
    sweep (``Inlined.backward(along=...)``), so the gradient is never assembled."""
    leaves = pytree.flatten(tuple(args))[0]
    if transformed._mode != "grad" or not any(isinstance(leaf, Traced) for leaf in leaves):
        return _vdot(transformed(*args), v)
    rec = _recorder(*[leaf for leaf in leaves if isinstance(leaf, Traced)])
    concrete = tuple(pytree.unflatten(pytree.flatten(tuple(args))[1],
                                      [np.array(leaf._value) if isinstance(leaf, Traced) else leaf
                                       for leaf in leaves]))
    nums, is_int = _normalize_argnums(transformed._argnums, len(args))
    cleaves, ctree, specs, leaf_arg = _signature(concrete, nums)
    tape = _record(transformed._f, {}, nums, is_int, cleaves, ctree, specs, leaf_arg, "grad")
    # which gradient leaf each leaf of v pairs with: the gradient's structure, built of indices
    order, tree = pytree.flatten(tape._assemble(list(range(len(tape._grad_plan)))))
    vleaves, vtree = pytree.flatten(v)
    if vtree != tree:
        raise ValueError(f"the vector's structure {vtree} differs from the gradient's {tree}")
    along = [None] * len(order)
    for k, leaf in zip(order, vleaves):
        shape = tape._grad_plan[k][4]
        if np.shape(leaf) != shape:
            raise ValueError(f"the vector has a leaf of shape {np.shape(leaf)} where the gradient "
                             f"has shape {shape}")
        along[k] = leaf if isinstance(leaf, Traced) else const(rec, np.asarray(leaf, np.float64))
    total = Inlined(tape, rec, leaves).backward(1.0, along=along)
    return 0.0 if total is None else total


def _shaped(adjoints, tape, rec):
    """Each differentiated leaf's traced adjoint in its leaf's shape (zeros if None)."""
    out = []
    for adj, plan in zip(adjoints, tape._grad_plan):
        shape = plan[4]
        out.append(const(rec, np.zeros(shape)) if adj is None else
                   (adj if adj.shape == shape else reshape(adj, shape)))
    return out


def _jacobian_rows(inlined):
    """One symbolic backward sweep per output element, stacked as d output / d argument."""
    tape, rec = inlined.tape, inlined.rec
    out_shape = tape.shape(tape.output)
    m = int(np.prod(out_shape, dtype=np.int64))
    rows = []
    for i in range(m):
        seed = np.zeros(m)
        seed[i] = 1.0
        rows.append(_shaped(inlined.backward(seed.reshape(out_shape)), tape, rec))
    per_leaf = []
    for k, plan in enumerate(tape._grad_plan):
        shape = out_shape + plan[4]
        if m == 0 or int(np.prod(plan[4], dtype=np.int64)) == 0:
            per_leaf.append(const(rec, np.zeros(shape)))
        else:
            per_leaf.append(reshape(tnp.stack([reshape(r[k], -1) for r in rows]), shape))
    return tape._assemble(per_leaf)


def _vdot(a, b):
    """sum(a * b) over the leaves of two pytrees of one structure (traced or plain)."""
    la, ta = pytree.flatten(a)
    lb, tb = pytree.flatten(b)
    if ta != tb:
        raise ValueError(f"the vector's structure {tb} differs from the gradient's {ta}")
    total = 0.0
    for x, y in zip(la, lb):
        if np.shape(x) != np.shape(y):
            raise ValueError(f"the vector has a leaf of shape {np.shape(y)} where the gradient "
                             f"has shape {np.shape(x)}")
        total = total + tnp.sum(x * y)
    return total


def _quiet(transformed):
    """``transformed`` without the "output independent of input" warning: a zero second
    derivative (f linear) is an answer, not a sign of a mistake."""
    transformed._warned.add("independent")
    return transformed


def _positive(argnums, nargs):
    nums, is_int = _normalize_argnums(argnums, nargs)
    return nums[0] if is_int else nums


class hvp:  # noqa: N801 - a transformation, spelled like grad
    """``hvp(f, argnums=0)(*args, v)``: the Hessian of scalar ``f`` with respect to the
    argument(s) ``argnums``, times ``v`` (shaped like them: a tuple for a tuple of argnums).

    Reverse over reverse: the gradient of <grad f(x), v>.  The first call records that
    whole computation as one tape (forward, the backward sweep as entries, the sweep over
    it is the interpreter's); later calls with the same shapes replay it.

    >>> import numpy as np, tapegrad as tg, tapegrad.numpy as tnp
    >>> A = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> tg.hvp(lambda x: 0.5 * x @ A @ x)(np.ones(2), np.array([1.0, -1.0])).tolist()
    [1.0, -2.0]
    """

    def __init__(self, f, argnums=0):
        self._grad = _Transformed(f, argnums, "grad", True)
        self._argnums, self._outer = argnums, {}

    def __call__(self, *args):
        if len(args) < 2:
            raise TypeError("hvp(f)(*args, v): give the arguments of f and the vector v")
        nums = _positive(self._argnums, len(args) - 1)
        outer = self._outer.get(nums)
        if outer is None:
            grad_f = self._grad

            def along(*xs):
                return _contracted(grad_f, xs[:-1], xs[-1])
            outer = self._outer[nums] = _quiet(_Transformed(along, nums, "grad", True))
        return outer(*args)


def jvp(f, primals, tangents):
    """``(f(*primals), J @ tangents)``, J the Jacobian of ``f`` at ``primals`` (tuples with
    one entry per argument of ``f``; pytrees of floats and float arrays), as JAX's ``jvp``.

    The linear-transpose trick: J t is the gradient with respect to u of <J^T u, t>, where
    J^T u = grad of <f(x), u> is linear in u.  ``f``'s tape for this is recorded once per
    function and argument shapes and replayed on later calls.

    >>> import tapegrad as tg, tapegrad.numpy as tnp
    >>> tg.jvp(lambda x, y: x * tnp.sin(y), (2.0, 0.0), (1.0, 1.0))
    (0.0, 2.0)
    """
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: {len(primals)} primals but {len(tangents)} tangents")
    if pytree.flatten(primals)[1] != pytree.flatten(tangents)[1]:
        raise ValueError("jvp: the tangents' structure differs from the primals'")
    out = f(*primals)
    leaves, tree = pytree.flatten(out)
    seed = pytree.unflatten(tree, [np.zeros(np.shape(v._value if isinstance(v, Traced) else v))
                                   for v in leaves])
    tangent = _jvp_transform(f, len(primals))(seed, *primals, *tangents)
    return out, tangent


_JVPS = {}


def _jvp_transform(f, n):
    """grad over u of <J^T u, t>, for ``f`` of ``n`` arguments, kept per function."""
    key = (f, n)
    found = _JVPS.get(key)
    if found is None:
        transpose = _Transformed(lambda u, *xs: _vdot(f(*xs), u), tuple(range(1, n + 1)), "grad", True)

        def along(u, *rest):
            return _vdot(transpose(u, *rest[:n]), tuple(rest[n:]))
        if len(_JVPS) >= 64:
            _JVPS.clear()
        found = _JVPS[key] = _quiet(_Transformed(along, 0, "grad", True))
    return found


def hessian(f, argnums=0):
    """``hessian(f, argnums=0)(*args)``: the matrix of second derivatives of scalar ``f``,
    shaped ``x.shape + x.shape`` for one array argument (for a tuple of argnums, a tuple of
    tuples of blocks, as JAX's).  The Jacobian of the recorded gradient tape, one backward
    sweep of it per element of the argument(s).

    >>> import numpy as np, tapegrad as tg, tapegrad.numpy as tnp
    >>> tg.hessian(lambda x: x[0] ** 2 * x[1])(np.array([1.0, 2.0])).tolist()
    [[4.0, 2.0], [2.0, 0.0]]
    """
    grad_f = _Transformed(f, argnums, "grad", True)
    if isinstance(argnums, (int, np.integer)):
        return _quiet(_rev_jacobian(grad_f, argnums))
    blocks = [_quiet(_rev_jacobian(lambda *a, i=i: grad_f(*a)[i], argnums)) for i in range(len(argnums))]

    def hess(*args):
        return tuple(block(*args) for block in blocks)
    return hess


def jacobian(f, argnums=0, cache=True, mode=None):
    """The Jacobian of ``f``, shaped ``output.shape + argument.shape``.

    ``mode="rev"``: one backward sweep of ``f``'s tape per output element (cheap for few
    outputs).  ``mode="fwd"``: one sweep per argument element (cheap for few inputs): the
    reverse-mode Jacobian, with respect to u, of the recorded J^T u = grad <f(x), u>, which
    is J^T; one array argument and one array output.  ``mode=None`` picks, per argument
    shapes, forward mode when the argument has fewer elements than the output.
    """
    if mode not in (None, "rev", "fwd"):
        raise ValueError(f"jacobian: mode must be 'rev', 'fwd' or None, got {mode!r}")
    if mode == "rev":
        return _rev_jacobian(f, argnums, cache)
    return _Jacobian(f, argnums, cache, mode)


class _Jacobian(_Transformed):
    """A reverse-mode jacobian transform (its cache, guards and ``tapegrad.explain`` are
    ``_Transformed``'s) that switches to forward mode where that is cheaper, or always
    (``direction="fwd"``)."""

    def __init__(self, f, argnums, cache, direction):
        if not isinstance(argnums, (int, np.integer)) and direction == "fwd":
            raise ValueError("jacobian(mode='fwd') differentiates one argument: argnums must be an int")
        super().__init__(f, argnums, "jacobian", cache)
        self._direction, self._fwd, self._shapes = direction, {}, {}

    _extra_frames = 1  # warnings point past this __call__ to the user's line

    def __call__(self, *args):
        if self._direction == "fwd":
            return self._forward(args)
        if not isinstance(self._argnums, (int, np.integer)):
            return _Transformed.__call__(self, *args)
        leaves, tree = pytree.flatten(tuple(args))
        key = (tree, tuple(np.shape(v) for v in leaves))
        if self._shapes.get(key) is None:  # first call: reverse mode, which shows the output shape
            jac = _Transformed.__call__(self, *args)
            arg = np.shape(args[int(self._argnums) % len(args)])
            one = pytree.flatten(args[int(self._argnums) % len(args)])[1] == "*" and \
                pytree.flatten(jac)[1] == "*"
            self._shapes[key] = (np.shape(jac)[:np.ndim(jac) - len(arg)] if one else None, arg)
            return jac
        out, arg = self._shapes[key]
        cheaper = out is not None and np.prod(arg) < np.prod(out)
        return self._forward(args) if cheaper else _Transformed.__call__(self, *args)

    def _out_shape(self, args):
        """The shape of ``f``'s output (None: not one array) and the argument's, found once
        per argument structure and shapes (by one evaluation of ``f`` on plain values,
        unless a reverse-mode call showed them)."""
        leaves, tree = pytree.flatten(tuple(args))
        key = (tree, tuple(np.shape(v) for v in leaves))
        found = self._shapes.get(key)
        if found is None:
            plain = pytree.unflatten(tree, [np.array(v._value) if isinstance(v, Traced) else v
                                            for v in leaves])
            out = self._f(*plain)
            k = int(self._argnums) % len(args)
            one = not isinstance(out, Traced) and pytree.flatten(out)[1] == "*" and \
                pytree.flatten(plain[k])[1] == "*"
            found = self._shapes[key] = (np.shape(out) if one else None, np.shape(plain[k]))
        return found

    def _forward(self, args):
        k = int(self._argnums) % len(args)
        out, arg = self._out_shape(args)
        if out is None:
            raise ValueError("jacobian(mode='fwd') needs one float or float-array argument "
                             "and a function with one array output")
        found = self._fwd.get((k, len(args)))
        if found is None:
            f = self._f
            transpose = _Transformed(lambda u, *xs: _vdot(f(*xs), u), k + 1, "grad", True)
            found = self._fwd[(k, len(args))] = _rev_jacobian(lambda u, *xs: transpose(u, *xs), 0)
        jt = found(np.zeros(out), *args)  # J^T: arg.shape + out.shape
        nx, no = len(arg), len(out)
        perm = tuple(range(nx, nx + no)) + tuple(range(nx))
        return tnp.transpose(jt, perm) if perm != tuple(range(nx + no)) else jt
