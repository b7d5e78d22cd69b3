"""The chapter 8 exercise checks: model answers pass, plausible wrong answers get a hint."""

import copy
import io
import math
import re

import pytest
import torch
from torch.nn import functional as F

from llmcourse.exercises import ExerciseError, NotYetAnswered
from llmcourse.exercises.ch08 import (
    check_checkpoint,
    check_cross_entropy,
    check_learning_rate,
    check_shift,
    check_train_steps,
    check_unigram_baseline,
    reference_train_steps,
)

# --- shifted targets ------------------------------------------------------------------------


def shift(windows):
    return windows[:, :-1], windows[:, 1:]


def test_shift_passes(capsys):
    check_shift(shift)  # raises if the answer is rejected
    assert "all 3 checks passed" in capsys.readouterr().out


def test_shift_unshifted_rejected():
    with pytest.raises(ExerciseError, match="learn to copy its input"):
        check_shift(lambda w: (w[:, :-1], w[:, :-1]))


def test_shift_swapped_rejected():
    with pytest.raises(ExerciseError, match="swapped"):
        check_shift(lambda w: (w[:, 1:], w[:, :-1]))


def test_shift_wrong_dimension_rejected():
    with pytest.raises(ExerciseError, match="not from the batch dimension"):
        check_shift(lambda w: (w[:-1], w[1:]))


def test_shift_not_a_pair_rejected():
    with pytest.raises(ExerciseError, match="return a tuple"):
        check_shift(lambda w: torch.stack([w[:, :-1], w[:, 1:]]))


def test_shift_unanswered():
    with pytest.raises(NotYetAnswered):
        check_shift(None)


# --- cross-entropy --------------------------------------------------------------------------


def cross_entropy(probs, targets):
    return -torch.log(probs[torch.arange(len(targets)), targets]).mean()


def test_cross_entropy_passes(capsys):
    check_cross_entropy(cross_entropy)  # raises if the answer is rejected
    assert "all 4 checks passed" in capsys.readouterr().out


def test_cross_entropy_no_minus_rejected():
    with pytest.raises(ExerciseError, match="forget the minus sign"):
        check_cross_entropy(lambda p, t: -cross_entropy(p, t))


def test_cross_entropy_log10_rejected():
    with pytest.raises(ExerciseError, match="base-10"):
        check_cross_entropy(lambda p, t: -torch.log10(p[torch.arange(len(t)), t]).mean())


def test_cross_entropy_bits_rejected():
    with pytest.raises(ExerciseError, match="in bits"):
        check_cross_entropy(lambda p, t: -torch.log2(p[torch.arange(len(t)), t]).mean())


def test_cross_entropy_mean_of_probabilities_rejected():
    with pytest.raises(ExerciseError, match="log of the mean probability"):
        check_cross_entropy(lambda p, t: -torch.log(p[torch.arange(len(t)), t].mean()))


def test_cross_entropy_sum_rejected():
    with pytest.raises(ExerciseError, match="sum over positions"):
        check_cross_entropy(lambda p, t: -torch.log(p[torch.arange(len(t)), t]).sum())


def test_cross_entropy_unanswered():
    with pytest.raises(NotYetAnswered):
        check_cross_entropy(None)


# --- unigram baseline -----------------------------------------------------------------------


def unigram_baseline(train_ids, eval_ids, vocab_size):
    counts = torch.bincount(torch.tensor(train_ids), minlength=vocab_size).double()
    return float(-torch.log(counts / counts.sum())[torch.tensor(eval_ids)].mean())


def test_unigram_passes(capsys):
    check_unigram_baseline(unigram_baseline)  # raises if the answer is rejected
    assert "all 3 checks passed" in capsys.readouterr().out


def test_unigram_eval_counts_rejected():
    with pytest.raises(ExerciseError, match="counted the evaluation text"):
        check_unigram_baseline(lambda tr, ev, v: unigram_baseline(ev, ev, v))


def test_unigram_uniform_rejected():
    with pytest.raises(ExerciseError, match="uniform model"):
        check_unigram_baseline(lambda tr, ev, v: math.log(v))


def test_unigram_bits_rejected():
    with pytest.raises(ExerciseError, match="in bits"):
        check_unigram_baseline(lambda tr, ev, v: unigram_baseline(tr, ev, v) / math.log(2))


