#!/usr/bin/env python3
"""Rows per second routing a large log on a local Ray cluster (`pointsman.ray.route` over
`ray.data`) against one process's `route_batch`, and where Ray's overhead goes.

The log: llmrouter_dc's 5,989 embeddings tiled to --rows rows (2 million by default: 3 GB of
float32), generated into Ray's object store once (not timed). Routers: MF and exact kNN (k = 100),
fitted on the train split. For each router, in this order:

- one process: `route_batch` over the whole tiled array, in a child process (so the driver does
  not hold 3 GB) with RAYON_NUM_THREADS=1, then 2 (--threads); the median of --repeats runs;
- Ray: `pointsman.ray.route(ds, path, concurrency=--workers, batch_size=--batch-size)`, the
  routed rows streamed back to the driver (ids and choices); the median of --repeats runs. Each
  batch also reports the time spent inside `route_batch` ("engine"), so the wall time splits
  into engine time per worker and the rest;
- Ray without routing: the same pipeline with a no-op batch function that returns a choice
  column of zeros (Ray's cost of moving, batching and scheduling the log);
- Ray start-up: `ray.init`, and a pipeline over one row (actor start, router load, one batch).

The choices of Ray and of one process are compared (they must be identical).

Usage (from the repository root, with a venv holding the wheel and ray[data]):
    RAYON_NUM_THREADS=1 python benches/ray/run.py [--data DIR] [--rows N] [--workers N]
        [--batch-size N] [--repeats N] [--knn-repeats N] [--routers mf,knn]
Time: about 12 minutes on 2 shared Zen 4 cores with the defaults (exact kNN dominates).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import pointsman

COST_WEIGHT = 300.0


def tiled(base: np.ndarray, rows: int) -> np.ndarray:
    reps = -(-rows // len(base))
    return np.ascontiguousarray(np.tile(base, (reps, 1))[:rows])


def base_embeddings(data: str) -> np.ndarray:
    ds = pointsman.Dataset.load(data)
    return np.concatenate([ds.train.embeddings, ds.test.embeddings])


def single(args) -> None:
    """Child mode: one process's route_batch over the tiled log; prints the times as JSON and
    saves the choices of the last run."""
    router = pointsman.load_router(args.router)
    x = tiled(base_embeddings(args.data), args.rows)
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        choices = router.route_batch(x, COST_WEIGHT)
        times.append(time.perf_counter() - t0)
    np.save(args.choices, choices)
    print(json.dumps({"threads": pointsman.num_threads(), "seconds": times}))


def one_process(script, data, router, rows, threads, repeats, choices):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    out = subprocess.run(
        [sys.executable, script, "--single", "--data", data, "--router", router,
         "--rows", str(rows), "--repeats", str(repeats), "--choices", choices],
        env=env, check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data = os.path.join(os.environ.get("POINTSMAN_DATA_DIR", "../shared/data"), "llmrouter_dc")
    parser.add_argument("--data", default=data)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", default="1,2", help="one process: rayon threads to run")
    parser.add_argument("--batch-size", type=int, default=16384)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--knn-repeats", type=int, default=1)
    parser.add_argument("--routers", default="mf,knn")
    parser.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--router", help=argparse.SUPPRESS)
    parser.add_argument("--choices", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single:
        return single(args)

    import ray
    import pointsman.ray as pray

    class Timed(pray.RouteBatches):
        """RouteBatches that also reports the seconds spent in route_batch (spread over the
        batch's rows, so that their sum is the batch's engine time)."""

        def __call__(self, batch):
            t0 = time.perf_counter()
            out = super().__call__(batch)
            n = len(out["model_index"])
            out["engine_s"] = np.full(n, (time.perf_counter() - t0) / max(n, 1))
            return out

    class Noop:
        """The same pipeline, nothing routed: the embedding is dropped, choices are zeros."""

        def __init__(self, *args, **kwargs):
            pass

        def __call__(self, batch):
            out = {k: v for k, v in batch.items() if k != "embedding"}
            out["model_index"] = np.zeros(len(batch["id"]), np.uint32)
            out["engine_s"] = np.zeros(len(batch["id"]))
            return out

    def run_pipeline(ds, fn, path):
        t0 = time.perf_counter()
        routed = ds.map_batches(
            fn, fn_constructor_args=(path, COST_WEIGHT), batch_format="numpy",
            batch_size=args.batch_size, zero_copy_batch=True,
            compute=ray.data.ActorPoolStrategy(size=args.workers),
        )
        ids, choices, engine = [], [], 0.0
        for b in routed.iter_batches(batch_format="numpy", batch_size=None):
            ids.append(b["id"])
            choices.append(b["model_index"])
            engine += float(b["engine_s"].sum())
        wall = time.perf_counter() - t0
        ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
        out = np.zeros(len(ids), np.uint32)
        out[ids] = np.concatenate(choices) if choices else out
        return wall, engine, out

    tmp = tempfile.mkdtemp(prefix="pm-raybench-", dir="/tmp")
    report = {"rows": args.rows, "workers": args.workers, "batch_size": args.batch_size,
              "machine_load_1min": os.getloadavg()[0]}
    try:
        dc = pointsman.Dataset.load(args.data)
        paths = {}
        for name in args.routers.split(","):
            router = (pointsman.MfRouter.fit(dc.train) if name == "mf"
                      else pointsman.KnnRouter.fit(dc.train, k=100))
            paths[name] = os.path.join(tmp, f"{name}.safetensors")
            router.save(paths[name])
        base = np.concatenate([dc.train.embeddings, dc.test.embeddings])

        single_runs = {}
        for name, path in paths.items():
            reps = args.knn_repeats if name == "knn" else args.repeats
            for threads in [int(t) for t in args.threads.split(",")]:
                choices = os.path.join(tmp, f"{name}-{threads}.npy")
                r = one_process(os.path.abspath(__file__), args.data, path, args.rows, threads,
                                reps, choices)
                single_runs[(name, threads)] = (r, np.load(choices))
                med = statistics.median(r["seconds"])
                report[f"{name}/one-process/{r['threads']}-thread"] = {
                    "seconds": r["seconds"], "rows_per_s": args.rows / med}
                print(f"{name} one process, {r['threads']} thread(s): {args.rows / med:,.0f} rows/s"
                      f" (runs {', '.join(f'{s:.2f}' for s in r['seconds'])} s)", flush=True)

        os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
        t0 = time.perf_counter()
        ray.init(num_cpus=args.workers, include_dashboard=False, _node_ip_address="127.0.0.1",
                 _temp_dir=tmp, logging_level="WARNING", log_to_driver=False,
                 object_store_memory=int(args.rows * base.shape[1] * 4 * 1.5) + (512 << 20))
        report["ray_init_s"] = time.perf_counter() - t0
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        print(f"ray.init: {report['ray_init_s']:.2f} s", flush=True)

        base_ref = ray.put(base)

        def tile(batch):
            b = ray.get(base_ref)
            ids = batch["id"]
            return {"id": ids, "embedding": b[ids % len(b)]}

        t0 = time.perf_counter()
        log = ray.data.range(args.rows, override_num_blocks=-(-args.rows // args.batch_size))
        log = log.map_batches(tile, batch_format="numpy", batch_size=args.batch_size).materialize()
        report["generate_log_s"] = time.perf_counter() - t0
        print(f"log of {args.rows:,} rows in the object store: {report['generate_log_s']:.1f} s",
              flush=True)

        one_row = ray.data.range(1).map_batches(tile, batch_format="numpy").materialize()
        for name, path in paths.items():
            reps = args.knn_repeats if name == "knn" else args.repeats
            startup = [run_pipeline(one_row, Timed, path)[0] for _ in range(reps)]
            noop = [run_pipeline(log, Noop, path)[0] for _ in range(reps)]
            walls, engines = [], []
            for _ in range(reps):
                wall, engine, choices = run_pipeline(log, Timed, path)
                walls.append(wall)
                engines.append(engine)
                expected = single_runs[(name, 1)][1]
                if not np.array_equal(choices, expected):
                    raise SystemExit(f"{name}: Ray's choices differ from route_batch's in "
                                     f"{int((choices != expected).sum())} rows")
            med = statistics.median(walls)
            entry = {
                "seconds": walls, "rows_per_s": args.rows / med,
                "engine_s_per_worker": [e / args.workers for e in engines],
                "noop_pipeline_s": noop, "one_row_pipeline_s": startup,
                "batches": -(-args.rows // args.batch_size), "identical_to_route_batch": True,
            }
            report[f"{name}/ray/{args.workers}-workers"] = entry
            print(f"{name} Ray, {args.workers} workers: {args.rows / med:,.0f} rows/s (runs "
                  f"{', '.join(f'{s:.2f}' for s in walls)} s; engine per worker "
                  f"{statistics.median(engines) / args.workers:.2f} s; no-op pipeline "
                  f"{statistics.median(noop):.2f} s; one-row pipeline "
                  f"{statistics.median(startup):.2f} s); choices identical to route_batch",
                  flush=True)
        report["machine_load_1min_end"] = os.getloadavg()[0]
        print(json.dumps(report, indent=1))
    finally:
        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
