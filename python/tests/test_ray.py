"""Batch routing and evaluation on Ray (`pointsman.ray`): a local cluster of 2 CPUs on loopback,
with its own temporary folder, routes the llmrouter_dc test split through `ray.data` and must
match `route_batch` in one process exactly; the evaluation on Ray must give the curve points of
`pointsman.evaluate`. The cluster is started once for the module and shut down at its end, also
when a test fails."""

import os
import re
import shutil
import signal
import tempfile
from pathlib import Path

import numpy as np
import pytest

import pointsman

if os.environ.get("CI") == "true":
    import ray  # CI: a missing Ray is a broken setup, not a skip
else:
    ray = pytest.importorskip("ray")

import pyarrow as pa  # noqa: E402  (installed with ray[data])
import pyarrow.parquet as pq  # noqa: E402

import pointsman.ray as pray  # noqa: E402

# Ray's own deprecation notices (raised inside Ray, about its settings) are not this package's.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")

# Cost weights at which llmrouter_dc's routers choose different models (0: the best quality;
# the largest: mostly the cheapest model).
WEIGHTS = [0.0, 300.0, 3000.0, 30000.0]


@pytest.fixture(autouse=True)
def deadline():
    """A test that waits on the cluster for more than 120 s fails instead of hanging the suite
    (a pipeline whose tasks wait for CPUs that its workers hold never finishes)."""

    def expire(signum, frame):
        raise TimeoutError("a Ray test ran for more than 120 s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def cluster():
    # A short path: Ray's Unix sockets live under it and their paths are limited to 107 bytes.
    tmp = tempfile.mkdtemp(prefix="pm-ray-", dir="/tmp")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # no usage report leaves the machine
    try:
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            _temp_dir=tmp,
            logging_level="WARNING",
            log_to_driver=False,
        )
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        yield
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def saved(dc, knn, tmp_path_factory) -> dict:
    """The kNN router of conftest and an MF router, fitted on the train split and saved."""
    d = tmp_path_factory.mktemp("ray-routers")
    routers = {"knn": knn, "mf": pointsman.MfRouter.fit(dc.train)}
    paths = {}
    for name, router in routers.items():
        paths[name] = d / f"{name}.safetensors"
        router.save(paths[name])
    return {name: (routers[name], paths[name]) for name in routers}


def in_one_process(router, split, w):
    return router.route_batch(
        split.embeddings, w, prompt_tokens=split.prompt_tokens, tasks=split.tasks
    )


@pytest.mark.parametrize("kind", ["knn", "mf"])
def test_ray_data_routes_the_test_split_as_route_batch(cluster, dc, saved, kind):
    router, path = saved[kind]
    test = dc.test
    # 5 blocks, 100-row batches, 2 workers: every worker routes several batches.
    ds = pray.dataset_from_split(test, blocks=5)
    for w in WEIGHTS:
        routed = pray.route(
            ds,
            path,
            w,
            concurrency=2,
            batch_size=100,
            prompt_tokens_column="prompt_tokens",
            task_column="task",
            model_ids=True,
        )
        rows = routed.take_all()
        assert len(rows) == len(test)
        assert "embedding" not in rows[0]  # the embeddings are not carried back
        got = {r["id"]: (int(r["model_index"]), r["model_index_id"]) for r in rows}
        expected = in_one_process(router, test, w)
        assert [got[i][0] for i in test.ids] == expected.tolist(), f"cost weight {w}"
        assert [got[i][1] for i in test.ids] == [router.models[c] for c in expected]
    # The choices change with the weight (the comparison above is not of constant answers).
    assert len({tuple(in_one_process(router, test, w)) for w in WEIGHTS}) > 1


def test_ray_evaluation_gives_the_curve_points_of_evaluate(cluster, dc, saved):
    router, path = saved["knn"]
    curve = pray.evaluate(
        pray.dataset_from_split(dc.test, blocks=4),
        path,
        WEIGHTS,
        dc.test.models,
        concurrency=2,
        batch_size=128,
    )
    # The split's `prompt_tokens` and `task` columns are read by default (pointsman.ray.AUTO).
    expected = pointsman.evaluate(router, dc.test, WEIGHTS)["curve"]
    assert [p["cost_weight"] for p in curve] == WEIGHTS
    for got, want in zip(curve, expected):
        assert got["mean_quality"] == pytest.approx(want["mean_quality"], rel=1e-12, abs=1e-15)
        assert got["mean_cost"] == pytest.approx(want["mean_cost"], rel=1e-12, abs=1e-15)
    assert len({p["mean_cost"] for p in curve}) > 1


