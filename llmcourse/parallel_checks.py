"""Chapter 15's experiments: the same training on one process and on several.

Run by the chapter once, on two CPU processes (``llmcourse.distributed.launch``)::

    torchrun --standalone --nproc_per_node=2 -m llmcourse.parallel_checks \\
        --data tokens.bin --vocab-size 65 --out results.pt

and once in the notebook's own process (``run_checks(ids, vocab_size, Dist())``), which gives
the single-process references. Every run trains with ``llmcourse.train.train_gpt``, the
loop of ``python -m llmcourse.train``, on the same global batches:

    grads            gradients after the first step (AdamW, float32)
    sgd              weights after a few SGD steps, float32
    adamw32/adamw64  weights after a few AdamW steps, float32 and float64
    adamw32_accum    one process, 2 micro-batches per step (AdamW, float32)
    accum            2 ranks x 2 micro-batches, no_sync on the first; all-reduces counted
    accum_every      the same with an all-reduce after every micro-batch (no no_sync)
    accum_never      no_sync on every micro-batch: never all-reduced (the silent bug)
    fsdp_sgd, fsdp_adamw64   FSDP2 fully_shard, each rank holding half of every parameter

Rank 0 writes a dict of CPU tensors and numbers with ``torch.save``.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import torch
import torch.distributed as torch_dist

from llmcourse.distributed import Dist, init_distributed, unwrap
from llmcourse.gpt import GPTConfig
from llmcourse.train import RunConfig, build_model, full_state_dict, train_gpt
from llmcourse.training import TrainConfig, open_token_file

__all__ = [
    "MODEL",
    "SGD_LR",
    "TRAIN",
    "accumulate_never_syncing",
    "accumulate_syncing_every_micro_step",
    "run_checks",
]

MODEL = {"block_size": 64, "n_layer": 2, "n_head": 4, "n_embd": 64}  # chapter 8's, shorter T
TRAIN = TrainConfig(
    steps=5,
    batch_size=8,
    block_size=64,
    max_lr=1e-2,
    min_lr=1e-3,
    warmup_steps=0,
    eval_every=5,
    eval_batches=1,
    seed=0,
)
SGD_LR = 0.5  # plain SGD needs a larger step than AdamW to move the weights as much


def accumulate_syncing_every_micro_step(model, micro_batches, loss_fn, autocast=None):
    """Accumulation without no_sync: DDP all-reduces after every backward (right, but slow)."""
    total = 0.0
    for x, y in micro_batches:
        loss = loss_fn(model(x), y) / len(micro_batches)
        loss.backward()  # each backward all-reduces the gradient summed so far
        total += loss.item()
    return total


def accumulate_never_syncing(model, micro_batches, loss_fn, autocast=None):
    """The silent bug: no_sync around every backward, so gradients are never all-reduced."""
    total = 0.0
    for x, y in micro_batches:
        with model.no_sync():  # wrong for the last micro-batch
            loss = loss_fn(model(x), y) / len(micro_batches)
            loss.backward()
        total += loss.item()
    return total


def _count_allreduces(model) -> dict:
    """Wrap DDP's all-reduce of each gradient bucket in a counter."""
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    counter = {"allreduces": 0}

    def hook(state, bucket):
        state["allreduces"] += 1
        return allreduce_hook(None, bucket)

    model.register_comm_hook(counter, hook)
    return counter


def _train(ids, model_config, train, run, dist, accumulate=None, count=False):
    model = build_model(model_config, run, dist, train.seed)
    counter = _count_allreduces(model) if count else None
    kwargs = {"accumulate": accumulate} if accumulate else {}
    history = train_gpt(model, ids, ids, train, run, dist, **kwargs)
    return model, history, counter


def _grads(model) -> dict:
    return {n: p.grad.detach().cpu().clone() for n, p in unwrap(model).named_parameters()}


def _spread_over_ranks(model, dist: Dist) -> float:
    """Largest difference between any weight on this rank and the same weight on rank 0."""
    flat = torch.cat([p.detach().reshape(-1) for p in unwrap(model).parameters()])
    reference = flat.clone()
    torch_dist.broadcast(reference, src=0)
    spread = (flat - reference).abs().max()
    torch_dist.all_reduce(spread, op=torch_dist.ReduceOp.MAX)
    return float(spread)


def run_checks(ids, vocab_size: int, dist: Dist) -> dict:
    """Run the experiments on this process (one of ``dist.world_size``); see the module doc."""
    config = GPTConfig(vocab_size=vocab_size, **MODEL)
    sgd_train = replace(TRAIN, max_lr=SGD_LR, min_lr=SGD_LR / 10)
    results = {"world_size": dist.world_size}

    model, _, _ = _train(ids, config, replace(TRAIN, steps=1), RunConfig(), dist)
    results["grads"] = _grads(model)
    for name, train, run in (
        ("sgd", sgd_train, RunConfig(optimizer="sgd")),
        ("adamw32", TRAIN, RunConfig()),
        ("adamw64", TRAIN, RunConfig(dtype="float64")),
    ):
        model, history, _ = _train(ids, config, train, run, dist)
        results[name] = full_state_dict(model)
        results[name + "_loss"] = history["step_loss"]
    if not dist.is_distributed:
        model, _, _ = _train(ids, config, TRAIN, RunConfig(grad_accum=2), dist)
        results["adamw32_accum"] = full_state_dict(model)
        return results

    accum = RunConfig(optimizer="sgd", grad_accum=2)
    for name, accumulate in (
        ("accum", None),
        ("accum_every", accumulate_syncing_every_micro_step),
        ("accum_never", accumulate_never_syncing),
    ):
        model, _, counter = _train(ids, config, sgd_train, accum, dist, accumulate, count=True)
        results[name] = full_state_dict(model)
        results[name + "_allreduces_per_step"] = counter["allreduces"] / sgd_train.steps
        results[name + "_spread"] = _spread_over_ranks(model, dist)
    for name, train, run in (
        ("fsdp_sgd", sgd_train, RunConfig(strategy="fsdp", optimizer="sgd")),
        ("fsdp_adamw64", TRAIN, RunConfig(strategy="fsdp", dtype="float64")),
    ):
        model, _, _ = _train(ids, config, train, run, dist)
        model.reshard()  # FSDP keeps the root's weights gathered after a forward: shard them
        local = sum(p.to_local().numel() for p in model.parameters())
        counts = [None] * dist.world_size
        torch_dist.all_gather_object(counts, local)
        results[name] = full_state_dict(model)
        results[name + "_local_numels"] = counts
        results[name + "_types"] = sorted({type(p).__name__ for p in model.parameters()})
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="uint16 token file")
    parser.add_argument("--vocab-size", type=int, required=True)
    parser.add_argument("--out", required=True, help="where rank 0 saves the results")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    dist = init_distributed("cpu")
    try:
        results = run_checks(open_token_file(args.data), args.vocab_size, dist)
        if dist.is_main:
            torch.save(results, args.out)
            print(f"rank 0 of {dist.world_size}: wrote {len(results)} results")
    finally:
        if torch_dist.is_initialized():
            torch_dist.destroy_process_group()


if __name__ == "__main__":
    main()
