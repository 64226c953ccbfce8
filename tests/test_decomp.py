"""The decomposition rows (SOLVE INV DET SLOGDET CHOLESKY EIGH SVD PINV) beyond the generated
per-op cases of test_ops: closed-form gradients, the dot-product identity for every op,
stacks, the documented conventions at ties and singular points, errors raised before
recording, tape files whose decomposition entries are damaged, and that a process which
never replays one never loads LAPACK."""
import subprocess
import sys

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.jit as J
import tapegrad.numpy as tnp
from tapegrad import tapefile

RNG = np.random.default_rng(7)
A4 = RNG.normal(size=(4, 4))
B43 = RNG.normal(size=(4, 3))
SPD = A4 @ A4.T + 4 * np.eye(4)
la = tnp.linalg  # a module: captured by identity, no re-recording


def test_det_gradient_is_det_times_inverse_transposed():
    g = tg.grad(la.det)(A4)
    np.testing.assert_allclose(g, np.linalg.det(A4) * np.linalg.inv(A4).T, rtol=1e-12)


def test_logdet_gradient_of_an_spd_matrix_is_its_inverse():
    g = tg.grad(lambda a: la.slogdet(a)[1])(SPD)
    np.testing.assert_allclose(g, np.linalg.inv(SPD).T, rtol=1e-12)
    np.testing.assert_allclose(g, np.linalg.inv(SPD), rtol=1e-12)  # symmetric


def test_closed_forms_of_inverse_solve_and_spectral_sums():
    inv = np.linalg.inv(A4)
    np.testing.assert_allclose(tg.grad(lambda a: tnp.trace(la.inv(a)))(A4), -(inv @ inv).T, rtol=1e-12)
    b = RNG.normal(size=4)
    ga, gb = tg.grad(lambda a, b: tnp.sum(la.solve(a, b)), argnums=(0, 1))(A4, b)
    lam = np.linalg.solve(A4.T, np.ones(4))
    np.testing.assert_allclose(gb, lam, rtol=1e-12)
    np.testing.assert_allclose(ga, -np.outer(lam, np.linalg.solve(A4, b)), rtol=1e-12)
    # the nuclear norm: d sum(s) = U Vh
    u, s, vh = np.linalg.svd(B43, full_matrices=False)
    np.testing.assert_allclose(tg.grad(lambda a: tnp.sum(la.svd(a, compute_uv=False)))(B43), u @ vh, rtol=1e-12)
    # sum of eigenvalues is the trace of the lower triangle's symmetric matrix: I
    np.testing.assert_allclose(tg.grad(lambda a: tnp.sum(la.eigvalsh(a)))(A4), np.eye(4), atol=1e-12)
    # log det A = 2 sum log diag(chol(A)): the same gradient, read from the lower triangle
    g = tg.grad(lambda a: 2.0 * tnp.sum(tnp.log(tnp.diagonal(la.cholesky(a)))))(SPD)
    inv = np.linalg.inv(SPD)
    np.testing.assert_allclose(g, np.tril(2 * inv) - np.diag(np.diag(inv)), rtol=1e-10, atol=1e-12)


def _sign_free_eigh(a):
    w, v = la.eigh(a)
    return v * v * w[..., None, :]


def _sign_free_svd(a):
    u, s, vh = la.svd(a, full_matrices=False)
    return tnp.concatenate([((u * s[..., None, :]) @ vh).ravel(), (u @ vh).ravel(), s.ravel(), (u * u).ravel()])


