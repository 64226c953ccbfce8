"""``tapegrad bench``: tapegrad against a numpy baseline and peer AD systems.

``models`` holds each workload's function, written once as users write it; ``workloads``
the problems and their hand-written reference gradients; ``base`` the System interface;
``systems`` (tapegrad, numpy) and ``peers`` (the other AD systems) how each computes the
gradients; ``registry`` lists them all; ``timing`` measures, ``report`` shows, saves and
compares; ``tapegrad.cli`` is the command line.  Imports run one way only, in that order:
no module imports one listed after it.
"""
