"""A fresh process's import and first gradient load only what that gradient needs; the
public names stay the same."""
import os
import subprocess
import sys

import tapegrad as tg

LAZY_MODULES = ("tapegrad.batch", "tapegrad.checking", "tapegrad.gradtable", "tapegrad.higher")


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
    code = ("import sys, tapegrad as tg, tapegrad.numpy as tnp\n"
            "print(tg.grad(lambda x: tnp.sqrt(x ** 2 + tnp.exp(x ** 2)))(0.7))\n"
            f"print(*[m for m in {LAZY_MODULES!r} if m in sys.modules])\n"
            "from tapegrad import *\n"
            f"print(*[m for m in {LAZY_MODULES!r} if m in sys.modules])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                         env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    value, unused, star = out.stdout.split("\n")[:3]
    assert float(value) == tg.grad(lambda x: tg.numpy.sqrt(x ** 2 + tg.numpy.exp(x ** 2)))(0.7)
    assert unused == ""
    assert star.split() == list(LAZY_MODULES)  # a star import loads them all
