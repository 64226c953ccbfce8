"""tapegrad and the numpy baseline as benchmarked systems (the peers are in ``peers``).

``tapegrad``'s rows run the user-style functions of ``models`` with ``tapegrad.numpy``;
``tapegrad-fused`` is an extra row for the MLP only, in tapegrad's favourite form
(``models.mlp_loss_fused``), never the headline.  ``numpy`` is the baseline every ratio is
taken against: closed forms and hand-written backprop of the same functions.
"""
import numpy as np

from tapegrad.bench import models as M
from tapegrad.bench import workloads as W
from tapegrad.bench.base import System, Timed, Unsupported, source


class Numpy(System):
    """The baseline: closed forms and hand-written backprop, vectorised with numpy.  For
    ``record`` the baseline is one evaluation of the program on Python floats."""
    name, module, install, peer = "numpy", "numpy", "pip install numpy", False

    def lecture(self, p):
        x = p.data["x"]
        return lambda: float(W.lecture_derivative(x))

    def rosenbrock(self, p):
        x = p.data["x"]
        return lambda: W.rosenbrock_grad(x)

    rosenbrock_loop = rosenbrock  # the baseline is the closed form either way

    def mlp(self, p):
        params, X, Y = p.data["params"], p.data["X"], p.data["Y"]
        return lambda: W.mlp_numpy_grad(params, X, Y)

    def branch_flip(self, p, branch=True):
        x, x2 = p.data["x"], p.data["x2"]
        return lambda: [W.branchy_grad(x, branch), W.branchy_grad(x2, branch)]

    def branch_free(self, p):
        return self.branch_flip(p, False)

    def many_points(self, p):
        if "x" in p.data:
            x = p.data["x"]
            return lambda: W.lecture_derivative(x)
        X = p.data["X"]

        def batch():
            g = np.zeros_like(X)
            d = X[:, 1:] - X[:, :-1] ** 2
            g[:, :-1] = -400.0 * X[:, :-1] * d - 2.0 * (1.0 - X[:, :-1])
            g[:, 1:] += 200.0 * d
            return g
        return batch

    def einsum(self, p):
        A, B, R, grad = p.data["A"], p.data["B"], p.data["R"], W.CONTRACT_GRADS[p.workload]
        return lambda: grad(A, B, R)

    tensordot = dot = einsum

    def per_example(self, p):
        params, X, Y = p.data["params"], p.data["X"], p.data["Y"]
        return lambda: W.mlp_numpy_per_example(params, X, Y)

    def hvp(self, p):
        if "x" in p.data:
            x, v = p.data["x"], p.data["v"]
            return lambda: W.rosenbrock_hvp(x, v)
        params, X, Y, V = (p.data[k] for k in ("params", "X", "Y", "V"))
        return lambda: W.mlp_numpy_hvp(params, X, Y, V)

    def hessian(self, p):
        x = p.data["x"]
        return lambda: W.rosenbrock_hessian(x)

    def record(self, p):
        xs, x = [float(v) for v in p.data["x"]], p.data["x"]
        return Timed(lambda: M.rosenbrock_loop(xs), lambda: W.rosenbrock_grad(x))

    def first_gradient(self, p):
        return (f"import numpy as np\n{source(W.lecture_derivative)}\n"
                f"print(lecture_derivative({p.data['x']!r}))")


