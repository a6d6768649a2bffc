"""Heavy calls release the GIL, and the module's thread pool survives fork()."""

import os
import threading
import time

import numpy as np
import pytest

import pointsman


def overlaps(long_call, short_call, min_seconds=0.2):
    """Runs `long_call` in a thread and, meanwhile, plain Python code and then `short_call` in
    this thread. True when this thread got to start `short_call` before `long_call` returned:
    both threads were inside native calls at once. Impossible if `long_call` held the GIL: this
    thread could not even wake from its sleep until `long_call` was done."""
    t0 = time.perf_counter()
    long_call()
    alone = time.perf_counter() - t0
    assert alone >= min_seconds, f"the long call took {alone:.2f} s; make it longer"

    ends = {}
    started = threading.Event()

    def worker():
        started.set()
        long_call()
        ends["long"] = time.perf_counter()

    t = threading.Thread(target=worker)
    t.start()
    started.wait()
    time.sleep(min(0.05, alone / 10))  # the worker enters the native call
    spins = sum(1 for _ in range(10_000))  # plain Python code, needing the GIL
    short_started = time.perf_counter()
    short_call()
    t.join()
    return spins == 10_000 and short_started < ends["long"]


def long_native_call(make_call, seconds=0.5):
    """`make_call(n)` returns a callable making one native call whose work grows with `n`; this
    grows `n` until that call takes `seconds`, so the overlap tests stay meaningful however fast
    the engine (or the machine) gets."""
    n = 1
    while True:
        call = make_call(n)
        t0 = time.perf_counter()
        call()
        took = time.perf_counter() - t0
        if took >= seconds:
            return call
        n = max(2 * n, int(1.5 * n * seconds / max(took, 1e-6)))


def test_route_batch_releases_the_gil(knn, dc):
    def make_call(n):
        rows = np.ascontiguousarray(np.tile(dc.test.embeddings, (n, 1)))
        return lambda: knn.route_batch(rows, 500.0)

    small = dc.test.embeddings[:50]
    assert overlaps(long_native_call(make_call), lambda: knn.route_batch(small, 500.0))


def test_fit_releases_the_gil(dc, knn):
    small = dc.test.embeddings[:50]
    assert overlaps(lambda: pointsman.KnnRouter.fit(dc.train, k=50), lambda: knn.route_batch(small))


def test_evaluate_releases_the_gil(dc, knn):
    def make_call(n):
        weights = list(np.linspace(0.0, 3000.0, 100 * n))
        return lambda: pointsman.evaluate(knn, dc.test, weights)

    small = dc.test.embeddings[:50]
    assert overlaps(long_native_call(make_call), lambda: knn.route_batch(small))


def test_threads_share_a_router(knn, dc):
    X = dc.test.embeddings[:200]
    expected = knn.route_batch(X, 300.0)
    results = [None] * 3

    def work(i):
        results[i] = knn.route_batch(X, 300.0)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        assert np.array_equal(r, expected)


# Python 3.12+ warns about fork() in a process with threads (the pool's); that is what we test.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_routing_works_in_a_forked_child(knn, dc, in_forked_child):
    X = dc.test.embeddings
    expected = knn.route_batch(X, 500.0)  # the parent's pool is up and has worked
    assert pointsman.num_threads() >= 1

    def child():
        return os.getpid(), pointsman.num_threads(), knn.route_batch(X, 500.0).tolist()

    pid, threads, choices = in_forked_child(child, hangs="its thread pool hangs")
    assert pid != os.getpid() and threads >= 1
    assert choices == expected.tolist()
    # And the parent's pool still works.
    assert np.array_equal(knn.route_batch(X, 500.0), expected)


def _single_queries(routers, x):
    """One decision per router (and one cascade step, one bandit observation): the calls that
    run on the calling thread, outside the module's pool."""
    knn, mf, hnsw, cascade, bandit = routers
    out = [r.route(x, 300.0).model for r in (knn, mf, hnsw, bandit)]
    out.append([a.model for a in knn.top_k(x, 3, 300.0)])
    session = cascade.start(x)
    out.append(session.model)
    bandit.observe(x, 0, 1.0, 1e-5)
    out.append(bandit.route(x, 300.0).model)
    return out


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_single_queries_work_in_a_forked_child(toy, in_forked_child):
    # Single queries run on the calling thread: if one of them started rayon work, it would go
    # to rayon's global pool, which a forked child inherits without its threads — the child's
    # first such call would wait forever.
    split = toy.split()
    hnsw = {"kind": "hnsw", "m": 8, "ef_construction": 50, "ef_search": 32, "seed": 1}
    routers = (
        pointsman.KnnRouter.fit(split, k=10),
        pointsman.MfRouter.fit(split, dim=4, max_epochs=3),
        pointsman.KnnRouter.fit(split, k=10, index=hnsw),
        pointsman.CascadeRouter.fit(split),
        pointsman.ThompsonRouter.fit(split),
    )
    x = toy.embeddings[7]
    expected = _single_queries(routers, x)  # the parent has made every kind of single call
    answer = in_forked_child(_single_queries, routers, x, hangs="a single query hangs")
    assert answer[:-1] == expected[:-1]
