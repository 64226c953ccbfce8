"""Peer AD systems: autograd, JAX, PyTorch (eager and ``torch.func``) and CasADi.

Each runs only when its module is installed; all compute in float64.  Every peer runs the
same user-style functions as tapegrad (``models``, with its own numpy-like namespace); only
CasADi, which has no broadcasting, writes its MLP itself.  The inputs are converted to the
system's own array type once, in setup (``jnp.asarray``, ``torch.tensor``, ``casadi.DM``);
each timed call computes the gradient and converts it back to numpy, the way a user who
needs numpy results would.  Everything built before the returned function exists, and its
first call (JAX's tracing and XLA compilation), counts as setup.

The many-points workloads are separable (the total over all points is a sum of per-point
terms), so the gradient of the total is every point's gradient at once; systems without a
vectorising map (autograd, PyTorch eager) use that, the others their map (``jax.vmap``,
``torch.func.vmap``, ``casadi.Function.map``).
"""
import numpy as np

from tapegrad.bench import models as M
from tapegrad.bench.base import System, Timed, source


class Autograd(System):
    """HIPS autograd: tracing on every call, numpy underneath."""
    name, module, install = "autograd", "autograd", "pip install autograd"

    def lecture(self, p):
        import autograd
        import autograd.numpy as anp
        grad, x = autograd.grad(lambda x: M.lecture(x, anp)), p.data["x"]
        return lambda: float(grad(x))

    def rosenbrock(self, p):
        import autograd
        import autograd.numpy as anp
        grad, x = autograd.grad(lambda x: M.rosenbrock(x, anp)), p.data["x"]
        return lambda: grad(x)

    def rosenbrock_loop(self, p):
        import autograd
        grad, x = autograd.grad(M.rosenbrock_loop), p.data["x"]
        return lambda: grad(x)

    def branch_flip(self, p, model=M.branchy):
        import autograd
        import autograd.numpy as anp
        grad, x, x2 = autograd.grad(lambda x: model(x, anp)), p.data["x"], p.data["x2"]
        return lambda: [grad(x), grad(x2)]

    def branch_free(self, p):
        return self.branch_flip(p, M.branch_free)

    def mlp(self, p):
        import autograd
        import autograd.numpy as anp
        grad = autograd.grad(lambda params, X, Y: M.mlp_loss(params, X, Y, anp))
        params, X, Y = p.data["params"], p.data["X"], p.data["Y"]
        return lambda: list(grad(params, X, Y))

    def many_points(self, p):
        import autograd
        import autograd.numpy as anp
        if "x" in p.data:
            grad, x = autograd.elementwise_grad(lambda x: M.lecture(x, anp)), p.data["x"]
            return lambda: grad(x)
        grad, X = autograd.grad(lambda X: M.rosenbrock_rows(X, anp)), p.data["X"]
        return lambda: grad(X)

    def first_gradient(self, p):
        return (f"import autograd, autograd.numpy as anp\n{source(M.lecture)}\n"
                f"print(autograd.grad(lambda x: lecture(x, anp))({p.data['x']!r}))")


