"""Contractions as compositions of existing entries: tensordot, dot, inner, vdot, outer,
kron, cross and einsum.  No new rows: operands are permuted (a GATHER, or nothing when the
order is already right), reshaped (free aliases) and contracted by one MATMUL per pair.

Every pairwise contraction is written in einsum subscripts (one letter per axis) and done
by :func:`pair`: repeated letters within an operand become a diagonal GATHER, letters that
only one operand carries and the output lacks are summed first (one SUM), the rest is
ordered (batch, free, contracted) x (batch, contracted, free) and multiplied by MATMUL.

Invariants
----------
* Shapes and subscripts are checked before anything is recorded; an error is numpy's own
  (numpy is run on zero-stride stand-ins of the operands' shapes), prefixed with the
  function's name.
* A 2-d operand that only needs transposing reaches MATMUL as its transposing GATHER, so
  BLAS reads it through a flag (``tensordot(x, W, ([1], [1]))`` costs what ``x @ W.T`` does).
"""
import numpy as np

from tapegrad.emit.arrays import const, layout, named, positions, stack, take_flat
from tapegrad.emit.elementwise import binary
from tapegrad.emit.linalg import matmul
from tapegrad.emit.reductions import reduce
from tapegrad.emit.shape import broadcast_to, getitem, reshape, transpose
from tapegrad.tracer import EMIT, Traced, _as_float_array, _recorder

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _lift_all(name, *xs):
    """Every operand as a Traced of one recording (plain ones become constant nodes)."""
    rec = _recorder(*xs)
    return [x if isinstance(x, Traced) else const(rec, _as_float_array(name, x)) for x in xs]


def _stand_in(x):
    """A zero-stride array of ``x``'s shape: numpy's checks run on it for free."""
    shape = x.shape if isinstance(x, Traced) else np.shape(x)
    return np.broadcast_to(np.float64(0.0), shape)


def _numpy_error(name, npfn, *args, **kwargs):
    """Raise numpy's error for ``npfn`` on stand-ins of ``args``; ValueError if it has none."""
    try:
        npfn(*(_stand_in(a) for a in args), **kwargs)
    except Exception as err:  # numpy's own type, whatever it is
        raise named(name, err) from None
    shapes = " and ".join(str(_stand_in(a).shape) for a in args)
    raise ValueError(f"{name}: operands of shapes {shapes} and arguments {kwargs} are not supported")


def _reshape(x, shape):
    return x if x.shape == tuple(shape) else reshape(x, tuple(shape))


def _arrange(x, subs, order):
    """``x`` (axes labelled ``subs``) with its axes in the order of ``order``."""
    return transpose(x, tuple(subs.index(c) for c in order))


def _prepare(x, subs, keep):
    """``x`` with unique labels: the diagonal of repeated ones (a GATHER chosen by numpy's
    einsum on element positions), then the sum over labels not in ``keep``."""
    if len(set(subs)) < len(subs):
        uniq = "".join(dict.fromkeys(subs))
        x = take_flat(x, np.einsum(f"{subs}->{uniq}", positions(x.shape)))
        subs = uniq
    drop = tuple(i for i, c in enumerate(subs) if c not in keep)
    if drop:
        x = reduce("SUM", x, drop, False)
        subs = "".join(c for c in subs if c in keep)
    return x, subs


def single(x, subs, out):
    """einsum ``subs->out`` of one operand (labels in ``out`` unique and all in ``subs``)."""
    x, subs = _prepare(x, subs, set(out))
    return _arrange(x, subs, out)


