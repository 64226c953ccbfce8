"""tapegrad.dask.value_and_grad_sum without a cluster: Dask's threaded scheduler.

The cluster tests (worker processes, a killed worker) are in test_dask_cluster.py."""
import io
import pickle
import subprocess
import sys
import warnings

import dask
import dask.array as da
import numpy as np
import pytest

import tapegrad as tg
import tapegrad.api as api
import tapegrad.dask as tgd
from tapegrad import shipping
import dask_cases
import tape_cases
from dask_cases import (assert_close, assert_same, blockwise, branchy_sum, masked_sum, mlp_problem,
                        mlp_sum, raises_on_large)


@pytest.fixture(autouse=True)
def threads():
    with dask.config.set(scheduler="threads"):
        yield


def test_import_tapegrad_does_not_import_dask():
    code = ("import sys, tapegrad, tapegrad.numpy, tapegrad.dask; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("split_every", [2, 3, 8])
def test_equals_blockwise_sum_bit_for_bit(rng, split_every):
    params, X, Y = mlp_problem(rng, n=1000)  # 7 blocks of 128 rows and one of 104
    result = tgd.value_and_grad_sum(mlp_sum, block_rows=128, split_every=split_every)(params, X, Y)
    assert_same(result, blockwise(mlp_sum, params, (X, Y), 128, split_every))
    assert isinstance(result[0], float) and isinstance(result[1], list)
    assert_close(result, tg.value_and_grad(mlp_sum)(params, X, Y))


def test_records_once_per_block_shape_and_loads_the_tapes_once(rng, monkeypatch):
    params, X, Y = mlp_problem(rng, n=1000)
    recorded = []
    real = api._record
    monkeypatch.setattr(api, "_record", lambda *a, **k: recorded.append(1) or real(*a, **k))
    monkeypatch.setattr(shipping, "_PLANS", shipping._PLANS.__class__())
    by100 = tgd.value_and_grad_sum(mlp_sum, block_rows=100)
    by128 = tgd.value_and_grad_sum(mlp_sum, block_rows=128)
    before = shipping.stats()
    by100(params, X, Y)  # 10 blocks, one shape
    by128(params, X, Y)  # 8 blocks, two shapes
    assert len(recorded) == 3
    # a later call with other parameter values and data reuses the payload and the loaded plan
    params2, X2, Y2 = mlp_problem(rng, n=1000)
    again = by128(params2, X2, Y2)
    assert len(recorded) == 3
    assert_same(again, blockwise(mlp_sum, params2, (X2, Y2), 128))
    after = shipping.stats()
    loaded = {k: v - before.get(k, 0) for k, v in after.items() if k[0] == "plans loaded"}
    assert sorted(v for v in loaded.values() if v) == [1, 1]
    assert after["blocks replayed"] - before.get("blocks replayed", 0) == 26
    assert after.get("blocks recorded", 0) == before.get("blocks recorded", 0)


def test_a_changed_global_is_not_served_from_a_stale_payload(rng):
    w, X = rng.normal(size=3), rng.normal(size=(500, 3))
    vgs = tgd.value_and_grad_sum(dask_cases.scaled_sum, block_rows=100)
    first = vgs(w, X)
    try:
        dask_cases.SCALE = 3.0
        again = vgs(w, X)
        assert_same(again, blockwise(dask_cases.scaled_sum, w, (X,), 100))
    finally:
        dask_cases.SCALE = 1.0
    np.testing.assert_allclose(again[1], 3 * first[1], rtol=1e-14)


def test_each_block_task_refers_to_the_tape_instead_of_holding_it(rng):
    params, X, Y = mlp_problem(rng, n=1000)
    lazy = tgd.value_and_grad_sum(mlp_sum, block_rows=100).delayed(params, X, Y)
    graph = dict(lazy.__dask_graph__())
    tape_keys = [k for k in graph if str(k).startswith("tapegrad-tape-")]
    blocks = [k for k in graph if str(k).startswith("tapegrad-block-")]
    assert len(tape_keys) == 1 and len(blocks) == 10
    # the tape travels without the recorded block's values: a fraction of its size
    payload = len(pickle.dumps(graph[tape_keys[0]]))
    assert payload < tg.record(mlp_sum, params, X[:100], Y[:100]).nbytes / 4
    for k in blocks:
        assert tape_keys[0] in graph[k].dependencies
        assert len(pickle.dumps(graph[k])) < 2_000


def test_dask_array_data(rng):
    params, X, Y = mlp_problem(rng, n=1000)
    Xd, Yd = da.from_array(X, chunks=(300, 8)), da.from_array(Y, chunks=(250, 3))
    result = tgd.value_and_grad_sum(mlp_sum)(params, Xd, Yd)  # Y is rechunked like X
    assert_same(result, blockwise(mlp_sum, params, (X, Y), 300))
    # numpy and dask data together: the numpy array takes the dask array's row chunks
    assert_same(tgd.value_and_grad_sum(mlp_sum)(params, Xd, Y), blockwise(mlp_sum, params, (X, Y), 300))
    # block_rows rechunks dask data
    assert_same(tgd.value_and_grad_sum(mlp_sum, block_rows=128)(params, Xd, Yd),
                blockwise(mlp_sum, params, (X, Y), 128))


def test_dask_array_with_unknown_chunk_sizes_is_refused(rng):
    params, X, Y = mlp_problem(rng, n=100)
    Xd = da.from_array(X, chunks=(50, 8))
    Xd = Xd[Xd[:, 0] > -10]  # boolean indexing: row counts unknown until computed
    with pytest.raises(ValueError, match=r"argument 1 has unknown chunk sizes \(nan, nan\)"):
        tgd.value_and_grad_sum(mlp_sum)(params, Xd, Y)


def test_dask_array_chunked_along_columns_is_refused(rng):
    params, X, Y = mlp_problem(rng, n=100)
    Xd = da.from_array(X, chunks=(50, 4))
    with pytest.raises(ValueError, match=r"argument 1 is chunked along axis 1 \(chunks "
                       r"\(\(50, 50\), \(4, 4\)\)\).*rechunk\(\{1: -1\}\)"):
        tgd.value_and_grad_sum(mlp_sum)(params, Xd, Y)


@pytest.mark.parametrize("call, error, message", [
    (lambda p, X, Y: tgd.value_and_grad_sum(mlp_sum)(p, X, Y[:-1]), ValueError,
     "different numbers of rows: argument 1: 100, argument 2: 99"),
    (lambda p, X, Y: tgd.value_and_grad_sum(mlp_sum)(p, X, Y.astype(int)), TypeError,
     "argument 2 has dtype int64: data arguments must be float arrays"),
    (lambda p, X, Y: tgd.value_and_grad_sum(mlp_sum)(p, X, 2.0), TypeError, "argument 2 is a scalar"),
    (lambda p, X, Y: tgd.value_and_grad_sum(mlp_sum)(p, X[:0], Y[:0]), ValueError, "no rows"),
    (lambda p, X, Y: tgd.value_and_grad_sum(mlp_sum, argnums=(0, 1, 2))(p, X, Y), TypeError,
     "has none"),
    (lambda p, X, Y: tgd.value_and_grad_sum(lambda w, X: X, argnums=0)(p, X), TypeError,
     "scalar output"),
    (lambda p, X, Y: tgd.value_and_grad_sum(mlp_sum, argnums=1)(p, da.from_array(X), Y), TypeError,
     "argument 1 \\(differentiated\\) is a dask array"),
    (lambda p, X, Y: tgd.value_and_grad_sum(mlp_sum, block_rows=0), ValueError, "block_rows"),
    (lambda p, X, Y: tgd.value_and_grad_sum(mlp_sum, split_every=1), ValueError, "split_every"),
    (lambda p, X, Y: tgd.value_and_grad_sum("mlp_sum"), TypeError, "needs a callable"),
])
def test_bad_calls_are_named(rng, call, error, message):
    params, X, Y = mlp_problem(rng, n=100)
    with pytest.raises(error, match=message):
        call(params, X, Y)


def test_branchy_function_records_the_blocks_whose_guards_fail(rng):
    w = rng.normal(size=3)
    X = rng.normal(size=(600, 3))
    X[:, 0] += np.repeat([1.0, -1.0, 1.0, -1.0, -1.0, 1.0], 100)  # the branch flips by block
    before = shipping.stats()
    result = tgd.value_and_grad_sum(branchy_sum, block_rows=100)(w, X)
    assert_same(result, blockwise(branchy_sum, w, (X,), 100))
    after = shipping.stats()
    assert after["blocks recorded"] - before.get("blocks recorded", 0) >= 1  # where the guard failed
    assert after["blocks replayed"] - before.get("blocks replayed", 0) >= 3


def test_a_raise_on_some_block_surfaces_with_its_type_and_message(rng):
    w, X = rng.normal(size=3), rng.normal(size=(500, 3))
    X[321, 1] = 1e3  # in the fourth block; the tape is recorded at the first
    with pytest.raises(ValueError, match="^a row holds a value above 100$"):
        tgd.value_and_grad_sum(raises_on_large, block_rows=100)(w, X)


def test_a_mask_is_recorded_on_every_block_with_a_warning(rng):
    w, X = rng.normal(size=3), rng.normal(size=(500, 3))
    before = shipping.stats()
    with pytest.warns(tg.TapegradWarning, match="every block is recorded on its worker"):
        result = tgd.value_and_grad_sum(masked_sum, block_rows=100)(w, X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tg.TapegradWarning)
        assert_same(result, blockwise(masked_sum, w, (X,), 100))
    assert shipping.stats()["blocks recorded"] - before.get("blocks recorded", 0) == 5


def test_nan_in_one_row_acts_as_in_memory(rng):
    params, X, Y = mlp_problem(rng, n=1000)
    X[437, 2] = np.nan
    result = tgd.value_and_grad_sum(mlp_sum, block_rows=128)(params, X, Y)
    assert_same(result, blockwise(mlp_sum, params, (X, Y), 128))  # NaN where NaN
    whole = tg.value_and_grad(mlp_sum)(params, X, Y)
    assert np.isnan(result[0]) and np.isnan(whole[0])
    for g, r in zip(result[1], whole[1]):
        np.testing.assert_array_equal(np.isnan(g), np.isnan(r))


@pytest.mark.parametrize("case", sorted(tape_cases.CASES))
def test_a_shipped_tape_replays_like_the_recorded_one(case):
    """Shipped tapes carry only their constants' values (every op of the table is in the
    "mixed" case): replays at other arguments agree bit for bit with the full tape."""
    f, make = tape_cases.CASES[case]
    tape = tg.record(f, *make(np.random.default_rng(0)))
    shipped = tg.Tape.load(io.BytesIO(shipping.shipped_file(tape)))
    assert not np.array_equal(shipped.values, tape.values)
    for seed in (1, 2):
        args = make(np.random.default_rng(seed))
        tape_cases.assert_same_tree(shipped.value_and_gradient(*args), tape.value_and_gradient(*args))
