"""Heavy calls release the GIL, and the module's thread pool survives fork()."""

import multiprocessing
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


@pytest.fixture(scope="module")
def big(dc):
    # Enough rows that routing them takes a few tenths of a second on two cores.
    return np.ascontiguousarray(np.tile(dc.test.embeddings, (12, 1)))


def test_route_batch_releases_the_gil(knn, big, dc):
    small = dc.test.embeddings[:50]
    assert overlaps(lambda: knn.route_batch(big, 500.0), lambda: knn.route_batch(small, 500.0))


def test_fit_releases_the_gil(dc, knn):
    small = dc.test.embeddings[:50]
    assert overlaps(lambda: pointsman.KnnRouter.fit(dc.train, k=50), lambda: knn.route_batch(small))


def test_evaluate_releases_the_gil(dc, knn):
    small = dc.test.embeddings[:50]
    assert overlaps(
        lambda: [pointsman.evaluate(knn, dc.test) for _ in range(8)], lambda: knn.route_batch(small)
    )


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


def _child(conn, router, X):
    try:
        conn.send((os.getpid(), pointsman.num_threads(), router.route_batch(X, 500.0).tolist()))
    except BaseException as e:  # report, never hang the parent
        conn.send(repr(e))
    finally:
        conn.close()


# Python 3.12+ warns about fork() in a process with threads (the pool's); that is what we test.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_routing_works_in_a_forked_child(knn, dc):
    X = dc.test.embeddings
    expected = knn.route_batch(X, 500.0)  # the parent's pool is up and has worked
    assert pointsman.num_threads() >= 1
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_child, args=(child, knn, X))
    p.start()
    child.close()
    try:
        assert parent.poll(60), "the forked child did not answer in 60 s: its thread pool hangs"
        answer = parent.recv()
    finally:
        p.join(10)
        if p.is_alive():
            p.kill()
    assert not isinstance(answer, str), answer
    pid, threads, choices = answer
    assert pid != os.getpid() and threads >= 1
    assert choices == expected.tolist()
    # And the parent's pool still works.
    assert np.array_equal(knn.route_batch(X, 500.0), expected)
