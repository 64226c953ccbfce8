"""The benchmark's peer systems agree with the reference gradients (small problems only).

Each peer is checked only when its module is installed (none is a test dependency), on the
lecture function and a 10-point Rosenbrock (vectorised and as a loop), with the tolerances
the benchmark runner uses.
"""
import numpy as np
import pytest

from tapegrad.bench import peers
from tapegrad.bench.workloads import WORKLOADS

PROBLEMS = [("lecture", "scalar"), ("rosenbrock", 10), ("rosenbrock-loop", 10)]


@pytest.mark.parametrize("system", peers.PEERS, ids=lambda s: s.name)
@pytest.mark.parametrize("workload,size", PROBLEMS, ids=lambda v: str(v))
def test_peer_matches_reference(system, workload, size):
    pytest.importorskip(system.module)
    p = WORKLOADS[workload].make(size)
    grad = system.prepare(p)
    for _ in range(2):   # the first call (setup) and a steady-state one
        got = grad()
        if workload == "lecture":
            assert isinstance(got, float)
        else:
            assert isinstance(got, np.ndarray) and got.dtype == np.float64 and got.shape == p.reference.shape
        assert np.allclose(got, p.reference, rtol=p.rtol, atol=p.atol)


def test_peers_are_described():
    assert len({s.name for s in peers.PEERS}) == len(peers.PEERS)
    for s in peers.PEERS:
        assert s.peer and s.module and s.install.startswith("pip install")
