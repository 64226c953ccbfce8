"""Issue 7, section 5: transpose axes, softmax/logsumexp over tuple axes and empty arrays,
and the messages of a tape called with the wrong arguments.

Error tests use ``no_replay_kernels``: the error must come from the Python front end
before any numba replay kernel runs.
"""
import collections
import dataclasses
import math
import re

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.numpy as tnp
from conftest import assert_grad_matches_fd, numerical_grad

AxisError = np.exceptions.AxisError


# --- transpose ----------------------------------------------------------------------------------

TRANSPOSES = {
    "tnp.transpose": lambda x, axes: tnp.transpose(x, axes),
    "np.transpose": lambda x, axes: np.transpose(x, axes),
    "method, one argument": lambda x, axes: x.transpose(axes),
    "method, unpacked": lambda x, axes: x.transpose(*axes) if isinstance(axes, tuple) else x.transpose(axes),
}

BAD_AXES = [  # (shape, axes, numpy's exception type)
    ((3,), (1,), AxisError),
    ((3,), 1, AxisError),
    ((3,), (0, 0), ValueError),
    ((3,), (0, 1), ValueError),
    ((), (0,), ValueError),
    ((2, 3), (0, 0), ValueError),
    ((2, 3), (0,), ValueError),
    ((2, 3), (0, 2), AxisError),
    ((2, 3), (-3, 0), AxisError),
    ((2, 3, 4), (2, 0), ValueError),
    ((2, 3, 4), (0, 1, 1), ValueError),
    ((2, 3), (0.0, 1), TypeError),
]


@pytest.mark.parametrize("name", sorted(TRANSPOSES))
@pytest.mark.parametrize("shape, axes, error", BAD_AXES)
def test_transpose_with_bad_axes_raises_like_numpy(name, shape, axes, error, no_replay_kernels):
    with pytest.raises(error):  # the reference: numpy itself
        np.transpose(np.ones(shape), axes)
    fn = TRANSPOSES[name]
    with pytest.raises(error, match=rf"transpose.*{re.escape(str(shape))}") as info:
        tg.grad(lambda x: tnp.sum(fn(x, axes)))(np.ones(shape))
    assert type(info.value) is error


@pytest.mark.parametrize("name", sorted(TRANSPOSES))
@pytest.mark.parametrize("shape, axes", [((3,), (0,)), ((3,), (-1,)), ((), ()), ((2, 3), (0, 1)),
                                         ((2, 3, 4), (-3, 1, 2))])
def test_identity_transpose_records_nothing(name, shape, axes):
    tape = tg.record(lambda x: TRANSPOSES[name](x, axes), np.ones(shape))
    assert len(tape) == 0


@pytest.mark.parametrize("axes", [None, (2, 0, 1), (1, 0, 2), (-1, -3, -2)])
def test_transpose_values_and_gradients(axes, rng):
    X = rng.normal(size=(2, 3, 4))
    W = rng.normal(size=np.transpose(X, axes).shape)
    f = lambda x: tnp.sum(tnp.transpose(x, axes) * W)
    np.testing.assert_array_equal(tg.record(lambda x: tnp.transpose(x, axes), X).forward(X),
                                  np.transpose(X, axes))
    perm = (2, 1, 0) if axes is None else tuple(a % 3 for a in axes)
    np.testing.assert_array_equal(tg.grad(f)(X), np.transpose(W, np.argsort(perm)))


# --- softmax and logsumexp over several axes ----------------------------------------------------

def np_softmax(x, axis):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def np_logsumexp(x, axis):
    top = np.max(x, axis=axis, keepdims=True)
    return np.log(np.sum(np.exp(x - top), axis=axis)) + np.squeeze(top, axis=axis)


TUPLE_AXES = [(0, 1), (1, 2), (0, 2), (2, 0), (0, 1, 2), (-1, 0), None, ()]


@pytest.mark.parametrize("axis", TUPLE_AXES)
def test_softmax_over_several_axes(axis, rng):
    X = rng.normal(size=(2, 3, 4)) * 3.0
    W = rng.normal(size=X.shape)
    ax = tuple(range(3)) if axis is None else axis
    tape = tg.record(lambda x: tnp.softmax(x, axis), X)
    np.testing.assert_allclose(tape.forward(X + 1.0), np_softmax(X + 1.0, ax), rtol=1e-13)
    np.testing.assert_allclose(tnp.softmax(X, axis), np_softmax(X, ax), rtol=1e-13)
    f = lambda x: tnp.sum(tnp.softmax(x, axis) * W)
    assert_grad_matches_fd(f, X, tg.grad(f)(X))


