"""Train chapter 8's GPT on one process, or on many with DistributedDataParallel or FSDP.

One process (CPU, or the first GPU if there is one):

    python -m llmcourse.train --steps 300 --out runs/tiny

Two processes on this machine (gloo on CPUs, NCCL on GPUs; torchrun picks a free port):

    torchrun --standalone --nproc_per_node=2 -m llmcourse.train --steps 300 --out runs/ddp

Two machines with 8 GPUs each: the same command on both, pointing at one of them:

    torchrun --nnodes=2 --nproc_per_node=8 --rdzv-backend=c10d --rdzv-id=run1 \\
        --rdzv-endpoint=node0.example:29500 -m llmcourse.train --strategy fsdp ...

(``python -m torch.distributed.run`` is the same program as ``torchrun``.) The data are
Shakespeare's plays one character per token (``llmcourse.offline``), or a file of uint16 token
ids given by ``--data`` (and ``--val-data``, ``--vocab-size``), read as a memory map. Batches come
from ``llmcourse.training.get_batch``: every rank draws the same global batch of
``--batch-size`` windows from the same seed and keeps its own rows (``rank_rows``), split into
``--grad-accum`` micro-batches. So a run on W processes sees exactly the data of a run on one,
and, up to rounding, takes the same steps. Rank 0 prints the losses and writes
``metrics.json`` and ``model.pt`` (the full state dict, gathered from the shards) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as torch_dist

from llmcourse.distributed import (
    Dist,
    accumulate_gradients,
    init_distributed,
    rank_rows,
    unwrap,
    wrap_model,
)
from llmcourse.gpt import GPT, GPTConfig, gpt_param_count
from llmcourse.training import (
    TrainConfig,
    configure_optimizer,
    estimate_loss,
    fixed_batches,
    get_batch,
    next_token_loss,
    open_token_file,
    set_scheduled_lr,
)
from llmcourse.validation import positive_int

__all__ = [
    "RunConfig",
    "build_model",
    "enable_activation_checkpointing",
    "full_state_dict",
    "local_batches",
    "main",
    "train_gpt",
]


@dataclass(frozen=True)
class RunConfig:
    """How a run is spread over processes and computed (the what is a ``TrainConfig``)."""

    strategy: str = "ddp"  # "ddp" (a full replica per rank) or "fsdp" (parameters sharded)
    grad_accum: int = 1  # micro-batches per optimizer step on each rank
    optimizer: str = "adamw"  # "adamw" (chapter 8's) or "sgd" (plain, for exactness checks)
    dtype: str = "float32"  # parameters' dtype: "float32", or "float64" for exactness checks
    autocast: str = "none"  # "bfloat16": mixed precision with torch.autocast
    checkpointing: bool = False  # recompute each block's activations in backward

    def __post_init__(self):
        choices = {
            "strategy": ("ddp", "fsdp"),
            "optimizer": ("adamw", "sgd"),
            "dtype": ("float32", "float64"),
            "autocast": ("none", "bfloat16"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        positive_int("grad_accum", self.grad_accum)


def enable_activation_checkpointing(model: GPT) -> GPT:
    """Make every block keep only its input and recompute the rest during backward."""
    from torch.utils.checkpoint import checkpoint

    for block in model.transformer.h:
        plain = block.forward

        def forward(*args, plain=plain, **kwargs):
            return checkpoint(plain, *args, use_reentrant=False, **kwargs)

        block.forward = forward
    return model


def build_model(model_config: GPTConfig, run: RunConfig, dist: Dist, seed: int):
    """The GPT, identical on every rank (same seed), on the device, wrapped for the strategy."""
    torch.manual_seed(seed)  # every rank must start from the same weights (FSDP shards them)
    model = GPT(model_config).to(device=dist.device, dtype=getattr(torch, run.dtype))
    if run.checkpointing:
        enable_activation_checkpointing(model)
    model = wrap_model(model, run.strategy, dist)
    torch.manual_seed(seed + dist.rank)  # dropout: each rank its own masks, as one process
    return model


def local_batches(x: torch.Tensor, y: torch.Tensor, dist: Dist, grad_accum: int):
    """This rank's rows of a global batch, split into ``grad_accum`` micro-batches."""
    x, y = rank_rows(x, dist.rank, dist.world_size), rank_rows(y, dist.rank, dist.world_size)
    if x.shape[0] % grad_accum:
        raise ValueError(
            f"{x.shape[0]} rows per rank do not split into {grad_accum} "
            f"micro-batches: make batch_size a multiple of world_size * grad_accum"
        )
    x, y = x.to(dist.device), y.to(dist.device)
    return list(zip(x.chunk(grad_accum), y.chunk(grad_accum)))


