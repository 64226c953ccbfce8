"""Bad inputs raise the right exception, naming the problem, before any replay kernel runs.

Every test that uses the ``no_replay_kernels`` fixture fails if a numba replay kernel
(forward sweep, backward sweep) is called: the error must come from the Python front end.
"""
import re

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.jit as J
import tapegrad.numpy as tnp

pytestmark = pytest.mark.usefixtures("no_replay_kernels")


def shapes_re(*shapes):
    return ".*".join(re.escape(str(s)) for s in shapes)


# --- non-scalar output ----------------------------------------------------------------------

@pytest.mark.parametrize("transform", [tg.grad, tg.value_and_grad])
@pytest.mark.parametrize("shape", [(3,), (2, 3), (0,), (0, 1)])
def test_non_scalar_output(transform, shape, monkeypatch):
    """Refused before any analysis; a size-1 output of any shape is a scalar (issue 10)."""
    def boom(*args):
        raise AssertionError("the tape was analysed before the output shape was checked")

    monkeypatch.setattr(J, "activity", boom)
    with pytest.raises(TypeError, match=rf"{re.escape(str(shape))}.*jacobian"):
        transform(lambda x: x * 2.0)(np.ones(shape))


def test_non_scalar_output_of_tape_gradient():
    tape = tg.record(lambda x: tnp.sin(x), np.ones(4))
    with pytest.raises(TypeError, match=r"\(4,\).*jacobian"):
        tape.gradient(np.ones(4))
    with pytest.raises(TypeError, match=r"\(4,\).*jacobian"):
        tape.value_and_gradient(np.ones(4))


def test_bad_return_type():
    with pytest.raises(TypeError, match="str"):
        tg.grad(lambda x: "nope")(1.0)


# --- differentiated arguments that are not floats ----------------------------------------------

@pytest.mark.parametrize("arg, dtype", [
    (3, "int64"),
    (np.int32(3), "int32"),
    (np.arange(3), "int64"),
    (True, "bool"),
    (np.ones(3, dtype=bool), "bool"),
    (1.0 + 2.0j, "complex128"),
    (np.ones(2, dtype=np.complex64), "complex64"),
    ("abc", "str"),
])
@pytest.mark.parametrize("transform", [tg.grad, tg.value_and_grad, tg.jacobian])
def test_non_float_differentiated_argument(transform, arg, dtype):
    with pytest.raises(TypeError, match=rf"dtype {dtype}"):
        transform(lambda x: tnp.sum(x * 2.0))(arg)


def test_non_float_leaf_inside_a_pytree_argument():
    with pytest.raises(TypeError, match=r"argument 1 .*dtype int64"):
        tg.grad(lambda x, p: x * p["w"], argnums=(0, 1))(1.0, {"w": 2})


def test_record_rejects_non_float_differentiated_argument():
    with pytest.raises(TypeError, match="dtype int64"):
        tg.record(lambda x: x * 2.0, 3)


# --- incompatible shapes ------------------------------------------------------------------------

