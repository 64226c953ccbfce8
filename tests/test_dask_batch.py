"""tg.batch_grad / batch_value_and_grad on dask arrays, with Dask's threaded scheduler.

Every result is compared bit for bit with the in-memory call at the computed arrays (see
dask_batch_cases).  The cluster tests are in test_dask_cluster.py."""
import pickle
import warnings

import dask
import dask.array as da
import numpy as np
import pytest

import tapegrad as tg
import tapegrad.dask as tgd
import tapegrad.numpy as tnp
from tapegrad import shipping
from dask_batch_cases import (assert_same_tree, branchy_point, example_loss, lecture_point,
                              masked_point, mlp_params, raises_on_large_point)


@pytest.fixture(autouse=True)
def threads():
    with dask.config.set(scheduler="threads"):
        yield


def _blocks_run():
    return shipping.stats().get("batch blocks", 0)


def test_lecture_function_is_lazy_chunked_like_its_input_and_bitwise_equal(rng):
    x = rng.normal(size=1000)
    xd = da.from_array(x, chunks=300)
    before = _blocks_run()
    g = tg.batch_grad(lecture_point)(xd)
    values, g2 = tg.batch_value_and_grad(lecture_point)(xd)
    assert _blocks_run() == before  # nothing ran but the first point, on the client
    assert all(isinstance(a, da.Array) for a in (g, values, g2))
    assert g.chunks == values.chunks == ((300, 300, 300, 100),)
    assert_same_tree(g.compute(), tg.batch_grad(lecture_point)(x))
    assert_same_tree(dask.compute(values, g2), tg.batch_value_and_grad(lecture_point)(x))
    assert _blocks_run() - before == 8  # 4 blocks, per computed collection
    assert_same_tree(g.persist().compute(), tg.batch_grad(lecture_point)(x))


def test_per_example_gradients_with_shared_parameters(rng):
    params = mlp_params(rng)
    X, Y = rng.normal(size=(250, 8)), np.eye(3)[rng.integers(0, 3, 250)]
    Xd, Yd = da.from_array(X, chunks=(64, 8)), da.from_array(Y, chunks=(100, 3))  # Y rechunked
    grads = tg.batch_grad(example_loss, in_axes=(None, 0, 0))(params, Xd, Yd)
    assert isinstance(grads, list) and all(isinstance(g, da.Array) for g in grads)
    assert [g.chunks[0] for g in grads] == [(64, 64, 64, 58)] * 4
    want = tg.batch_grad(example_loss, in_axes=(None, 0, 0))(params, X, Y)
    assert_same_tree(dask.compute(grads)[0], want)
    # the parameters differentiated too, a dict of them, and the data as numpy beside dask
    p = dict(zip("abcd", params))
    loss = lambda p, x, y: example_loss([p[k] for k in "abcd"], x, y)  # noqa: E731
    both = tg.batch_value_and_grad(loss, argnums=(0, 1), in_axes=(None, 0, 0))
    values, (gp, gx) = both(p, Xd, Y)
    assert sorted(gp) == list("abcd") and gx.chunks[0] == (64, 64, 64, 58)
    assert_same_tree(dask.compute(values, (gp, gx)), both(p, X, Y))


def test_branches_differ_within_a_block_and_across_blocks(rng):
    X = rng.normal(size=(120, 3))
    X[:, 0] = np.abs(X[:, 0]) * np.repeat([1, -1, 1, -1, -1, 1], 20)  # the branch by rows
    X[45, 0] = 0.5  # a point of the first branch among the second's
    Xd = da.from_array(X, chunks=(40, 3))  # blocks: mixed, mixed, mixed (first point: branch 1)
    values, grads = tg.batch_value_and_grad(branchy_point)(Xd)
    assert_same_tree(dask.compute(values, grads), tg.batch_value_and_grad(branchy_point)(X))
    Xd = da.from_array(X, chunks=(20, 3))  # whole blocks on one branch, the other one's first
    assert_same_tree(tg.batch_grad(branchy_point)(Xd[20:]).compute(),
                     tg.batch_grad(branchy_point)(X[20:]))
    vg = tg.value_and_grad(branchy_point)  # the oracle's oracle, at both branches
    for i in (0, 20, 45, 119):
        assert values.compute()[i] == vg(X[i])[0]


