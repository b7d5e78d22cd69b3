"""The chapter 8 exercise checks: model answers pass, plausible wrong answers get a hint."""

import math

import pytest
import torch

from llmcourse.exercises import ExerciseError, NotYetAnswered
from llmcourse.exercises.ch08 import (
    check_cross_entropy,
    check_learning_rate,
    check_shift,
    check_unigram_baseline,
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