def _make_optimizer(model, train: TrainConfig, run: RunConfig):
    if run.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=train.max_lr)
    return configure_optimizer(model, train)


def _mean_over_ranks(value: float, dist: Dist) -> float:
    if not dist.is_distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=dist.device)
    torch_dist.all_reduce(tensor)
    return float(tensor) / dist.world_size


def _evaluate(model, batches, dist: Dist) -> float:
    """Mean loss over fixed batches, each rank scoring its own rows (every rank must run the
    same number of forwards: FSDP's forward is a collective operation)."""
    mine = [
        (
            rank_rows(x, dist.rank, dist.world_size).to(dist.device),
            rank_rows(y, dist.rank, dist.world_size).to(dist.device),
        )
        for x, y in batches
    ]
    return _mean_over_ranks(estimate_loss(model, mine), dist)


def train_gpt(
    model,
    train_ids,
    val_ids,
    train: TrainConfig,
    run: RunConfig,
    dist: Dist,
    log=None,
    accumulate=accumulate_gradients,
) -> dict:
    """Chapter 8's loop on ``dist.world_size`` processes; returns the losses it measured.

    Per step: the learning rate of the schedule, one global batch (this rank's rows), the
    gradients of its micro-batches accumulated and all-reduced once (``accumulate``; chapter
    15 swaps in wrong versions), clipping, one update.
    """
    # The same batches on every rank and every device: windows are drawn on the CPU.
    generator = torch.Generator().manual_seed(train.seed)
    evals = {
        name: fixed_batches(ids, train.eval_batches, train.batch_size, train.block_size, seed=seed)
        for name, ids, seed in (("train", train_ids, 1), ("val", val_ids, 2))
    }
    optimizer = _make_optimizer(model, train, run)
    autocast = None
    if run.autocast == "bfloat16":
        autocast = torch.autocast(dist.device.type, dtype=torch.bfloat16)
    history = {"step": [], "train_loss": [], "val_loss": [], "step_loss": []}

    def evaluate(step):
        history["step"].append(step)
        for name, batches in evals.items():
            history[f"{name}_loss"].append(_evaluate(model, batches, dist))
        if log:
            log(
                f"step {step:>5}  train {history['train_loss'][-1]:.4f}  "
                f"val {history['val_loss'][-1]:.4f}"
            )

    evaluate(0)
    model.train()
    for step in range(train.steps):
        set_scheduled_lr(optimizer, step, train)
        x, y = get_batch(train_ids, train.batch_size, train.block_size, generator)
        optimizer.zero_grad(set_to_none=True)
        loss = accumulate(
            model, local_batches(x, y, dist, run.grad_accum), next_token_loss, autocast
        )
        if train.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
        optimizer.step()
        history["step_loss"].append(_mean_over_ranks(loss, dist))
        if (step + 1) % train.eval_every == 0 or step + 1 == train.steps:
            evaluate(step + 1)
    model.eval()
    return history