BINARY = {
    "add": lambda x, y: x + y,
    "sub": lambda x, y: x - y,
    "mul": lambda x, y: x * y,
    "div": lambda x, y: x / y,
    "maximum": lambda x, y: tnp.maximum(x, y),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("sa, sb", [((3,), (4,)), ((2, 3), (3, 2)), ((5, 1, 3), (4, 2))])
def test_incompatible_shapes_in_binary_op(name, sa, sb):
    op = BINARY[name]
    with pytest.raises(ValueError, match=rf"{name}.*{shapes_re(sa, sb)}"):
        tg.grad(lambda x, y: tnp.sum(op(x, y)), argnums=(0, 1))(np.ones(sa), np.ones(sb))


@pytest.mark.parametrize("name", sorted(BINARY))
def test_incompatible_shapes_with_a_constant_array(name):
    op = BINARY[name]
    with pytest.raises(ValueError, match=rf"{name}.*{shapes_re((3,), (4,))}"):
        tg.grad(lambda x: tnp.sum(op(x, np.ones(4))))(np.ones(3))
    with pytest.raises(ValueError, match=rf"{name}.*{shapes_re((4,), (3,))}"):
        tg.grad(lambda x: tnp.sum(op(np.ones(4), x)))(np.ones(3))


def test_incompatible_shapes_through_numpy_ufunc():
    with pytest.raises(ValueError, match=rf"maximum.*{shapes_re((3,), (4,))}"):
        tg.grad(lambda x: tnp.sum(np.maximum(x, np.ones(4))))(np.ones(3))


@pytest.mark.parametrize("sa, sb", [
    ((2, 3), (4, 2)), ((3,), (4,)), ((2, 3), (2,)), ((4, 2, 3), (4, 2, 2)),
    ((5, 2, 3), (4, 3, 2)),
])
def test_incompatible_matmul(sa, sb):
    with pytest.raises(ValueError, match=rf"matmul.*{shapes_re(sa, sb)}"):
        tg.grad(lambda x, y: tnp.sum(x @ y), argnums=(0, 1))(np.ones(sa), np.ones(sb))


def test_matmul_with_scalar_operand():
    with pytest.raises(ValueError, match=rf"matmul.*{shapes_re((3,), ())}"):
        tg.grad(lambda x, y: tnp.sum(x @ y), argnums=(0, 1))(np.ones(3), 2.0)


# --- replaying with other shapes ----------------------------------------------------------------

def test_replay_with_other_shape():
    tape = tg.record(lambda x: tnp.sum(x ** 2), np.ones(3))
    for method in ("forward", "gradient", "jacobian"):
        with pytest.raises(ValueError, match=r"recorded for shape \(3,\), got shape \(4,\)"):
            getattr(tape, method)(np.ones(4))
        with pytest.raises(ValueError, match=r"recorded for shape \(3,\), got shape \(3, 1\)"):
            getattr(tape, method)(np.ones((3, 1)))


def test_replay_with_other_shape_in_second_argument():
    tape = tg.record(lambda x, W: tnp.sum(W @ x), np.ones(3), np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"argument 1.*\(2, 3\).*\(3, 3\)"):
        tape.gradient(np.ones(3), np.ones((3, 3)))


def test_replay_with_other_structure():
    tape = tg.record(lambda p: p[0] * p[1], (1.0, 2.0))
    with pytest.raises(ValueError, match="structure"):
        tape.gradient([1.0, 2.0])
    with pytest.raises(ValueError, match="structure"):
        tape.gradient((1.0, 2.0, 3.0))


def test_replay_with_non_float_value():
    tape = tg.record(lambda x: x * 2.0, np.ones(2))
    with pytest.raises(TypeError, match="complex128"):
        tape.forward(np.ones(2, dtype=complex))


def test_replay_with_changed_static_argument():
    tape = tg.record(lambda x, n: x ** n, 2.0, 3)
    with pytest.raises(ValueError, match="argument 1.*baked"):
        tape.gradient(2.0, 4)


# --- unsupported operations on traced values -----------------------------------------------------

def test_numpy_asarray_of_traced_value():
    with pytest.raises(TypeError, match="cannot be converted to a numpy array"):
        tg.grad(lambda x: np.sum(np.asarray(x)))(np.ones(3))
    with pytest.raises(TypeError, match="cannot be converted to a numpy array"):
        tg.grad(lambda x: np.sum(np.array(x)))(np.ones(3))


@pytest.mark.parametrize("name, fn", [
    ("nextafter", lambda x: np.nextafter(x, x)),
    ("spacing", np.spacing),
    ("heaviside", lambda x: np.heaviside(x, 0.5)),
    ("frexp", np.frexp),
])
def test_unsupported_numpy_ufunc(name, fn):
    with pytest.raises(TypeError, match=rf"numpy\.{name}.*not supported"):
        tg.grad(lambda x: tnp.sum(fn(x)))(np.ones(3))


def test_unsupported_ufunc_method():
    with pytest.raises(TypeError, match=r"numpy\.add\.reduce.*not supported"):
        tg.grad(lambda x: np.add.reduce(x))(np.ones(3))


@pytest.mark.parametrize("name, fn", [
    ("median", np.median),
    ("sort", np.sort),
    ("fft", lambda x: np.fft.fft(x).real),
])
def test_unsupported_numpy_function(name, fn):
    with pytest.raises(TypeError, match=rf"numpy\.{name}.*not supported"):
        tg.grad(lambda x: tnp.sum(fn(x)))(np.ones(3))


@pytest.mark.parametrize("name", ["median", "spacing", "heaviside", "fft"])
def test_missing_tnp_attribute(name):
    with pytest.raises(AttributeError, match=rf"tapegrad\.numpy.*'{name}'"):
        getattr(tnp, name)


def test_missing_tnp_attribute_inside_a_function():
    with pytest.raises(AttributeError, match="median"):
        tg.grad(lambda x: tnp.sum(tnp.median(x)))(np.ones(3))


# --- indexing --------------------------------------------------------------------------------

def test_indexing_with_a_traced_index():
    with pytest.raises(TypeError, match="indexing with a traced value"):
        tg.grad(lambda x, i: x[i], argnums=0)(np.ones(3), 1.0)
    with pytest.raises(TypeError, match="indexing with a traced value"):
        tg.grad(lambda x: x[x[0]])(np.ones(3))
    with pytest.raises(TypeError, match="indexing with a traced value"):
        tg.grad(lambda x: tnp.sum(x[1:, x[0]]))(np.ones((3, 3)))


def test_index_out_of_bounds():
    with pytest.raises(IndexError, match=r"shape \(3,\)"):
        tg.grad(lambda x: x[5])(np.ones(3))


# --- axes ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, fn", [
    ("sum", tnp.sum),
    ("mean", tnp.mean),
    ("max", tnp.max),
    ("logsumexp", tnp.logsumexp),
])
@pytest.mark.parametrize("axis", [2, -3, (0, 5)])
def test_axis_out_of_bounds(name, fn, axis):
    bad = axis if isinstance(axis, int) else 5
    with pytest.raises(ValueError, match=rf"{name}: axis {bad} is out of bounds.*dimension 2"):
        tg.grad(lambda x: tnp.sum(fn(x, axis=axis)))(np.ones((2, 3)))


