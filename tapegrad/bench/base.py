"""What a benchmarked system is: the :class:`System` interface, shared by ``systems``
(tapegrad and the numpy baseline) and ``peers`` (the other AD systems).

A system has one method per workload it implements, named after the workload
(``rosenbrock_loop`` for ``rosenbrock-loop``).  The method turns a
:class:`~tapegrad.bench.workloads.Problem` into a zero-argument function returning the
gradient (numpy arrays, in the reference's structure), or into a :class:`Timed` when the
timed call is not itself the gradient.  Everything done before that function exists, and
its first call, is *setup* (recording, tracing, compiling); repeated calls are the *steady
state*.  A system that has a method but no way to do the work raises :class:`Unsupported`
and is reported as such, never with a made-up figure; a system without the method has no
row for that workload.

This module imports no other part of the bench: ``systems``, ``peers`` and ``registry``
import it, never the other way round.
"""
import importlib.metadata
import importlib.util
import inspect
from dataclasses import dataclass
from typing import Callable


class Unsupported(Exception):
    """The system has no way (yet) to compute this workload."""


@dataclass
class Timed:
    """A prepared workload whose timed call is not the gradient (``record``: building the
    recording).  ``check()`` computes the gradient from what ``call`` builds, to be checked
    against the reference; ``entries`` and ``nbytes`` describe one recording (None when the
    system does not say); ``program_nbytes`` is what tapegrad derives from its stored tape
    to run it (``Tape.program_nbytes``)."""
    call: Callable
    check: Callable
    entries: int = None
    nbytes: int = None
    program_nbytes: int = None


def source(fn):
    """``fn``'s source, to paste into a program run in a fresh process (``first_gradient``),
    which must not import the bench (that would time importing tapegrad for every system)."""
    return inspect.getsource(fn)


class System:
    name = ""          # as used by --systems
    module = ""        # the import that must succeed for the system to run
    install = ""       # how to get it, shown when it is missing
    peer = True        # False for tapegrad's rows and the numpy baseline: not in "x best peer"
    note = ""          # shown under the table when the system has rows (what an extra row is)

    def available(self):
        return importlib.util.find_spec(self.module) is not None

    def version(self):
        try:
            return importlib.metadata.version(self.module)
        except importlib.metadata.PackageNotFoundError:
            return getattr(importlib.import_module(self.module), "__version__", "?")

    def _method(self, workload):
        return getattr(self, workload.replace("-", "_"), None)

    def covers(self, workload):
        """Whether the system has a row for ``workload`` at all."""
        return self._method(workload) is not None

    def prepare(self, problem):
        """A function computing ``problem``'s gradient (or a :class:`Timed`); raises
        Unsupported if there is none.  For ``first-gradient``: Python source that imports the
        system and prints the lecture gradient at ``problem.data['x']``, run in a fresh
        process."""
        method = self._method(problem.workload)
        if method is None:
            raise Unsupported(f"{self.name} has no {problem.workload} implementation")
        return method(problem)