def pair(a, sa, b, sb, out):
    """einsum ``sa,sb->out`` of two Traced operands: one MATMUL when it is a matrix product
    (some label is summed and some is free), else a broadcasting MUL and a SUM.  A label of
    size 1 in one operand and n in the other is broadcast (einsum's rule)."""
    a, sa = _prepare(a, sa, set(sb) | set(out))
    b, sb = _prepare(b, sb, set(sa) | set(out))
    dims = dict(zip(sb, b.shape))
    dims.update({c: n if dims.get(c, 1) == 1 else dims[c] for c, n in zip(sa, a.shape)})
    a = broadcast_to(a, tuple(dims[c] for c in sa))
    b = broadcast_to(b, tuple(dims[c] for c in sb))
    batch = [c for c in out if c in sa and c in sb]
    contr = [c for c in sa if c in sb and c not in out]
    fa, fb = [c for c in sa if c not in sb], [c for c in sb if c not in sa]
    if "".join(batch + fa + fb) != out and "".join(batch + fb + fa) == out:
        return pair(b, sb, a, sa, out)  # swapped, the product is already in out's order
    size = lambda cs: int(np.prod([dims[c] for c in cs], dtype=np.int64))  # noqa: E731
    shape = lambda cs: tuple(dims[c] for c in cs)  # noqa: E731
    if not contr or (batch and not fa and not fb):
        # no matrix product here (an outer or elementwise product, or row-wise dots):
        # one broadcasting MUL, then a SUM over the contracted labels
        A = _reshape(_arrange(a, sa, batch + fa + contr), shape(batch + fa) + (1,) * len(fb) + shape(contr))
        B = _reshape(_arrange(b, sb, batch + fb + contr), shape(batch) + (1,) * len(fa) + shape(fb + contr))
        C = binary("MUL", A, B)
        if contr:
            C = reduce("SUM", C, tuple(range(C.ndim - len(contr), C.ndim)), False)
        return _arrange(C, "".join(batch + fa + fb), out)
    A, B = _arrange(a, sa, batch + fa + contr), _arrange(b, sb, batch + contr + fb)
    if batch:
        A = _reshape(A, (size(batch), size(fa), size(contr)))
        B = _reshape(B, (size(batch), size(contr), size(fb)))
    else:  # a 1-d operand stays 1-d: matmul's vector cases, no size-1 axes
        A = _reshape(A, ((size(fa),) if fa else ()) + (size(contr),))
        B = _reshape(B, (size(contr),) + ((size(fb),) if fb else ()))
    C = _reshape(matmul(A, B), tuple(dims[c] for c in batch + fa + fb))
    return _arrange(C, "".join(batch + fa + fb), out)


def _axes(name, axes, na, nb, a, b):
    """tensordot's ``axes`` as two lists of non-negative axes, checked; numpy's error if not."""
    try:
        axa, axb = axes
    except TypeError:
        if not isinstance(axes, (int, np.integer)) or isinstance(axes, bool) \
                or not 0 <= axes <= min(na, nb):
            _numpy_error(name, np.tensordot, a, b, axes=axes)
        axa, axb = list(range(na - axes, na)), list(range(axes))
    except ValueError:
        _numpy_error(name, np.tensordot, a, b, axes=axes)
    axa = [axa] if isinstance(axa, (int, np.integer)) else list(axa)
    axb = [axb] if isinstance(axb, (int, np.integer)) else list(axb)
    ok = len(axa) == len(axb) and all(-na <= i < na for i in axa) and all(-nb <= j < nb for j in axb)
    if ok:
        axa, axb = [int(i) % na for i in axa], [int(j) % nb for j in axb]
        ok = len(set(axa)) == len(axa) and len(set(axb)) == len(axb) and \
            all(a.shape[i] == b.shape[j] for i, j in zip(axa, axb))
    if not ok:
        _numpy_error(name, np.tensordot, a, b, axes=(axa, axb))
    return axa, axb


def tensordot(a, b, axes=2, name="tensordot"):
    """numpy.tensordot: the sum over ``axes`` (an int n: the last n of a with the first n of
    b; or a pair of ints / sequences); the result's axes are a's free ones then b's."""
    a, b = _lift_all(name, a, b)
    na, nb = a.ndim, b.ndim
    if na + nb > len(_LETTERS):
        raise ValueError(f"{name}: operands of {na} and {nb} dimensions: too many axes (at most "
                         f"{len(_LETTERS)} in all)")
    axa, axb = _axes(name, axes, na, nb, a, b)
    sa = _LETTERS[:na]
    extra = iter(_LETTERS[na:])
    sb = "".join(sa[axa[axb.index(j)]] if j in axb else next(extra) for j in range(nb))
    out = "".join(c for c in sa if c not in sb) + "".join(c for c in sb if c not in sa)
    return pair(a, sa, b, sb, out)


def dot(a, b):
    """numpy.dot: a product with a 0-d operand, else the sum over a's last axis and b's
    second-to-last (its only one if 1-d)."""
    na, nb = np.ndim(_stand_in(a)), np.ndim(_stand_in(b))
    if na == 0 or nb == 0:
        return binary("MUL", a, b)
    if (_stand_in(a).shape[-1] != _stand_in(b).shape[max(nb - 2, 0)]):
        _numpy_error("dot", np.dot, a, b)
    return tensordot(a, b, ([na - 1], [max(nb - 2, 0)]), name="dot")


def inner(a, b):
    """numpy.inner: a product with a 0-d operand, else the sum over both last axes."""
    na, nb = np.ndim(_stand_in(a)), np.ndim(_stand_in(b))
    if na == 0 or nb == 0:
        return binary("MUL", a, b)
    if _stand_in(a).shape[-1] != _stand_in(b).shape[-1]:
        _numpy_error("inner", np.inner, a, b)
    return tensordot(a, b, ([na - 1], [nb - 1]), name="inner")