class Jax(System):
    """JAX: ``jax.jit(jax.grad(f))`` (XLA on the CPU), 64-bit floats enabled."""
    name, module, install = "jax", "jax", 'pip install "jax[cpu]"'

    @staticmethod
    def _jax():
        import jax
        jax.config.update("jax_enable_x64", True)  # before any array is made
        return jax

    def _compiled(self, grad, *args):
        """Run ``grad`` once (tracing and compiling it) and return the steady-state call."""
        self._jax().block_until_ready(grad(*args))
        return grad

    def lecture(self, p):
        jax = self._jax()
        grad = jax.jit(jax.grad(lambda x: M.lecture(x, jax.numpy)))
        x = jax.numpy.asarray(p.data["x"])
        grad = self._compiled(grad, x)
        return lambda: float(grad(x))

    def rosenbrock(self, p):
        jax = self._jax()
        x = jax.numpy.asarray(p.data["x"])
        grad = self._compiled(jax.jit(jax.grad(lambda x: M.rosenbrock(x, jax.numpy))), x)
        return lambda: np.asarray(grad(x))

    def rosenbrock_loop(self, p):
        jax = self._jax()
        x = jax.numpy.asarray(p.data["x"])
        # the Python loop unrolls into the trace: XLA compiles n-1 copies of the body, which
        # took ~17 s for n=1000 (~1 s for n=100) on a 2-core machine
        grad = self._compiled(jax.jit(jax.grad(M.rosenbrock_loop)), x)
        return lambda: np.asarray(grad(x))

    def mlp(self, p):
        jax = self._jax()
        jnp = jax.numpy
        grad = jax.jit(jax.grad(lambda params, X, Y: M.mlp_loss(params, X, Y, jnp)))
        params = [jnp.asarray(a) for a in p.data["params"]]
        X, Y = jnp.asarray(p.data["X"]), jnp.asarray(p.data["Y"])
        grad = self._compiled(grad, params, X, Y)
        return lambda: [np.asarray(g) for g in grad(params, X, Y)]

    def many_points(self, p):
        jax = self._jax()
        if "x" in p.data:
            f, pts = (lambda x: M.lecture(x, jax.numpy)), p.data["x"]
        else:
            f, pts = (lambda x: M.rosenbrock(x, jax.numpy)), p.data["X"]
        pts = jax.numpy.asarray(pts)
        grad = self._compiled(jax.jit(jax.vmap(jax.grad(f))), pts)
        return lambda: np.asarray(grad(pts))

    def per_example(self, p):
        jax = self._jax()
        jnp = jax.numpy
        loss = lambda params, x, y: M.mlp_loss(params, x[None], y[None], jnp)  # noqa: E731
        grad = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0, 0)))
        params = [jnp.asarray(a) for a in p.data["params"]]
        X, Y = jnp.asarray(p.data["X"]), jnp.asarray(p.data["Y"])
        grad = self._compiled(grad, params, X, Y)
        return lambda: [np.asarray(g) for g in grad(params, X, Y)]

    def hvp(self, p):
        """``jit`` of forward over reverse, ``jvp(grad(f), (x,), (v,))``."""
        jax = self._jax()
        jnp = jax.numpy
        if "x" in p.data:
            f = jax.grad(lambda x: M.rosenbrock(x, jnp))
            args = (jnp.asarray(p.data["x"]), jnp.asarray(p.data["v"]))
            hvp = self._compiled(jax.jit(lambda x, v: jax.jvp(f, (x,), (v,))[1]), *args)
            return lambda: np.asarray(hvp(*args))
        f = jax.grad(lambda params, X, Y: M.mlp_loss(params, X, Y, jnp))
        params, V = [jnp.asarray(a) for a in p.data["params"]], [jnp.asarray(a) for a in p.data["V"]]
        X, Y = jnp.asarray(p.data["X"]), jnp.asarray(p.data["Y"])
        hvp = self._compiled(jax.jit(lambda P, V, X, Y: jax.jvp(lambda P: f(P, X, Y), (P,), (V,))[1]),
                             params, V, X, Y)
        return lambda: [np.asarray(h) for h in hvp(params, V, X, Y)]

    def hessian(self, p):
        jax = self._jax()
        x = jax.numpy.asarray(p.data["x"])
        hessian = self._compiled(jax.jit(jax.hessian(lambda x: M.rosenbrock(x, jax.numpy))), x)
        return lambda: np.asarray(hessian(x))

    def first_gradient(self, p):
        return ("import jax\njax.config.update('jax_enable_x64', True)\nimport jax.numpy as jnp\n"
                f"{source(M.lecture)}\nprint(jax.jit(jax.grad(lambda x: lecture(x, jnp)))({p.data['x']!r}))")


class Torch(System):
    """PyTorch eager mode: the graph is recorded during each forward pass, then ``backward``.
    Note: with its default 2 OpenMP threads on a 2-core machine, any other busy process
    made element-wise ops on 1e5-1e6 elements ~100x slower (thread barriers)."""
    name, module, install = "torch", "torch", "pip install torch (a CPU build is enough)"

    @staticmethod
    def _leaves(*arrays):
        import torch
        return [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]

    @staticmethod
    def _backward(loss_fn, leaves, *args):
        """One gradient: fresh ``.grad`` buffers, a forward pass, ``backward``."""
        for t in leaves:
            t.grad = None
        loss_fn(*leaves, *args).backward()
        return [t.grad.numpy() for t in leaves]

    def lecture(self, p):
        tnp = M.torch_namespace()
        (x,) = self._leaves(p.data["x"])
        return lambda: float(self._backward(lambda x: M.lecture(x, tnp), [x])[0])

    def rosenbrock(self, p):
        tnp = M.torch_namespace()
        (x,) = self._leaves(p.data["x"])
        return lambda: self._backward(lambda x: M.rosenbrock(x, tnp), [x])[0]

    def rosenbrock_loop(self, p):
        (x,) = self._leaves(p.data["x"])
        return lambda: self._backward(M.rosenbrock_loop, [x])[0]

    def branch_flip(self, p, model=M.branchy):
        tnp = M.torch_namespace()
        x, x2 = self._leaves(p.data["x"], p.data["x2"])
        return lambda: [self._backward(lambda v: model(v, tnp), [v])[0] for v in (x, x2)]

    def branch_free(self, p):
        return self.branch_flip(p, M.branch_free)

    def mlp(self, p):
        import torch
        tnp = M.torch_namespace()
        params = self._leaves(*p.data["params"])
        X, Y = (torch.tensor(a, dtype=torch.float64) for a in (p.data["X"], p.data["Y"]))
        loss = lambda *a: M.mlp_loss(list(a[:-2]), a[-2], a[-1], tnp)
        return lambda: self._backward(loss, params, X, Y)

    def many_points(self, p):
        tnp = M.torch_namespace()
        if "x" in p.data:   # separable: d/dx_i of the sum is f'(x_i)
            (x,) = self._leaves(p.data["x"])
            return lambda: self._backward(lambda x: M.lecture(x, tnp).sum(), [x])[0]
        (X,) = self._leaves(p.data["X"])
        return lambda: self._backward(lambda X: M.rosenbrock_rows(X, tnp), [X])[0]

    def first_gradient(self, p):
        return (f"import torch\n{source(M.lecture)}\n"
                f"x = torch.tensor({p.data['x']!r}, dtype=torch.float64, requires_grad=True)\n"
                "lecture(x, torch).backward()\nprint(x.grad.item())")


