"""Checks for the exercises of chapter 7, the Transformer architecture.

check_block_params(block_params)        parameters of one GPT-2 block, by formula
check_attention_mask(attention_mask)    causal (decoder) vs bidirectional (encoder) + padding
check_mean_pool(mean_pool)              sentence embedding: mean over real tokens only
check_changed_positions(changed_positions)  which outputs of a cross-attention block an edit reaches
check_fixed_attention(fixed_attention)  the bug in buggy_attention, a causal head that leaks
"""

from __future__ import annotations

import math

import torch

from llmcourse.exercises import ExerciseError, expect, run_checks

__all__ = [
    "check_block_params",
    "check_attention_mask",
    "check_mean_pool",
    "check_changed_positions",
    "buggy_attention",
    "check_fixed_attention",
]


def check_block_params(block_params) -> None:
    """``block_params(C)``: the number of parameters of one GPT-2 block of width C."""

    def counts(f):
        for C in (768, 12, 1600):
            got, want = f(C), 12 * C * C + 13 * C
            expect(
                isinstance(got, int) or float(got).is_integer(),
                f"return a whole number of parameters, got {got!r}",
            )
            expect(
                got != 12 * C * C + 9 * C,
                f"for C={C} you are 4C short: the two LayerNorms have a gain and a bias each",
            )
            expect(
                got != 12 * C * C,
                f"for C={C} you counted only the weight matrices: add the "
                "biases (3C + C + 4C + C) and the two LayerNorms (2 x 2C)",
            )
            expect(
                got >= 12 * C * C,
                f"for C={C} the weights fall short of 12 C^2: attention "
                "has 4 C x C matrices (q, k, v, output), the feed-forward C x 4C and 4C x C",
            )
            expect(
                got == want,
                f"for C={C} expected a different count, got {got}: "
                "attention 3C^2 + 3C (c_attn) + C^2 + C (c_proj), feed-forward 4C^2 + 4C "
                "+ 4C^2 + C, two LayerNorms 2C each",
            )

    return run_checks("Exercise: parameters of a GPT-2 block", block_params, [counts])


def _reference_mask(pad, causal):
    T = pad.shape[1]
    allowed = pad.bool()[:, None, :].expand(-1, T, -1)  # (B, T_query, T_key): keys must be real
    if causal:
        allowed = allowed & torch.ones(T, T, dtype=torch.bool).tril()
    return allowed


def check_attention_mask(attention_mask) -> None:
    """``attention_mask(pad, causal)``: (B, T) 1/0 padding mask -> (B, T, T) boolean mask,
    True where query i may attend to key j."""
    pad = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])

    def shape_and_type(f):
        got = f(pad, False)
        expect(
            isinstance(got, torch.Tensor) and tuple(got.shape) == (2, 4, 4),
            "return a tensor of shape (batch, T, T) = (2, 4, 4)",
        )
        expect(got.dtype == torch.bool, "return a boolean tensor (True = may attend)")

    def bidirectional(f):
        got = f(pad, False)
        expect(
            bool(got[0].all()),
            "without padding an encoder lets every token attend to "
            "every token, before and after it: the first row should be all True",
        )
        expect(
            not torch.equal(got, _reference_mask(pad, False).transpose(1, 2)),
            "you masked padding QUERIES (rows); mask padding KEYS (columns) instead: "
            "no token may attend to a padding token",
        )
        expect(
            torch.equal(got, _reference_mask(pad, False)),
            "padding keys (columns 2 and 3 of the second sequence) must be False",
        )

    def causal(f):
        got = f(pad, True)
        expect(
            not bool(got[0, 0, 1]),
            "with causal=True token 0 may not see token 1: keep the lower triangle (tril), j <= i",
        )
        expect(bool(got[0, 3, 0]), "with causal=True token 3 may see token 0 (the past)")
        expect(
            torch.equal(got, _reference_mask(pad, True)),
            "combine both rules: key j must be real AND j <= i",
        )

    return run_checks(
        "Exercise: attention masks", attention_mask, [shape_and_type, bidirectional, causal]
    )


def check_mean_pool(mean_pool) -> None:
    """``mean_pool(hidden, mask)``: (B, T, C) hidden states, (B, T) mask -> (B, C)."""
    gen = torch.Generator().manual_seed(7)
    hidden = torch.randn(3, 5, 4, generator=gen, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]])
    m = mask[..., None].to(hidden.dtype)
    want = (hidden * m).sum(1) / m.sum(1)

    def values(f):
        got = torch.as_tensor(f(hidden, mask), dtype=hidden.dtype)
        expect(
            tuple(got.shape) == (3, 4), f"return shape (batch, C) = (3, 4), got {tuple(got.shape)}"
        )
        expect(
            not torch.allclose(got, hidden.mean(1)),
            "padding vectors were averaged in: multiply by the mask before summing",
        )
        expect(
            not torch.allclose(got, (hidden * m).sum(1) / 5),
            "divide by the number of REAL tokens in each sequence (mask.sum), not by T",
        )
        expect(not torch.allclose(got, (hidden * m).sum(1)), "you summed: divide by the count")
        expect(
            torch.allclose(got, want),
            "average each sequence's hidden states over its real (mask 1) positions",
        )

    return run_checks("Exercise: mean pooling", mean_pool, [values])


def _reference_changes(T, S, side, j):
    # Every target position reads every source token through cross-attention; a target token
    # reaches its own and later positions only, through the causal self-attention.
    return list(range(T)) if side == "source" else list(range(j, T))


