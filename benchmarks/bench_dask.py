"""asv suite and script: ``tapegrad.dask.value_and_grad_sum`` of the MLP loss on Dask.

The loss is the bench's user-style MLP (``tapegrad.bench.models.mlp_loss``, 64-32-10,
weights ``(out, in)``, written-out sigmoid and cross-entropy), turned from a mean into a
sum over the rows (times ``X.shape[0]``), as docs/cluster.md says to.  Every figure is a
ratio to the baseline timed in the same run: the same blocks, one after the other, with
``tg.value_and_grad`` in this process (what a user without Dask writes).  BLAS runs one
thread everywhere (the script sets ``OPENBLAS_NUM_THREADS=1`` before numpy loads; Dask's
nannies do the same for workers), so the baseline is one core.

``python benchmarks/bench_dask.py [--rows N] [--block-rows B] [--repeat R]`` prints:

* in memory, block by block (the baseline), and Dask's threaded scheduler (2 threads);
* a LocalCluster of 1 and of 2 worker processes (one thread each), with the data already
  on the workers (``client.persist``), and with numpy data sent from the client per call;
* the overhead per block: many blocks of 64 rows, wall time per block on each, and
  Dask's own floor (as many trivial tasks).

``python benchmarks/bench_dask.py --batch [--points N] [--chunk C] [--repeat R]`` prints,
for ``tg.batch_grad`` of the lecture function at 10^7 points in blocks of 10^6 instead:
in memory with one thread (the baseline) and numba's default threads; LocalClusters of 1
and 2 workers with the points generated on the workers and the gradients kept there
(``persist``) or brought back (``compute``); the scaling from 1 to 2 workers; the cost
of a call and of a block (the workers' compute time per block against the same block in
memory, and 200 small blocks against Dask's trivial-task floor); and the load average,
since on a shared machine the 2-worker figures depend on what else runs.

The asv classes time the same calls at 10^5 rows (asv runs each many times).
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # noqa: E402 - before numpy loads BLAS

import argparse
import statistics
import time

import numpy as np

import tapegrad as tg
import tapegrad.numpy as tnp
from tapegrad.bench.models import lecture, mlp_loss

LAYERS = (64, 32, 10)


def mlp_sum(params, X, Y):
    """The bench's MLP loss summed over the rows (it averages them)."""
    return mlp_loss(params, X, Y, tnp) * X.shape[0]


def problem(rows, seed=0):
    rng = np.random.default_rng(seed)
    params = []
    for n_in, n_out in zip(LAYERS[:-1], LAYERS[1:]):
        params += [rng.normal(size=(n_out, n_in)) / np.sqrt(n_in), np.zeros(n_out)]
    X = rng.normal(size=(rows, LAYERS[0]))
    Y = np.eye(LAYERS[-1])[rng.integers(0, LAYERS[-1], size=rows)]
    return params, X, Y


def in_memory(vg, params, X, Y, block_rows):
    """The baseline: ``vg`` (one ``tg.value_and_grad(mlp_sum)``, kept across calls as a
    training loop keeps it, so its tapes are recorded once) of each block, summed."""
    total, grads = 0.0, None
    for s in range(0, X.shape[0], block_rows):
        v, g = vg(params, X[s:s + block_rows], Y[s:s + block_rows])
        total += v
        grads = g if grads is None else [a + b for a, b in zip(grads, g)]
    return total, grads


def median_time(fn, repeat):
    fn()  # warm: compiles, records, starts workers' imports
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def trivial_tasks(n):
    """Dask's own floor: n tasks that return their argument, summed in one task."""
    import dask
    parts = [dask.delayed(int, pure=False)(i) for i in range(n)]
    return dask.compute(dask.delayed(sum)(parts))


def busy_per_block(client, call, names=("tapegrad-block-",)):
    """The median time a worker spent computing one block task (Dask's task stream), so
    the per-core work on the workers, whatever else the machine runs meanwhile."""
    from distributed import get_task_stream
    with get_task_stream(client) as stream:
        call()
    spans = [sum(s["stop"] - s["start"] for s in task["startstops"] if s["action"] == "compute")
             for task in stream.data if any(n in str(task["key"]) for n in names)]
    return statistics.median(spans)


def cluster(n_workers):
    from distributed import Client, LocalCluster
    c = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                     dashboard_address=None, env={"NUMBA_NUM_THREADS": "1"})
    return c, Client(c)


