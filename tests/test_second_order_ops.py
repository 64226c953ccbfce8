"""Every op's traced VJP rule, generated from the op table and the cases of test_ops.

* Every row that writes an output has a rule in ``tapegrad.vjps.RULES`` (a row added to
  the table without one fails here, by name).
* On every case of ``test_ops.CASES``: the gradient computed by the traced rules (a
  ``grad`` called inside a recording inlines its backward sweep as entries) equals the
  numba kernels' gradient at the recording point, and the recorded gradient tape, replayed
  at new inputs, equals the kernels' gradient there (nothing value-dependent baked in).
* Second derivatives: the Hessian-vector product of ``sum(w * f(x))`` equals central
  finite differences of the kernels' gradient along the same vector, in float64.
"""
import numpy as np
import pytest

import tapegrad as tg
import tapegrad.jit as J
import tapegrad.numpy as tnp
from tapegrad import vjps
from test_ops import PARAMS, _inputs


@pytest.mark.parametrize("name", [row.name for row in J.OPS])
def test_every_op_with_an_output_has_a_traced_vjp_rule(name):
    row = J.OPS[J.CODES[name]]
    if row.outputs == 0:
        assert row.family == "guard" and name not in vjps.RULES
    else:
        assert name in vjps.RULES, (f"op {name} has no traced VJP rule: add one to "
                                    "tapegrad/emit/vjp_*.py so it can be differentiated twice")
        arity = row.arity or None
        rules = vjps.RULES[name]
        if arity and not callable(rules):
            assert len(rules) == arity
    assert vjps.missing() == []


def _loss(fn, shape, seed=1):
    w = np.random.default_rng(seed).normal(size=shape)
    return lambda *args: tnp.sum(w * fn(*args))


def _flat(grads):
    return np.concatenate([np.ravel(g) for g in grads])


@pytest.mark.parametrize("name, fn, shapes, domain", PARAMS)
def test_traced_rule_agrees_with_the_kernel(name, fn, shapes, domain):
    xs = _inputs(shapes, domain, seed=len(name) * 7 + len(shapes))
    loss = _loss(fn, np.shape(fn(*xs)))
    nums = tuple(range(len(xs)))
    kernel = tg.grad(loss, argnums=nums)

    def traced_gradient(*args):
        return tnp.concatenate([tnp.reshape(g, -1) for g in tg.grad(loss, argnums=nums)(*args)])

    tape = tg.record(traced_gradient, *xs, argnums=nums)
    np.testing.assert_allclose(tape.recorded_value(tape.output), _flat(kernel(*xs)),
                               rtol=1e-12, atol=1e-12)
    if not tape.value_dependent:
        new = _inputs(shapes, domain, seed=99)
        np.testing.assert_allclose(tape.forward(*new), _flat(kernel(*new)), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name, fn, shapes, domain", PARAMS)
def test_second_derivative_matches_finite_differences_of_the_gradient(name, fn, shapes, domain):
    xs = _inputs(shapes, domain, seed=len(name) * 7 + len(shapes))
    loss = _loss(fn, np.shape(fn(*xs)))
    nums = tuple(range(len(xs)))
    rng = np.random.default_rng(2)
    vs = tuple(rng.normal(size=x.shape) for x in xs)
    got = _flat(tg.hvp(loss, argnums=nums)(*xs, vs))
    kernel = tg.grad(loss, argnums=nums)
    h = 1e-5
    up = kernel(*[x + h * v for x, v in zip(xs, vs)])
    down = kernel(*[x - h * v for x, v in zip(xs, vs)])
    expected = (_flat(up) - _flat(down)) / (2 * h)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(expected).max(initial=0.0)))
