"""A traced value is never silently turned into a Python number (issue 7, section 3).

Every way Python and numpy have of converting an object to a float, int, index or numpy
array (``float()``, ``math.exp``, ``np.float64``, ``a[i] = x``, ``x.item()``, a number
format, ...) would make a traced value a constant and drop its derivative: each must raise
a TypeError that says what happened and what to use instead, before any kernel runs.
Comparisons, ``bool()``, ``len()``, iteration and ``repr``/``print`` stay allowed.
"""
import array
import math
import operator
import re
import struct

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.numpy as tnp
from tapegrad.tracer import ConversionError


def store_item(x):
    a = np.zeros(2)
    a[0] = x
    return tnp.sum(a * x)


def store_item_int_array(x):
    a = np.zeros(2, dtype=np.int64)
    a[1] = x
    return tnp.sum(a * x)


def store_0d(x):
    a = np.zeros(())
    a[...] = x
    return a * x


def store_slice(v):
    a = np.zeros(3)
    a[1:] = v[:2]
    return tnp.sum(a * v)


def store_row(v):
    a = np.zeros((2, 3))
    a[0] = v
    return tnp.sum(a)


def fill(x):
    a = np.zeros(2)
    a.fill(x)
    return tnp.sum(a * x)


# (scalar x) -> (function of x, a fragment the message must contain)
SCALAR_PATHS = {
    "float": (lambda x: x * float(x), "Python float by `float(x)`"),
    "int": (lambda x: x * int(x), "Python int by `int(x)`"),
    "operator.index": (lambda x: x * operator.index(x), "Python integer"),
    "range": (lambda x: x * len(range(x)), "Python integer"),
    "list index": (lambda x: x * [1.0, 2.0][x], "Python integer"),
    "complex": (lambda x: x * complex(x).real, "Python complex"),
    "math.exp": (lambda x: x * math.exp(x), "by `math.exp(x)`"),
    "math.sin": (lambda x: math.sin(x) * x, "by `math.sin(x)`"),
    "math.sqrt": (lambda x: x * math.sqrt(x), "Python float"),
    "math.log": (lambda x: x * math.log(x), "Python float"),
    "math.isnan": (lambda x: x * 2.0 if math.isnan(x) else x, "Python float"),
    "math.floor": (lambda x: x * math.floor(x), "rounded down"),
    "math.ceil": (lambda x: x * math.ceil(x), "rounded up"),
    "math.trunc": (lambda x: x * math.trunc(x), "truncated"),
    "round": (lambda x: x * round(x), "rounded"),
    "round ndigits": (lambda x: x * round(x, 2), "rounded"),
    "np.float64": (lambda x: x * np.float64(x), "by `np.float64(x)`"),
    "np.float32": (lambda x: x * np.float32(x), "numpy array"),
    "np.int64": (lambda x: x * np.int64(x), "numpy array"),
    "np.array": (lambda x: x * np.array(x), "numpy array"),
    "np.asarray": (lambda x: x * np.asarray(x), "numpy array"),
    "np.array of a list": (lambda x: tnp.sum(np.array([x, 1.0])), "numpy array"),
    "np.full": (lambda x: tnp.sum(np.full(2, x)), "numpy array"),
    "a[i] = x": (store_item, "by `a[0] = ...`"),
    "a[i] = x, int array": (store_item_int_array, "Python int"),
    "a[...] = x": (store_0d, "numpy array"),
    "a.fill(x)": (fill, "by `a.fill(x)`"),
    "item": (lambda x: x * x.item(), "by `x.item()`"),
    "tolist": (lambda x: x * x.tolist(), "by `x.tolist()`"),
    "format": (lambda x: x * len(format(x, ".2f")), "format spec '.2f'"),
    "f-string": (lambda x: x * len(f"{x:.3g}"), "format spec '.3g'"),
    "str.format": (lambda x: x * len("{:e}".format(x)), "format spec 'e'"),
    "%f": (lambda x: x * len("%f" % x), "Python float"),
    "array.array": (lambda x: x * len(array.array("d", [x])), "Python float"),
}

ARRAY_PATHS = {
    "a[1:] = v": (store_slice, "numpy array"),
    "a[0] = v": (store_row, "numpy array"),
    "v.tolist": (lambda v: tnp.sum(v * v.tolist()), "by `v.tolist()`"),
    "v[0].item": (lambda v: v[0].item() * v[1], "by `v[0].item()`"),
    "math.exp of an element": (lambda v: v[1] * math.exp(v[0]), "by `math.exp(v[0])`"),
    "np.array of elements": (lambda v: tnp.sum(np.array([v[0], v[1]]) * v), "numpy array"),
}


@pytest.mark.parametrize("name", sorted(SCALAR_PATHS))
@pytest.mark.parametrize("arg", [1.5, np.float64(1.5), np.array(1.5)], ids=["float", "np.float64", "0-d"])
def test_conversion_of_a_traced_scalar_raises(name, arg, no_replay_kernels):
    fn, fragment = SCALAR_PATHS[name]
    with pytest.raises(TypeError, match=re.escape(fragment)) as info:
        tg.grad(fn)(arg)
    assert isinstance(info.value, ConversionError)
    assert "derivative" in str(info.value) or "gradient" in str(info.value)


@pytest.mark.parametrize("name", sorted(ARRAY_PATHS))
def test_conversion_of_a_traced_array_raises(name, no_replay_kernels):
    fn, fragment = ARRAY_PATHS[name]
    with pytest.raises(ConversionError, match=re.escape(fragment)):
        tg.grad(fn)(np.array([0.5, 1.5, 2.5]))