def measure(rows, block_rows, repeat):
    import dask
    import dask.array as da
    from distributed import wait
    from tapegrad.dask import value_and_grad_sum

    params, X, Y = problem(rows)
    vgs = value_and_grad_sum(mlp_sum, block_rows=block_rows)
    small_rows, small_blocks = 64, 400
    sp, sX, sY = problem(small_rows * small_blocks, seed=1)
    small = value_and_grad_sum(mlp_sum, block_rows=small_rows)
    vg = tg.value_and_grad(mlp_sum)
    t = {"in memory": median_time(lambda: in_memory(vg, params, X, Y, block_rows), repeat)}
    t["small in memory"] = median_time(lambda: in_memory(vg, sp, sX, sY, small_rows), repeat)
    with dask.config.set(scheduler="threads", num_workers=2):
        t["threads (2)"] = median_time(lambda: vgs(params, X, Y), repeat)
        t["small threads (2)"] = median_time(lambda: small(sp, sX, sY), repeat)
    for n in (1, 2):
        c, client = cluster(n)
        with c, client:
            Xd = client.persist(da.from_array(X, chunks=(block_rows, X.shape[1])))
            Yd = client.persist(da.from_array(Y, chunks=(block_rows, Y.shape[1])))
            wait([Xd, Yd])
            t[f"cluster {n}, data on workers"] = median_time(lambda: vgs(params, Xd, Yd), repeat)
            if n == 2:
                t["busy per block on workers"] = busy_per_block(client, lambda: vgs(params, Xd, Yd))
                t["cluster 2, numpy data sent per call"] = median_time(lambda: vgs(params, X, Y), repeat)
                t["small cluster 2"] = median_time(lambda: small(sp, sX, sY), repeat)
                t["small trivial cluster 2"] = median_time(lambda: trivial_tasks(small_blocks), repeat)
    return t


def report(rows, block_rows, t):
    base = t["in memory"]
    blocks = -(-rows // block_rows)
    print(f"value_and_grad_sum of the MLP {'-'.join(map(str, LAYERS))} loss over {rows:,} rows, "
          f"{blocks} blocks of {block_rows} rows (median of repeats)")
    print(f"{'run':40s} {'time':>9s} {'vs in memory':>13s} {'rows/s':>12s}")
    for name, s in t.items():
        if not name.startswith(("small", "busy")):
            print(f"{name:40s} {s * 1e3:7.0f} ms {base / s:12.2f}x {rows / s:12.3g}")
    per_block = base / blocks
    print(f"a block's compute on a worker (task stream, median): "
          f"{t['busy per block on workers'] * 1e3:.1f} ms, in memory {per_block * 1e3:.1f} ms "
          f"({per_block / t['busy per block on workers']:.2f}x)")
    print(f"scaling from 1 to 2 workers (data on workers): "
          f"{t['cluster 1, data on workers'] / t['cluster 2, data on workers']:.2f}x")
    print("per block of 64 rows (400 blocks; wall time / blocks):")
    for name in ("small in memory", "small threads (2)", "small cluster 2", "small trivial cluster 2"):
        label = "cluster 2, a trivial Dask task (the floor)" if "trivial" in name else name[6:]
        print(f"  {label:44s} {t[name] / 400 * 1e6:7.0f} us")
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the end)")


def lecture_point(x):
    """The lecture function (``tapegrad.bench.models.lecture``) of one scalar point."""
    return lecture(x, tnp)


