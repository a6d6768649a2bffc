"""Batch routing and evaluation on a Ray cluster, through ``ray.data``.

A large log of queries (tens of millions of embeddings, in Parquet files or any other
``ray.data`` source) is routed by mapping batches of it through :class:`RouteBatches`: each Ray
worker (an actor) opens the saved router **once**, memory-mapped (``load_router(path,
mmap=True)``: the workers of a host share one copy of a kNN reference set in the page cache),
and routes every NumPy batch it is handed with ``Router.route_batch``, which releases the GIL
and runs in the engine. Nothing is decided in Python: the choices are the engine's, so they are
identical to routing the whole log in one process (tested: ``python/tests/test_ray.py``).

>>> import ray, pointsman.ray
>>> ds = ray.data.read_parquet("s3://bucket/log/")                          # doctest: +SKIP
>>> routed = pointsman.ray.route(ds, "router.safetensors", cost_weight=500.0)  # doctest: +SKIP
>>> routed.write_parquet("s3://bucket/routed/")                             # doctest: +SKIP

:func:`evaluate` computes a cost-quality curve of a labelled log (per-model ``scores`` and
``costs`` columns) the same way: each batch is routed at every cost weight and reduced to sums,
and the driver adds the sums of all batches.

Ray is not a dependency of the package: ``pip install 'pointsman[ray]'`` (or install ``ray[data]``)
to use this module.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Optional, Union

import numpy as np

from . import Router, Split, load_router

if TYPE_CHECKING:  # pragma: no cover
    import ray.data

__all__ = [
    "AUTO",
    "EvaluateBatches",
    "RouteBatches",
    "dataset_from_split",
    "evaluate",
    "route",
]

_Path = Union[str, "os.PathLike[str]"]

#: The highest cost one call may report (``pointsman::pool::MAX_COST_USD``).
_MAX_COST_USD = 1e12

class _Auto:
    """The type of :data:`AUTO`."""

    def __repr__(self) -> str:
        return "pointsman.ray.AUTO"


#: The default of ``prompt_tokens_column`` and ``task_column``: the column of that name
#: (``prompt_tokens``, ``task``, as :func:`dataset_from_split` writes them) when the batch has
#: one, else none. A router that reads tasks or prompt lengths (a kNN fitted with ``same_task``,
#: any cost estimate) then decides as ``route_batch`` does on the split. (An object, not a
#: string, so that any column name, ``"auto"`` included, can still be given.)
AUTO: Any = _Auto()


def _matrix(batch: Mapping[str, Any], column: str, dtype: Any) -> np.ndarray:
    """The batch's column as a C-contiguous 2-D array of `dtype`. A tensor column (Ray's tensor
    extension, what ``ray.data.from_numpy``/``dataset_from_split`` and Ray's own Parquet writer
    produce) arrives as such an array and is used in place; a Parquet ``fixed_size_list`` column
    arrives as an object array of rows and is stacked once."""
    if column not in batch:
        raise KeyError(f"the batch has no column {column!r} (columns: {sorted(batch)})")
    values = batch[column]
    if isinstance(values, np.ndarray) and values.dtype == object:
        values = np.stack(values) if len(values) else np.empty((0, 0), dtype)
    return np.ascontiguousarray(values, dtype=dtype)


def _column(batch: Mapping[str, Any], setting: Any, default: str) -> Optional[str]:
    """The column a `setting` of :class:`RouteBatches` names in `batch`: :data:`AUTO` is
    `default` when the batch has it; a name must be there."""
    if setting is AUTO:
        return default if default in batch else None
    if setting is not None and setting not in batch:
        raise KeyError(f"the batch has no column {setting!r} (columns: {sorted(batch)})")
    return setting


def _limit_engine_threads() -> None:
    """Sizes the engine's thread pool to the CPUs Ray gave this worker, before the pool is built
    (by the first call into the engine). Without it every worker's pool has a thread per logical
    CPU of the host and N workers oversubscribe the host N times. ``RAYON_NUM_THREADS`` set by
    the user wins."""
    if "RAYON_NUM_THREADS" in os.environ:
        return
    try:
        import ray

        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    except Exception:  # not in a Ray worker, or an older Ray: leave the default
        return
    if cpus:
        os.environ["RAYON_NUM_THREADS"] = str(max(1, int(cpus)))


class RouteBatches:
    """A callable class for ``Dataset.map_batches`` (``batch_format="numpy"``): opens the saved
    router at `path` once per worker and routes each batch's `embedding_column` (float32
    ``[n, dim]``).

    Returns the batch with `output_column` added (uint32 model index into :attr:`models`; with
    `model_ids=True` also ``<output_column>_id``, the model id as a string) and, unless
    `keep_embedding`, the embedding column removed (the routed log does not carry the
    embeddings back). `prompt_tokens_column` and `task_column` are passed to ``route_batch`` as
    ``prompt_tokens``/``tasks``: by default (:data:`AUTO`) the batch's ``prompt_tokens`` and
    ``task`` columns when it has them, a name for another column, None for none. `mmap=False`
    loads a private copy instead of mapping the file.
    """

    def __init__(
        self,
        path: _Path,
        cost_weight: float = 0.0,
        *,
        allowed: Optional[Sequence[str]] = None,
        embedding_column: str = "embedding",
        prompt_tokens_column: Any = AUTO,
        task_column: Any = AUTO,
        output_column: str = "model_index",
        model_ids: bool = False,
        keep_embedding: bool = False,
        mmap: bool = True,
    ) -> None:
        _limit_engine_threads()
        self.router: Router = load_router(path, mmap=mmap)
        self.models: list[str] = self.router.models
        self.cost_weight = float(cost_weight)
        self.allowed = None if allowed is None else list(allowed)
        self.embedding_column = embedding_column
        self.prompt_tokens_column = prompt_tokens_column
        self.task_column = task_column
        self.output_column = output_column
        self.model_ids = model_ids
        self.keep_embedding = keep_embedding

    def choices(self, batch: Mapping[str, Any], cost_weight: float) -> np.ndarray:
        """The router's choices (uint32 ``[n]``) for one batch at `cost_weight`."""
        x = _matrix(batch, self.embedding_column, np.float32)
        if len(x) == 0:  # Ray may hand over an empty batch; an empty object column has no dim
            return np.zeros(0, np.uint32)
        tokens = None
        column = _column(batch, self.prompt_tokens_column, "prompt_tokens")
        if column is not None:
            tokens = np.ascontiguousarray(batch[column], dtype=np.float64)
        tasks = None
        column = _column(batch, self.task_column, "task")
        if column is not None:
            tasks = [None if t is None else str(t) for t in batch[column]]
        return self.router.route_batch(
            x, cost_weight, allowed=self.allowed, prompt_tokens=tokens, tasks=tasks
        )

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        choices = self.choices(batch, self.cost_weight)
        out = {
            k: v for k, v in batch.items() if self.keep_embedding or k != self.embedding_column
        }
        out[self.output_column] = choices
        if self.model_ids:
            out[f"{self.output_column}_id"] = np.asarray(self.models, dtype=object)[choices]
        return out


