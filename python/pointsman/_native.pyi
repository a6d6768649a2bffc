"""Type stubs of the native module ``pointsman._native`` (re-exported by ``pointsman``).

Checked against the module by ``tests/test_stubs.py``: every public name, method and parameter
here exists there with the same name, kind and default-ness, and the other way round.
"""

import os
import pathlib
from collections.abc import Sequence
from typing import Any, Literal, Optional, Union, final, overload

from typing_extensions import Self

import numpy as np
import numpy.typing as npt

__version__: str
DEFAULT_EMBEDDING_MODEL: str

_Path = Union[str, "os.PathLike[str]"]
_Vector = Union[npt.NDArray[np.floating[Any]], npt.NDArray[np.integer[Any]], Sequence[float]]
_Matrix = Union[
    npt.NDArray[np.floating[Any]], npt.NDArray[np.integer[Any]], Sequence[Sequence[float]]
]

class PointsmanError(Exception):
    """Base class of every error Pointsman reports (I/O errors are OSError)."""

class ShapeError(PointsmanError, ValueError):
    """An array of the wrong shape or dimension, or embeddings of another embedding model."""

class ConfigError(PointsmanError, ValueError):
    """A configuration value out of range, an unknown setting, or contradicting settings."""

class InvalidInputError(PointsmanError, ValueError):
    """A value that cannot be used: a NaN or all-zero embedding, a quality outside [0, 1], an empty split."""

class FormatError(PointsmanError, ValueError):
    """A file that is not in the expected format (a corrupt or newer saved router, a malformed dataset)."""

class UnknownModelError(PointsmanError, LookupError):
    """A model id or index that is not in the router's (or the dataset's) pool."""

class BudgetError(InvalidInputError):
    """A budget below the expected cost of the first call that could be made."""

class SessionError(InvalidInputError):
    """A cascade session asked for what its state does not allow: an observation after it ended or of another model than it asked for, or an outcome before it decided."""

class NumericError(PointsmanError, ArithmeticError):
    """A router's numbers went wrong (a non-finite estimate from finite inputs, a training run that diverged): a defect of the router or its saved state, not of the query."""

class MissingLabelsError(PointsmanError, ValueError):
    """The labels a step needs are not there: evaluating on a split without every model's score on every query, or fitting a kind that cannot learn from what the split has (docs/own-data.md)."""

class PolicyRefusal(PointsmanError):
    """A decision-time policy refused the request (docs/policies.md): never a silent pick."""

class OutOfDistributionError(PolicyRefusal):
    """The policy's guard found the query unlike the training queries, and its action is to refuse."""

class BudgetExhaustedError(PolicyRefusal):
    """A budget's hard stop: what is left does not cover the expected cost of any allowed model."""

class NoModelFitsError(PolicyRefusal):
    """The policy's rules, hard caps, required capabilities or context windows leave no model."""

class StoreError(PointsmanError, ConnectionError):
    """A shared store (Redis) could not be reached or refused a command: shared learner state goes on locally; a shared budget refuses rather than risk passing its limit."""

class UnsupportedError(PointsmanError):
    """An operation this router does not offer, such as observe() on a router that does not learn."""

@final
class Dataset:
    """A routing dataset folder: the models with their prices, and the train and test splits."""

    @staticmethod
    def load(path: _Path) -> Dataset: ...
    @staticmethod
    def from_arrays(
        models: Sequence[str],
        scores: _Matrix,
        *,
        prices: dict[str, tuple[float, float]],
        embeddings: Optional[_Matrix] = None,
        prompts: Optional[Sequence[str]] = None,
        ids: Optional[Sequence[str]] = None,
        tasks: Optional[Sequence[Optional[str]]] = None,
        splits: Optional[Sequence[Literal["train", "test"]]] = None,
        costs: Optional[_Matrix] = None,
        propensities: Optional[_Matrix] = None,
        embedder: Optional[Embedder] = None,
        embedding_model: Optional[str] = None,
        name: str = "arrays",
    ) -> Dataset: ...
    @staticmethod
    def from_pandas(
        df: Any,
        models: Sequence[str],
        *,
        prices: dict[str, tuple[float, float]],
        prompt: Optional[str] = "prompt",
        embedding: Optional[str] = None,
        id: Optional[str] = None,
        task: Optional[str] = None,
        split: Optional[str] = None,
        cost: Optional[str] = None,
        embedder: Optional[Embedder] = None,
        embedding_model: Optional[str] = None,
        name: str = "dataframe",
    ) -> Dataset: ...
    def save(self, path: _Path, *, replace: bool = False) -> pathlib.Path: ...
    @property
    def name(self) -> str: ...
    @property
    def path(self) -> pathlib.Path: ...
    @property
    def models(self) -> list[str]: ...
    @property
    def model_cards(self) -> list[dict[str, Any]]: ...
    @property
    def train(self) -> Split: ...
    @property
    def test(self) -> Split: ...
    def __len__(self) -> int: ...