def measure_batch(points, chunk, repeat):
    """``batch_grad`` of the lecture function at ``points`` points: in memory (1 thread and
    the default threads) against LocalClusters of 1 and 2 workers, with the points already
    on the workers (generated there) and the gradients left there (``persist``) or brought
    back (``compute``); then the cost of a block: small blocks, and the workers' compute
    time per block against the same block in memory."""
    import dask
    import dask.array as da
    from distributed import wait
    from tapegrad import batch

    t, g = {}, tg.batch_grad(lecture_point)
    threads = batch.num_threads()
    for n in (1, 2):
        c, client = cluster(n)
        with c, client:
            xd = client.persist(da.random.default_rng(0).normal(size=points, chunks=chunk))
            wait(xd)
            if n == 1:  # the same points in memory, and their in-memory baselines
                x = xd.compute()
                small = x[:points // 100]
                batch.num_threads, real = (lambda: 1), batch.num_threads
                try:
                    t["in memory, 1 thread"] = median_time(lambda: g(x), repeat)
                    t["small in memory, 1 thread"] = median_time(lambda: g(small), repeat)
                    t["block in memory"] = median_time(lambda: g(x[:chunk]), repeat)
                finally:
                    batch.num_threads = real
                t[f"in memory, {threads} threads"] = median_time(lambda: g(x), repeat)
            t[f"cluster {n}, persist"] = median_time(lambda: wait(g(xd).persist()), repeat)
            t[f"cluster {n}, compute"] = median_time(lambda: g(xd).compute(), repeat)
            t[f"cluster {n}, the call (lazy)"] = median_time(lambda: g(xd), repeat)
            t[f"busy per block, cluster {n}"] = busy_per_block(
                client, lambda: wait(g(xd).persist()), ("tapegrad-out",))
            xs = client.persist(xd[:points // 100].rechunk(points // 100 // 200))
            wait(xs)
            t[f"small cluster {n}"] = median_time(lambda: wait(g(xs).persist()), repeat)
            t[f"small trivial cluster {n}"] = median_time(lambda: trivial_tasks(200), repeat)
    with dask.config.set(scheduler="threads", num_workers=2):
        xl = da.from_array(x, chunks=chunk)
        t["threads (2), compute"] = median_time(lambda: g(xl).compute(), repeat)
    return t


def report_batch(points, chunk, t, load):
    base = t["in memory, 1 thread"]
    blocks = -(-points // chunk)
    print(f"batch_grad of the lecture function at {points:,} points, {blocks} blocks of {chunk:,} "
          f"(median of repeats; baseline: in memory, one thread)")
    print(f"{'run':36s} {'time':>9s} {'vs baseline':>12s} {'gradients/s':>12s}")
    for name, s in t.items():
        if not name.startswith(("small", "busy", "block", "cluster 1, the", "cluster 2, the")):
            print(f"{name:36s} {s * 1e3:7.0f} ms {base / s:11.2f}x {points / s:12.3g}")
    for kind in ("persist", "compute"):
        print(f"scaling from 1 to 2 workers ({kind}): "
              f"{t[f'cluster 1, {kind}'] / t[f'cluster 2, {kind}']:.2f}x")
    multi = [name for name in t if name.startswith("in memory, ") and name != "in memory, 1 thread"]
    print(f"control, the cores that were free: in memory {multi[0][11:]} against 1 thread "
          f"{base / t[multi[0]]:.2f}x (Dask cannot scale beyond this)")
    print(f"a call (building the lazy result: first point, payload, graph): "
          f"{t['cluster 2, the call (lazy)'] * 1e3:.1f} ms")
    for n in (1, 2):
        print(f"a block's compute on a worker, cluster {n} (task stream, median): "
              f"{t[f'busy per block, cluster {n}'] * 1e3:.1f} ms, in memory (one thread) "
              f"{t['block in memory'] * 1e3:.1f} ms")
    per = points // 100 // 200
    print(f"per block of {per} points (200 blocks; wall time / blocks):")
    print(f"  {'in memory, one call for all, 1 thread':44s} {t['small in memory, 1 thread'] / 200 * 1e6:7.0f} us")
    for n in (1, 2):
        print(f"  {f'cluster {n}':44s} {t[f'small cluster {n}'] / 200 * 1e6:7.0f} us")
        print(f"  {f'cluster {n}, a trivial Dask task (the floor)':44s} "
              f"{t[f'small trivial cluster {n}'] / 200 * 1e6:7.0f} us")
    print(f"load average (1 min) before: {load[0]:.2f}, after: {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} cores")


class ValueAndGradSum:
    """asv: 10^5 rows, blocks of 4096, on Dask's threads and in memory (the cluster runs
    are in the script: starting worker processes per asv sample would dominate)."""
    rows, block_rows = 100_000, 4096

    def setup(self):
        import dask
        from tapegrad.dask import value_and_grad_sum
        self.params, self.X, self.Y = problem(self.rows)
        self.vg = tg.value_and_grad(mlp_sum)
        self.vgs = value_and_grad_sum(mlp_sum, block_rows=self.block_rows)
        self.config = dask.config.set(scheduler="threads")
        self.config.__enter__()

    def teardown(self):
        self.config.__exit__(None, None, None)

    def time_in_memory_blocks(self):
        in_memory(self.vg, self.params, self.X, self.Y, self.block_rows)

    def time_threaded_scheduler(self):
        self.vgs(self.params, self.X, self.Y)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--block-rows", type=int, default=16384)  # 62 blocks at 10^6 rows
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batch", action="store_true",
                        help="batch_grad of the lecture function instead (--points, --chunk)")
    parser.add_argument("--points", type=int, default=10_000_000)
    parser.add_argument("--chunk", type=int, default=1_000_000)
    a = parser.parse_args()
    if a.batch:
        load = os.getloadavg()
        report_batch(a.points, a.chunk, measure_batch(a.points, a.chunk, a.repeat), load)
    else:
        report(a.rows, a.block_rows, measure(a.rows, a.block_rows, a.repeat))