def vdot(a, b):
    """numpy.vdot: both flattened, then their dot product (real values: no conjugate)."""
    a, b = _lift_all("vdot", a, b)
    if a.size != b.size:
        _numpy_error("vdot", np.vdot, a, b)
    return pair(reshape(a, -1), "i", reshape(b, -1), "i", "")


def outer(a, b):
    """numpy.outer: both flattened, a as a column times b as a row (one broadcasting MUL)."""
    a, b = _lift_all("outer", a, b)
    return binary("MUL", reshape(a, (-1, 1)), reshape(b, (1, -1)))


def kron(a, b):
    """numpy.kron: both padded to the same ndim with leading 1s, their axes interleaved
    (a's of size m, b's of size n), one broadcasting MUL, reshaped (free) to m*n per axis."""
    a, b = _lift_all("kron", a, b)
    nd = max(a.ndim, b.ndim)
    sa, sb = (1,) * (nd - a.ndim) + a.shape, (1,) * (nd - b.ndim) + b.shape
    prod = binary("MUL", reshape(a, tuple(d for m in sa for d in (m, 1))),
                  reshape(b, tuple(d for n in sb for d in (1, n))))
    return reshape(prod, tuple(m * n for m, n in zip(sa, sb)))


def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    """numpy.cross of 2- and 3-vectors along ``axisa``/``axisb`` (``axis`` sets all three),
    broadcast over the other axes: products of components (GATHERs or aliases), one STACK
    (CONCAT) and a move of the vector axis to ``axisc``.  Two 2-vectors give the z part."""
    a, b = _lift_all("cross", a, b)
    if axis is not None:
        axisa = axisb = axisc = axis
    try:
        want = np.cross(_stand_in(a), _stand_in(b), axisa, axisb, axisc).shape
    except Exception as err:  # numpy's checks: axes, vector lengths, broadcasting
        raise named("cross", err) from None
    a = layout("cross", a, np.moveaxis, axisa, -1)
    b = layout("cross", b, np.moveaxis, axisb, -1)
    ca = [getitem(a, (Ellipsis, i)) for i in range(a.shape[-1])] + [None]
    cb = [getitem(b, (Ellipsis, i)) for i in range(b.shape[-1])] + [None]

    def term(i, j, k):  # a_i b_j - a_j b_i with absent (z of a 2-vector) components as 0
        p = None if ca[i] is None or cb[j] is None else ca[i] * cb[j]
        q = None if ca[j] is None or cb[i] is None else ca[j] * cb[i]
        return p - q if q is not None and p is not None else (p if q is None else -q)

    z = term(0, 1, 2)
    if a.shape[-1] == 2 and b.shape[-1] == 2:
        out = z
    else:
        out = layout("cross", stack([term(1, 2, 0), term(2, 0, 1), z], axis=-1), np.moveaxis, -1, axisc)
    if out.shape != want:
        raise AssertionError(f"cross: recorded shape {out.shape}, numpy's is {want}")
    return out


def _split_einsum(args):
    """(indices of the operands in ``args``) for einsum's two calling conventions."""
    if isinstance(args[0], str):
        return list(range(1, len(args)))
    return list(range(0, len(args) - len(args) % 2, 2))


def einsum(*args, out=None, optimize=False, **kwargs):
    """numpy.einsum (explicit or implicit output, ellipsis, repeated labels, the interleaved
    form): numpy's ``einsum_path`` parses the subscripts and orders the pairwise steps (its
    ``einsum_call`` form gives each step as explicit subscripts, ellipses spelled out);
    each step is :func:`single` or :func:`pair`.  ``optimize`` is accepted and ignored."""
    if out is not None or any(kwargs.get(k) not in (None, "K", "safe", float, np.float64)
                              for k in kwargs):
        raise TypeError("einsum: out=, dtype=, order= and casting= are not supported on traced values")
    if not args:
        raise ValueError("einsum: no subscripts given")
    where = _split_einsum(args)
    operands = _lift_all("einsum", *(args[i] for i in where))
    stand = list(args)
    for i in where:
        stand[i] = _stand_in(args[i])
    try:
        _, steps = np.einsum_path(*stand, optimize="greedy", einsum_call=True)
    except Exception as err:  # numpy's parse and shape errors
        raise named("einsum", err) from None
    for step in steps:
        spec = next(s for s in step if isinstance(s, str))
        inputs, result = spec.split("->")
        subs = inputs.split(",")
        taken = [operands.pop(i) for i in step[0]]
        if len(taken) == 1:
            operands.append(single(taken[0], subs[0], result))
        elif len(taken) == 2:
            operands.append(pair(taken[0], subs[0], taken[1], subs[1], result))
        else:
            raise NotImplementedError(f"einsum: a {len(taken)}-operand step {spec!r}")
    return operands[0]


EMIT.dot = dot