def test_softmax_axis_out_of_bounds():
    with pytest.raises(ValueError, match="softmax: axis 2 is out of bounds"):
        tg.grad(lambda x: tnp.sum(tnp.softmax(x, axis=2)))(np.ones((2, 3)))


def test_repeated_axis():
    with pytest.raises(ValueError, match="sum: repeated axis"):
        tg.grad(lambda x: tnp.sum(tnp.sum(x, axis=(0, -2))))(np.ones((2, 3)))


@pytest.mark.parametrize("axis", [1.0, "0", [0]])
def test_axis_of_wrong_type(axis):
    with pytest.raises(TypeError, match="sum: axis must be an int"):
        tg.grad(lambda x: tnp.sum(tnp.sum(x, axis=axis)))(np.ones((2, 3)))


def test_method_axis_out_of_bounds():
    with pytest.raises(ValueError, match="sum: axis 1 is out of bounds"):
        tg.grad(lambda x: x.sum(axis=1))(np.ones(3))


# --- argnums ---------------------------------------------------------------------------------

@pytest.mark.parametrize("transform", [tg.grad, tg.value_and_grad, tg.jacobian])
@pytest.mark.parametrize("argnums, bad", [(2, 2), (-3, -3), ((0, 2), 2), ((-4, 1), -4)])
def test_argnums_out_of_range(transform, argnums, bad):
    with pytest.raises(ValueError, match=rf"argnums {bad} is out of range.*2 positional"):
        transform(lambda x, y: x * y, argnums=argnums)(1.0, 2.0)


def test_argnums_out_of_range_in_record():
    with pytest.raises(ValueError, match="argnums 1 is out of range"):
        tg.record(lambda x: x, 1.0, argnums=1)


def test_argnums_empty():
    with pytest.raises(ValueError, match="argnums is empty"):
        tg.grad(lambda x: x, argnums=())(1.0)


@pytest.mark.parametrize("argnums", [(0, "1"), (0, 1.0), (0, True)])
def test_argnums_of_wrong_type(argnums):
    with pytest.raises(TypeError, match="argnums must be an int or a tuple of ints"):
        tg.grad(lambda x, y: x * y, argnums=argnums)(1.0, 2.0)


@pytest.mark.parametrize("argnums", [True, 1.0])
def test_scalar_argnums_of_wrong_type(argnums):
    with pytest.raises(TypeError, match="argnums must be an int or a tuple of ints"):
        tg.grad(lambda x, y: x * y, argnums=argnums)(1.0, 2.0)


# --- escaping traced values --------------------------------------------------------------------

def leak_a_traced_value():
    leaked = []

    def f(x):
        leaked.append(x)
        return x * 2.0

    tg.record(f, 1.0)
    return leaked[0]


def test_escaped_traced_value_in_a_new_recording():
    leaked = leak_a_traced_value()
    with pytest.raises(ValueError, match="two different recordings"):
        tg.grad(lambda y: y * leaked)(1.0)
    with pytest.raises(ValueError, match="finished recording"):
        tg.grad(lambda y: tnp.sin(leaked))(1.0)


def test_escaped_traced_value_combined_with_itself():
    leaked = leak_a_traced_value()
    with pytest.raises(ValueError, match="finished recording"):
        leaked + leaked


@pytest.mark.parametrize("op", ["sin", "mul_const", "pow_const", "sum"])
def test_escaped_traced_value_unary_op(op):
    leaked = leak_a_traced_value()
    fn = {"sin": tnp.sin, "mul_const": lambda v: v * 2.0, "pow_const": lambda v: v ** 2,
          "sum": tnp.sum}[op]
    with pytest.raises(ValueError, match="finished recording"):
        fn(leaked)