def test_chunks_along_other_axes_are_merged_and_the_batch_axis_may_be_any(rng):
    X, c = rng.normal(size=(90, 6)), rng.normal(size=6)
    f = lambda x, c: tnp.sum(tnp.sin(x) * c) * x[0]  # noqa: E731
    Xd = da.from_array(X, chunks=(25, 4))  # chunked along both axes
    g = tg.batch_grad(f, in_axes=(0, None))(Xd, c)
    assert g.chunks == ((25, 25, 25, 15), (6,))
    assert_same_tree(g.compute(), tg.batch_grad(f, in_axes=(0, None))(X, c))
    XT = da.from_array(X.T, chunks=(2, 30))  # the points along axis 1
    g = tg.batch_grad(f, in_axes=(1, None))(XT, c)
    assert g.chunks == ((30, 30, 30), (6,))
    assert_same_tree(g.compute(), tg.batch_grad(f, in_axes=(1, None))(X.T, c))


def test_shared_dask_arrays_are_computed_on_the_client(rng):
    W, X = rng.normal(size=(2, 4)), rng.normal(size=(50, 4))
    f = lambda w, x: tnp.sum(tnp.tanh(x @ w.T) ** 2)  # noqa: E731
    batched = tg.batch_grad(f, argnums=(0, 1), in_axes=(None, 0))
    got = batched(da.from_array(W, chunks=(1, 2)), da.from_array(X, chunks=(16, 4)))
    assert all(isinstance(g, da.Array) for g in got)
    assert_same_tree(dask.compute(got)[0], batched(W, X))
    only_shared = batched(da.from_array(W), X)  # no batched dask array: one block
    assert only_shared[1].chunks == ((50,), (4,))
    assert_same_tree(dask.compute(only_shared)[0], batched(W, X))


def test_nan_at_one_point_stays_at_that_point(rng):
    X = rng.normal(size=(100, 3))
    X[57, 1] = np.nan
    f = lambda x: tnp.sum(tnp.sin(x) * x[0]) + tnp.sum(x @ x)  # noqa: E731
    got = tg.batch_grad(f)(da.from_array(X, chunks=(30, 3))).compute()
    assert np.isnan(got[57]).any() and not np.isnan(np.delete(got, 57, axis=0)).any()
    assert_same_tree(got, tg.batch_grad(f)(X))


def test_a_raise_on_some_block_surfaces_with_its_type_and_message(rng):
    X = rng.normal(size=(200, 3))
    X[163, 2] = 1e3  # in the fourth block; the tape is recorded at the first point
    g = tg.batch_grad(raises_on_large_point)(da.from_array(X, chunks=(50, 3)))
    with pytest.raises(ValueError, match="^a point holds a value above 100$"):
        g.compute()


def test_empty_and_single_chunk_arrays(rng):
    params = mlp_params(rng)
    both = tg.batch_value_and_grad(example_loss, argnums=(0, 1), in_axes=(None, 0, 0))
    empty = both(params, da.zeros((0, 8), chunks=(5, 8)), da.zeros((0, 3), chunks=(5, 3)))
    assert all(isinstance(a, da.Array) for a in tg.pytree.flatten(empty)[0])
    assert_same_tree(dask.compute(empty)[0], both(params, np.zeros((0, 8)), np.zeros((0, 3))))
    X = rng.normal(size=(7, 8))
    Y = np.eye(3)[rng.integers(0, 3, 7)]
    one = both(params, da.from_array(X), da.from_array(Y))
    assert one[0].chunks == ((7,),)
    assert_same_tree(dask.compute(one)[0], both(params, X, Y))
    x = da.from_array(rng.normal(size=9), chunks=((4, 0, 5),))  # an empty chunk inside
    assert_same_tree(tg.batch_grad(lecture_point)(x).compute(), tg.batch_grad(lecture_point)(x.compute()))