@final
class Split:
    """One split of a dataset, or labelled queries from arrays."""

    @staticmethod
    def from_arrays(
        embeddings: _Matrix,
        scores: _Matrix,
        costs: _Matrix,
        models: Sequence[str],
        tasks: Optional[Sequence[Optional[str]]] = None,
    ) -> Split: ...
    @property
    def name(self) -> str: ...
    @property
    def models(self) -> list[str]: ...
    @property
    def dim(self) -> int: ...
    @property
    def dataset(self) -> Optional[Dataset]: ...
    @property
    def ids(self) -> list[str]: ...
    @property
    def prompts(self) -> list[str]: ...
    @property
    def tasks(self) -> list[Optional[str]]: ...
    @property
    def prompt_tokens(self) -> npt.NDArray[np.float64]: ...
    @property
    def embeddings(self) -> npt.NDArray[np.float32]: ...
    @property
    def scores(self) -> npt.NDArray[np.float64]: ...
    @property
    def costs(self) -> npt.NDArray[np.float64]: ...
    @property
    def observed(self) -> npt.NDArray[np.bool_]: ...
    def __len__(self) -> int: ...

@final
class Embedder:
    """A loaded sentence-embedding model (all-MiniLM-L6-v2 by default)."""

    @staticmethod
    def load(
        path: Optional[_Path] = None,
        threads: int = 0,
        max_tokens: int = 256,
        backend: Literal["fast", "candle"] = "fast",
        pinning: Literal["auto", "always", "never"] = "auto",
    ) -> Embedder: ...
    @property
    def dim(self) -> int: ...
    @property
    def model_name(self) -> str: ...
    @property
    def path(self) -> pathlib.Path: ...
    @property
    def max_tokens(self) -> int: ...
    @property
    def threads(self) -> int: ...
    @property
    def pinned(self) -> bool: ...
    @property
    def backend(self) -> str: ...
    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...
    def embed_with_info(
        self, texts: Sequence[str]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], npt.NDArray[np.bool_]]: ...
    def tokenize(self, text: str) -> list[int]: ...
    def __reduce__(self) -> tuple[Any, tuple[pathlib.Path, int, int, str, str]]: ...

@final
class Alternative:
    """One model's figures in a decision."""

    @property
    def model(self) -> int: ...
    @property
    def model_id(self) -> str: ...
    @property
    def quality(self) -> float: ...
    @property
    def score(self) -> float: ...
    @property
    def cost(self) -> float: ...
    @property
    def utility(self) -> float: ...

@final
class Decision:
    """The outcome of routing one query."""

    @property
    def model(self) -> int: ...
    @property
    def model_id(self) -> str: ...
    @property
    def quality(self) -> float: ...
    @property
    def score(self) -> float: ...
    @property
    def cost(self) -> float: ...
    @property
    def utility(self) -> float: ...
    @property
    def cost_weight(self) -> float: ...
    @property
    def alternatives(self) -> list[Alternative]: ...
    @property
    def neighbours(self) -> Optional[int]: ...
    @property
    def ood(self) -> Optional[float]: ...
    @property
    def audit(self) -> Optional[dict[str, Any]]: ...

@final
class Policy:
    """A decision-time policy: rules, caps, budgets that pace, stickiness, an OOD guard."""

    def __init__(self, config: Union[dict[str, Any], str]) -> None: ...
    @staticmethod
    def load(path: _Path) -> Policy: ...
    def save(self, path: _Path) -> None: ...
    @property
    def config(self) -> dict[str, Any]: ...
    @property
    def has_fitted_guard(self) -> bool: ...
    def fit_guard(
        self, split: Split, *, holdout: float = 0.2, false_alarm: float = 0.05, seed: int = 0
    ) -> Policy: ...
    def record(
        self,
        router: Router,
        cost_usd: float,
        *,
        model: Optional[str] = None,
        tenant: Optional[str] = None,
        user: Optional[str] = None,
        session: Optional[str] = None,
        episode: Optional[Episode] = None,
    ) -> None: ...
    def budgets(
        self,
        router: Router,
        *,
        tenant: Optional[str] = None,
        user: Optional[str] = None,
        episode: Optional[Episode] = None,
    ) -> list[dict[str, Any]]: ...

