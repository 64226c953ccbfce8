"""How each system computes each workload's gradient.

A :class:`System` turns a :class:`~tapegrad.bench.workloads.Problem` into a zero-argument
function returning the gradient (numpy arrays, in the reference's structure).  Everything
done before that function exists, and its first call, is *setup* (recording, tracing,
compiling); repeated calls are the *steady state*.  A system that has no API for a workload
raises :class:`Unsupported` and is reported as such, never with a made-up figure.

This module holds tapegrad and the numpy baseline; ``peers`` adds the other AD systems.
"""
import importlib.metadata
import importlib.util

import numpy as np

from tapegrad.bench import workloads as W


class Unsupported(Exception):
    """The system has no way (yet) to compute this workload."""


class System:
    name = ""          # as used by --systems
    module = ""        # the import that must succeed for the system to run
    install = ""       # how to get it, shown when it is missing
    peer = True        # False for tapegrad and the numpy baseline

    def available(self):
        return importlib.util.find_spec(self.module) is not None

    def version(self):
        try:
            return importlib.metadata.version(self.module)
        except importlib.metadata.PackageNotFoundError:
            return getattr(importlib.import_module(self.module), "__version__", "?")

    def prepare(self, problem):
        """A function computing ``problem``'s gradient; raises Unsupported if there is none."""
        method = getattr(self, problem.workload.replace("-", "_"), None)
        if method is None:
            raise Unsupported(f"{self.name} has no {problem.workload} implementation")
        return method(problem)

    def first_gradient(self, problem):
        """Python source that imports the system and prints the lecture gradient at
        ``problem.data['x']``; run in a fresh process to time the first gradient."""
        raise Unsupported(f"{self.name}: no first-gradient program")


class Numpy(System):
    """The baseline: closed forms and hand-written backprop, vectorised with numpy."""
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

    def first_gradient(self, p):
        return ("import numpy as np\nx = %r\ne = np.exp(x ** 2)\n"
                "print(2 * x * (1 / (2 * np.sqrt(x ** 2 + e)) - np.sin(x ** 2 + e)) * (1 + e))" % p.data["x"])


def tapegrad_mlp_loss(params, X, Y, tnp):
    """Sigmoid hidden layers, softmax cross-entropy averaged over the batch."""
    h = X
    for Wk, bk in zip(params[0:-2:2], params[1:-2:2]):
        h = tnp.sigmoid(h @ Wk + bk)
    z = h @ params[-2] + params[-1]
    return -tnp.sum(Y * (z - tnp.logsumexp(z, axis=1, keepdims=True))) / X.shape[0]


class Tapegrad(System):
    name, module, install, peer = "tapegrad", "tapegrad", "pip install -e .", False

    def version(self):
        import tapegrad
        return tapegrad.__version__

    def lecture(self, p):
        import tapegrad as tg
        import tapegrad.numpy as tnp
        grad, x = tg.grad(lambda x: W.lecture_value(x, tnp.exp, tnp.sqrt, tnp.cos)), p.data["x"]
        return lambda: grad(x)

    def rosenbrock(self, p):
        import tapegrad as tg
        import tapegrad.numpy as tnp
        grad = tg.grad(lambda x: tnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2))
        x = p.data["x"]
        return lambda: grad(x)

    def rosenbrock_loop(self, p):
        import tapegrad as tg
        grad, x = tg.grad(W.rosenbrock_loop), p.data["x"]
        return lambda: grad(x)

    def mlp(self, p):
        import tapegrad as tg
        import tapegrad.numpy as tnp
        grad = tg.grad(lambda params, X, Y: tapegrad_mlp_loss(params, X, Y, tnp))
        params, X, Y = p.data["params"], p.data["X"], p.data["Y"]
        return lambda: grad(params, X, Y)

    def many_points(self, p):
        raise Unsupported("needs batched gradients (tapegrad.batch_grad), not in tapegrad yet")

    def first_gradient(self, p):
        return ("import tapegrad as tg, tapegrad.numpy as tnp\n"
                "f = lambda x: tnp.sqrt(x**2 + tnp.exp(x**2)) + tnp.cos(x**2 + tnp.exp(x**2))\n"
                "print(tg.grad(f)(%r))" % p.data["x"])


def all_systems():
    """Every known system, tapegrad and the baseline first, by name."""
    from tapegrad.bench import peers
    return {s.name: s for s in [Tapegrad(), Numpy(), *peers.PEERS]}
