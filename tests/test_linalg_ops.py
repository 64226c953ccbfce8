"""Contractions (issue 10, linear algebra): dot, tensordot, inner, outer, vdot, kron, cross,
einsum and matmul's edge cases on traced values, against numpy's values (check_grads
compares the replay with the plain call, which is numpy's function) and finite
differences; one MATMUL per contraction; numpy's errors before recording."""
import numpy as np
import pytest

import tapegrad as tg
import tapegrad.numpy as tnp

# numpy >= 2 deprecates cross of 2-vectors; the traced path warns as numpy does
pytestmark = pytest.mark.filterwarnings("ignore:Arrays of 2-dimensional vectors:DeprecationWarning")
RNG = np.random.default_rng(11)


def r(*shape):
    return RNG.normal(size=shape)


S0 = np.array(1.3)
V3, V4, V2 = r(3), r(4), r(2)
M34, M43, M44, M45 = r(3, 4), r(4, 3), r(4, 4), r(4, 5)
T234, T245, T345, T2345 = r(2, 3, 4), r(2, 4, 5), r(3, 4, 5), r(2, 3, 4, 5)
NONCONTIG = r(6, 8)[::2, ::2]  # (3, 4), strided
FORTRAN = np.asfortranarray(r(4, 5))

# (name, f, args): every argument is differentiated
CASES = [
    # dot, every dimension combination
    ("dot-0d-0d", tnp.dot, (S0, np.array(-0.7))), ("dot-0d-2d", tnp.dot, (S0, M34)),
    ("dot-2d-0d", np.dot, (M34, S0)), ("dot-1d-1d", tnp.dot, (V4, r(4))),
    ("dot-1d-2d", tnp.dot, (V4, M45)), ("dot-2d-1d", tnp.dot, (M34, V4)),
    ("dot-2d-2d", tnp.dot, (M34, M45)), ("dot-3d-1d", tnp.dot, (T234, V4)),
    ("dot-1d-3d", tnp.dot, (V4, T245)), ("dot-3d-2d", np.dot, (T234, M45)),
    ("dot-2d-3d", tnp.dot, (M34, T245)), ("dot-3d-3d", tnp.dot, (T234, T245)),
    ("dot-4d-3d", tnp.dot, (T2345, r(3, 5, 2))), ("dot-noncontig", tnp.dot, (NONCONTIG, FORTRAN)),
    ("dot-transposed", lambda a, b: tnp.dot(a.T, b), (M43, M45)),
    ("dot-method", lambda a, b: a.dot(b), (M34, M45)),
    # tensordot
    ("tensordot-2", tnp.tensordot, (T234, r(3, 4, 5))), ("tensordot-1", lambda a, b: tnp.tensordot(a, b, 1), (T234, M45)),
    ("tensordot-0", lambda a, b: tnp.tensordot(a, b, 0), (V3, M34)),
    ("tensordot-pairs", lambda a, b: tnp.tensordot(a, b, ([1, 0], [2, 0])), (M34, r(3, 5, 4))),
    ("tensordot-ints", lambda a, b: np.tensordot(a, b, axes=(1, 1)), (M34, r(5, 4))),
    ("tensordot-neg", lambda a, b: tnp.tensordot(a, b, ([-1], [-2])), (T234, T2345[0])),
    ("tensordot-full", lambda a, b: tnp.tensordot(a, b, 2), (M34, r(3, 4))),
    ("tensordot-np", lambda a, b: np.tensordot(a, b, ([0], [1])), (T345, r(2, 3))),
    # inner, outer, vdot, kron
    ("inner-1d", tnp.inner, (V4, r(4))), ("inner-2d", tnp.inner, (M34, r(5, 4))),
    ("inner-3d-1d", np.inner, (T234, V4)), ("inner-0d", tnp.inner, (S0, M34)),
    ("outer", tnp.outer, (V3, V4)), ("outer-2d", np.outer, (M34, V2)),
    ("vdot", tnp.vdot, (M34, r(3, 4))), ("vdot-shapes", np.vdot, (M34, r(2, 6))),
    ("kron", tnp.kron, (r(2, 3), r(3, 2))), ("kron-1d-2d", np.kron, (V2, M34)),
    ("kron-0d", tnp.kron, (S0, V3)),
    # cross
    ("cross-3", tnp.cross, (V3, r(3))), ("cross-batch", np.cross, (r(4, 3), r(3))),
    ("cross-axis", lambda a, b: tnp.cross(a, b, axis=0), (r(3, 4), r(3, 4))),
    ("cross-axes", lambda a, b: tnp.cross(a, b, axisa=0, axisb=1, axisc=0), (r(3, 4), r(4, 3))),
    ("cross-3-2", tnp.cross, (r(5, 3), r(5, 2))),
    # matmul edge cases (already MATMUL rows)
    ("matmul-1d-1d", tnp.matmul, (V4, r(4))), ("matmul-1d-3d", tnp.matmul, (V4, T245)),
    ("matmul-3d-1d", lambda a, b: a @ b, (T234, V4)), ("matmul-bcast", tnp.matmul, (r(2, 1, 3, 4), r(3, 4, 2))),
    ("matmul-noncontig", tnp.matmul, (NONCONTIG, FORTRAN)),
]

