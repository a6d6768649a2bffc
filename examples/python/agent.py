"""An agent loop that routes every user turn to an LLM and learns from the outcome.

Each turn: the text is embedded in-process (all-MiniLM-L6-v2), a bandit router picks the model
with the best expected quality minus cost_weight times cost, a stand-in model function
"answers" and a stand-in grader scores the answer, and the bandit learns from that outcome
(`observe`). At the end the router, with what it learned, is saved for the next session.

The preamble trains the router once: a kNN-UCB bandit warm-started on the training split of
the llmrouter_dc dataset (every model's score on every training prompt), saved to a file. The
loop then loads that file as any deployment would.

Run from the repository (after `pip install` of the wheel and scripts/fetch-model.sh):

    python examples/python/agent.py [--turns 12] [--cost-weight 200] [--data ../shared/data]
"""

import argparse
import hashlib
import os
import tempfile
import time
from pathlib import Path

import pointsman

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = Path(os.environ.get("POINTSMAN_DATA_DIR", REPO.parent / "shared" / "data"))

USER_TURNS = [
    "Write a Python function that checks whether a string is a palindrome.",
    "What is the capital of Australia?",
    "Prove that there are infinitely many prime numbers.",
    "Summarise the plot of Hamlet in two sentences.",
    "Fix the bug: for i in range(len(xs)): if xs[i] = 0: print(i)",
    "Translate 'good morning, how are you?' into French.",
    "A train leaves at 3 pm at 80 km/h; another at 4 pm at 100 km/h. When does the second catch up?",
    "Explain the difference between a process and a thread.",
    "Give me three names for a coffee shop.",
    "Write a SQL query returning the ten customers with the highest total order value.",
    "Is 1001 a prime number? Explain.",
    "What does the Rust borrow checker prevent?",
]


def train(data_dir: Path, path: Path) -> None:
    """The preamble: warm-start a kNN-UCB bandit on the dataset's training split and save it."""
    ds = pointsman.Dataset.load(data_dir / "llmrouter_dc")
    router = pointsman.KnnUcbRouter.fit(ds.train)
    router.save(path)
    print(f"trained {router!r} on {len(ds.train)} prompts -> {path.name}")


def stand_in_model(model_id: str, prompt: str) -> tuple[str, float]:
    """Pretends to call `model_id`: returns its answer and a grader's score in [0, 1].

    The score is deterministic: bigger models (the number of billions in the id) answer more
    prompts well, and longer prompts are harder."""
    digits = "".join(c if c.isdigit() else " " for c in model_id).split()
    size = max((int(d) for d in digits), default=8)
    skill = min(0.95, 0.45 + 0.1 * size**0.5) - min(0.2, len(prompt) / 1000)
    h = int(hashlib.sha256(f"{model_id}|{prompt}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    score = 1.0 if h < skill else 0.0
    return f"[{model_id}] an answer to: {prompt[:40]}...", score


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared datasets folder")
    ap.add_argument("--turns", type=int, default=len(USER_TURNS))
    ap.add_argument("--cost-weight", type=float, default=200.0, help="USD -> quality units")
    args = ap.parse_args()
    if args.turns < 1:
        ap.error(f"--turns {args.turns}: the loop needs at least one turn")

    embedder = pointsman.Embedder.load(threads=1)  # the default model, on one thread
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "agent-router.safetensors"
        train(args.data, path)

        # The deployment: load the saved bandit with the embedder attached; route text.
        router = pointsman.load_router(path, embedder=embedder)
        start = router.observations
        total_cost = total_quality = 0.0
        t0 = time.perf_counter()
        for turn in range(args.turns):
            prompt = USER_TURNS[turn % len(USER_TURNS)]
            decision = router.route(prompt, args.cost_weight)
            answer, quality = stand_in_model(decision.model_id, prompt)
            cost = decision.cost  # a real agent would use the provider's bill
            router.observe(prompt, decision.model, quality, cost)
            total_cost += cost
            total_quality += quality
            print(
                f"turn {turn + 1:2}: {decision.model_id:32} expected {decision.quality:.2f} "
                f"got {quality:.0f}  ${cost:.6f}  | {answer[:50]}"
            )
        elapsed = time.perf_counter() - t0
        router.save(path)  # what it learned, for the next session
        learned = pointsman.load_router(path).observations - start
        print(
            f"{args.turns} turns in {elapsed:.2f} s: mean quality {total_quality / args.turns:.2f}, "
            f"total cost ${total_cost:.6f}; the saved router learned {learned} new outcomes"
        )
        assert learned == args.turns


if __name__ == "__main__":
    main()