def full_state_dict(model) -> dict:
    """The whole model's weights on the CPU, gathered from every rank (a collective call)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    if not torch_dist.is_initialized():
        return {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()}
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options)


def _data(args):
    """Training and validation ids and the vocabulary size, from files or Shakespeare."""
    if args.data:
        if not args.vocab_size:
            raise SystemExit("--data needs --vocab-size (the tokenizer's number of ids)")
        train_ids = open_token_file(args.data)
        val_ids = open_token_file(args.val_data) if args.val_data else train_ids
        return train_ids, val_ids, args.vocab_size
    from llmcourse.offline import shakespeare_text
    from llmcourse.tokenization import CharTokenizer

    train_text, val_text = shakespeare_text("train"), shakespeare_text("validation")
    tokenizer = CharTokenizer(train_text)

    def encode(text):
        return np.array(tokenizer.encode(text), dtype=np.int64)

    return encode(train_text), encode(val_text), tokenizer.vocab_size


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m llmcourse.train",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    a = p.add_argument
    a("--data", help="uint16 token file to train on (none: Shakespeare, by character)")
    a("--val-data", help="uint16 token file for validation (none: --data)")
    a("--vocab-size", type=int, help="number of token ids (needed with --data)")
    a("--n-layer", type=int, default=2, help="Transformer blocks")
    a("--n-head", type=int, default=4, help="attention heads per block")
    a("--n-embd", type=int, default=64, help="model width")
    a("--dropout", type=float, default=0.0, help="dropout probability")
    t = TrainConfig()
    a("--steps", type=int, default=300, help="optimizer steps")
    a("--batch-size", type=int, default=8, help="global batch: windows per step, all ranks")
    a("--block-size", type=int, default=128, help="tokens per window (the context length)")
    a("--lr", type=float, default=1e-2, help="peak learning rate")
    a("--min-lr", type=float, default=1e-3, help="learning rate at the end of the decay")
    a("--warmup-steps", type=int, default=50, help="steps of linear warm-up")
    a("--weight-decay", type=float, default=t.weight_decay, help="AdamW's, on matrices")
    a("--grad-clip", type=float, default=t.grad_clip, help="largest gradient norm; 0: none")
    a("--eval-every", type=int, default=100, help="steps between loss measurements")
    a("--eval-batches", type=int, default=8, help="fixed batches per loss measurement")
    a("--seed", type=int, default=0, help="seeds the weights and the batches")
    r = RunConfig()
    a(
        "--strategy",
        choices=("ddp", "fsdp"),
        default=r.strategy,
        help="with several processes: full replicas (ddp) or sharded parameters (fsdp)",
    )
    a("--grad-accum", type=int, default=r.grad_accum, help="micro-batches per step per rank")
    a("--optimizer", choices=("adamw", "sgd"), default=r.optimizer, help="the update rule")
    a("--dtype", choices=("float32", "float64"), default=r.dtype, help="parameters' dtype")
    a(
        "--autocast",
        choices=("none", "bfloat16"),
        default=r.autocast,
        help="mixed precision with torch.autocast",
    )
    a("--checkpointing", action="store_true", help="activation checkpointing on every block")
    a(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="auto: cuda if available, else cpu",
    )
    a("--out", help="folder for metrics.json and model.pt (written by rank 0)")
    return p


def _config(cls, args: argparse.Namespace, **overrides):
    """A ``cls`` dataclass from the options named as its fields, then ``overrides``."""
    given = {name: getattr(args, name) for name in cls.__dataclass_fields__ if hasattr(args, name)}
    return cls(**(given | overrides))


def main(argv: list[str] | None = None) -> dict:
    args = _parser().parse_args(argv)
    train_ids, val_ids, vocab_size = _data(args)
    model_config = _config(GPTConfig, args, vocab_size=vocab_size)
    warmup_steps = min(args.warmup_steps, args.steps - 1)
    train = _config(TrainConfig, args, max_lr=args.lr, warmup_steps=warmup_steps)
    run = _config(RunConfig, args)
    dist = init_distributed(args.device)
    log = print if dist.is_main else None
    try:
        if train.batch_size % (dist.world_size * run.grad_accum):
            raise SystemExit(
                f"--batch-size {train.batch_size} must be a multiple of "
                f"world size x grad-accum = {dist.world_size * run.grad_accum}"
            )
        if log:
            log(
                f"{dist.world_size} process(es) on {dist.device.type}, strategy "
                f"{run.strategy if dist.is_distributed else 'single'}; "
                f"{gpt_param_count(model_config):,} parameters"
            )
        model = build_model(model_config, run, dist, train.seed)
        start = time.perf_counter()
        history = train_gpt(model, train_ids, val_ids, train, run, dist, log)
        seconds = time.perf_counter() - start
        state = full_state_dict(model)
        result = {
            "world_size": dist.world_size,
            "device": dist.device.type,
            "model": asdict(model_config),
            "train": {**asdict(train), "betas": list(train.betas)},
            "run": asdict(run),
            "history": history,
            "seconds": round(seconds, 2),
        }
        if dist.device.type == "cuda":
            result["max_memory_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
        if dist.is_main:
            final = history["val_loss"][-1]
            log(
                f"done in {seconds:.1f} s; validation loss {final:.4f} "
                f"(perplexity {math.exp(final):.2f})"
            )
            if args.out:
                out = Path(args.out)
                out.mkdir(parents=True, exist_ok=True)
                (out / "metrics.json").write_text(json.dumps(result, indent=1) + "\n")
                torch.save(state, out / "model.pt")
                log(f"wrote {out / 'metrics.json'} and {out / 'model.pt'}")
        return result
    finally:
        if torch_dist.is_initialized():
            torch_dist.destroy_process_group()


if __name__ == "__main__":
    main()
