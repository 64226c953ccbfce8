"""tapegrad.dask.value_and_grad_sum on a real cluster: a distributed.LocalCluster with two
worker processes (one thread each, restarted by their nannies) and a Client, as users
start them.  One cluster serves the whole module, to keep CI time down."""
import os
import signal
import time

import dask
import dask.array as da
import numpy as np
import pytest
from distributed import Client, LocalCluster

import tapegrad as tg
import tapegrad.dask as tgd
from tapegrad import shipping
from dask_cases import assert_close, assert_same, blockwise, branchy_sum, mlp_problem, mlp_sum, raises_on_large


@pytest.fixture(scope="module")
def client():
    # compile (or load) the kernels here first, so that the workers load them from the cache
    tg.value_and_grad(mlp_sum)(*mlp_problem(np.random.default_rng(0), n=4))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      env={"NUMBA_NUM_THREADS": "1"}) as cluster, Client(cluster) as c:
        c.wait_for_workers(2)
        yield c


def _worker_stats(client):
    return client.run(shipping.stats)


def _loaded_per_worker(before, after):
    """{worker: {token: plans loaded during the call}}, without the tokens loaded before."""
    return {w: {k[1]: n - before.get(w, {}).get(k, 0) for k, n in s.items()
                if k[0] == "plans loaded" and n - before.get(w, {}).get(k, 0)}
            for w, s in after.items()}


def test_equals_blockwise_sum_and_ships_the_tape_once_per_worker(client, rng):
    params, X, Y = mlp_problem(rng, n=3000)  # 23 blocks of 128 rows and one of 56
    before = _worker_stats(client)
    result = tgd.value_and_grad_sum(mlp_sum, block_rows=128, split_every=4)(params, X, Y)
    after = _worker_stats(client)
    assert_same(result, blockwise(mlp_sum, params, (X, Y), 128, split_every=4))
    assert_close(result, tg.value_and_grad(mlp_sum)(params, X, Y))
    loaded = _loaded_per_worker(before, after)
    tokens = {t for per in loaded.values() for t in per}
    assert len(tokens) == 1  # one payload, holding the tapes of both block shapes
    assert all(n == 1 for per in loaded.values() for n in per.values())  # once per worker
    replayed = sum(s.get("blocks replayed", 0) - before[w].get("blocks replayed", 0)
                   for w, s in after.items())
    assert replayed == 24
    assert all(s.get("blocks replayed", 0) > before[w].get("blocks replayed", 0) for w, s in after.items())


def test_dask_array_data_generated_on_the_workers(client):
    X = da.random.default_rng(7).normal(size=(2000, 8), chunks=(300, 8))
    Y = (da.random.default_rng(8).uniform(size=(2000, 3), chunks=(300, 3)) > 0.5).astype(float)
    params = mlp_problem(np.random.default_rng(9), n=1)[0]
    result = tgd.value_and_grad_sum(mlp_sum)(params, X, Y)
    Xn, Yn = dask.compute(X, Y)
    assert_same(result, blockwise(mlp_sum, params, (Xn, Yn), 300))


def test_guards_that_fail_on_a_worker_record_there(client, rng):
    w = rng.normal(size=3)
    X = rng.normal(size=(800, 3))
    X[:, 0] += np.repeat([1.0, -1.0, 1.0, -1.0, -1.0, 1.0, -1.0, 1.0], 100)
    before = _worker_stats(client)
    result = tgd.value_and_grad_sum(branchy_sum, block_rows=100)(w, X)
    after = _worker_stats(client)
    assert_same(result, blockwise(branchy_sum, w, (X,), 100))
    recorded = sum(s.get("blocks recorded", 0) - before[k].get("blocks recorded", 0) for k, s in after.items())
    assert recorded >= 2


def test_a_raise_on_a_worker_surfaces_with_its_type_and_message(client, rng):
    w, X = rng.normal(size=3), rng.normal(size=(1000, 3))
    X[777, 2] = -1.0
    X[777, 0] = 5e3
    with pytest.raises(ValueError, match="^a row holds a value above 100$"):
        tgd.value_and_grad_sum(raises_on_large, block_rows=100)(w, X)


def test_nan_in_one_row_acts_as_in_memory(client, rng):
    params, X, Y = mlp_problem(rng, n=1000)
    X[613, 5] = np.nan
    result = tgd.value_and_grad_sum(mlp_sum, block_rows=128)(params, X, Y)
    assert_same(result, blockwise(mlp_sum, params, (X, Y), 128))
    assert np.isnan(result[0])


