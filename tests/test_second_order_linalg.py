"""Second derivatives through the decomposition rows, against closed forms.

The per-op checks (rule equals kernel, hvp against finite differences) are generated in
test_second_order_ops; here the oracles are textbook formulas:

* log|det A|: its Hessian is the bilinear form (E, F) -> -tr(A⁻¹ E A⁻¹ F), that is
  H[i, j, k, l] = -(A⁻¹)[j, k] (A⁻¹)[l, i];
* xᵀ A⁻¹ x (by solve) has the Hessian A⁻¹ + A⁻ᵀ in x;
* det(A + tB): d²/dt² = det(A) ((tr A⁻¹B)² - tr((A⁻¹B)²));
* log det by Cholesky, 2 Σ log diag L(A + tB) for symmetric B: d²/dt² = -tr((A⁻¹B)²);
* the largest eigenvalue of A + tB (symmetric, distinct eigenvalues): d²/dt² =
  2 Σ_{j≠k} (v_jᵀ B v_k)² / (λ_k - λ_j);
* the largest singular value: σ₁² = λ_max((A + tB)ᵀ(A + tB)), the same formula;
* ‖A⁺‖² (pinv) against finite differences of its gradient and against Σ 1/σᵢ² (svd).
"""
import numpy as np

import tapegrad as tg
import tapegrad.numpy as tnp


def _matrix(n, seed, spd=False):
    a = np.random.default_rng(seed).normal(size=(n, n))
    return a @ a.T + n * np.eye(n) if spd else a + n * np.eye(n)


def _symmetric(n, seed):
    b = np.random.default_rng(seed).normal(size=(n, n))
    return b + b.T


def test_hessian_of_log_abs_det():
    A = _matrix(4, 0)
    Ainv = np.linalg.inv(A)
    expected = -np.einsum("jk,li->ijkl", Ainv, Ainv)
    got = tg.hessian(lambda a: tnp.linalg.slogdet(a)[1])(A)
    np.testing.assert_allclose(got, expected, rtol=1e-11, atol=1e-13)
    got_det = tg.hessian(lambda a: tnp.log(tnp.abs(tnp.linalg.det(a))))(A)
    np.testing.assert_allclose(got_det, expected, rtol=1e-10, atol=1e-12)


def test_hessian_of_a_quadratic_form_in_the_inverse():
    A, x = _matrix(5, 1), np.random.default_rng(2).normal(size=5)
    Ainv = np.linalg.inv(A)
    for form in (lambda x, a: x @ tnp.linalg.solve(a, x), lambda x, a: x @ (tnp.linalg.inv(a) @ x)):
        got = tg.hessian(form)(x, A)
        np.testing.assert_allclose(got, Ainv + Ainv.T, rtol=1e-12, atol=1e-13)
    # and in A, along one direction: d²/dt² xᵀ(A + tB)⁻¹x = 2 xᵀ A⁻¹ B A⁻¹ B A⁻¹ x
    B = np.random.default_rng(3).normal(size=(5, 5))
    d2 = tg.grad(tg.grad(lambda t, a, b: x @ tnp.linalg.solve(a + t * b, x)))(0.0, A, B)
    np.testing.assert_allclose(d2, 2 * x @ Ainv @ B @ Ainv @ B @ Ainv @ x, rtol=1e-11)


def test_second_derivative_of_det_along_a_line():
    A, B = _matrix(4, 4), np.random.default_rng(5).normal(size=(4, 4))
    M = np.linalg.solve(A, B)
    expected = np.linalg.det(A) * (np.trace(M) ** 2 - np.trace(M @ M))
    d2 = tg.grad(tg.grad(lambda t, a, b: tnp.linalg.det(a + t * b)))(0.0, A, B)
    np.testing.assert_allclose(d2, expected, rtol=1e-11)


