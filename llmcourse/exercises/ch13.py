"""Checks for the exercises of chapter 13, from predictor to assistant.

check_lora_trainable(lora_trainable)      LoRA's trained numbers for a list of matrices
check_choose_rank(choose_rank)            the smallest rank keeping a fraction of ||ΔW||²
check_masked_sft_loss(masked_sft_loss)    the SFT loss that forgot the prompt mask, fixed
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from llmcourse.exercises import expect, run_checks

__all__ = ["check_lora_trainable", "check_choose_rank", "check_masked_sft_loss"]


def check_lora_trainable(lora_trainable) -> None:
    """``lora_trainable(shapes, r)``: numbers LoRA trains for matrices of shapes (out, in)."""

    def one_matrix(f):
        got = f([(6, 4)], 2)
        expect(
            got != 2 * 6 * 4,
            "that is r x out x in: LoRA trains A (r x in) and B (out x r), "
            "r x (in + out) numbers, not a full matrix per rank",
        )
        expect(
            got == 2 * (4 + 6),
            f"a 6 x 4 matrix at rank 2 trains A (2 x 4) and B (6 x 2): 20 numbers, got {got!r}",
        )

    def several(f):
        shapes = [(576, 576), (192, 576), (192, 576), (576, 576)]  # SmolLM2's q, k, v, o
        got = f(shapes, 8)
        expect(got != 8 * (576 + 576), "only the first matrix was counted: sum over all shapes")
        expect(
            got == 8 * sum(o + i for o, i in shapes),
            f"sum r x (in + out) over every matrix in the list, got {got!r}",
        )

    def integer(f):
        got = f([(3, 5), (5, 3)], 1)
        expect(
            isinstance(got, int) and not isinstance(got, bool) and got == 16,
            f"return an int: two matrices of 3 x 5 and 5 x 3 at rank 1 train 16 numbers, "
            f"got {got!r}",
        )

    return run_checks(
        "Exercise: LoRA's trained numbers", lora_trainable, [one_matrix, several, integer]
    )


def _reference_rank(singular_values, keep: float) -> int:
    s2 = torch.as_tensor(singular_values, dtype=torch.float64).sort(descending=True).values ** 2
    fraction = s2.cumsum(0) / s2.sum()
    return int((fraction < keep - 1e-12).sum().item()) + 1


def check_choose_rank(choose_rank) -> None:
    """``choose_rank(singular_values, keep)``: smallest r whose top-r σ² sum to >= keep of all."""
    spectrum = torch.tensor([4.0, 2.0, 1.0, 1.0, 0.5, 0.5])  # σ²: 16, 4, 1, 1, 0.25, 0.25

    def squares(f):
        got = f(spectrum, 0.8)
        not_squared = _reference_rank(spectrum.sqrt(), 0.8)  # the rank if σ, not σ², is summed
        expect(
            got != not_squared,
            "you summed the singular values themselves; the squared norm that a rank-r "
            "approximation keeps is the sum of the squared singular values",
        )
        expect(
            got != 1,
            "the top 2 values are needed, and you returned 1: return the rank, a "
            "count from 1, not an index from 0",
        )
        expect(
            got == 2,
            f"σ² = 16, 4, 1, 1, 0.25, 0.25 sum to 22.5: the top 2 keep 20 / 22.5 = "
            f"0.89 >= 0.8, the top 1 only 0.71; got {got!r}",
        )

    def counts_not_indices(f):
        expect(
            f(spectrum, 0.5) == 1,
            f"the top singular value alone keeps 16 / 22.5 > 0.5, so r = 1 (a rank, counted "
            f"from 1, not an index from 0); got {f(spectrum, 0.5)!r}",
        )
        expect(
            f(spectrum, 1.0) == 6,
            f"keeping all of the update needs every singular value "
            f"(r = 6); got {f(spectrum, 1.0)!r}",
        )

    def unsorted(f):
        shuffled = spectrum[[4, 0, 2, 5, 1, 3]]
        expect(
            f(shuffled, 0.8) == 2,
            "for singular values not given in decreasing order, sort "
            "them first: the best rank-r approximation keeps the r "
            "largest",
        )

    def many(f):
        s = torch.linspace(3.0, 0.01, 200, dtype=torch.float64) ** 2
        for keep in (0.3, 0.9, 0.99):
            got = f(s, keep)
            expect(
                isinstance(got, int)
                and not isinstance(got, bool)
                and got == _reference_rank(s, keep),
                f"on a 200-value spectrum with keep={keep} expected r = "
                f"{_reference_rank(s, keep)} (an int), got {got!r}",
            )

    return run_checks(
        "Exercise: choosing the LoRA rank",
        choose_rank,
        [squares, counts_not_indices, unsorted, many],
    )


def _reference_masked_loss(logits, input_ids, prompt_lengths, attention_mask):
    positions = torch.arange(input_ids.shape[1])[None, :]  # (1, T)
    learn = (positions >= torch.as_tensor(prompt_lengths)[:, None]) & attention_mask.bool()
    labels = input_ids.masked_fill(~learn, -100)
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100)


def check_masked_sft_loss(masked_sft_loss) -> None:
    """``masked_sft_loss(logits, input_ids, prompt_lengths, attention_mask)``: mean cross-entropy
    over the answer tokens (position >= prompt length, attention mask 1), shifted by one."""
    gen = torch.Generator().manual_seed(13)
    logits = torch.randn(3, 9, 17, generator=gen, dtype=torch.float64)
    input_ids = torch.randint(0, 17, (3, 9), generator=gen)
    prompt_lengths = [4, 6, 3]
    attention_mask = torch.ones(3, 9, dtype=torch.long)
    attention_mask[1, 8:] = 0  # padding at the end of the second and third sequences
    attention_mask[2, 6:] = 0
    args = (logits, input_ids, prompt_lengths, attention_mask)
    want = _reference_masked_loss(*args)

    def close(got, value):
        return (
            isinstance(got, torch.Tensor)
            and got.dim() == 0
            and abs(got.item() - value.item()) < 1e-9
        )

    def scalar(f):
        got = f(*args)
        expect(
            isinstance(got, torch.Tensor) and got.dim() == 0,
            f"return the loss as a 0-dimensional tensor, got {getattr(got, 'shape', got)!r}",
        )

    def prompt_masked(f):
        unmasked = F.cross_entropy(logits[:, :-1].flatten(0, 1), input_ids[:, 1:].flatten())
        expect(
            not close(f(*args), unmasked),
            "that is the buggy loss: it still learns to predict the prompt (system message "
            "and question); give the prompt's positions the label -100",
        )
        no_padding_mask = _reference_masked_loss(
            logits, input_ids, prompt_lengths, torch.ones_like(attention_mask)
        )
        expect(
            not close(f(*args), no_padding_mask),
            "padding positions are counted: positions where attention_mask is 0 must be "
            "ignored too",
        )

    def shifted(f):
        labels = input_ids.clone()
        for row, n in enumerate(prompt_lengths):
            labels[row, :n] = -100
        labels[attention_mask == 0] = -100
        unshifted = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        expect(
            not close(f(*args), unshifted),
            "the logits at position t predict the token at t + 1: compare logits[:, :-1] with "
            "labels[:, 1:]",
        )

    def value(f):
        per_sequence = torch.stack(
            [
                _reference_masked_loss(
                    logits[i : i + 1],
                    input_ids[i : i + 1],
                    prompt_lengths[i : i + 1],
                    attention_mask[i : i + 1],
                )
                for i in range(3)
            ]
        ).mean()
        got = f(*args)
        expect(
            not close(got, per_sequence),
            "you averaged each sequence's loss and then the sequences; the SFT loss is the "
            "mean over all answer tokens of the batch (as transformers computes it)",
        )
        expect(
            close(got, want),
            f"expected {want.item():.6f}, got "
            f"{got.item() if isinstance(got, torch.Tensor) else got!r}: label "
            f"-100 for positions < prompt length and for padding, then "
            f"cross-entropy of logits[:, :-1] against labels[:, 1:]",
        )

    return run_checks(
        "Exercise: the forgotten prompt mask",
        masked_sft_loss,
        [scalar, prompt_masked, shifted, value],
    )