EINSUM = [
    ("ij,jk->ik", (M34, M45)), ("ij,jk", (M34, M45)), ("ij,kj->ik", (M34, r(5, 4))),
    ("bij,bjk->bik", (T234, T245)), ("...ij,...jk", (T234, T245)), ("...ij,jk->...ik", (T234, M45)),
    ("ij,...jk->...ik", (M34, T245)), ("ii", (M44,)), ("ii->i", (M44,)), ("ij->ji", (M34,)),
    ("ij->", (M34,)), ("ij->j", (M34,)), ("i,j->ij", (V3, V4)), ("i,i", (V4, r(4))),
    ("i,i->i", (V4, r(4))), ("ij,ij->i", (M34, r(3, 4))), ("iij->j", (r(3, 3, 2),)),
    ("ij,jk,kl->il", (M34, M45, r(5, 2))), ("ab,bc,ca", (M34, M43, r(3, 3)[:, :3])),
    ("i,ij,j", (V3, M34, V4)), ("ijk,ikl->jl", (T234, r(2, 4, 5))), ("ii,jj", (M44, r(3, 3))),
    ("ij,jj->i", (M34, M44)), ("...", (T234,)), ("...i,...i->...", (T234, r(3, 4))),
    ("", (S0,)), (",ij->ij", (S0, M34)), ("ijkl->lkji", (T2345,)), ("ij,ik->jk", (NONCONTIG, r(3, 5))),
    ("ii->", (FORTRAN[:, :4],)), ("iji->j", (r(3, 2, 3),)), ("ab,cd->abcd", (V2[None], r(2, 2))),
]


@pytest.mark.parametrize("name,fn,args", CASES, ids=[c[0] for c in CASES])
def test_function_against_numpy_and_finite_differences(name, fn, args):
    tg.check_grads(fn, args)


@pytest.mark.parametrize("subs,args", EINSUM, ids=[e[0] or "empty" for e in EINSUM])
def test_einsum_against_numpy_and_finite_differences(subs, args):
    tg.check_grads(lambda *xs: tnp.einsum(subs, *xs), args)
    tg.check_grads(lambda *xs: np.einsum(subs, *xs), args)


def test_einsum_interleaved_form_and_plain_operands():
    f = lambda a: tnp.einsum(a, [0, 1], M45, [1, 2], [2, 0])  # noqa: E731
    tg.check_grads(f, (M34,))
    np.testing.assert_allclose(tg.record(f, M34).forward(M34), np.einsum(M34, [0, 1], M45, [1, 2], [2, 0]))
    c = r(5, 2)
    tg.check_grads(lambda b: np.einsum("ij,jk,kl", M34, b, c), (M45,))


def _codes(tape):
    return [line.split(": ", 1)[1].split("(")[0] for line in str(tape).splitlines()[2:]]


def test_one_matmul_per_contraction_and_transposes_as_flags():
    x, W = r(3, 4), r(5, 4)
    for f in (lambda x: tnp.tensordot(x, W, ([1], [1])), lambda x: np.einsum("ij,kj->ik", x, W),
              lambda x: tnp.inner(x, W), lambda x: tnp.dot(W, x.T)):
        tape = tg.record(f, x)
        assert _codes(tape) == ["GATHER", "MATMUL"] and ".T;" in str(tape), tape
    tape = tg.record(lambda x, y: tnp.einsum("bij,bjk->bik", x, y), T234, T245, argnums=(0, 1))
    assert _codes(tape) == ["MATMUL"], tape
    tape = tg.record(lambda x, y: tnp.einsum("ij,jk,kl->il", x, y, r(5, 2)), M34, M45, argnums=(0, 1))
    assert _codes(tape).count("MATMUL") == 2, tape
    tape = tg.record(lambda x: tnp.dot(x, M45), M34)
    assert _codes(tape) == ["MATMUL"], tape
    tape = tg.record(lambda x: tnp.dot(x, T345), T234)  # N-d . M-d: one 2-d product
    assert _codes(tape).count("MATMUL") == 1, tape


