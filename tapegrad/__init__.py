"""tapegrad: fast reverse-mode automatic differentiation on a flat Wengert tape.

Run a function on traced inputs once to record a tape of numpy columns; replay the tape
forward and sweep it backward with a numba-compiled interpreter as often as you like.

>>> import tapegrad as tg
>>> import tapegrad.numpy as tnp
>>> tg.grad(lambda x: tnp.sin(x) * x)(0.0)
0.0
"""
from tapegrad import numpy
from tapegrad.api import grad, record, value_and_grad
from tapegrad.batch import batch_grad, batch_value_and_grad
from tapegrad.capture import TapegradWarning
from tapegrad.checking import check_grads
from tapegrad.config import config
from tapegrad.explain import explain
from tapegrad.gradtable import trace_grad_table
from tapegrad.higher import hessian, hvp, jacobian, jvp
from tapegrad.replay import GuardFailed
from tapegrad.tape import Tape
from tapegrad.tracer import Traced
from tapegrad.emit.indexing import at

__version__ = "0.1.0"
__all__ = ["GuardFailed", "Tape", "TapegradWarning", "Traced", "at", "batch_grad", "batch_value_and_grad", "check_grads", "config", "explain", "grad", "hessian", "hvp", "jacobian", "jvp", "numpy", "record", "trace_grad_table",
           "value_and_grad"]
