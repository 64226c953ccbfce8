"""tapegrad.jit: the numba back end.  It sees only numpy arrays and integers.

``optable`` defines the opcodes, ``interpreter`` replays a tape forward and sweeps it
backward, ``compile`` decides how kernels are compiled and cached.
"""
from .compile import CACHE_STATUS, package_digest
from .interpreter import ADD, A_SHIFT, B_SHIFT, NEED_OUT, PROG_COLUMNS, SET, activity, backward_sweep, forward_sweep
from .array_kernels import SLOT_BITS
from .optable import CODES, NAMES, OPS

__all__ = ["CACHE_STATUS", "CODES", "NAMES", "NEED_OUT", "OPS", "PROG_COLUMNS", "ADD", "A_SHIFT", "B_SHIFT", "SET", "SLOT_BITS", "activity", "backward_sweep", "forward_sweep",
           "package_digest"]
