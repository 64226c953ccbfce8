"""Captured state is never stale: a replayed tape gives what a fresh run of ``f`` would give.

Each test changes something ``f`` reads from outside its differentiated arguments between
two calls of one ``grad`` object (a global, a closure variable, a default, a module
attribute, an array mutated in place, an object argument, a random state) and checks the
second result against the fresh value; before guards existed, each returned the first
call's value.  ``recordings`` counts recordings, so tests can also check that nothing is
recorded again when nothing changed.
"""
import dataclasses
import random
import sys
import types
import warnings
from collections import namedtuple

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.api as api
import tapegrad.numpy as tnp
from tapegrad.keys import static_key


@pytest.fixture
def recordings(monkeypatch):
    """A list that gets one item per recording made by grad / value_and_grad / jacobian."""
    made, record = [], api._record

    def counting(*args, **kwargs):
        made.append(1)
        return record(*args, **kwargs)

    monkeypatch.setattr(api, "_record", counting)
    return made


def caught(fn, calls=3):
    """Run ``fn`` ``calls`` times; return (results, TapegradWarnings issued)."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        results = [fn() for _ in range(calls)]
    return results, [w for w in seen if issubclass(w.category, tg.TapegradWarning)]


# --- globals, closures, defaults, module attributes ------------------------------------------

LR = 2.0
SCALE = 3.0
A_GLOBAL = np.array([1.0, 2.0])
cfg = types.ModuleType("user_config")  # a user module, as `import config` would give
cfg.rate = 2.0


def test_rebound_global_float_is_not_stale(recordings):
    global LR
    g = tg.grad(lambda x: LR * x * x)
    LR = 2.0
    assert g(1.0) == 4.0
    LR = 5.0
    assert g(1.0) == 10.0
    assert g(1.0) == 10.0 and len(recordings) == 2  # the new value's tape is reused
    LR = 2.0


def test_global_rebound_to_equal_value_of_other_type_records_again():
    global LR
    g = tg.grad(lambda x: x * len(repr(LR)))
    LR = 2.0
    assert g(1.0) == 3.0
    LR = 2  # equal to 2.0, but acts differently
    assert g(1.0) == 1.0
    LR = 2.0


def test_rebound_closure_float_is_not_stale(recordings):
    c = 2.0
    g = tg.grad(lambda x: c * x)
    assert g(1.0) == 2.0
    c = -0.0
    assert np.signbit(g(1.0))
    c = 0.0
    assert not np.signbit(g(1.0))
    assert len(recordings) == 3


def test_closure_array_mutated_in_place_is_not_stale(recordings):
    A = np.array([1.0, 2.0])
    g = tg.grad(lambda v: tnp.sum(A * v))
    np.testing.assert_array_equal(g(np.ones(2)), [1.0, 2.0])
    A *= 3
    np.testing.assert_array_equal(g(np.ones(2)), [3.0, 6.0])
    A[0] = np.nan  # NaN equals itself bitwise: no recording on every call
    g(np.ones(2))
    g(np.ones(2))
    assert len(recordings) == 3


def test_global_array_mutated_or_rebound_is_not_stale():
    global A_GLOBAL
    A_GLOBAL = np.array([1.0, 2.0])
    g = tg.grad(lambda v: tnp.sum(A_GLOBAL * v))
    np.testing.assert_array_equal(g(np.ones(2)), [1.0, 2.0])
    A_GLOBAL[1] = -0.0
    np.testing.assert_array_equal(np.signbit(g(np.ones(2))), [False, True])
    A_GLOBAL = np.array([[1.0], [4.0]])  # a new shape: the output shape changes too
    np.testing.assert_array_equal(g(np.ones(2)), [5.0, 5.0])


def test_default_argument_array_mutated_in_place_is_not_stale():
    def f(x, B=np.ones(2)):
        return tnp.sum(B * x)

    g = tg.grad(f)
    np.testing.assert_array_equal(g(np.ones(2)), [1.0, 1.0])
    f.__defaults__[0][:] = 7.0
    np.testing.assert_array_equal(g(np.ones(2)), [7.0, 7.0])
    f.__defaults__ = (np.full(2, 2.0),)
    np.testing.assert_array_equal(g(np.ones(2)), [2.0, 2.0])


def test_keyword_only_default_is_guarded():
    def f(x, *, k=2.0):
        return k * x

    g = tg.grad(f)
    assert g(1.0) == 2.0
    f.__kwdefaults__["k"] = 4.0
    assert g(1.0) == 4.0


def _helper(x):
    return SCALE * x


def test_global_read_by_a_helper_function_is_guarded(recordings):
    global SCALE
    g = tg.grad(lambda x: _helper(x) * x)
    SCALE = 3.0
    assert g(1.0) == 6.0
    SCALE = 4.0
    assert g(1.0) == 8.0
    SCALE = 3.0
    for _ in range(3):
        assert g(1.0) == 6.0
    assert len(recordings) == 3


def test_rebinding_a_helper_function_is_seen():
    global _helper
    original = _helper
    g = tg.grad(lambda x: _helper(x) * x)
    assert g(1.0) == 2 * SCALE
    _helper = lambda x: x * x  # noqa: E731
    try:
        assert g(1.0) == 3.0
    finally:
        _helper = original


def test_module_attribute_rebinding_is_seen(recordings):
    g = tg.grad(lambda x: cfg.rate * x)
    cfg.rate = 2.0
    assert g(1.0) == 2.0
    cfg.rate = 5.0
    assert g(1.0) == 5.0
    assert g(1.0) == 5.0
    assert len(recordings) == 2
    cfg.rate = 2.0


class Settings:
    factor = 2.0


def test_class_attribute_read_through_the_class_is_seen():
    g = tg.grad(lambda x: Settings.factor * x)
    assert g(1.0) == 2.0
    Settings.factor = 3.0
    try:
        assert g(1.0) == 3.0
    finally:
        Settings.factor = 2.0


def test_function_passed_as_a_static_argument_is_guarded():
    global SCALE

    def act(v):
        return SCALE * v

    g = tg.grad(lambda x, fn: fn(x) * 1.0)
    assert g(1.0, act) == SCALE
    SCALE = 6.0
    try:
        assert g(1.0, act) == 6.0
    finally:
        SCALE = 3.0


def test_nothing_changed_means_no_new_recording(recordings):
    A = np.array([1.0, 2.0])
    c = (1, 2.5, "s")

    def f(x, B=np.arange(2.0)):
        return tnp.sum(A * x + B) * c[1] + _helper(tnp.sum(x)) + cfg.rate

    g = tg.value_and_grad(f)
    first = g(np.ones(2))
    for _ in range(5):
        again = g(np.ones(2))
        assert again[0] == first[0]
        np.testing.assert_array_equal(again[1], first[1])
    assert len(recordings) == 1


def test_function_that_changes_what_it_reads_records_every_call(recordings):
    def f(x):
        global LR
        LR = LR + 1.0
        return LR * x

    global LR
    LR = 2.0
    g = tg.grad(f)
    results, ws = caught(lambda: g(1.0))
    assert results == [3.0, 4.0, 5.0]  # a fresh run each time
    assert len(ws) == 1 and "changed a value it reads" in str(ws[0].message)
    assert len(recordings) == 3
    LR = 2.0


ACTS = {"tanh": tnp.tanh, "sin": tnp.sin}


def test_global_dict_of_functions_is_guarded_item_by_item(recordings):
    g = tg.grad(lambda x, name: ACTS[name](x))
    assert g(0.0, "tanh") == 1.0
    assert g(0.0, "tanh") == 1.0
    assert len(recordings) == 1  # a small dict of guardable values does not force recording
    ACTS["tanh"] = tnp.exp
    try:
        assert g(1.0, "tanh") == pytest.approx(np.e)
    finally:
        ACTS["tanh"] = tnp.tanh


def test_closure_list_appended_to_by_f_records_every_call():
    log = []

    def f(x):
        log.append(1)
        return x * len(log)

    g = tg.grad(f)
    results, ws = caught(lambda: g(1.0))
    assert results == [1.0, 2.0, 3.0] and len(log) == 3
    assert len(ws) == 1 and "log" in str(ws[0].message)


# --- objects, random state --------------------------------------------------------------------

class Model:
    def __init__(self, W):
        self.W = W


def test_mutated_object_argument_is_not_stale_and_warns_once(recordings):
    m = Model(np.array([1.0, 2.0]))
    g = tg.grad(lambda x, m: tnp.sum(m.W * x))

    def step():
        out = g(np.ones(2), m)
        m.W = 3 * m.W
        return out

    results, ws = caught(step)
    for k, r in enumerate(results):
        np.testing.assert_array_equal(r, 3.0 ** k * np.array([1.0, 2.0]))
    assert len(ws) == 1
    assert "argument 1" in str(ws[0].message) and "Model" in str(ws[0].message)
    assert "dataclasses, namedtuples and dicts" in str(ws[0].message)
    assert len(recordings) == 3


def test_captured_object_is_unguardable_and_warns_once_naming_it(recordings):
    m = Model(np.array([1.0, 2.0]))
    g = tg.grad(lambda x: tnp.sum(m.W * x))

    def step():
        out = g(np.ones(2))
        m.W = m.W + 1.0
        return out

    results, ws = caught(step)
    np.testing.assert_array_equal(results[2], [3.0, 4.0])
    assert len(ws) == 1 and "closure variable 'm'" in str(ws[0].message)
    assert len(recordings) == 3


def test_bound_method_of_an_object_is_unguardable():
    class Layer:
        def __init__(self):
            self.w = 2.0

        def loss(self, x):
            return self.w * x

    layer = Layer()
    g = tg.grad(layer.loss)
    with pytest.warns(tg.TapegradWarning, match="cannot check"):
        assert g(1.0) == 2.0
    layer.w = 5.0
    assert g(1.0) == 5.0


def test_callable_object_is_unguardable():
    class Net:
        def __init__(self, s):
            self.s = s

        def __call__(self, w):
            return self.s * w

    net = Net(2.0)
    g = tg.grad(net)
    with pytest.warns(tg.TapegradWarning, match="callable Net object"):
        assert g(1.0) == 2.0
    net.s = 5.0
    assert g(1.0) == 5.0


def test_partial_arguments_are_guarded(recordings):
    import functools
    x = np.ones(2)
    g = tg.grad(functools.partial(lambda w, x: tnp.sum(w * x), x=x))
    np.testing.assert_array_equal(g(np.ones(2)), [1.0, 1.0])
    x[:] = 3.0
    np.testing.assert_array_equal(g(np.ones(2)), [3.0, 3.0])
    g(np.ones(2))
    assert len(recordings) == 2


def test_numpy_global_random_draws_are_fresh_and_warn_once(recordings):
    g = tg.grad(lambda x: x * np.random.normal())
    np.random.seed(0)
    expected = np.random.normal(size=3)
    np.random.seed(0)
    results, ws = caught(lambda: g(1.0))
    np.testing.assert_array_equal(results, expected)
    assert len(ws) == 1 and "random" in str(ws[0].message)
    assert len(recordings) == 3


def test_python_random_module_draws_are_fresh():
    g = tg.grad(lambda x: x * random.random())
    with pytest.warns(tg.TapegradWarning):
        a = g(1.0)
    assert g(1.0) != a


def test_generator_argument_that_advances_is_not_stale(recordings):
    rng = np.random.default_rng(1)
    g = tg.grad(lambda x, rng: x * rng.normal())
    expected = np.random.default_rng(1).normal(size=3)
    results, ws = caught(lambda: g(1.0, rng))
    np.testing.assert_array_equal(results, expected)
    assert len(ws) == 1 and "argument 1" in str(ws[0].message)
    assert len(recordings) == 3


def test_captured_generator_is_not_stale():
    rng = np.random.default_rng(2)
    g = tg.grad(lambda x: x * rng.uniform())
    expected = np.random.default_rng(2).uniform(size=2)
    results, ws = caught(lambda: g(1.0), calls=2)
    np.testing.assert_array_equal(results, expected)
    assert len(ws) >= 1


# --- static keyword values --------------------------------------------------------------------

def test_keyword_tuples_with_signed_zeros_or_int_float_are_told_apart(recordings):
    g = tg.grad(lambda x, *, c: x / c[0])
    assert g(1.0, c=(0.0,)) == np.inf
    assert g(1.0, c=(-0.0,)) == -np.inf
    h = tg.grad(lambda x, *, c: x * len(repr(c)))
    assert h(1.0, c=(2,)) == 4.0
    assert h(1.0, c=(2.0,)) == 6.0
    assert h(1.0, c=(True,)) == 7.0
    assert h(1.0, c=(2,)) == 4.0
    assert len(recordings) == 5


def test_keyword_list_and_dict_values_are_keyed_by_content(recordings):
    g = tg.grad(lambda x, *, c: x * c["k"][0])
    assert g(1.0, c={"k": [2.0]}) == 2.0
    assert g(1.0, c={"k": [2.0]}) == 2.0
    assert g(1.0, c={"k": [3.0]}) == 3.0
    assert len(recordings) == 2


def test_keyword_object_records_every_call_with_a_warning():
    m = Model(2.0)
    g = tg.grad(lambda x, *, m: m.W * x)

    def step():
        out = g(1.0, m=m)
        m.W += 1.0
        return out

    results, ws = caught(step)
    assert results == [2.0, 3.0, 4.0]
    assert len(ws) == 1 and "keyword argument 'm'" in str(ws[0].message)


def test_static_key_distinguishes_values_that_act_differently():
    assert static_key(0.0) != static_key(-0.0)
    assert static_key(2) != static_key(2.0)
    assert static_key(1) != static_key(True)
    assert static_key((0.0,)) != static_key((-0.0,))
    assert static_key((2,)) != static_key((2.0,))
    assert static_key(frozenset({2})) != static_key(frozenset({2.0}))
    assert static_key(float("nan")) == static_key(float("nan"))
    assert static_key(np.array([0.0])) != static_key(np.array([-0.0]))
    assert static_key(np.array([1, 2])) != static_key(np.array([1.0, 2.0]))
    assert static_key({"a": 1, "b": 2}) != static_key({"b": 2, "a": 1})
    assert static_key(Model(1.0)) is None and static_key({1, 2}) is None
    assert static_key(np.random.default_rng()) is None
    assert static_key(np.exp) == static_key(np.exp) and static_key(len) is not None


# --- cache=False -----------------------------------------------------------------------------

def test_cache_false_records_every_call_without_warning(recordings):
    log = []

    def f(x):
        log.append(1)  # a side effect tapegrad cannot see
        return x * x

    for transform in (tg.grad, tg.value_and_grad, tg.jacobian):
        del log[:]
        g = transform(f, cache=False)
        _, ws = caught(lambda: g(2.0))
        assert len(log) == 3 and not ws
        assert g._tapes == {}


# --- dataclasses are pytrees -------------------------------------------------------------------

@dataclasses.dataclass
class Params:
    w: np.ndarray
    b: float


@dataclasses.dataclass(frozen=True)
class Frozen:
    w: np.ndarray
    scale: float

    def __post_init__(self):
        raise AssertionError("rebuilding a gradient must not call __init__/__post_init__")


def test_gradient_with_respect_to_a_dataclass_is_that_dataclass(rng):
    p = Params(w=rng.normal(size=3), b=0.5)
    x = rng.normal(size=3)
    g = tg.grad(lambda p, x: tnp.sum(p.w * x) * p.b + p.b ** 2)(p, x)
    assert type(g) is Params
    np.testing.assert_allclose(g.w, x * p.b, rtol=1e-14)
    assert g.b == pytest.approx(np.sum(p.w * x) + 2 * p.b, rel=1e-14)


def test_frozen_dataclass_is_rebuilt_without_init():
    p = object.__new__(Frozen)
    object.__setattr__(p, "w", np.array([1.0, 2.0]))
    object.__setattr__(p, "scale", 3.0)
    g = tg.grad(lambda p: tnp.sum(p.w ** 2) * p.scale)(p)
    assert type(g) is Frozen
    np.testing.assert_array_equal(g.w, [6.0, 12.0])
    assert g.scale == 5.0


def test_dataclass_argument_is_traced_not_stale(recordings):
    p = Params(w=np.array([1.0, 2.0]), b=1.0)
    g = tg.grad(lambda x, p: tnp.sum(p.w * x) + p.b)
    np.testing.assert_array_equal(g(np.ones(2), p), [1.0, 2.0])
    p.w = 3 * p.w
    np.testing.assert_array_equal(g(np.ones(2), p), [3.0, 6.0])
    assert len(recordings) == 1  # its arrays are traced inputs: replayed, not recorded


def test_dataclass_treedef_shape():
    from tapegrad import pytree
    leaves, tree = pytree.flatten(Params(w=np.ones(2), b=1.0))
    assert tree == ("dataclass", Params, ("w", "b"), ("*", "*"))
    assert len(leaves) == 2
    nested = {"p": Params(w=np.ones(2), b=2.0), "t": namedtuple("T", "a")(3.0)}
    assert pytree.unflatten(*reversed(pytree.flatten(nested)))["p"].b == 2.0


# --- errors and warnings of section 5 ---------------------------------------------------------

def test_grad_of_a_non_callable_raises_at_grad():
    for transform in (tg.grad, tg.value_and_grad, tg.jacobian):
        with pytest.raises(TypeError, match="callable"):
            transform(3)


def test_duplicate_argnums_is_a_value_error():
    with pytest.raises(ValueError, match="twice"):
        tg.grad(lambda x, y: x * y, argnums=(0, 0))
    g = tg.grad(lambda x, y: x * y, argnums=(1, -1))
    with pytest.raises(ValueError, match="twice"):
        g(1.0, 2.0)


def test_output_independent_of_input_warns_and_gives_zero():
    with pytest.warns(tg.TapegradWarning, match="Output seems independent of input"):
        assert tg.grad(lambda x: 5.0)(2.0) == 0.0
    with pytest.warns(tg.TapegradWarning, match="Output seems independent of input"):
        assert tg.grad(lambda x: x > 0)(2.0) == 0.0
    with pytest.warns(tg.TapegradWarning, match="independent"):
        np.testing.assert_array_equal(tg.jacobian(lambda x: np.ones(3))(np.ones(2)), np.zeros((3, 2)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tg.grad(lambda x: 0.0 * x)(2.0) == 0.0  # depends on x: no warning


def test_grad_of_grad_needs_traced_values_as_arguments():
    """grad of grad works when the traced value is an argument (tests/test_second_order.py);
    one read from the inner function's closure is refused with the fix named."""
    inner = tg.grad(lambda y: y * y)
    assert tg.grad(lambda x: inner(x))(2.0) == 2.0
    with pytest.raises(NotImplementedError, match="pass the value as an argument"):
        tg.grad(lambda x: tg.grad(lambda y: x * y)(1.0))(2.0)


def test_warning_points_at_the_callers_line():
    g = tg.grad(lambda x: x * np.random.normal())
    with pytest.warns(tg.TapegradWarning) as ws:
        g(1.0)
    assert ws[0].filename == __file__
    assert sys.modules[__name__] is not None


def test_closed_over_slice_is_guarded_by_value():
    """A slice kept in a closure is keyed by its value, not treated as an unknown object."""
    import warnings
    window = slice(0, 2)
    df = tg.grad(lambda x: tnp.sum(x[window] ** 2))
    x = np.arange(1.0, 5.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "cannot check" warning for a slice
        np.testing.assert_array_equal(df(x), [2.0, 4.0, 0.0, 0.0])
        window = slice(2, 4)
        np.testing.assert_array_equal(df(x), [0.0, 0.0, 6.0, 8.0])


def test_tape_refuses_to_replay_over_an_object_leaf():
    """Tape.forward cannot tell whether a baked-in object changed: it refuses."""
    class Model:
        scale = 2.0
    m = Model()
    tape = tg.record(lambda x, m: x * m.scale, 1.0, m)
    with pytest.raises(ValueError, match="cannot be compared"):
        tape.forward(1.0, m)