def test_ray_routes_a_parquet_log_of_fixed_size_lists(cluster, dc, saved, tmp_path: Path):
    """A log written by another tool: the embedding as a Parquet fixed_size_list column (Ray
    hands it over as an object array of rows, which `RouteBatches` stacks)."""
    router, path = saved["mf"]
    emb = dc.test.embeddings
    table = pa.table(
        {
            "row": pa.array(np.arange(len(emb))),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), emb.shape[1]),
        }
    )
    pq.write_table(table, tmp_path / "log.parquet", row_group_size=128)
    routed = pray.route(
        ray.data.read_parquet(str(tmp_path / "log.parquet")), path, 300.0, batch_size=200
    ).take_all()
    got = dict((int(r["row"]), int(r["model_index"])) for r in routed)
    # Without prompt tokens or tasks, as route_batch is called here.
    expected = router.route_batch(emb, 300.0)
    assert [got[i] for i in range(len(emb))] == expected.tolist()


def test_route_batches_names_a_missing_column(saved):
    """The callable class works without a cluster (Ray calls it in its workers), and a batch
    without the embedding column is a clear error."""
    _, path = saved["mf"]
    fn = pray.RouteBatches(path, embedding_column="emb")
    with pytest.raises(KeyError, match="no column 'emb'"):
        fn({"embedding": np.zeros((2, 384), np.float32)})
    with pytest.raises(ValueError, match="no labels for the router's models"):
        pray.EvaluateBatches(path, [0.0], ["nope"])
    # An empty batch (Ray may send one), also as an empty object column from Parquet.
    for empty in (np.zeros((0, 384), np.float32), np.empty(0, dtype=object)):
        out = pray.RouteBatches(path)({"embedding": empty, "id": np.empty(0, dtype=object)})
        assert out["model_index"].dtype == np.uint32 and len(out["model_index"]) == 0
        assert "embedding" not in out


def test_evaluate_batches_check_labels_and_route_reads_the_split_columns(dc, saved):
    """Labels that `pointsman.evaluate` refuses are refused (naming the row by its id), cost
    weights in the driver, and by default the batch's `task` and `prompt_tokens` columns are
    read, as `route_batch` reads them on the split."""
    router, path = saved["knn"]
    test = dc.test
    n = 64
    batch = {
        "id": np.asarray(test.ids[:n], dtype=object),
        "embedding": test.embeddings[:n],
        "prompt_tokens": test.prompt_tokens[:n],
        "task": np.asarray(test.tasks[:n], dtype=object),
        "scores": test.scores[:n].copy(),
        "costs": test.costs[:n].copy(),
    }
    fn = pray.RouteBatches(path, 300.0)
    assert fn(dict(batch))["model_index"].tolist() == router.route_batch(
        test.embeddings[:n], 300.0, prompt_tokens=test.prompt_tokens[:n], tasks=test.tasks[:n]
    ).tolist()
    none = pray.RouteBatches(path, 300.0, prompt_tokens_column=None, task_column=None)
    assert none(dict(batch))["model_index"].tolist() == router.route_batch(
        test.embeddings[:n], 300.0
    ).tolist()
    ev = pray.EvaluateBatches(path, [0.0], test.models)
    assert ev(dict(batch))["n"][0] == n
    for column, value, error, says in [
        ("scores", np.nan, pointsman.MissingLabelsError, "has no score for"),
        ("scores", 5.0, pointsman.InvalidInputError, "outside [0, 1]"),
        ("costs", -1.0, pointsman.InvalidInputError, "is not a number in [0, 1e+12] USD"),
        ("costs", 1e13, pointsman.InvalidInputError, "is not a number in [0, 1e+12] USD"),
    ]:
        bad = dict(batch)
        bad[column] = batch[column].copy()
        bad[column][3, 0] = value
        with pytest.raises(error, match=f"row 3 of the batch \\(id '{test.ids[3]}'\\)"):
            ev(bad)
        with pytest.raises(error, match=re.escape(says)):
            ev(bad)
    # An empty batch (Ray may send one), also with labels as empty object columns.
    empty = {k: np.empty(0, dtype=object) for k in ("embedding", "scores", "costs")}
    assert ev(empty)["n"][0] == 0
    for weight in (float("nan"), -1.0):
        with pytest.raises(pointsman.InvalidInputError, match="not a non-negative number"):
            pray.route(None, path, weight)
