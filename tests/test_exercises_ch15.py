"""The chapter 15 exercise checks: model answers pass, plausible wrong answers get a hint."""

import contextlib

import pytest
import torch
from torch.nn import functional as F

from llmcourse.exercises import ExerciseError, NotYetAnswered
from llmcourse.exercises.ch15 import check_fixed_step, check_largest_model, check_shard_indices

# --- the largest model per ZeRO stage ---------------------------------------------------------


def largest_model(gpu_bytes, n_gpus, stage):
    weights, grads, optim = 2.0, 2.0, 12.0
    if stage >= 1:
        optim /= n_gpus
    if stage >= 2:
        grads /= n_gpus
    if stage >= 3:
        weights /= n_gpus
    return int(gpu_bytes // (weights + grads + optim))


def largest_model_table(gpu_bytes, n_gpus, stage):  # a second correct answer, written otherwise
    per_param = [16, 4 + 12 / n_gpus, 2 + 14 / n_gpus, 16 / n_gpus][stage]
    return round(gpu_bytes / per_param - 0.5)


@pytest.mark.parametrize("answer", [largest_model, largest_model_table])
def test_largest_model_passes(answer, capsys):
    check_largest_model(answer)
    assert "all 3 checks passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda g, n, s: g / 16 if s == 0 else largest_model(g, n, s), "an int"),
        (lambda g, n, s: int(g // 12), "only the optimizer state"),
        (lambda g, n, s: int(g // 2), "inference"),
        (
            lambda g, n, s: int(g // 16) if s == 0 else int(g // (16 / n)),
            "shards only the optimizer",
        ),
        (lambda g, n, s: largest_model(g, n, min(s, 1)), "also shards the gradients"),
        (lambda g, n, s: largest_model(g, n, min(s, 2)), "shards the weights too"),
        (lambda g, n, s: int(g // 16) * (n // 8) if s == 0 else largest_model(g, n, s), "stage 0"),
    ],
)
def test_largest_model_wrong_answers(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_largest_model(wrong)


def test_largest_model_unanswered():
    with pytest.raises(NotYetAnswered):
        check_largest_model(None)


# --- DistributedSampler's shard -----------------------------------------------------------


def shard_indices(n, rank, world_size, epoch, seed):
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
    total = -(-n // world_size) * world_size
    order += (order * total)[: total - n]
    return order[rank::world_size]


def shard_indices_tensor(n, rank, world_size, epoch, seed):  # tensors, padding by cat
    g = torch.Generator()
    g.manual_seed(seed + epoch)
    order = torch.randperm(n, generator=g)
    per_rank = (n + world_size - 1) // world_size
    while len(order) < per_rank * world_size:
        order = torch.cat([order, order[: per_rank * world_size - len(order)]])
    return order[rank::world_size]


@pytest.mark.parametrize("answer", [shard_indices, shard_indices_tensor])
def test_shard_indices_passes(answer, capsys):
    check_shard_indices(answer)
    assert "all 4 checks passed" in capsys.readouterr().out


def contiguous(n, rank, world_size, epoch, seed):
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
    total = -(-n // world_size) * world_size
    order += order[: total - n]
    size = total // world_size
    return order[rank * size : (rank + 1) * size]


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda n, r, w, e, s: shard_indices(n, r, w, e, s + r), "same seed"),
        (contiguous, "contiguous blocks"),
        (lambda n, r, w, e, s: shard_indices(n, r, w, 0, s), "set_epoch"),
        (
            lambda n, r, w, e, s: torch.randperm(
                n, generator=torch.Generator().manual_seed(s + e)
            ).tolist()[r::w],
            "ceil",
        ),
    ],
)
def test_shard_indices_wrong_answers(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_shard_indices(wrong)


def test_shard_indices_unanswered():
    with pytest.raises(NotYetAnswered):
        check_shard_indices(None)


# --- gradient accumulation with one all-reduce ----------------------------------------------


def fixed_step(model, micro_batches, optimizer):
    optimizer.zero_grad()
    for i, (x, y) in enumerate(micro_batches):
        last = i == len(micro_batches) - 1
        with contextlib.nullcontext() if last else model.no_sync():
            loss = F.mse_loss(model(x), y) / len(micro_batches)
            loss.backward()
    optimizer.step()


def fixed_step_exitstack(model, micro_batches, optimizer):  # another correct shape
    for p in model.parameters():
        p.grad = None
    *first, last = micro_batches
    with model.no_sync():
        for x, y in first:
            (F.mse_loss(model(x), y) * (1 / len(micro_batches))).backward()
    x, y = last
    (F.mse_loss(model(x), y) * (1 / len(micro_batches))).backward()
    optimizer.step()


@pytest.mark.parametrize("answer", [fixed_step, fixed_step_exitstack])
def test_fixed_step_passes(answer, capsys):
    check_fixed_step(answer)
    assert "all 3 checks passed" in capsys.readouterr().out


def syncs_every_micro_step(model, micro_batches, optimizer):  # the chapter's buggy loop
    optimizer.zero_grad()
    for x, y in micro_batches:
        (F.mse_loss(model(x), y) / len(micro_batches)).backward()
    optimizer.step()


def never_syncs(model, micro_batches, optimizer):
    optimizer.zero_grad()
    for x, y in micro_batches:
        with model.no_sync():
            (F.mse_loss(model(x), y) / len(micro_batches)).backward()
    optimizer.step()


def syncs_first(model, micro_batches, optimizer):
    optimizer.zero_grad()
    for i, (x, y) in enumerate(micro_batches):
        with contextlib.nullcontext() if i == 0 else model.no_sync():
            (F.mse_loss(model(x), y) / len(micro_batches)).backward()
    optimizer.step()


def steps_every_micro_batch(model, micro_batches, optimizer):
    optimizer.zero_grad()
    for i, (x, y) in enumerate(micro_batches):
        last = i == len(micro_batches) - 1
        with contextlib.nullcontext() if last else model.no_sync():
            (F.mse_loss(model(x), y) / len(micro_batches)).backward()
        optimizer.step()


def not_divided(model, micro_batches, optimizer):
    optimizer.zero_grad()
    for i, (x, y) in enumerate(micro_batches):
        last = i == len(micro_batches) - 1
        with contextlib.nullcontext() if last else model.no_sync():
            F.mse_loss(model(x), y).backward()
    optimizer.step()


def not_zeroed(model, micro_batches, optimizer):
    for i, (x, y) in enumerate(micro_batches):
        last = i == len(micro_batches) - 1
        with contextlib.nullcontext() if last else model.no_sync():
            (F.mse_loss(model(x), y) / len(micro_batches)).backward()
    optimizer.step()


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (syncs_every_micro_step, "every micro-batch all-reduces"),
        (never_syncs, "silently drift apart"),
        (syncs_first, "LAST micro-batch"),
        (steps_every_micro_batch, "ran 4 times"),
        (not_divided, "4 times too large"),
        (not_zeroed, "previous step"),
    ],
)
def test_fixed_step_wrong_answers(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_fixed_step(wrong)


def test_fixed_step_unanswered():
    with pytest.raises(NotYetAnswered):
        check_fixed_step(None)