@pytest.mark.parametrize("axis", TUPLE_AXES)
@pytest.mark.parametrize("keepdims", [False, True])
def test_logsumexp_over_several_axes(axis, keepdims, rng):
    X = rng.normal(size=(2, 3, 4)) * 3.0
    ax = tuple(range(3)) if axis is None else axis
    want = np_logsumexp(X, ax)
    if keepdims:
        want = np.expand_dims(want, ax)
    np.testing.assert_allclose(tg.record(lambda x: tnp.logsumexp(x, axis, keepdims), X).forward(X),
                               want, rtol=1e-13)
    W = rng.normal(size=np.shape(want))
    f = lambda x: tnp.sum(tnp.logsumexp(x, axis, keepdims) * W)
    assert_grad_matches_fd(f, X, tg.grad(f)(X))


def test_softmax_of_a_single_run_of_axes_is_one_entry():
    tape = tg.record(lambda x: tnp.softmax(x, (1, 2)), np.ones((2, 3, 4)))
    assert [e.split(":")[1].split("(")[0].strip() for e in str(tape).splitlines()[2:]] == ["SOFTMAX"]


# --- empty arrays ---------------------------------------------------------------------------------

@pytest.mark.parametrize("shape, axis, want", [
    ((0,), None, -np.inf),
    ((0,), 0, -np.inf),
    ((0, 3), None, -np.inf),
    ((0, 3), (0, 1), -np.inf),
    ((2, 0), 1, [-np.inf, -np.inf]),
    ((2, 0), 0, np.zeros(0)),
    ((0, 3), 0, [-np.inf] * 3),
    ((2, 0, 3), (0, 2), np.zeros(0)),
])
def test_logsumexp_of_an_empty_reduction_is_minus_inf(shape, axis, want):
    x = np.ones(shape)
    np.testing.assert_array_equal(tnp.logsumexp(x, axis), want)  # plain numpy path
    tape = tg.record(lambda v: tnp.logsumexp(v, axis), x)
    np.testing.assert_array_equal(tape.forward(x), want)
    np.testing.assert_array_equal(tg.jacobian(lambda v: tnp.logsumexp(v, axis))(x),
                                  np.zeros(np.shape(want) + shape))
    value, g = tg.value_and_grad(lambda v: tnp.sum(tnp.logsumexp(v, axis)))(x)
    assert value == np.sum(want)
    assert g.shape == shape


@pytest.mark.parametrize("shape, axis", [((0,), -1), ((0,), None), ((2, 0), 1), ((2, 0), 0),
                                         ((0, 3), (0, 1)), ((2, 0, 3), (0, 2))])
def test_softmax_of_an_empty_array_is_empty(shape, axis):
    x = np.ones(shape)
    assert tnp.softmax(x, axis).shape == shape
    assert tg.record(lambda v: tnp.softmax(v, axis), x).forward(x).shape == shape
    value, g = tg.value_and_grad(lambda v: tnp.sum(tnp.softmax(v, axis) * 2.0))(x)
    assert value == 0.0 and g.shape == shape


def test_logsumexp_of_an_empty_row_next_to_full_ones():
    # rows of length 0 give -inf while the rest of the batch is unaffected
    x = np.arange(6.0).reshape(2, 3)
    f = lambda v: tnp.sum(tnp.logsumexp(v, 1) * np.array([1.0, 2.0]))
    g = tg.grad(f)(x)
    np.testing.assert_allclose(g, numerical_grad(f, x), rtol=1e-6)
    assert tg.grad(lambda v: tnp.sum(tnp.exp(tnp.logsumexp(v, 1))))(np.ones((2, 0))).shape == (2, 0)


# --- calling a tape with the wrong arguments ---------------------------------------------------------

METHODS = ["forward", "gradient", "value_and_gradient", "jacobian"]
NT = collections.namedtuple("NT", "w b")


@pytest.fixture
def tape2():
    return tg.record(lambda x, W: tnp.sum(W @ x), np.ones(3), np.ones((2, 3)))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n", [0, 1, 3])
def test_wrong_number_of_arguments(tape2, method, n, no_replay_kernels):
    args = [np.ones(3), np.ones((2, 3)), np.ones(3)][:n]
    with pytest.raises(TypeError, match=rf"recorded with 2 positional arguments, got {n}$"):
        getattr(tape2, method)(*args)


@pytest.mark.parametrize("method", METHODS)
def test_one_argument_wording(method, no_replay_kernels):
    tape = tg.record(lambda x: tnp.sum(x * x), np.ones(2))
    with pytest.raises(TypeError, match=r"recorded with 1 positional argument, got 2"):
        getattr(tape, method)(np.ones(2), np.ones(2))