@final
class Episode:
    """An agent episode: one budget for all its steps."""

    def __init__(self, id: str, budget_usd: float, steps: int, *, stop_margin: float = 1.0) -> None: ...
    @property
    def id(self) -> str: ...
    @property
    def budget_usd(self) -> float: ...
    @property
    def steps(self) -> int: ...

class Router:
    """A fitted router; every router kind is a subclass."""

    @property
    def kind(self) -> str: ...
    @property
    def models(self) -> list[str]: ...
    @property
    def dim(self) -> int: ...
    @property
    def embedding_model(self) -> Optional[str]: ...
    @property
    def config(self) -> dict[str, Any]: ...
    @property
    def embedder(self) -> Optional[Embedder]: ...
    def with_embedder(self, embedder: Optional[Embedder]) -> Self: ...
    @property
    def learns(self) -> bool: ...
    @property
    def observations(self) -> Optional[int]: ...
    def route(
        self,
        x: Union[_Vector, str],
        cost_weight: Optional[float] = None,
        *,
        allowed: Optional[Sequence[str]] = None,
        prompt_tokens: Optional[float] = None,
        task: Optional[str] = None,
        policy: Optional[Policy] = None,
        text: Optional[str] = None,
        tenant: Optional[str] = None,
        user: Optional[str] = None,
        session: Optional[str] = None,
        episode: Optional[Episode] = None,
        needs: Optional[Sequence[str]] = None,
        metadata: Optional[dict[str, str]] = None,
        expected_output_tokens: Optional[float] = None,
    ) -> Decision: ...
    def top_k(
        self,
        x: Union[_Vector, str],
        k: int,
        cost_weight: float = 0.0,
        *,
        allowed: Optional[Sequence[str]] = None,
        prompt_tokens: Optional[float] = None,
        task: Optional[str] = None,
    ) -> list[Alternative]: ...
    @overload
    def route_batch(
        self,
        x: Union[_Matrix, Sequence[str]],
        cost_weight: float = 0.0,
        *,
        allowed: Optional[Sequence[str]] = None,
        prompt_tokens: Optional[_Vector] = None,
        tasks: Optional[Sequence[Optional[str]]] = None,
        return_estimates: Literal[False] = False,
    ) -> npt.NDArray[np.uint32]: ...
    @overload
    def route_batch(
        self,
        x: Union[_Matrix, Sequence[str]],
        cost_weight: float = 0.0,
        *,
        allowed: Optional[Sequence[str]] = None,
        prompt_tokens: Optional[_Vector] = None,
        tasks: Optional[Sequence[Optional[str]]] = None,
        return_estimates: Literal[True],
    ) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
    def observe(
        self,
        embedding: Union[_Vector, str],
        model: Union[str, int],
        quality: float,
        cost: float,
        *,
        prompt_tokens: Optional[float] = None,
        task: Optional[str] = None,
    ) -> None: ...
    def add_model(
        self,
        model: str,
        labelled: Optional[Split] = None,
        *,
        input_usd_per_mtok: Optional[float] = None,
        output_usd_per_mtok: Optional[float] = None,
        description: Optional[str] = None,
    ) -> Router: ...
    def reprice(self, prices: dict[str, tuple[float, float]]) -> Router: ...
    def save(self, path: _Path) -> None: ...
    def to_bytes(self) -> bytes: ...
    @classmethod
    def load(
        cls, path: _Path, embedder: Optional[Embedder] = None, *, mmap: bool = False
    ) -> Any: ...
    def __reduce__(self) -> tuple[Any, tuple[bytes, Optional[Embedder]]]: ...

@final
class KnnRouter(Router):
    """kNN router: similarity-weighted scores of the nearest training queries, shrunk toward a prior."""

    @staticmethod
    def fit(split: Split, **config: Any) -> KnnRouter: ...
    @staticmethod
    def fit_arrays(
        embeddings: _Matrix, scores: _Matrix, costs: _Matrix, models: Sequence[str], **config: Any
    ) -> KnnRouter: ...
    @staticmethod
    def tune(
        split: Split, search: Optional[dict[str, Any]] = None, **config: Any
    ) -> tuple[KnnRouter, dict[str, Any]]: ...