# (name, function, argument): the dot-product identity <u, J v> = <Jᵀ u, v> for each op
IDENTITY = [
    ("solve", lambda a: la.solve(a, B43), A4), ("solve-rhs", lambda b: la.solve(A4, b), B43),
    ("inv", la.inv, A4), ("det", la.det, A4), ("slogdet", lambda a: la.slogdet(a)[1], A4),
    ("cholesky", la.cholesky, SPD), ("eigh", _sign_free_eigh, A4), ("svd-tall", _sign_free_svd, B43),
    ("svd-wide", _sign_free_svd, B43.T), ("pinv-tall", la.pinv, B43), ("pinv-wide", la.pinv, B43.T),
    ("stack", lambda a: la.inv(a) + la.det(a)[:, None, None], RNG.normal(size=(3, 2, 2)) + 2 * np.eye(2)),
]


@pytest.mark.parametrize("name, f, x", IDENTITY, ids=[c[0] for c in IDENTITY])
def test_dot_product_identity(name, f, x):
    u = RNG.normal(size=np.shape(f(x)))
    v = RNG.normal(size=x.shape)
    vjp = tg.grad(lambda x: tnp.sum(u * f(x)))(x)
    h = 1e-6
    jvp = (np.asarray(f(x + h * v)) - np.asarray(f(x - h * v))) / (2 * h)
    np.testing.assert_allclose(np.sum(vjp * v), np.sum(u * jvp), rtol=1e-6)


@pytest.mark.parametrize("f, x", [(la.det, A4), (la.inv, A4), (la.cholesky, SPD), (la.pinv, B43),
                                  (_sign_free_eigh, A4), (_sign_free_svd, B43), (lambda a: la.solve(a, B43), A4)])
def test_check_grads_on_stacks(f, x):
    """A stack of three matrices: each slice is the single-matrix function, and the whole
    passes check_grads (which also compares the replay with numpy)."""
    stack = np.stack([x, x + 0.1 * RNG.normal(size=x.shape), x.T.copy() if x.shape[0] == x.shape[1] else x * 1.5])
    tg.check_grads(lambda a: tnp.sum(f(a) ** 2), (stack,))
    rec = tg.record(f, stack)
    assert len([o for o in rec.op if J.OPS[o].family == "decomp"]) == 1  # one entry for the stack


def test_a_replay_at_a_singular_or_indefinite_matrix_gives_nan():
    """numpy raises when recording; a replay cannot raise inside the kernel: NaN, never a
    wrong number, and the tape's recorded values stay untouched."""
    tape = tg.record(la.inv, A4)
    assert np.isnan(tape.forward(np.ones((4, 4)))).all()
    tape = tg.record(la.cholesky, SPD)
    assert np.isnan(tape.forward(-SPD)).all()
    tape = tg.record(lambda a: la.solve(a, np.ones(4)), A4)
    assert np.isnan(tape.forward(np.zeros((4, 4)))).all()
    for f in (lambda a: la.eigh(a)[1], lambda a: la.svd(a)[0], la.pinv):
        bad = A4.copy()
        bad[2, 1] = np.nan
        assert np.isnan(tg.record(f, A4).forward(bad)).all()
    with pytest.raises(np.linalg.LinAlgError):
        tg.record(la.inv, np.ones((4, 4)))


def test_det_and_slogdet_of_a_singular_matrix_follow_numpy():
    singular = np.array([[1.0, 2.0], [2.0, 4.0]])
    assert tg.record(la.det, A4[:2, :2]).forward(singular) == 0.0
    sign, logdet = tg.record(lambda a: tnp.stack(la.slogdet(a)), A4[:2, :2]).forward(singular)
    assert (sign, logdet) == tuple(np.linalg.slogdet(singular)) == (0.0, -np.inf)
    assert np.isnan(tg.grad(la.det)(singular)).all()  # det A⁻ᵀ: documented, JAX gives the adjugate


