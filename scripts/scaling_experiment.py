"""Chapter 11's toy scaling experiment: four GPTs of growing size, one data and compute budget.

Usage (from the repository root; a few minutes on two CPU cores):

    .venv/bin/python scripts/scaling_experiment.py

Each model (``llmcourse.gpt.GPT``) reads Shakespeare one character at a time and is trained
by ``llmcourse.training.train`` for the same number of steps on the same batches, with the same
learning-rate schedule; only its depth and width differ. The script writes every model's size
and loss curves to ``llmcourse/data/scaling_results.json`` (shipped with the package, so Colab
has it too), which chapter 11 loads with ``llmcourse.scaling.load_scaling_results()`` and plots. The
run is seeded and has a fixed number of steps, so it gives the same numbers on a rerun on the
same machine (float arithmetic may differ in the last digits on other CPUs or thread counts).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing the package

from llmcourse.offline import shakespeare_text  # noqa: E402
from llmcourse.scaling import ExperimentSize, run_scaling_experiment  # noqa: E402
from llmcourse.tokenization import CharTokenizer  # noqa: E402
from llmcourse.training import TrainConfig, unigram_cross_entropy  # noqa: E402

OUT = ROOT / "llmcourse" / "data" / "scaling_results.json"
# From about 3 thousand to about half a million non-embedding parameters: two and a half
# decades, a width 1.5-2x and one more block at each step (head size 16 or 32).
SIZES = (
    ExperimentSize(n_layer=1, n_head=1, n_embd=16),
    ExperimentSize(n_layer=2, n_head=2, n_embd=32),
    ExperimentSize(n_layer=3, n_head=2, n_embd=64),
    ExperimentSize(n_layer=4, n_head=3, n_embd=96),
)
TRAIN = TrainConfig(
    steps=400,
    batch_size=32,
    block_size=64,
    max_lr=3e-3,
    min_lr=3e-4,
    warmup_steps=40,
    eval_every=50,
    eval_batches=8,
    seed=0,
)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=TRAIN.steps, help="optimizer steps per model")
    parser.add_argument(
        "--sizes",
        type=int,
        default=len(SIZES),
        help="train only the first SIZES models (for a quick test)",
    )
    parser.add_argument(
        "--eval-batches",
        type=int,
        default=TRAIN.eval_batches,
        help="fixed batches per loss measurement",
    )
    parser.add_argument("--out", type=Path, default=OUT, help="where to write the JSON results")
    args = parser.parse_args(argv)
    config = TrainConfig(
        **{
            **asdict(TRAIN),
            "steps": args.steps,
            "eval_batches": args.eval_batches,
            "warmup_steps": min(TRAIN.warmup_steps, args.steps - 1),
            "eval_every": min(TRAIN.eval_every, args.steps),
        }
    )
    sizes = SIZES[: args.sizes]

    train_text, val_text = shakespeare_text("train"), shakespeare_text("validation")
    tokenizer = CharTokenizer(train_text)
    train_ids, val_ids = tokenizer.encode(train_text), tokenizer.encode(val_text)
    start = time.perf_counter()
    models = run_scaling_experiment(train_ids, val_ids, tokenizer.vocab_size, sizes, config)
    seconds = time.perf_counter() - start

    result = {
        "description": "Character-level GPTs trained on Shakespeare (validation: Hamlet) with "
        "the same batches, steps and schedule; losses in nats per character.",
        "command": "python scripts/scaling_experiment.py",
        "vocab_size": tokenizer.vocab_size,
        "train_config": {**asdict(config), "betas": list(config.betas)},
        "tokens_per_model": config.steps * config.batch_size * config.block_size,
        "unigram_val_loss": round(
            unigram_cross_entropy(train_ids, val_ids, tokenizer.vocab_size), 6
        ),
        "models": models,
        "seconds": round(seconds, 1),  # machine-dependent
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for m in models:
        print(
            f"{m['non_embedding_params']:>8,} non-embedding parameters: "
            f"validation loss {m['val_loss'][-1]:.4f}"
        )
    print(f"{seconds:.0f} s; wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