def test_unigram_divide_by_vocab_rejected():
    def by_vocab(train_ids, eval_ids, vocab_size):
        counts = torch.bincount(torch.tensor(train_ids), minlength=vocab_size).double()
        return float(-torch.log(counts / vocab_size)[torch.tensor(eval_ids)].mean())

    with pytest.raises(ExerciseError, match="ln 2"):
        check_unigram_baseline(by_vocab)


def test_unigram_divide_by_vocab_caught_on_large_vocab():
    def by_max(train_ids, eval_ids, vocab_size):  # right on small vocabularies only
        counts = torch.bincount(torch.tensor(train_ids), minlength=vocab_size).double()
        total = counts.sum() if vocab_size < 10 else counts.sum() + vocab_size
        return float(-torch.log(counts / total)[torch.tensor(eval_ids)].mean())

    with pytest.raises(ExerciseError, match="not by the vocabulary size"):
        check_unigram_baseline(by_max)


def test_unigram_unanswered():
    with pytest.raises(NotYetAnswered):
        check_unigram_baseline(None)


# --- learning-rate schedule -----------------------------------------------------------------


def learning_rate(step, max_lr, warmup_steps, total_steps, min_lr):
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    return min_lr + (max_lr - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


def test_learning_rate_passes(capsys):
    check_learning_rate(learning_rate)  # raises if the answer is rejected
    assert "all 3 checks passed" in capsys.readouterr().out


def test_learning_rate_zero_start_rejected():
    def from_zero(step, max_lr, warmup_steps, total_steps, min_lr):
        if step < warmup_steps:
            return max_lr * step / warmup_steps
        return learning_rate(step, max_lr, warmup_steps, total_steps, min_lr)

    with pytest.raises(ExerciseError, match="first update does nothing"):
        check_learning_rate(from_zero)


def test_learning_rate_no_half_rejected():
    def no_half(step, max_lr, warmup_steps, total_steps, min_lr):
        if step < warmup_steps:
            return max_lr * (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
        return min_lr + (max_lr - min_lr) * (1 + math.cos(math.pi * progress))

    with pytest.raises(ExerciseError, match="factor 1/2"):
        check_learning_rate(no_half)


def test_learning_rate_ignores_min_lr_rejected():
    def to_zero(step, max_lr, warmup_steps, total_steps, min_lr):
        return learning_rate(step, max_lr, warmup_steps, total_steps, 0.0)

    with pytest.raises(ExerciseError, match="not max_lr / 2"):
        check_learning_rate(to_zero)


def test_learning_rate_no_floor_rejected():
    def keeps_falling(step, max_lr, warmup_steps, total_steps, min_lr):
        if step < warmup_steps:
            return max_lr * (step + 1) / warmup_steps
        progress = (step - warmup_steps) / (total_steps - warmup_steps)  # not clipped at 1
        return min_lr + (max_lr - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))

    with pytest.raises(ExerciseError, match="stays at min_lr"):
        check_learning_rate(keeps_falling)


def test_learning_rate_unanswered():
    with pytest.raises(NotYetAnswered):
        check_learning_rate(None)


# --- a training loop that reports every step ------------------------------------------------


def train_steps(model, optimizer, batches, lrs, max_norm):
    model.train()
    losses = []
    for (x, y), lr in zip(batches, lrs):
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    return losses


def train_steps_by_hand(model, optimizer, batches, lrs, max_norm):
    """Another right answer: log-softmax and gather, clipping written out, tensors returned."""
    model.train()
    losses = []
    for i, (x, y) in enumerate(batches):
        optimizer.param_groups[0]["lr"] = lrs[i]
        log_probs = model(x).log_softmax(-1)  # (B, T, V)
        loss = -log_probs.gather(-1, y[..., None]).mean()
        for p in model.parameters():
            p.grad = None
        loss.backward()
        norm = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in model.parameters()))
        scale = min(1.0, max_norm / (float(norm) + 1e-6))
        for p in model.parameters():
            p.grad.mul_(scale)
        optimizer.step()
        losses.append(loss.detach())
    model.eval()
    return losses


def with_slip(slip):
    def answer(model, optimizer, batches, lrs, max_norm):
        return reference_train_steps(model, optimizer, batches, lrs, max_norm, **slip)

    return answer


def test_train_steps_passes(capsys):
    check_train_steps(train_steps)
    check_train_steps(train_steps_by_hand)
    assert capsys.readouterr().out.count("all 3 checks passed") == 2