@pytest.mark.parametrize("transform", [tg.grad, tg.value_and_grad, tg.jacobian,
                                       lambda f: lambda x: tg.record(f, x)])
@pytest.mark.parametrize("name", ["math.exp", "a[i] = x", "np.float64"])
def test_every_entry_point_refuses(transform, name, no_replay_kernels):
    fn, fragment = SCALAR_PATHS[name]
    with pytest.raises(ConversionError, match=re.escape(fragment)):
        transform(fn)(1.0)


def test_non_differentiated_float_argument_is_traced_too(no_replay_kernels):
    with pytest.raises(ConversionError, match="keyword argument"):
        tg.grad(lambda x, n: x * float(n))(1.0, 3.0)
    with pytest.raises(ConversionError, match="Python integer"):
        tg.grad(lambda x, n: tnp.sum(x[:n]))(np.ones(3), 2.0)


def test_keyword_arguments_stay_python_numbers():
    assert tg.grad(lambda x, n=1.0: x * float(n))(1.0, n=3.0) == 3.0


def test_item_assignment_is_a_type_error_not_numpys_value_error(no_replay_kernels):
    # numpy reports a failed a[i] = x as "ValueError: setting an array element with a sequence"
    with pytest.raises(TypeError) as info:
        tg.grad(store_item)(1.0)
    assert "sequence" not in str(info.value)
    assert "a + x * np.eye(n)[i]" in str(info.value)


def test_message_names_the_expression_and_the_line(no_replay_kernels):
    def f(x):
        return x * math.exp(x)

    line = f.__code__.co_firstlineno + 1
    with pytest.raises(ConversionError) as info:
        tg.grad(f)(1.0)
    msg = str(info.value)
    assert f"by `math.exp(x)` (test_conversions.py, line {line})" in msg
    assert "tnp.exp(x) or np.exp(x)" in msg  # what to use instead


@pytest.mark.parametrize("name, remedy", [
    ("int", "x.shape"), ("range", "x.shape"), ("round", "compare it"),
    ("format", "print(x)"), ("np.float64", "tapegrad.numpy functions"),
])
def test_messages_say_what_to_use_instead(name, remedy, no_replay_kernels):
    fn, _ = SCALAR_PATHS[name]
    with pytest.raises(ConversionError, match=re.escape(remedy)):
        tg.grad(fn)(1.0)


@pytest.mark.parametrize("fn, error", [
    (lambda x: tnp.sum(np.zeros(x) + x), TypeError),
    (lambda x: x * len("%d" % x), TypeError),
    (lambda x: x * len(struct.pack("d", x)), struct.error),
], ids=["np.zeros(x)", "%d", "struct.pack"])
def test_conversions_whose_caller_replaces_the_message_still_raise(fn, error, no_replay_kernels):
    # numpy, %-formatting and struct replace our TypeError by their own, but never convert
    with pytest.raises(error):
        tg.grad(fn)(2.0)


# --- the right ways give the right gradients ---------------------------------------------------

def test_the_issue_examples_with_tapegrad_functions():
    e = math.e
    assert tg.grad(lambda x: x * tnp.exp(x))(1.0) == pytest.approx(2 * e, rel=1e-14)
    assert tg.grad(lambda x: x * np.exp(x))(1.0) == pytest.approx(2 * e, rel=1e-14)
    # a functional update instead of a = np.zeros(2); a[0] = x
    g = tg.grad(lambda x: tnp.sum((np.zeros(2) + x * np.eye(2)[0]) * np.array([3.0, 5.0])))(1.0)
    assert g == pytest.approx(3.0)


# --- what stays allowed ---------------------------------------------------------------------------

COMPARISONS = {
    "<": lambda x: x < 0.5, "<=": lambda x: x <= 0.5, ">": lambda x: 0.5 > x,
    ">=": lambda x: 0.5 >= x, "==": lambda x: x == 0.25, "!=": lambda x: not (x != 0.25),
    "bool": lambda x: not bool(x - 0.25), "max builtin": lambda x: max(x, 0.5) == 0.5,
}


@pytest.mark.parametrize("name", sorted(COMPARISONS))
def test_comparisons_branch_with_the_right_gradient_each_call(name):
    test = COMPARISONS[name]

    def f(x):
        return x ** 3 if test(x) else tnp.sin(x)

    g = tg.grad(f)
    for x in (0.25, 2.0, 0.25, 3.0):
        want = 3 * x ** 2 if test(x) else math.cos(x)
        assert g(x) == pytest.approx(want, rel=1e-14)
    tape = tg.record(f, 2.0)
    assert tape.guards and not tape.value_dependent  # each comparison became a guard


def test_len_iteration_and_shapes_are_allowed_and_not_value_dependent():
    def f(X):
        total = 0.0
        for row in X:  # iteration uses the shape only
            total = total + tnp.sum(row ** 2) * len(row)
        return total * X.shape[0] / len(X) + X.ndim + X.size

    X = np.arange(6.0).reshape(3, 2)
    tape = tg.record(f, X)
    assert not tape.value_dependent
    np.testing.assert_allclose(tape.gradient(X + 1.0), 4 * (X + 1.0), rtol=1e-14)


def test_repr_str_and_print_show_the_value_and_change_nothing(capsys):
    shown = []

    def f(x):
        print(x)
        shown.extend([repr(x), str(x), f"{x}", "%s" % (x,), format(x)])
        return x * 2.0

    tape = tg.record(f, 1.5)
    assert not tape.value_dependent
    assert "1.5" in capsys.readouterr().out
    assert all("1.5" in s for s in shown)
    assert tape.gradient(4.0) == 2.0