def test_second_derivative_of_log_det_by_cholesky():
    A, B = _matrix(4, 6, spd=True), _symmetric(4, 7)
    M = np.linalg.solve(A, B)

    def logdet(t, a, b):
        return 2.0 * tnp.sum(tnp.log(tnp.diagonal(tnp.linalg.cholesky(a + t * b))))
    d2 = tg.grad(tg.grad(logdet))(0.0, A, B)
    np.testing.assert_allclose(d2, -np.trace(M @ M), rtol=1e-11)
    # the Hessian in A by Cholesky is zero above the diagonal (numpy reads the lower triangle)
    H = tg.hessian(lambda a: 2.0 * tnp.sum(tnp.log(tnp.diagonal(tnp.linalg.cholesky(a)))))(A)
    upper = np.triu(np.ones((4, 4), bool), 1)
    assert np.abs(H[upper]).max() == 0.0 and np.abs(H[:, :, upper]).max() == 0.0


def _largest_eigenvalue_curvature(A, B):
    w, V = np.linalg.eigh(A)
    C = V.T @ B @ V
    return 2 * sum(C[j, -1] ** 2 / (w[-1] - w[j]) for j in range(len(w) - 1))


def test_second_derivative_of_the_largest_eigenvalue():
    A, B = _symmetric(5, 8), _symmetric(5, 9)
    lam = tg.grad(tg.grad(lambda t, a, b: tnp.linalg.eigvalsh(a + t * b)[-1]))(0.0, A, B)
    np.testing.assert_allclose(lam, _largest_eigenvalue_curvature(A, B), rtol=1e-10)
    # through the eigenvectors: vᵀ(A + tB)v of the top eigenvector v(t) is λ_max(t) again
    def rayleigh(t, a, b):
        w, v = tnp.linalg.eigh(a + t * b)
        top = v[:, -1]
        return top @ ((a + t * b) @ top)
    got = tg.grad(tg.grad(rayleigh))(0.0, A, B)
    np.testing.assert_allclose(got, _largest_eigenvalue_curvature(A, B), rtol=1e-9)


def test_second_derivative_of_the_largest_singular_value():
    rng = np.random.default_rng(10)
    A, B = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    # σ₁(t)² = λ_max((A + tB)ᵀ(A + tB)); differentiate σ₁² twice and compare
    s1 = np.linalg.svd(A, compute_uv=False)[0]
    w, V = np.linalg.eigh(A.T @ A)
    Bs = A.T @ B + B.T @ A  # first-order term of (A + tB)ᵀ(A + tB)
    first = V[:, -1] @ Bs @ V[:, -1]
    second = 2 * V[:, -1] @ (B.T @ B) @ V[:, -1] + _largest_eigenvalue_curvature(A.T @ A, Bs)
    got = tg.grad(tg.grad(lambda t, a, b: tnp.linalg.svd(a + t * b, compute_uv=False)[0] ** 2))(0.0, A, B)
    np.testing.assert_allclose(got, second, rtol=1e-10)
    got1 = tg.grad(lambda t, a, b: tnp.linalg.svd(a + t * b, compute_uv=False)[0] ** 2)(0.0, A, B)
    np.testing.assert_allclose(got1, first, rtol=1e-12)
    assert s1 > 0


def test_hessian_of_a_pseudo_inverse_norm_matches_finite_differences_of_the_gradient():
    A = np.random.default_rng(11).normal(size=(4, 3))
    f = lambda a: tnp.sum(tnp.linalg.pinv(a) ** 2)  # noqa: E731
    H = tg.hessian(f)(A).reshape(12, 12)
    g, h = tg.grad(f), 1e-5
    fd = np.stack([((g(A + h * E) - g(A - h * E)) / (2 * h)).ravel()
                   for E in np.eye(12).reshape(12, 4, 3)], axis=1)
    np.testing.assert_allclose(H, fd, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(H, H.T, rtol=1e-10, atol=1e-12)
    # ‖A⁺‖_F² = Σ 1/σ²: the same Hessian from the singular values
    H2 = tg.hessian(lambda a: tnp.sum(1.0 / tnp.linalg.svd(a, compute_uv=False) ** 2))(A).reshape(12, 12)
    np.testing.assert_allclose(H, H2, rtol=1e-9, atol=1e-11)