@final
class MfRouter(Router):
    """Matrix-factorisation router (RouteLLM's MF, generalised to N models)."""

    @staticmethod
    def fit(split: Split, **config: Any) -> MfRouter: ...
    @staticmethod
    def fit_arrays(
        embeddings: _Matrix, scores: _Matrix, costs: _Matrix, models: Sequence[str], **config: Any
    ) -> MfRouter: ...
    @staticmethod
    def tune(
        split: Split, search: Optional[dict[str, Any]] = None, **config: Any
    ) -> tuple[MfRouter, dict[str, Any]]: ...

@final
class BaselineRouter(Router):
    """The baselines: "random", "cheapest", "best-single", "fixed:<model id>", "zero"."""

    @staticmethod
    def fit(split: Split, rule: str, seed: int = 0) -> BaselineRouter: ...

class BanditRouter(Router):
    """A bandit router of every kind: learns online from the outcome of the model it chose."""

    @property
    def pulls(self) -> list[int]: ...
    @property
    def is_greedy(self) -> bool: ...
    def greedy(self) -> Self: ...
    def exploring(self) -> Self: ...
    def snapshot(self) -> Self: ...
    def merge(self, other: BanditRouter) -> None: ...
    def merge_since(self, other: BanditRouter, base: BanditRouter) -> None: ...
    def forget_model(self, model_id: str) -> None: ...
    def observe_split(self, split: Split) -> None: ...
    def fit_unlabelled(self, x: _Matrix) -> None: ...

_Models = Sequence[Union[str, dict[str, Any]]]

@final
class LinUcbRouter(BanditRouter):
    """LinUCB: per-model ridge regression on the query embedding, plus an upper confidence bound."""

    def __init__(
        self, models: _Models, dim: int, *, embedding_model: Optional[str] = None, **config: Any
    ) -> None: ...
    @staticmethod
    def fit(split: Split, **config: Any) -> LinUcbRouter: ...

@final
class ThompsonRouter(BanditRouter):
    """Linear Thompson sampling: the ridge regression of LinUCB, exploring by posterior draws."""

    def __init__(
        self, models: _Models, dim: int, *, embedding_model: Optional[str] = None, **config: Any
    ) -> None: ...
    @staticmethod
    def fit(split: Split, **config: Any) -> ThompsonRouter: ...

@final
class KnnUcbRouter(BanditRouter):
    """kNN-UCB: similarity-weighted scores of each model's own past outcomes near the query, plus a bonus."""

    def __init__(
        self, models: _Models, dim: int, *, embedding_model: Optional[str] = None, **config: Any
    ) -> None: ...
    @staticmethod
    def fit(split: Split, **config: Any) -> KnnUcbRouter: ...

@final
class ClusterUcbRouter(BanditRouter):
    """Cluster UCB: per-(cluster, model) cells with an additive prior and a logarithmic bonus."""

    def __init__(
        self, models: _Models, dim: int, *, embedding_model: Optional[str] = None, **config: Any
    ) -> None: ...
    @staticmethod
    def fit(split: Split, **config: Any) -> ClusterUcbRouter: ...

_Stages = Sequence[tuple[str, float]]

@final
class CascadeRouter(Router):
    """A cascade: calls a cheap model first and escalates while the answer does not look good
    enough, within a per-query budget. ``route`` gives the first model; ``start`` runs a
    query's session."""

    @staticmethod
    def chain(models: _Models, dim: int, stages: _Stages, **config: Any) -> CascadeRouter: ...
    @staticmethod
    def fit(split: Split, *, stages: Optional[_Stages] = None, **config: Any) -> CascadeRouter: ...
    @staticmethod
    def tune(
        split: Split,
        confidences: Optional[_Matrix] = None,
        *,
        judge_noise: float = 0.1,
        seed: int = 0,
        search: Optional[dict[str, Any]] = None,
        **config: Any,
    ) -> tuple[CascadeRouter, dict[str, Any]]: ...
    @property
    def stages(self) -> list[tuple[str, float]]: ...
    def calibrate(
        self,
        split: Split,
        confidences: Optional[_Matrix] = None,
        *,
        mean_cost: Optional[float] = None,
        quality: Optional[float] = None,
        judge_noise: float = 0.1,
        seed: int = 0,
    ) -> tuple[CascadeRouter, dict[str, Any]]: ...
    def simulate(
        self,
        split: Split,
        confidences: Optional[_Matrix] = None,
        cost_weight: Optional[float] = None,
        *,
        judge_noise: float = 0.1,
        seed: int = 0,
    ) -> tuple[npt.NDArray[np.uint32], list[list[int]]]: ...
    def start(
        self,
        x: Union[_Vector, str],
        budget: Optional[float] = None,
        max_steps: Optional[int] = None,
        *,
        cost_weight: Optional[float] = None,
        allowed: Optional[Sequence[str]] = None,
        prompt_tokens: Optional[float] = None,
        task: Optional[str] = None,
    ) -> CascadeSession: ...