class EvaluateBatches(RouteBatches):
    """A callable class for ``Dataset.map_batches`` that reduces each labelled batch to one row:
    ``n`` (rows), and per cost weight of `cost_weights` the sums of the chosen models' quality
    (``quality_sum``) and cost (``cost_sum``), read from the batch's `scores_column` and
    `costs_column` (float ``[n, models]``, columns in the order of `models`, the log's model
    ids; the router's models are matched to them by id). :func:`evaluate` adds the rows."""

    def __init__(
        self,
        path: _Path,
        cost_weights: Sequence[float],
        models: Sequence[str],
        *,
        scores_column: str = "scores",
        costs_column: str = "costs",
        **kwargs: Any,
    ) -> None:
        super().__init__(path, **kwargs)
        self.cost_weights = [float(w) for w in cost_weights]
        if not self.cost_weights:
            raise ValueError("the list of cost weights is empty")
        column = {m: i for i, m in enumerate(models)}
        missing = [m for m in self.models if m not in column]
        if missing:
            raise ValueError(
                f"the log has no labels for the router's models {missing} (log models: {list(models)})"
            )
        self.label_columns = np.array([column[m] for m in self.models], dtype=np.intp)
        self.scores_column = scores_column
        self.costs_column = costs_column

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        scores = _matrix(batch, self.scores_column, np.float64)
        costs = _matrix(batch, self.costs_column, np.float64)
        if len(scores):  # Ray may hand over an empty batch (an empty object column has no width)
            self._check_labels(batch, scores, costs)
        rows = np.arange(len(scores))
        quality = np.empty(len(self.cost_weights))
        cost = np.empty(len(self.cost_weights))
        for j, w in enumerate(self.cost_weights):
            chosen = self.label_columns[self.choices(batch, w)]
            quality[j] = scores[rows, chosen].sum()
            cost[j] = costs[rows, chosen].sum()
        return {
            "n": np.array([len(rows)], dtype=np.int64),
            "quality_sum": quality[None, :],
            "cost_sum": cost[None, :],
        }

    def _check_labels(
        self, batch: Mapping[str, Any], scores: np.ndarray, costs: np.ndarray
    ) -> None:
        """Refuses labels ``pointsman.evaluate`` refuses: a missing score (NaN: partial labels,
        :class:`pointsman.MissingLabelsError`), a score outside [0, 1] or a cost that is not a
        non-negative number (:class:`pointsman.InvalidInputError`), in the router's models'
        columns; the row is named by its ``id`` when the batch has one."""
        from . import InvalidInputError, MissingLabelsError

        for matrix, what in ((scores, self.scores_column), (costs, self.costs_column)):
            if matrix.ndim != 2 or (len(matrix) and matrix.shape[1] <= self.label_columns.max()):
                raise InvalidInputError(
                    f"column {what!r} holds {matrix.shape} values: one row per query with a "
                    f"column per log model ({self.label_columns.max() + 1} at least)"
                )
        s = scores[:, self.label_columns]
        c = costs[:, self.label_columns]

        def row(i: int) -> str:
            ids = batch.get("id")
            return f"row {i} of the batch" + (f" (id {ids[i]!r})" if ids is not None else "")

        missing = np.argwhere(np.isnan(s))
        if len(missing):
            i, j = missing[0]
            raise MissingLabelsError(
                f"{row(int(i))} has no score for {self.models[j]!r}: evaluation needs every "
                "model's score (full labels)"
            )
        bad = np.argwhere((s < 0) | (s > 1) | ~np.isfinite(s))
        if len(bad):
            i, j = bad[0]
            raise InvalidInputError(
                f"{row(int(i))}: score {s[i, j]} for {self.models[j]!r} is outside [0, 1]"
            )
        bad = np.argwhere(~np.isfinite(c) | (c < 0) | (c > _MAX_COST_USD))
        if len(bad):
            i, j = bad[0]
            raise InvalidInputError(
                f"{row(int(i))}: cost {c[i, j]} for {self.models[j]!r} is not a number in "
                f"[0, {_MAX_COST_USD:g}] USD"
            )