def test_products_without_a_matrix_product_are_one_mul():
    for f in (lambda x: tnp.einsum("ij,ij->i", x, x * 2.0), lambda x: tnp.outer(x[0], x[1]),
              lambda x: tnp.einsum("ij,ij->ji", x, M34, optimize=True)):
        codes = _codes(tg.record(f, M34))
        assert "MATMUL" not in codes and codes.count("MUL") == 1, codes


def test_empty_and_size_one_shapes():
    for f, args in [(tnp.dot, (r(3, 0), r(0, 4))), (tnp.dot, (r(0, 3), r(3, 2))),
                    (tnp.tensordot, (r(2, 0), r(2, 0))), (tnp.outer, (r(0), V3)),
                    (lambda a, b: tnp.einsum("ij,jk->ik", a, b), (r(2, 0), r(0, 3))),
                    (lambda a: tnp.einsum("ii->i", a), (r(0, 0),)),
                    (tnp.kron, (r(0, 2), V2)), (tnp.inner, (r(1, 3), r(1, 3)))]:
        got = tg.grad(lambda *xs: tnp.sum(f(*xs)), argnums=0)(*args)
        assert np.shape(got) == args[0].shape
        tape = tg.record(f, *args, argnums=tuple(range(len(args))))
        np.testing.assert_allclose(tape.forward(*args), np.asarray(f(*args)))
        tg.check_grads(f, args)


def test_einsum_size_one_labels_broadcast_like_numpy():
    a, b = r(3, 1), r(1, 4)
    tg.check_grads(lambda a, b: tnp.einsum("ij,ij->ij", a, b), (a, b))
    tg.check_grads(lambda a, b: tnp.einsum("...j,...j->...", a, b), (r(2, 1, 3), r(4, 3)))


@pytest.mark.parametrize("call,exc,words", [
    (lambda x: tnp.dot(x, V3), ValueError, "dot"),
    (lambda x: tnp.dot(x, T234), ValueError, "dot"),
    (lambda x: tnp.tensordot(x, M34, 1), ValueError, "tensordot"),
    (lambda x: tnp.tensordot(x, M34, ([0], [0, 1])), ValueError, "tensordot"),
    (lambda x: tnp.tensordot(x, M34, 3), IndexError, "tensordot"),
    (lambda x: tnp.tensordot(x, M34, ([5], [0])), IndexError, "tensordot"),
    (lambda x: tnp.inner(x, M45), ValueError, "inner"),
    (lambda x: tnp.vdot(x, V3), ValueError, "vdot"),
    (lambda x: tnp.cross(x, M34), ValueError, "cross"),
    (lambda x: tnp.einsum("ij,jk->ik", x, M34), ValueError, "einsum"),
    (lambda x: tnp.einsum("ij->ii", x), ValueError, "einsum"),
    (lambda x: tnp.einsum("ij->k", x), ValueError, "einsum"),
    (lambda x: tnp.einsum("ijk", x), ValueError, "einsum"),
    (lambda x: tnp.einsum("ij,jk", x), ValueError, "einsum"),
    (lambda x: tnp.linalg.outer(x, V3), ValueError, "outer"),
    (lambda x: tnp.matmul(x[0, 0], x), ValueError, "matmul"),
])
def test_errors_are_numpys_types_and_name_the_function(call, exc, words):
    with pytest.raises(exc, match=words):
        tg.record(call, M34)
    with pytest.raises(exc):  # numpy's own type
        call(M34)


def test_einsum_out_is_refused_on_traced_values():
    with pytest.raises(TypeError, match="einsum: out="):
        tg.record(lambda x: tnp.einsum("ij", x, out=np.zeros((3, 4))), M34)


def test_linalg_namespace_extends_norm_and_dispatches():
    assert tnp.linalg.norm(np.ones(4)) == 2.0
    for name in ("matmul", "tensordot", "outer", "cross"):
        if hasattr(np.linalg, name):
            assert hasattr(tnp.linalg, name)
    if hasattr(np.linalg, "tensordot"):
        tg.check_grads(lambda a, b: np.linalg.tensordot(a, b, axes=1), (M34, M45))
        tg.check_grads(lambda a, b: np.linalg.matmul(a, b), (T234, M45))
        tg.check_grads(lambda a, b: np.linalg.outer(a, b), (V3, V4))
        tg.check_grads(lambda a, b: np.linalg.cross(a, b), (r(2, 3), r(2, 3)))
    np.testing.assert_allclose(tnp.einsum("ij,jk", M34, M45), M34 @ M45)  # plain fallback
    np.testing.assert_allclose(tnp.kron(V2, V3), np.kron(V2, V3))
