"""Every benchmarked system computes the same gradients as the numpy reference, on small
problems, running the same user-style functions (``tapegrad.bench.models``).

Each system is checked only when its module is installed (no peer is a test dependency),
on every workload it has a row for among: the lecture function, a 10-point Rosenbrock
(vectorised and as a loop), a small MLP written as users write it, and recording a short
scalar loop; with the tolerances the benchmark runner uses.
"""
import numpy as np
import pytest

from tapegrad.bench import peers, registry, timing
from tapegrad.bench.base import Timed
from tapegrad.bench.workloads import WORKLOADS

PROBLEMS = [("lecture", "scalar"), ("rosenbrock", 10), ("rosenbrock-loop", 10), ("mlp", "5-4-3x6"),
            ("record", 20)]
SYSTEMS = list(registry.all_systems().values())


@pytest.mark.parametrize("system", SYSTEMS, ids=lambda s: s.name)
@pytest.mark.parametrize("workload,size", PROBLEMS, ids=lambda v: str(v))
def test_system_matches_reference(system, workload, size):
    pytest.importorskip(system.module)
    if not system.covers(workload):
        pytest.skip(f"{system.name} has no {workload} row")
    p = WORKLOADS[workload].make(size)
    prepared = system.prepare(p)
    call, check = (prepared.call, prepared.check) if isinstance(prepared, Timed) else (prepared, prepared)
    for _ in range(2):   # the first call (setup) and a steady-state one
        call()
        got = check()
        if workload == "lecture":
            assert isinstance(got, float)
        for g, r in zip(got if workload == "mlp" else [got], p.reference if workload == "mlp" else [p.reference]):
            if workload != "lecture":
                assert isinstance(g, np.ndarray) and g.dtype == np.float64 and g.shape == r.shape
        assert timing.max_error(got, p.reference, p.rtol, p.atol) is None


def test_every_system_has_a_headline_row_except_the_extra_ones():
    extra = {"tapegrad-fused", "tapegrad-1thread"}
    for s in SYSTEMS:
        assert s.covers("mlp") == (s.name != "tapegrad-1thread")
        assert s.covers("lecture") == (s.name not in extra)


def test_peers_are_described():
    assert len({s.name for s in peers.PEERS}) == len(peers.PEERS)
    for s in peers.PEERS:
        assert s.peer and s.module and s.install.startswith("pip install")