class TorchFunc(System):
    """PyTorch's functional transforms: ``torch.func.grad``, ``torch.func.vmap``."""
    name, module, install = "torch.func", "torch", "pip install torch (a CPU build is enough)"

    @staticmethod
    def _tensor(a):
        import torch
        return torch.tensor(a, dtype=torch.float64)

    def lecture(self, p):
        import torch
        grad = torch.func.grad(lambda x: M.lecture(x, M.torch_namespace()))
        x = self._tensor(p.data["x"])
        return lambda: grad(x).item()

    def rosenbrock(self, p):
        import torch
        tnp = M.torch_namespace()
        grad, x = torch.func.grad(lambda x: M.rosenbrock(x, tnp)), self._tensor(p.data["x"])
        return lambda: grad(x).numpy()

    def rosenbrock_loop(self, p):
        import torch
        grad, x = torch.func.grad(M.rosenbrock_loop), self._tensor(p.data["x"])
        return lambda: grad(x).numpy()

    def mlp(self, p):
        import torch
        tnp = M.torch_namespace()
        grad = torch.func.grad(lambda params, X, Y: M.mlp_loss(params, X, Y, tnp))
        params = [self._tensor(a) for a in p.data["params"]]
        X, Y = self._tensor(p.data["X"]), self._tensor(p.data["Y"])
        return lambda: [g.numpy() for g in grad(params, X, Y)]

    def many_points(self, p):
        import torch
        tnp = M.torch_namespace()
        if "x" in p.data:
            f, pts = (lambda x: M.lecture(x, tnp)), p.data["x"]
        else:
            f, pts = (lambda x: M.rosenbrock(x, tnp)), p.data["X"]
        grad, pts = torch.func.vmap(torch.func.grad(f)), self._tensor(pts)
        return lambda: grad(pts).numpy()

    def per_example(self, p):
        import torch
        tnp = M.torch_namespace()
        loss = lambda params, x, y: M.mlp_loss(params, x[None], y[None], tnp)  # noqa: E731
        grad = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))
        params = [self._tensor(a) for a in p.data["params"]]
        X, Y = self._tensor(p.data["X"]), self._tensor(p.data["Y"])
        return lambda: [g.numpy() for g in grad(params, X, Y)]

    def first_gradient(self, p):
        return (f"import torch\n{source(M.lecture)}\n"
                f"print(torch.func.grad(lambda x: lecture(x, torch))(torch.tensor({p.data['x']!r}, "
                "dtype=torch.float64)).item())")


