#!/usr/bin/env python3
"""Route and evaluate a logged split on Ray (`pointsman.ray` over `ray.data`).

Fits a kNN router on llmrouter_dc's train split and saves it; writes the test split as a
Parquet log (what a team's logs would be: one row per query, the embedding as a tensor column,
per-model scores and costs); then, on a Ray cluster (a local one of --cpus CPUs unless --address
is given), routes the log with each worker opening the saved router once, memory-mapped, and
evaluates it at a few cost weights. Checks both against one process (`route_batch`,
`pointsman.evaluate`) and prints rows per second.

Usage: python examples/python/ray_batch.py --data ../shared/data [--address auto] [--cpus 2]
Needs: pip install 'pointsman[ray]' (ray[data]).
"""

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import ray

import pointsman
import pointsman.ray as pray

COST_WEIGHTS = [0.0, 300.0, 3000.0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("POINTSMAN_DATA_DIR", "../shared/data")))
    parser.add_argument("--address", help="an existing Ray cluster (default: start a local one)")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local cluster")
    args = parser.parse_args()

    dc = pointsman.Dataset.load(args.data / "llmrouter_dc")
    tmp = Path(tempfile.mkdtemp(prefix="pm-ray-example-", dir="/tmp"))
    try:
        router_path = tmp / "knn.safetensors"
        router = pointsman.KnnRouter.fit(dc.train, k=50)
        router.save(router_path)

        if args.address:
            ray.init(address=args.address, logging_level="WARNING")
        else:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            ray.init(num_cpus=args.cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                     _temp_dir=str(tmp / "ray"), logging_level="WARNING", log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
        # Routing workers hold a CPU each for their lifetime; the Parquet reads run as tasks
        # that need one too. A pool as large as the cluster would leave the reads none, and
        # the pipeline would wait forever: leave one CPU to them. On a one-CPU cluster the one
        # worker reserves none and shares the CPU with the reads.
        cpus = int(ray.cluster_resources().get("CPU", 1))
        workers = max(1, cpus - 1)
        worker_cpus = None if cpus > 1 else 0

        # The log, as Parquet files (Ray keeps the embedding a tensor column).
        log_dir = tmp / "log"
        pray.dataset_from_split(dc.test, blocks=4).write_parquet(str(log_dir))
        log = ray.data.read_parquet(str(log_dir))

        t0 = time.perf_counter()
        routed = pray.route(log, router_path, 300.0, concurrency=workers, batch_size=128,
                            num_cpus=worker_cpus, model_ids=True).take_all()
        seconds = time.perf_counter() - t0
        by_id = {r["id"]: int(r["model_index"]) for r in routed}
        expected = router.route_batch(dc.test.embeddings, 300.0,
                                      prompt_tokens=dc.test.prompt_tokens, tasks=dc.test.tasks)
        assert [by_id[i] for i in dc.test.ids] == expected.tolist(), "Ray and route_batch differ"
        print(f"routed {len(routed)} queries on {workers} Ray workers in {seconds:.2f} s "
              f"(start-up included): identical to route_batch")
        print("first rows:", [(r["id"], r["model_index_id"]) for r in routed[:3]])

        curve = pray.evaluate(log, router_path, COST_WEIGHTS, dc.test.models,
                              concurrency=workers, batch_size=128, num_cpus=worker_cpus)
        reference = pointsman.evaluate(router, dc.test, COST_WEIGHTS)["curve"]
        for got, want in zip(curve, reference):
            assert np.isclose(got["mean_quality"], want["mean_quality"], rtol=1e-12, atol=0)
            assert np.isclose(got["mean_cost"], want["mean_cost"], rtol=1e-12, atol=0)
            print(f"cost weight {got['cost_weight']:>7g}: mean quality {got['mean_quality']:.4f}, "
                  f"mean cost ${got['mean_cost']:.6f} (as pointsman.evaluate)")
    finally:
        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