def test_the_tape_is_one_graph_key_loaded_once_whatever_the_blocks(rng, monkeypatch):
    monkeypatch.setattr(shipping, "_PLANS", shipping._PLANS.__class__())
    x = rng.normal(size=2000)
    g = tg.batch_grad(lambda x: tnp.exp(tnp.sin(x) * x))(da.from_array(x, chunks=100))
    graph = dict(g.__dask_graph__())
    tapes = [k for k in graph if str(k).startswith("tapegrad-tape-")]
    blocks = [k for k in graph if isinstance(k, tuple) and k[0] == g.name]  # a task per block
    assert len(tapes) == 1 and len(blocks) == 20
    payload = len(pickle.dumps(graph[tapes[0]]))
    for k in blocks:
        assert tapes[0] in graph[k].dependencies
        assert len(pickle.dumps(graph[k])) < payload / 4
    before, blocks_before = shipping.stats(), _blocks_run()
    g.compute()
    loaded = {k: v - before.get(k, 0) for k, v in shipping.stats().items() if k[0] == "plans loaded"}
    assert sorted(v for v in loaded.values() if v) == [1]
    assert _blocks_run() - blocks_before == 20


def test_a_mask_is_evaluated_point_by_point_with_the_warning(rng):
    X = rng.normal(size=(60, 3))
    with pytest.warns(tg.TapegradWarning, match="each point is evaluated on its own.*Dask workers") as seen:
        got = tg.batch_grad(masked_point)(da.from_array(X, chunks=(25, 3))).compute()
    assert seen[0].filename == __file__  # points at the call
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tg.TapegradWarning)
        assert_same_tree(got, tg.batch_grad(masked_point)(X))


def test_unknown_chunk_sizes_are_refused(rng):
    X = da.from_array(rng.normal(size=(50, 3)), chunks=(20, 3))
    X = X[X[:, 0] > -10]
    with pytest.raises(ValueError, match=r"argument 0 has unknown chunk sizes \(\(nan, nan, nan\)"):
        tg.batch_grad(lambda x: tnp.sum(x ** 2))(X)


def test_batched_arguments_must_agree_on_the_number_of_points(rng):
    with pytest.raises(ValueError, match="argument 0 has 50 .* argument 1 has 40"):
        tg.batch_grad(lambda a, b: tnp.sum(a * b))(da.ones((50, 2)), np.ones((40, 2)))


def test_import_tapegrad_still_does_not_import_dask():
    import subprocess
    import sys
    code = ("import sys, numpy as np, tapegrad as tg, tapegrad.numpy as tnp; "
            "tg.batch_grad(lambda x: tnp.sum(x ** 2))(np.ones((3, 2))); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cache_false_records_every_point_on_the_workers_without_a_warning(rng):
    X = rng.normal(size=(40, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = tg.batch_grad(lambda x: tnp.sum(x ** 3), cache=False)(da.from_array(X, chunks=(15, 2)))
        assert_same_tree(got.compute(), 3 * X ** 2)


def test_a_changed_global_is_not_served_from_a_stale_payload(rng):
    import dask_batch_cases
    X = rng.normal(size=(60, 2))
    g = tg.batch_grad(dask_batch_cases.scaled_point)
    first = g(da.from_array(X, chunks=(25, 2))).compute()
    try:
        dask_batch_cases.SCALE = 3.0
        again = g(da.from_array(X, chunks=(25, 2))).compute()
        assert_same_tree(again, tg.batch_grad(dask_batch_cases.scaled_point)(X))
    finally:
        dask_batch_cases.SCALE = 1.0
    np.testing.assert_allclose(again, 3 * first, rtol=1e-14)


def test_a_later_call_ships_the_cached_tape_without_computing_a_point(rng, monkeypatch):
    import tapegrad.batch as batch_module
    X = rng.normal(size=(90, 3))
    X[:, 0] = np.abs(X[:, 0])
    g = tg.batch_value_and_grad(branchy_point)
    assert_same_tree(dask.compute(*g(da.from_array(X, chunks=(30, 3)))), g(X))

    def no_first_point(*args, **kwargs):
        raise AssertionError("the first point was computed again")
    monkeypatch.setattr(batch_module._Batched, "_first", no_first_point)
    Y = X.copy()
    Y[:45, 0] *= -1.0  # the first point, and half the others, now take the other branch
    lazy = g(da.from_array(Y, chunks=(30, 3)))
    monkeypatch.undo()
    assert_same_tree(dask.compute(*lazy), tg.batch_value_and_grad(branchy_point)(Y))
