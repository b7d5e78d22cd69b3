"""Chapter 13's exercise checks pass the model answers and reject plausible wrong ones."""

import pytest
import torch
from torch.nn import functional as F

from llmcourse import alignment
from llmcourse.exercises import ExerciseError, NotYetAnswered
from llmcourse.exercises.ch13 import (
    check_choose_rank,
    check_lora_trainable,
    check_masked_sft_loss,
)

ALL = [check_lora_trainable, check_choose_rank, check_masked_sft_loss]


@pytest.mark.parametrize("check", ALL)
def test_none_is_not_yet_answered(check):
    with pytest.raises(NotYetAnswered):
        check(None)


def test_lora_trainable():
    check_lora_trainable(lambda shapes, r: sum(r * (o + i) for o, i in shapes))
    check_lora_trainable(lambda shapes, r: int(r * sum(map(sum, shapes))))
    for wrong, hint in [
        (lambda shapes, r: sum(r * o * i for o, i in shapes), "r x out x in"),
        (lambda shapes, r: r * sum(shapes[0]), "only the first matrix"),
        (lambda shapes, r: float(sum(r * (o + i) for o, i in shapes)), "return an int"),
        (lambda shapes, r: sum(2 * r * (o + i) for o, i in shapes), "20 numbers"),
    ]:
        with pytest.raises(ExerciseError, match=hint):
            check_lora_trainable(wrong)


def right_rank(singular_values, keep):
    s2 = torch.as_tensor(singular_values, dtype=torch.float64).sort(descending=True).values ** 2
    fraction = s2.cumsum(0) / s2.sum()
    return int(torch.searchsorted(fraction, torch.tensor([keep], dtype=torch.float64))) + 1


def right_rank_loop(singular_values, keep):
    values = sorted((float(s) for s in singular_values), reverse=True)
    total, kept = sum(v * v for v in values), 0.0
    for r, v in enumerate(values, start=1):
        kept += v * v
        if kept >= keep * total - 1e-12:
            return r
    return len(values)


def test_choose_rank():
    check_choose_rank(right_rank)
    check_choose_rank(right_rank_loop)

    def not_squared(s, keep):
        s = torch.as_tensor(s, dtype=torch.float64).sort(descending=True).values
        return int(((s.cumsum(0) / s.sum()) < keep).sum()) + 1

    def index(s, keep):
        return right_rank(s, keep) - 1

    def unsorted(s, keep):
        s2 = torch.as_tensor(s, dtype=torch.float64) ** 2
        return int(((s2.cumsum(0) / s2.sum()) < keep - 1e-12).sum()) + 1

    for wrong, hint in [
        (not_squared, "squared singular values"),
        (index, "not an index"),
        (unsorted, "sort them first"),
        (lambda s, keep: torch.tensor(right_rank(s, keep)), "an int"),
    ]:
        with pytest.raises(ExerciseError, match=hint):
            check_choose_rank(wrong)


def labels_from_lengths(input_ids, prompt_lengths, attention_mask):
    labels = input_ids.clone()
    for row, n in enumerate(prompt_lengths):
        labels[row, :n] = alignment.IGNORE_INDEX
    return labels.masked_fill(attention_mask == 0, alignment.IGNORE_INDEX)


def test_masked_sft_loss():
    def right(logits, input_ids, prompt_lengths, attention_mask):
        labels = labels_from_lengths(input_ids, prompt_lengths, attention_mask)
        return alignment.sft_loss(logits, labels)

    def right_by_hand(logits, input_ids, prompt_lengths, attention_mask):
        terms = []
        for b in range(input_ids.shape[0]):
            for t in range(1, input_ids.shape[1]):
                if t >= prompt_lengths[b] and attention_mask[b, t]:
                    terms.append(-torch.log_softmax(logits[b, t - 1], -1)[input_ids[b, t]])
        return torch.stack(terms).mean()

    check_masked_sft_loss(right)
    check_masked_sft_loss(right_by_hand)

    def buggy(logits, input_ids, prompt_lengths, attention_mask):  # the exercise's bug
        return F.cross_entropy(logits[:, :-1].flatten(0, 1), input_ids[:, 1:].flatten())

    def no_padding_mask(logits, input_ids, prompt_lengths, attention_mask):
        return right(logits, input_ids, prompt_lengths, torch.ones_like(attention_mask))

    def unshifted(logits, input_ids, prompt_lengths, attention_mask):
        labels = labels_from_lengths(input_ids, prompt_lengths, attention_mask)
        return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)

    def per_sequence(logits, input_ids, prompt_lengths, attention_mask):
        return torch.stack(
            [
                right(
                    logits[i : i + 1],
                    input_ids[i : i + 1],
                    prompt_lengths[i : i + 1],
                    attention_mask[i : i + 1],
                )
                for i in range(len(input_ids))
            ]
        ).mean()

    def off_by_one(logits, input_ids, prompt_lengths, attention_mask):
        return right(logits, input_ids, [n - 1 for n in prompt_lengths], attention_mask)

    def summed(logits, input_ids, prompt_lengths, attention_mask):
        labels = labels_from_lengths(input_ids, prompt_lengths, attention_mask)
        return F.cross_entropy(
            logits[:, :-1].flatten(0, 1),
            labels[:, 1:].flatten(),
            ignore_index=-100,
            reduction="none",
        )

    for wrong, hint in [
        (buggy, "that is the buggy loss"),
        (no_padding_mask, "padding"),
        (unshifted, "t \\+ 1"),
        (per_sequence, "mean over all answer tokens"),
        (off_by_one, "positions < prompt length"),
        (summed, "0-dimensional"),
    ]:
        with pytest.raises(ExerciseError, match=hint):
            check_masked_sft_loss(wrong)