class Tapegrad(System):
    """``tapegrad.grad`` of the user-style functions, its tape cached across calls."""
    name, module, install, peer = "tapegrad", "tapegrad", "pip install -e .", False

    def version(self):
        import tapegrad
        return tapegrad.__version__

    def lecture(self, p):
        import tapegrad as tg
        import tapegrad.numpy as tnp
        grad, x = tg.grad(lambda x: M.lecture(x, tnp)), p.data["x"]
        return lambda: grad(x)

    def rosenbrock(self, p):
        import tapegrad as tg
        import tapegrad.numpy as tnp
        grad, x = tg.grad(lambda x: M.rosenbrock(x, tnp)), p.data["x"]
        return lambda: grad(x)

    def rosenbrock_loop(self, p):
        import tapegrad as tg
        grad, x = tg.grad(M.rosenbrock_loop), p.data["x"]
        return lambda: grad(x)

    def mlp(self, p):
        import tapegrad as tg
        import tapegrad.numpy as tnp
        grad = tg.grad(lambda params, X, Y: M.mlp_loss(params, X, Y, tnp))
        params, X, Y = p.data["params"], p.data["X"], p.data["Y"]
        return lambda: grad(params, X, Y)

    def branch_flip(self, p, model=M.branchy):
        import tapegrad as tg
        import tapegrad.numpy as tnp
        grad, x, x2 = tg.grad(lambda x: model(x, tnp)), p.data["x"], p.data["x2"]
        return lambda: [grad(x), grad(x2)]

    def branch_free(self, p):
        return self.branch_flip(p, M.branch_free)

    def einsum(self, p):
        import tapegrad as tg
        import tapegrad.numpy as tnp
        model = {"einsum": M.einsum_loss, "tensordot": M.tensordot_loss, "dot": M.dot_loss}[p.workload]
        grad = tg.grad(lambda A, B, R: model(A, B, R, tnp), argnums=(0, 1))
        A, B, R = p.data["A"], p.data["B"], p.data["R"]
        return lambda: list(grad(A, B, R))

    tensordot = dot = einsum

    def hvp(self, p):
        """``tg.hvp``: one tape of forward, backward-as-entries and the sweep over them."""
        import tapegrad as tg
        import tapegrad.numpy as tnp
        if "x" in p.data:
            hvp, x, v = tg.hvp(lambda x: M.rosenbrock(x, tnp)), p.data["x"], p.data["v"]
            return lambda: hvp(x, v)
        hvp = tg.hvp(lambda params, X, Y: M.mlp_loss(params, X, Y, tnp))
        params, X, Y, V = (p.data[k] for k in ("params", "X", "Y", "V"))
        return lambda: hvp(params, X, Y, V)

    def hessian(self, p):
        import tapegrad as tg
        import tapegrad.numpy as tnp
        hessian, x = tg.hessian(lambda x: M.rosenbrock(x, tnp)), p.data["x"]
        return lambda: hessian(x)

    def many_points(self, p):
        """``tg.batch_grad``: one tape, laid out for a chunk of points, on numba's threads."""
        import tapegrad as tg
        import tapegrad.numpy as tnp
        model, pts = (M.lecture, p.data["x"]) if "x" in p.data else (M.rosenbrock, p.data["X"])
        grad = tg.batch_grad(lambda x: model(x, tnp))
        return self._threads(lambda: grad(pts))

    def per_example(self, p):
        import tapegrad as tg
        import tapegrad.numpy as tnp
        grad = tg.batch_grad(lambda params, x, y: M.mlp_loss(params, x[None], y[None], tnp),
                             in_axes=(None, 0, 0))
        params, X, Y = p.data["params"], p.data["X"], p.data["Y"]
        return self._threads(lambda: grad(params, X, Y))

    def _threads(self, call):
        return call

    def record(self, p):
        import tapegrad as tg
        x = p.data["x"]
        tape = tg.record(M.rosenbrock_loop, x)
        return Timed(lambda: tg.record(M.rosenbrock_loop, x), lambda: tape.gradient(x),
                     entries=len(tape), nbytes=tape.nbytes, program_nbytes=tape.program_nbytes)

    def first_gradient(self, p):
        return (f"import tapegrad as tg, tapegrad.numpy as tnp\n{source(M.lecture)}\n"
                f"print(tg.grad(lambda x: lecture(x, tnp))({p.data['x']!r}))")


class TapegradFused(System):
    """Extra MLP row (no other workload): the same model in tapegrad's favourite form
    (weights ``(in, out)``, ``tnp.sigmoid``, ``tnp.logsumexp``).  The weights are transposed
    once, in setup; the gradients are handed back as transposed views, in the reference's
    ``(out, in)``."""
    name, module, install, peer = "tapegrad-fused", "tapegrad", "pip install -e .", False
    note = ("extra row, not the headline: the same MLP in tapegrad's favourite form "
            "(weights (in, out), tnp.sigmoid, tnp.logsumexp)")
    version = Tapegrad.version

    def mlp(self, p):
        import tapegrad as tg
        import tapegrad.numpy as tnp
        grad = tg.grad(lambda params, X, Y: M.mlp_loss_fused(params, X, Y, tnp))
        params = [np.ascontiguousarray(a.T) for a in p.data["params"]]
        X, Y = p.data["X"], p.data["Y"]
        return lambda: [g.T for g in grad(params, X, Y)]


class TapegradOneThread(System):
    """Extra rows for batched gradients: ``tapegrad`` on one thread (``numba.set_num_threads(1)``
    around each call), to compare with peers on one core and to show the threads' speedup."""
    name, module, install, peer = "tapegrad-1thread", "tapegrad", "pip install -e .", False
    note = "extra row: batched gradients with numba.set_num_threads(1)"
    version = Tapegrad.version
    many_points, per_example = Tapegrad.many_points, Tapegrad.per_example

    def _threads(self, call):
        import numba

        def one_thread():
            before = numba.get_num_threads()
            numba.set_num_threads(1)
            try:
                return call()
            finally:
                numba.set_num_threads(before)
        return one_thread