def check_changed_positions(changed_positions) -> None:
    """``changed_positions(T, S, side, j)``: the target positions (0..T-1) whose output of a
    decoder block with cross-attention changes when source token j (``side="source"``) or
    target token j (``side="target"``) is edited; no padding."""

    def as_positions(got, T):
        try:
            values = [int(i) for i in got]
        except (TypeError, ValueError):
            raise ExerciseError(
                f"return a list of target positions (ints from 0 to {T - 1}), got {got!r}"
            ) from None
        expect(
            values == sorted(set(values)),
            f"return each position once, in increasing order, got {values}",
        )
        return values

    def source_edits(f):
        for T, S, j in ((6, 9, 8), (6, 9, 0), (4, 3, 2), (5, 5, 4)):
            got, want = as_positions(f(T, S, "source", j), T), _reference_changes(T, S, "source", j)
            expect(
                got != list(range(min(j, T), T)) or got == want,
                f"editing source token {j} (T={T}, S={S}): the source is not causal to the "
                "target. Cross-attention lets every target position read every source token, "
                "so a source edit reaches all T positions, whatever j is",
            )
            expect(
                got == want,
                f"editing source token {j} (T={T}, S={S}): expected {want}, got {got}. Every "
                "target position's cross-attention reads the whole source",
            )

    def target_edits(f):
        for T, S, j in ((6, 9, 5), (6, 9, 0), (6, 9, 2), (3, 7, 1)):
            got, want = as_positions(f(T, S, "target", j), T), _reference_changes(T, S, "target", j)
            expect(
                got != list(range(T)) or got == want,
                f"editing target token {j} (T={T}): the decoder's self-attention is causal, so "
                f"positions before {j} never see token {j} and keep their outputs",
            )
            expect(
                got != [j] or got == want,
                f"editing target token {j} (T={T}): not only position {j} changes; every later "
                f"position attends to token {j} through the causal self-attention",
            )
            expect(
                got == want,
                f"editing target token {j} (T={T}): expected {want}, got {got}. Position i sees "
                "target tokens 0..i",
            )

    return run_checks(
        "Exercise: what an edit reaches in a cross-attention block",
        changed_positions,
        [source_edits, target_edits],
    )


def buggy_attention(x, W_qkv, W_out):
    """One causal attention head, x: (..., T, C) -> (..., T, C), with one bug to find."""
    T, C = x.shape[-2:]
    q, k, v = (x @ W_qkv).split(C, dim=-1)  # (..., T, 3C) -> three (..., T, C)
    scores = q @ k.transpose(-2, -1) / math.sqrt(C)  # (..., T, T)
    future = torch.ones(T, T, dtype=torch.bool).triu(1)  # key j > query i
    scores = scores.masked_fill(future, float("-inf"))
    weights = torch.softmax(scores, dim=-2)
    return weights @ v @ W_out


def _causal_head(x, W_qkv, W_out):
    x, W_qkv, W_out = x.double(), W_qkv.double(), W_out.double()
    T, C = x.shape[-2:]
    q, k, v = (x @ W_qkv).split(C, dim=-1)
    scores = q @ k.transpose(-2, -1) / math.sqrt(C)
    scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    return torch.softmax(scores, dim=-1) @ v @ W_out


def check_fixed_attention(fixed_attention) -> None:
    """``fixed_attention(x, W_qkv, W_out)``: ``buggy_attention`` with its bug fixed, a causal
    head whose output at position i depends on tokens 0..i only."""
    gen = torch.Generator().manual_seed(7)
    T, C = 6, 4
    x = torch.randn(2, T, C, generator=gen, dtype=torch.float64)
    W_qkv = torch.randn(C, 3 * C, generator=gen, dtype=torch.float64) * 0.7
    W_out = torch.randn(C, C, generator=gen, dtype=torch.float64)

    def output(f, x):
        got = f(x, W_qkv, W_out)
        expect(
            isinstance(got, torch.Tensor) and tuple(got.shape) == tuple(x.shape),
            f"return a tensor of x's shape {tuple(x.shape)}",
        )
        expect(
            not bool(torch.isnan(got).any()),
            "the output has NaN: a row of scores is all -inf. Mask only the future keys "
            "(j > i, triu(1)), never the diagonal: every token may attend to itself",
        )
        return got.double()

    def causal(f):
        before = output(f, x)
        for j in (2, 4):
            edited = x.clone()
            edited[:, j] += torch.randn(C, generator=gen, dtype=x.dtype)
            after = output(f, edited)
            leaked = (after[:, :j] - before[:, :j]).abs().max().item()
            expect(
                leaked < 1e-6,
                f"editing token {j} changed the outputs at positions before it (by up to "
                f"{leaked:.2g}): the future still leaks. Either future keys are not all masked "
                "(key j > query i gets -inf: triu(1)), or the softmax normalizes over the "
                "wrong dimension (each query's row of weights over the keys must sum to 1)",
            )

    def values(f):
        got = output(f, x)
        want = _causal_head(x, W_qkv, W_out)
        expect(
            torch.allclose(got, want, atol=1e-5, rtol=1e-4),
            "causal now, but the values differ from a correct head: keep everything else "
            "of buggy_attention (the split into q, k, v, the scale sqrt(C), W_out) and fix "
            "only the bug",
        )
        x32 = x.float()
        got32 = f(x32, W_qkv.float(), W_out.float())
        expect(
            torch.allclose(torch.as_tensor(got32).double(), want, atol=1e-4, rtol=1e-3),
            "the head must work in float32 too",
        )

    return run_checks("Exercise: a causal head that leaks", fixed_attention, [causal, values])