def _check_weights(weights: Sequence[float]) -> None:
    """Refuses in the driver, before a worker starts, what every worker would refuse."""
    from . import InvalidInputError

    if len(weights) == 0:
        raise ValueError("the list of cost weights is empty")
    for w in weights:
        if not (isinstance(w, (int, float, np.floating, np.integer)) and np.isfinite(w) and w >= 0):
            raise InvalidInputError(f"cost weight {w!r} is not a non-negative number")


def _absolute(path: _Path) -> str:
    """`path` made absolute in the driver when it names a file there: a worker's working
    directory need not be the driver's (it is where the driver was when Ray started). A path
    the driver does not have is passed as given (relative to the workers' ``working_dir`` of a
    ``runtime_env``, say)."""
    path = os.fspath(path)
    return os.path.abspath(path) if os.path.exists(path) else path


def _map_kwargs(
    concurrency: Optional[int], batch_size: Optional[int], num_cpus: Optional[float]
) -> dict[str, Any]:
    import ray.data

    kwargs: dict[str, Any] = {
        "batch_format": "numpy",
        "batch_size": batch_size,
        "compute": ray.data.ActorPoolStrategy(size=concurrency if concurrency is not None else 1),
        "zero_copy_batch": True,
    }
    if num_cpus is not None:
        kwargs["num_cpus"] = num_cpus
    return kwargs


