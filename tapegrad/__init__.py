"""tapegrad: fast reverse-mode automatic differentiation on a flat Wengert tape.

Run a function on traced inputs once to record a tape of numpy columns; replay the tape
forward and sweep it backward with a numba-compiled interpreter as often as you like.

>>> import tapegrad as tg
>>> import tapegrad.numpy as tnp
>>> tg.grad(lambda x: tnp.sin(x) * x)(0.0)
0.0

Importing tapegrad loads what a first gradient needs; the other public names (``_LAZY``)
are imported on first use, so that a fresh process that only takes gradients does not pay
for them.  The import (numba's with it) creates ~60k long-lived objects: the cyclic garbage
collector is paused meanwhile, and they join its oldest generation afterwards, as if a
collection had found them alive, instead of being traversed by the ~100 collections the
import would otherwise trigger (~25 ms of a fresh process).  Only when the collector is on
and nothing is frozen (``gc.freeze``), which the import leaves so.
"""
import gc as _gc
import importlib

_PAUSE_GC = _gc.isenabled() and _gc.get_freeze_count() == 0
if _PAUSE_GC:
    _gc.disable()
try:
    from tapegrad import numpy
    from tapegrad.api import grad, record, value_and_grad
    from tapegrad.capture import TapegradWarning
    from tapegrad.config import config
    from tapegrad.explain import explain  # not lazy: importing the submodule would rebind the name
    from tapegrad.replay import GuardFailed
    from tapegrad.tape import Tape
    from tapegrad.tracer import Traced
    from tapegrad.emit.indexing import at
finally:
    if _PAUSE_GC:
        _gc.freeze()  # every tracked object to the permanent generation ...
        _gc.unfreeze()  # ... and from there to the oldest one: none is traversed now
        _gc.enable()

__version__ = "0.1.0"
__all__ = ["GuardFailed", "Tape", "TapegradWarning", "Traced", "at", "batch_grad", "batch_value_and_grad", "check_grads", "config", "explain", "grad", "hessian", "hvp", "jacobian", "jvp", "numpy", "record", "trace_grad_table",
           "value_and_grad"]
# public name -> the module that defines it, imported when the name is first looked up
_LAZY = {"batch_grad": "tapegrad.batch", "batch_value_and_grad": "tapegrad.batch",
         "check_grads": "tapegrad.checking", "trace_grad_table": "tapegrad.gradtable",
         "hessian": "tapegrad.higher", "hvp": "tapegrad.higher", "jacobian": "tapegrad.higher",
         "jvp": "tapegrad.higher"}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'tapegrad' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