@pytest.mark.parametrize(
    "slip, hint",
    [
        ({"zero_grad": False}, "never zeroes the gradients"),
        ({"clip": False}, "without clipping"),
        ({"set_lr": False}, "never used"),
        ({"train_mode": False}, "model.train()"),
    ],
)
def test_train_steps_slips_named(slip, hint):
    with pytest.raises(ExerciseError, match=re.escape(hint)):
        check_train_steps(with_slip(slip))


def test_train_steps_zero_grad_after_backward_rejected():
    def wipes(model, optimizer, batches, lrs, max_norm):
        model.train()
        losses = []
        for (x, y), lr in zip(batches, lrs):
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
            loss.backward()
            optimizer.zero_grad()  # wipes the gradients before the step
            optimizer.step()
            losses.append(loss.item())
        model.eval()
        return losses

    with pytest.raises(ExerciseError, match="differ from the chapter's loop from step 1"):
        check_train_steps(wipes)


def test_train_steps_left_in_training_mode_rejected():
    def stays(model, optimizer, batches, lrs, max_norm):
        losses = train_steps(model, optimizer, batches, lrs, max_norm)
        model.train()
        return losses

    with pytest.raises(ExerciseError, match="eval mode at the end"):
        check_train_steps(stays)


def test_train_steps_loss_after_step_rejected():
    def late(model, optimizer, batches, lrs, max_norm):
        train_steps(model, optimizer, batches, lrs, max_norm)
        return [0.0] * len(batches)

    with pytest.raises(ExerciseError, match="from step 0"):
        check_train_steps(late)


def test_train_steps_no_list_rejected():
    with pytest.raises(ExerciseError, match="list of the step losses"):
        check_train_steps(lambda *args: None)


def test_train_steps_unanswered():
    with pytest.raises(NotYetAnswered):
        check_train_steps(None)


# --- a checkpoint that resumes exactly --------------------------------------------------------


def checkpoint(model, optimizer, generator, step):
    return copy.deepcopy(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "batch_rng": generator.get_state(),
            "torch_rng": torch.get_rng_state(),
        }
    )


def checkpoint_through_bytes(model, optimizer, generator, step):
    """Another right answer: written with torch.save and read back at once."""
    buffer = io.BytesIO()
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "batch_rng": generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "step": step,
        },
        buffer,
    )
    buffer.seek(0)
    return torch.load(buffer)


def test_checkpoint_passes(capsys):
    check_checkpoint(checkpoint)
    check_checkpoint(checkpoint_through_bytes)
    assert capsys.readouterr().out.count("all 2 checks passed") == 2


def test_checkpoint_weights_only_rejected():
    def weights_only(model, optimizer, generator, step):
        return {"model": copy.deepcopy(model.state_dict()), "step": step}

    with pytest.raises(ExerciseError, match="no 'optimizer'"):
        check_checkpoint(weights_only)


@pytest.mark.parametrize("key", ["batch_rng", "torch_rng", "step"])
def test_checkpoint_missing_part_rejected(key):
    def missing(model, optimizer, generator, step):
        state = checkpoint(model, optimizer, generator, step)
        del state[key]
        return state

    with pytest.raises(ExerciseError, match=f"no {key!r}"):
        check_checkpoint(missing)


def test_checkpoint_live_tensors_rejected():
    def live(model, optimizer, generator, step):
        return {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "batch_rng": generator.get_state(),
            "torch_rng": torch.get_rng_state(),
        }

    with pytest.raises(ExerciseError, match="live tensors"):
        check_checkpoint(live)


def test_checkpoint_live_optimizer_rejected():
    def live_optimizer(model, optimizer, generator, step):
        state = checkpoint(model, optimizer, generator, step)
        state["optimizer"] = optimizer.state_dict()  # AdamW's m and v go on changing
        return state

    with pytest.raises(ExerciseError, match="losses differ from the uninterrupted"):
        check_checkpoint(live_optimizer)


def test_checkpoint_step_off_by_one_rejected():
    def next_step(model, optimizer, generator, step):
        return {**checkpoint(model, optimizer, generator, step), "step": step + 1}

    with pytest.raises(ExerciseError, match="'step' must be 4"):
        check_checkpoint(next_step)


def test_checkpoint_unanswered():
    with pytest.raises(NotYetAnswered):
        check_checkpoint(None)