def test_eigh_and_svd_ties_follow_jax():
    """Distinct eigen/singular values are the rule's domain.  At a tie, a loss of the values
    alone is exact (the vector terms are skipped); a loss of the vectors gets inf/NaN."""
    g = tg.grad(lambda a: tnp.sum(la.eigvalsh(a) ** 2))(np.eye(3))
    np.testing.assert_allclose(g, 2 * np.eye(3))  # d trace(A²) on the lower triangle
    assert not np.isfinite(tg.grad(lambda a: tnp.sum(la.eigh(a)[1][0]))(np.eye(3))).all()
    g = tg.grad(lambda a: tnp.sum(la.svd(a, compute_uv=False)))(np.eye(2))
    np.testing.assert_allclose(g, np.eye(2))
    assert not np.isfinite(tg.grad(lambda a: tnp.sum(la.svd(a)[0][0]))(np.eye(2))).all()


def test_eigh_and_cholesky_ignore_the_upper_triangle_as_numpy():
    x = A4.copy()
    x[0, 3] = 100.0  # numpy reads the lower triangle only
    for f in (lambda a: tnp.sum(la.eigvalsh(a) ** 3), lambda a: tnp.sum(la.cholesky(a + 50 * np.eye(4)))):
        g = tg.grad(f)(x)
        assert np.all(np.triu(g, 1) == 0.0)
        tg.check_grads(f, (x,))
    g = tg.grad(lambda a: tnp.sum(la.eigvalsh(a, UPLO="U") ** 3))(x)  # the upper one instead
    assert np.all(np.tril(g, -1) == 0.0)


@pytest.mark.parametrize("call, error", [
    (lambda x: la.inv(x[0]), np.linalg.LinAlgError),                      # 1-d
    (lambda x: la.det(x[:, :3]), np.linalg.LinAlgError),                  # not square
    (lambda x: la.svd(x[:, :3]), NotImplementedError),                    # full_matrices, (4, 3)
    (lambda x: la.svd(x, hermitian=True), TypeError),
    (lambda x: la.pinv(x, rcond=np.ones(1)), TypeError),
    (lambda x: la.eigh(x, UPLO="X"), ValueError),
    (lambda x: la.solve(x, np.ones(3)), ValueError),
])
def test_bad_calls_raise_before_recording(call, error, no_replay_kernels):
    with pytest.raises(error):
        tg.record(call, A4)


def test_every_decomposition_row_checks_its_attributes_in_files():
    """A file whose decomposition entry has dimensions that do not fit its nodes is refused
    before any kernel runs (a wrong n would make LAPACK write outside the arena)."""
    f = lambda a, b: (la.solve(a, b), la.inv(a), la.det(a), la.slogdet(a)[1], la.cholesky(a @ a.T + np.eye(4)),  # noqa: E731
                      la.eigh(a)[0], la.svd(b, full_matrices=False)[1], la.pinv(b))
    state = tapefile.encode(tg.record(lambda a, b: tnp.sum(tnp.concatenate([tnp.ravel(r) for r in f(a, b)])), A4, B43))
    tapefile.decode(dict(state))  # intact: accepted
    names = state["op_names"][state["op"]]
    decomp = [e for e, name in enumerate(names) if J.OPS[J.CODES[name]].family == "decomp"]
    assert len(decomp) == 8
    for e in decomp:
        for k, wrong in ((0, 2), (2, 5), (3, 1), (1, -1)):
            bad = dict(state)
            bad["ints"] = state["ints"].copy()
            bad["ints"][state["iarg"][e] + k] = wrong
            bad["sha256"] = tapefile.checksum(bad)
            with pytest.raises(ValueError, match=f"entry {e} "):
                tapefile.decode(bad)


def test_a_process_without_decompositions_never_loads_lapack():
    """The interpreter links numba's LAPACK helpers, which import scipy's LAPACK at their
    first call: a user who never replays a decomposition never pays for it."""
    code = ("import sys, numpy as np, tapegrad as tg, tapegrad.numpy as tnp; "
            "tg.grad(lambda x: tnp.sum(tnp.sin(x)))(np.ones((2, 2))); "
            "print('scipy.linalg' in sys.modules); "
            "tg.grad(tnp.linalg.det)(np.eye(2)); print('scipy.linalg.cython_lapack' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