@final
class NextCall:
    """The model a cascade session asks the caller to call next."""

    @property
    def model(self) -> int: ...
    @property
    def model_id(self) -> str: ...
    @property
    def expected_quality(self) -> float: ...
    @property
    def expected_cost(self) -> float: ...

@final
class Invocation:
    """One model call of a cascade session."""

    @property
    def model(self) -> int: ...
    @property
    def model_id(self) -> str: ...
    @property
    def confidence(self) -> float: ...
    @property
    def posterior(self) -> float: ...
    @property
    def cost(self) -> float: ...

@final
class CascadeOutcome:
    """The end of a cascade session: which answer to use and what it took."""

    @property
    def accepted(self) -> int: ...
    @property
    def accepted_id(self) -> str: ...
    @property
    def posterior(self) -> float: ...
    @property
    def invoked(self) -> list[Invocation]: ...
    @property
    def invoked_ids(self) -> list[str]: ...
    @property
    def steps(self) -> int: ...
    @property
    def total_cost(self) -> float: ...
    @property
    def budget_exhausted(self) -> bool: ...
    @property
    def stop(
        self,
    ) -> Literal[
        "accepted", "not-worth-escalating", "out-of-models", "budget-exhausted", "max-steps", "stopped"
    ]: ...

@final
class CascadeStep:
    """What ``CascadeSession.observe`` says: accepted (with the outcome), or the next model."""

    @property
    def accepted(self) -> bool: ...
    @property
    def next(self) -> Optional[NextCall]: ...
    @property
    def outcome(self) -> Optional[CascadeOutcome]: ...

@final
class CascadeSession:
    """One query's run through a cascade (``CascadeRouter.start``)."""

    @property
    def next(self) -> Optional[NextCall]: ...
    @property
    def model(self) -> Optional[int]: ...
    @property
    def model_id(self) -> Optional[str]: ...
    @property
    def done(self) -> bool: ...
    @property
    def invoked(self) -> list[Invocation]: ...
    @property
    def total_cost(self) -> float: ...
    @property
    def outcome(self) -> Optional[CascadeOutcome]: ...
    def observe(
        self, model: Union[str, int], confidence: float, *, cost: Optional[float] = None
    ) -> CascadeStep: ...
    def finish(self) -> CascadeOutcome: ...

def simulated_confidences(
    split: Split, noise: float = 0.1, seed: int = 0, *, training: bool = False
) -> npt.NDArray[np.float64]: ...

def train(
    split: Split,
    router: str,
    *,
    criterion: Optional[str] = None,
    kinds: Optional[Sequence[str]] = None,
    folds: Optional[int] = None,
    seed: int = 0,
    nested: bool = True,
) -> tuple[Router, Optional[dict[str, Any]]]: ...
@final
class Exchange:
    """The background exchange of one learner's state with the other replicas (through Redis). Stopped by `stop()` (after a last synchronisation) or when garbage-collected."""

    def stats(self) -> dict[str, Any]: ...
    def sync(self) -> None: ...
    def stop(self) -> None: ...
    @property
    def stopped(self) -> bool: ...

def share_through_redis(
    router: Router,
    url: str,
    *,
    interval_ms: int = 100,
    namespace: str = "",
    replica: str = "",
    max_buffer_bytes: int = 67108864,
    compact_every: int = 1000,
    read_batch: int = 10000,
) -> Exchange: ...
def load_router(
    path: _Path, embedder: Optional[Embedder] = None, *, mmap: bool = False
) -> Router: ...
def router_from_bytes(data: bytes, embedder: Optional[Embedder] = None) -> Router: ...
def evaluate(
    router: Router,
    split: Split,
    cost_weights: Optional[Sequence[float]] = None,
    *,
    train: Optional[Split] = None,
) -> dict[str, Any]: ...
def import_dataset(
    format: Literal["log", "llmrouter", "routellm", "routerbench", "gateway-log"],
    inputs: Sequence[_Path],
    out: _Path,
    *,
    models: Optional[_Path] = None,
    mapping: Optional[dict[str, str]] = None,
    embed: bool = True,
    embedder: Optional[Embedder] = None,
    replace: bool = False,
    mt_bench: bool = False,
    default_output_tokens: Optional[float] = None,
    duplicates: Literal["refuse", "mean", "last"] = "refuse",
) -> Dataset: ...
def num_threads() -> int: ...
