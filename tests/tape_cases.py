"""Tapes for the tape-file tests (not collected by pytest): every op of the table, an MLP
with dicts of parameters, a namedtuple and a dataclass argument, and their arguments."""
import dataclasses
from collections import namedtuple

import numpy as np

import tapegrad as tg
import tapegrad.numpy as tnp
from tapegrad import pytree

Params = namedtuple("Params", "W b")


@dataclasses.dataclass
class Layer:
    W: np.ndarray
    b: np.ndarray


def mixed(x, W, idx, scale):
    """Every op of the table, aliases, constants, broadcasts and a static integer array."""
    h = tnp.tanh(x[1:] @ W) + tnp.sin(x[:2]) * tnp.cos(x[1:]) - tnp.exp(-x[0]) / (1.0 + x[2] ** 2)
    h = tnp.maximum(h, tnp.sigmoid(x[1:])) ** x[:2] + tnp.sqrt(x[1:] * x[1:] + 1.0)
    g = x[idx] + tnp.log(1.0 + x[1:] ** 2) + tnp.log1p(x[:2] ** 2)
    M = W.T @ W + np.ones((2, 2)) + W * x[:2].reshape(2, 1) + (W + x[1:])
    return (tnp.sum(h * g) * scale + tnp.max(M) + tnp.sum(tnp.logsumexp(M, axis=0))
            + tnp.sum(tnp.softmax(M, axis=1)[0] * tnp.mean(M, axis=1))
            + tnp.sum(tnp.where(np.array([True, False]), g, h))
            + tnp.sum(tnp.cumprod(tnp.cumsum(g)) * tnp.concatenate([g, h, np.ones(1)])[1:3]))


def mixed_args(rng):
    return rng.normal(size=3), rng.normal(size=(2, 2)), np.array([2, 0]), 1.5


def mlp(params, x, y):
    h = x
    for layer in params[:-1]:
        h = tnp.sigmoid(h @ layer["W"] + layer["b"])
    logits = h @ params[-1]["W"] + params[-1]["b"]
    return tnp.mean(tnp.logsumexp(logits, axis=1) - tnp.sum(logits * y, axis=1))


def mlp_args(rng):
    params = [{"W": rng.normal(size=(4, 5)), "b": rng.normal(size=5)},
              {"W": rng.normal(size=(5, 3)), "b": rng.normal(size=3)}]
    return params, rng.normal(size=(6, 4)), np.eye(3)[rng.integers(0, 3, size=6)]


def params_fn(p, x):
    return tnp.sum(tnp.tanh(x @ p.W + p.b))


def layer_fn(layer, x):
    return tnp.sum(tnp.tanh(x @ layer.W + layer.b))


CASES = {"mixed": (mixed, mixed_args), "mlp": (mlp, mlp_args),
         "namedtuple": (params_fn, lambda rng: (Params(rng.normal(size=(3, 2)), rng.normal(size=2)),
                                                rng.normal(size=(4, 3)))),
         "dataclass": (layer_fn, lambda rng: (Layer(rng.normal(size=(3, 2)), rng.normal(size=2)),
                                              rng.normal(size=(4, 3))))}


def record(case, seed=0):
    f, make = CASES[case]
    return tg.record(f, *make(np.random.default_rng(seed))), make


def assert_same_tree(a, b):
    la, ta = pytree.flatten(a)
    lb, tb = pytree.flatten(b)
    assert ta == tb
    for u, v in zip(la, lb):
        assert type(u) is type(v) and np.shape(u) == np.shape(v)
        np.testing.assert_array_equal(u, v)


def roundtrip_file(tape, tmp_path):
    path = tmp_path / "t.npz"
    tape.save(path)
    return tg.Tape.load(path)