@pytest.mark.filterwarnings("ignore:Sending large graph")  # the oracle's data, sent once
def test_a_worker_killed_mid_computation_changes_nothing(client):
    """SIGKILL a worker process once it holds finished blocks and more are running: the
    scheduler recomputes what it held (data, tape, blocks) and the nanny restarts it."""
    n, block = 120_000, 3000
    X = da.random.default_rng(1).normal(size=(n, 32), chunks=(block, 32))
    Y = (da.random.default_rng(2).uniform(size=(n, 10), chunks=(block, 10)) > 0.9).astype(float)
    params = mlp_problem(np.random.default_rng(3), n=1, d=32, hidden=256, k=10)[0]
    pids = client.run(os.getpid)
    future = client.compute(tgd.value_and_grad_sum(mlp_sum).delayed(params, X, Y))
    victim, deadline = None, time.monotonic() + 60
    while victim is None and time.monotonic() < deadline:
        for worker, keys in client.has_what().items():
            if sum(str(k).startswith("tapegrad-block-") for k in keys) >= 2:
                victim = worker
        time.sleep(0.005)
    assert victim is not None and not future.done(), "the computation ended before the kill"
    os.kill(pids[victim], signal.SIGKILL)
    result = future.result(timeout=180)
    client.wait_for_workers(2, timeout=60)
    assert pids[victim] not in client.run(os.getpid).values()
    Xn, Yn = dask.compute(X, Y, scheduler="threads")
    # the oracle runs in a worker process: its BLAS is single-threaded there too, and a
    # multi-threaded BLAS may add a long matrix product's terms in another order
    oracle = client.submit(blockwise, mlp_sum, params, (Xn, Yn), block, pure=False).result()
    assert_same(result, oracle)


# --- batch_grad / batch_value_and_grad on dask arrays (test_dask_batch.py has the rest) -------
def test_batch_grad_on_workers_equals_in_memory_and_ships_the_tape_once_per_worker(client, rng):
    from dask_batch_cases import assert_same_tree, lecture_point
    x = rng.normal(size=20_000)
    x[12_345] = np.nan
    xd = client.persist(da.from_array(x, chunks=1000))  # the points live on the workers
    before = _worker_stats(client)
    values, grads = tg.batch_value_and_grad(lecture_point)(xd)
    got = dask.compute(values, grads)
    after = _worker_stats(client)
    assert_same_tree(got, tg.batch_value_and_grad(lecture_point)(x))
    assert np.isnan(got[1][12_345]) and np.isnan(got[1]).sum() == 1
    loaded = _loaded_per_worker(before, after)
    assert len({t for per in loaded.values() for t in per}) == 1
    assert all(n == 1 for per in loaded.values() for n in per.values())
    assert sum(s.get("batch blocks", 0) - before[w].get("batch blocks", 0) for w, s in after.items()) == 20


def test_batch_grad_branches_and_raises_on_workers(client, rng):
    from dask_batch_cases import (assert_same_tree, branchy_point, example_loss, mlp_params,
                                  raises_on_large_point)
    X = rng.normal(size=(3000, 3))
    X[:, 0] = np.abs(X[:, 0]) * np.where(rng.uniform(size=3000) < 0.5, 1.0, -1.0)
    X[0, 0] = 1.0  # recorded on the first branch; the other is recorded on the workers
    Xd = da.from_array(X, chunks=(500, 3))
    assert_same_tree(tg.batch_grad(branchy_point)(Xd).compute(), tg.batch_grad(branchy_point)(X))
    params, Y = mlp_params(rng), np.eye(3)[rng.integers(0, 3, 400)]
    Xm = rng.normal(size=(400, 8))
    per_example = tg.batch_grad(example_loss, in_axes=(None, 0, 0))
    got = per_example(params, da.from_array(Xm, chunks=(100, 8)), da.from_array(Y, chunks=(100, 3)))
    assert_same_tree(dask.compute(got)[0], per_example(params, Xm, Y))
    X[2222, 1] = 1e3
    with pytest.raises(ValueError, match="^a point holds a value above 100$"):
        tg.batch_grad(raises_on_large_point)(da.from_array(X, chunks=(500, 3))).compute()
