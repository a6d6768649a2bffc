"""Pointsman: route each query to the LLM with the best quality-cost trade-off.

The engine is the Rust crate ``pointsman``; this package is its Python face. Everything public
lives in the private native module ``pointsman._native`` and is re-exported here.

>>> import pointsman
>>> ds = pointsman.Dataset.load("../shared/data/llmrouter_dc")            # doctest: +SKIP
>>> router = pointsman.KnnRouter.fit(ds.train, k=50)                    # doctest: +SKIP
>>> router.route(ds.test.embeddings[0], cost_weight=500.0).model_id     # doctest: +SKIP
"""

from ._native import (
    DEFAULT_EMBEDDING_MODEL,
    Alternative,
    BanditRouter,
    BaselineRouter,
    CascadeOutcome,
    CascadeRouter,
    CascadeSession,
    CascadeStep,
    ClusterUcbRouter,
    ConfigError,
    Dataset,
    Decision,
    Embedder,
    FormatError,
    InvalidInputError,
    Invocation,
    KnnRouter,
    KnnUcbRouter,
    LinUcbRouter,
    MfRouter,
    NextCall,
    PointsmanError,
    Router,
    ShapeError,
    Split,
    ThompsonRouter,
    UnknownModelError,
    UnsupportedError,
    __version__,
    evaluate,
    load_router,
    num_threads,
    router_from_bytes,
    simulated_confidences,
)

__all__ = [
    "DEFAULT_EMBEDDING_MODEL",
    "Alternative",
    "BanditRouter",
    "BaselineRouter",
    "CascadeOutcome",
    "CascadeRouter",
    "CascadeSession",
    "CascadeStep",
    "ClusterUcbRouter",
    "ConfigError",
    "Dataset",
    "Decision",
    "Embedder",
    "FormatError",
    "InvalidInputError",
    "Invocation",
    "KnnRouter",
    "KnnUcbRouter",
    "LinUcbRouter",
    "MfRouter",
    "NextCall",
    "PointsmanError",
    "Router",
    "ShapeError",
    "Split",
    "ThompsonRouter",
    "UnknownModelError",
    "UnsupportedError",
    "__version__",
    "evaluate",
    "load_router",
    "num_threads",
    "router_from_bytes",
    "simulated_confidences",
]