class Casadi(System):
    """CasADi: a symbolic graph built once, differentiated symbolically into a
    ``casadi.Function``, evaluated by CasADi's virtual machine (no code generation).
    Scalar programs use SX (scalar graphs); vector and matrix programs use MX (one node
    per vector operation), CasADi's advice for each; SX would expand the 1e6 Rosenbrock into
    ~1e7 scalar nodes (15 s, 1.5 GB to build, the same call time) and the large MLP's
    matrix products into ~1e7 multiplications.  The ``casadi`` module itself serves as the
    models' numpy-like namespace (``exp``, ``sqrt``, ``cos``, ``sum`` of all elements)."""
    name, module, install = "casadi", "casadi", "pip install casadi"

    @staticmethod
    def _call(fn, *args):
        """``fn`` bound to its inputs, converted to ``DM`` once, here in setup."""
        import casadi as ca
        args = [ca.DM(a) for a in args]
        return lambda: fn(*args)

    @staticmethod
    def _gradient_fn(sym, f):
        import casadi as ca
        return ca.Function("g", [sym], [ca.gradient(f, sym)])

    def _scalar_fn(self):
        import casadi as ca
        x = ca.SX.sym("x")
        return self._gradient_fn(x, M.lecture(x, ca))

    def lecture(self, p):
        call = self._call(self._scalar_fn(), p.data["x"])
        return lambda: float(call())

    def rosenbrock(self, p):
        import casadi as ca
        x = ca.MX.sym("x", p.data["x"].size)
        call = self._call(self._gradient_fn(x, M.rosenbrock(x, ca)), p.data["x"])
        return lambda: call().full().ravel()

    def rosenbrock_loop(self, p):
        import casadi as ca
        x = ca.SX.sym("x", p.data["x"].size)
        # the loop over x's scalar elements (SX has no len)
        call = self._call(self._gradient_fn(x, M.rosenbrock_loop(ca.vertsplit(x))), p.data["x"])
        return lambda: call().full().ravel()

    def mlp(self, p):
        """``models.mlp_loss`` as close as CasADi allows: no broadcasting (a bias is repeated
        over the rows) and no row-wise max (the log-sum-exp is shifted by the largest
        logit of the batch, which gives the same loss)."""
        import casadi as ca
        params, X, Y = p.data["params"], p.data["X"], p.data["Y"]
        syms = [ca.MX.sym(f"p{i}", a.shape[0], a.shape[1] if a.ndim == 2 else 1) for i, a in enumerate(params)]
        Xs, Ys = ca.MX.sym("X", *X.shape), ca.MX.sym("Y", *Y.shape)
        n = X.shape[0]
        h = Xs
        for Wk, bk in zip(syms[0:-2:2], syms[1:-2:2]):
            h = 1 / (1 + ca.exp(-(h @ Wk.T + ca.repmat(bk.T, n, 1))))
        z = h @ syms[-2].T + ca.repmat(syms[-1].T, n, 1)
        m = ca.mmax(z)
        lse = m + ca.log(ca.sum2(ca.exp(z - m)))
        loss = -ca.sum(Ys * (z - ca.repmat(lse, 1, Y.shape[1]))) / n
        # one reverse sweep for all parameters, split back into their shapes
        flat = ca.gradient(loss, ca.vertcat(*[ca.vec(s) for s in syms]))
        cuts = np.cumsum([0] + [a.size for a in params]).tolist()
        grads = [ca.reshape(g, s.shape) for g, s in zip(ca.vertsplit(flat, cuts), syms)]
        # evaluated with CasADi's own matrix product (no BLAS): slow for 784-256-128-10x64
        call = self._call(ca.Function("g", syms + [Xs, Ys], grads), *params, X, Y)
        return lambda: [g.full().reshape(a.shape) for g, a in zip(call(), params)]

    def many_points(self, p):
        import casadi as ca
        if "x" in p.data:
            g, pts = self._scalar_fn(), p.data["x"].reshape(1, -1)
        else:
            x = ca.SX.sym("x", p.data["X"].shape[1])
            g, pts = self._gradient_fn(x, M.rosenbrock(x, ca)), p.data["X"].T
        call = self._call(g.map(pts.shape[1]), pts)  # one column per point, evaluated serially
        return (lambda: call().full().ravel()) if "x" in p.data else (lambda: call().full().T)

    def record(self, p):
        """The SX graph of the scalar loop built from Python, and the ``casadi.Function``
        that sorts it into CasADi's instruction list: what ``tg.record`` does.  CasADi does
        not expose the bytes it uses (``n_nodes`` counts the graph's nodes)."""
        import casadi as ca
        x = p.data["x"]

        def build():
            s = ca.SX.sym("x", x.size)
            return ca.Function("f", [s], [M.rosenbrock_loop(ca.vertsplit(s))])

        f = build()
        s = ca.SX.sym("x", x.size)
        grad = self._gradient_fn(s, f(s))
        return Timed(build, lambda: grad(x).full().ravel(), entries=f.n_nodes())

    def first_gradient(self, p):
        return (f"import casadi as ca\n{source(M.lecture)}\nx = ca.SX.sym('x')\n"
                "g = ca.Function('g', [x], [ca.gradient(lecture(x, ca), x)])\n"
                f"print(float(g({p.data['x']!r})))")


PEERS = [Autograd(), Jax(), Torch(), TorchFunc(), Casadi()]
