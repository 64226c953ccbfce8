"""A fresh process's import and first gradient load only what that gradient needs; the
public names stay the same."""
import os
import subprocess
import sys

import pytest

import tapegrad as tg

LAZY_MODULES = ("tapegrad.batch", "tapegrad.checking", "tapegrad.gradtable", "tapegrad.higher")
# numba's linear algebra and string support: a first gradient loads no code that needs them
NUMBA_UNUSED = ("numba.np.linalg", "numba.cpython.unicode")


def test_every_public_name_resolves_and_is_listed():
    for name in tg.__all__:
        assert getattr(tg, name) is not None, name
    assert set(tg.__all__) <= set(dir(tg))
    assert tg.jacobian.__module__ == "tapegrad.higher" and tg.explain.__module__ == "tapegrad.explain"
    try:
        tg.no_such_name
    except AttributeError as err:
        assert "no_such_name" in str(err)
    else:
        raise AssertionError("a missing attribute must raise AttributeError")


def test_a_first_gradient_does_not_import_what_it_does_not_use():
    """In a fresh process, with the kernels in the on-disk cache (this process fills it)."""
    import tapegrad.jit as J

    expected = tg.grad(lambda x: tg.numpy.sqrt(x ** 2 + tg.numpy.exp(x ** 2)))(0.7)
    if J.CACHE_STATUS.get("forward_sweep") != "disk":
        pytest.skip("kernels are compiled in memory here: the child would compile them")
    code = ("import sys, tapegrad as tg, tapegrad.numpy as tnp\n"
            "print(tg.grad(lambda x: tnp.sqrt(x ** 2 + tnp.exp(x ** 2)))(0.7))\n"
            f"print(*[m for m in {LAZY_MODULES + NUMBA_UNUSED!r} if m in sys.modules])\n"
            "from tapegrad.jit import OPS, compile as C\n"
            "rules = [f for row in OPS for f in (row.forward, row.backward) if isinstance(f, C.LazyRule)]\n"
            "print(len(rules), sum(f._dispatcher is not None for f in rules))\n"
            "from tapegrad import *\n"
            f"print(*[m for m in {LAZY_MODULES!r} if m in sys.modules])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                         env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    value, unused, rules, star = out.stdout.split("\n")[:4]
    assert float(value) == expected
    assert unused == ""
    made, total = int(rules.split()[1]), int(rules.split()[0])
    assert total > 100 and made == 0  # no rule's dispatcher: the kernels came from the cache
    assert star.split() == list(LAZY_MODULES)  # a star import loads them all


def test_the_blas_and_lapack_signatures_written_out_are_numbas():
    """``ops_linalg`` and ``lapack`` spell out numba's helper signatures instead of importing
    numba.np.linalg at import time; they must be the ones numba gives."""
    import numba
    from numba.np.linalg import _BLAS, _LAPACK

    from tapegrad.jit import lapack, ops_linalg

    ours = [ops_linalg.xxgemm, lapack.getrf, lapack.getri, lapack.gesv, lapack.potrf, lapack.syevd, lapack.gesdd]
    numbas = [_BLAS.numba_xxgemm, _LAPACK.numba_xxgetrf, _LAPACK.numba_ez_xxgetri, _LAPACK.numba_xgesv,
              _LAPACK.numba_xxpotrf, _LAPACK.numba_ez_xxxevd, _LAPACK.numba_ez_gesdd]
    for mine, method in zip(ours, numbas):
        theirs = method(numba.float64)
        assert (mine.symbol, mine.sig) == (theirs.symbol, theirs.sig)


def test_the_import_leaves_the_garbage_collector_as_it_found_it():
    """The import pauses the collector and moves what it created to the oldest generation;
    afterwards the collector is on, nothing is frozen, and garbage cycles are collected.  A
    collector the caller switched off, or objects it froze, are left alone."""
    code = ("import gc, weakref\n{before}\nimport tapegrad\n"
            "class Node: pass\n"
            "a, b = Node(), Node(); a.b, b.a = b, a; alive = weakref.ref(a); del a, b\n"
            "gc.collect()\n"
            "print(gc.isenabled(), gc.get_freeze_count() > 0, alive() is None)\n")
    cases = {"": "True False True", "gc.disable()": "False False True",
             "gc.freeze()": "True True True"}
    for before, expected in cases.items():
        out = subprocess.run([sys.executable, "-c", code.format(before=before)], capture_output=True,
                             text=True, timeout=600, env=dict(os.environ))
        assert out.returncode == 0, out.stderr
        assert out.stdout.split()[-3:] == expected.split(), before


def test_a_lazy_rule_acts_as_its_dispatcher():
    from tapegrad.jit.compile import LazyRule, rule

    def twice(x):
        """Doubles."""
        return 2.0 * x

    lazy = rule(twice)
    assert isinstance(lazy, LazyRule) and lazy._dispatcher is None
    assert (lazy.__name__, lazy.__doc__) == ("twice", "Doubles.") and lazy._dispatcher is None
    assert rule(lazy) is lazy
    assert lazy(1.5) == 3.0 and lazy.py_func is twice and lazy._dispatcher is not None