def route(
    ds: "ray.data.Dataset",
    path: _Path,
    cost_weight: float = 0.0,
    *,
    concurrency: Optional[int] = None,
    batch_size: Optional[int] = 16384,
    num_cpus: Optional[float] = None,
    **kwargs: Any,
) -> "ray.data.Dataset":
    """`ds` with each row routed by the router saved at `path` (lazily, as ``ray.data`` does):
    ``ds.map_batches(RouteBatches, ...)`` over a pool of `concurrency` workers (default 1),
    `batch_size` rows per call, `num_cpus` per worker (Ray's default, 1, when None). Other
    keyword arguments go to :class:`RouteBatches`.

    The workers hold their CPUs while the dataset runs: when `ds` is read by tasks (Parquet
    files, a ``repartition``), leave them CPUs — a pool that takes every CPU of the cluster
    leaves the reads none, and Ray then waits forever."""
    _check_weights([cost_weight])
    return ds.map_batches(
        RouteBatches,
        fn_constructor_args=(_absolute(path), cost_weight),
        fn_constructor_kwargs=kwargs,
        **_map_kwargs(concurrency, batch_size, num_cpus),
    )


def evaluate(
    ds: "ray.data.Dataset",
    path: _Path,
    cost_weights: Sequence[float],
    models: Sequence[str],
    *,
    concurrency: Optional[int] = None,
    batch_size: Optional[int] = 16384,
    num_cpus: Optional[float] = None,
    **kwargs: Any,
) -> list[dict[str, float]]:
    """The cost-quality curve of the router saved at `path` on the labelled log `ds`: per cost
    weight, ``{"cost_weight", "mean_cost", "mean_quality"}`` — the curve points of
    ``pointsman.evaluate(router, split, cost_weights)`` (the same choices; the means equal to
    float rounding, as the sums are added in another order). `models` names the columns of the
    ``scores``/``costs`` matrices. Runs ``ds.map_batches(EvaluateBatches, ...)`` and adds the
    per-batch sums in the driver; arguments as in :func:`route`. The labels are checked as
    ``pointsman.evaluate`` checks them (:meth:`EvaluateBatches._check_labels`)."""
    _check_weights(cost_weights)
    sums = ds.map_batches(
        EvaluateBatches,
        fn_constructor_args=(_absolute(path), list(cost_weights), list(models)),
        fn_constructor_kwargs=kwargs,
        **_map_kwargs(concurrency, batch_size, num_cpus),
    )
    n = 0
    quality = np.zeros(len(cost_weights))
    cost = np.zeros(len(cost_weights))
    for batch in sums.iter_batches(batch_format="numpy", batch_size=None):
        n += int(batch["n"].sum())
        quality += np.asarray(batch["quality_sum"]).sum(axis=0)
        cost += np.asarray(batch["cost_sum"]).sum(axis=0)
    if n == 0:
        raise ValueError("the log is empty")
    return [
        {"cost_weight": float(w), "mean_cost": float(c / n), "mean_quality": float(q / n)}
        for w, q, c in zip(cost_weights, quality, cost)
    ]


def dataset_from_split(split: Split, *, blocks: Optional[int] = None) -> "ray.data.Dataset":
    """A ``ray.data`` dataset of a labelled split: columns ``id``, ``embedding`` (float32
    ``[dim]``), ``prompt_tokens``, ``task``, ``scores`` and ``costs`` (float64 ``[models]``, in
    the order of ``split.models``), the embeddings and labels as Ray tensor columns (they
    arrive in batches as 2-D arrays, read in place). `blocks` cuts it into that many blocks of
    consecutive rows (one when None), in the driver: a ``repartition`` would run as Ray tasks,
    which wait for CPUs that a pool of routing workers as large as the cluster never frees."""
    import pyarrow as pa
    import ray.data
    from ray.data.extensions import ArrowTensorArray

    table = pa.table(
        {
            "id": pa.array(split.ids),
            "embedding": ArrowTensorArray.from_numpy(split.embeddings),
            "prompt_tokens": pa.array(split.prompt_tokens),
            "task": pa.array(split.tasks, type=pa.string()),
            "scores": ArrowTensorArray.from_numpy(split.scores),
            "costs": ArrowTensorArray.from_numpy(split.costs),
        }
    )
    n = table.num_rows
    blocks = max(1, min(blocks or 1, n))
    bounds = [n * i // blocks for i in range(blocks + 1)]
    return ray.data.from_arrow([table.slice(a, b - a) for a, b in zip(bounds, bounds[1:])])
