"""``tapegrad bench``: tapegrad against a numpy baseline and peer AD systems.

``workloads`` defines the problems and their reference gradients, ``systems`` how each
system computes those gradients, ``timing`` how they are measured, ``report`` how results
are shown, saved and compared; ``tapegrad.cli`` is the command line.
"""