@pytest.mark.parametrize("method", METHODS)
def test_list_instead_of_an_array(method, no_replay_kernels):
    tape = tg.record(lambda X: tnp.sum(X * X), np.ones((2, 2)))
    with pytest.raises(ValueError, match=re.escape(
            "argument 0: the argument structure differs from the recording: expected a float "
            "array of shape (2, 2), got a list (pass np.asarray(...))")):
        getattr(tape, method)([[1.0, 2.0], [3.0, 4.0]])


def test_list_instead_of_an_array_in_second_argument(tape2, no_replay_kernels):
    with pytest.raises(ValueError, match=r"argument 1: .*expected a float array of shape \(2, 3\), "
                                         r"got a list \(pass np\.asarray"):
        tape2.gradient(np.ones(3), np.ones((2, 3)).tolist())


@pytest.mark.parametrize("bad, where, want", [
    ({"w": [1.0, 2.0], "b": [1.0, 2.0]}, r"argument 0\['w'\]", r"a float array of shape \(2,\), got a list"),
    ({"w": np.ones(2), "b": (1.0, 2.0)}, r"argument 0\['b'\]", "expected a list, got a tuple"),
    ({"w": np.ones(2), "b": [1.0]}, r"argument 0\['b'\]", "a list of 2 items, got a list of 1 items"),
    ({"w": np.ones(2)}, "argument 0", r"a dict with keys \['b', 'w'\], got keys \['w'\]"),
    ({"w": np.ones(2), "b": [1.0, None]}, r"argument 0\['b'\]\[1\]", "expected a float, got None"),
    ([np.ones(2)], "argument 0", "expected a dict, got a list"),
])
def test_structure_mismatch_names_the_place(bad, where, want, no_replay_kernels):
    tape = tg.record(lambda p, x: tnp.sum(p["w"] * x) + p["b"][1],
                     {"w": np.ones(2), "b": [1.0, 2.0]}, np.ones(2))
    with pytest.raises(ValueError, match=rf"^{where}: .*{want}"):
        tape.gradient(bad, np.ones(2))


def test_namedtuple_mismatch_names_the_field(no_replay_kernels):
    tape = tg.record(lambda p: p.w * p.b, NT(1.0, 2.0))
    with pytest.raises(ValueError, match=r"argument 0: .*expected NT, got a tuple"):
        tape.forward((1.0, 2.0))
    with pytest.raises(ValueError, match=r"argument 0\.b: .*expected a float, got a list"):
        tape.forward(NT(1.0, [2.0]))


def test_wrong_dtype_names_argument_and_expected_shape(tape2, no_replay_kernels):
    with pytest.raises(TypeError, match=r"argument 1: expected a float array of shape \(2, 3\), got an "
                                        r"array of dtype complex128 and shape \(2, 3\)"):
        tape2.forward(np.ones(3), np.ones((2, 3), dtype=complex))
    with pytest.raises(TypeError, match=r"argument 0: expected a float array of shape \(3,\), got a str"):
        tape2.forward("abc", np.ones((2, 3)))


def test_wrong_shape_inside_a_container_names_the_leaf(no_replay_kernels):
    tape = tg.record(lambda p: tnp.sum(p[1] ** 2), (1.0, np.ones(3)))
    with pytest.raises(ValueError, match=r"argument 0\[1\]: the tape was recorded for shape \(3,\), "
                                         r"got shape \(4,\)"):
        tape.gradient((1.0, np.ones(4)))


def test_right_arguments_still_replay(tape2):
    W = np.arange(6.0).reshape(2, 3)
    assert tape2.forward(np.ones(3), W) == pytest.approx(15.0)
    np.testing.assert_allclose(tape2.gradient(np.ones(3), W), W.sum(axis=0))
    assert math.isfinite(tape2.value_and_gradient(np.zeros(3), W)[0])


def test_dataclass_argument_mismatch_names_the_field_and_later_arguments(no_replay_kernels):
    @dataclasses.dataclass
    class Params:
        w: np.ndarray
        b: float

    tape = tg.record(lambda p, x: tnp.sum(p.w * x) + p.b, Params(np.ones(2), 1.0), np.ones(2))
    with pytest.raises(ValueError, match=r"^argument 0\.w: .*float array of shape \(2,\), got a list"):
        tape.forward(Params([1.0, 2.0], 1.0), np.ones(2))
    with pytest.raises(ValueError, match=r"^argument 0: .*expected Params, got a dict"):
        tape.forward({"w": np.ones(2), "b": 1.0}, np.ones(2))
    # the leaves of argument 0 are counted, so argument 1 is described by its own spec
    with pytest.raises(ValueError, match=r"^argument 1: .*float array of shape \(2,\), got a list"):
        tape.forward(Params(np.ones(2), 1.0), [1.0, 2.0])
