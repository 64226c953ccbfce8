"""tapegrad.jit: the numba back end.  It sees only numpy arrays and integers.

``optable`` assembles the opcodes from the family modules (``ops_*``), ``dispatch`` (generated
by ``gen_dispatch``) replays a tape forward and sweeps it backward, ``interpreter`` holds the
program layout and activity analysis, ``compile`` decides how kernels are compiled and cached.
"""
from .compile import CACHE_STATUS, package_digest
from .interpreter import ADD, A_SHIFT, B_SHIFT, NEED_OUT, PROG_COLUMNS, SET, SLOT_BITS, activity, load_sweeps
from .optable import CODES, NAMES, OPS

forward_sweep, backward_sweep = load_sweeps()

__all__ = ["CACHE_STATUS", "CODES", "NAMES", "NEED_OUT", "OPS", "PROG_COLUMNS", "ADD", "A_SHIFT", "B_SHIFT", "SET", "SLOT_BITS", "activity", "backward_sweep", "forward_sweep",
           "package_digest"]
