"""The chapter 7 exercise checks: model answers pass, plausible wrong answers get a hint."""

import math

import pytest
import torch

from llmcourse.encoder_decoder import CrossAttentionBlock
from llmcourse.exercises import ExerciseError, NotYetAnswered
from llmcourse.exercises.ch07 import (
    buggy_attention,
    check_attention_mask,
    check_block_params,
    check_changed_positions,
    check_fixed_attention,
    check_mean_pool,
)


def block_params(C):
    return 12 * C * C + 13 * C


def test_block_params_passes(capsys):
    check_block_params(block_params)  # raises if the answer is rejected
    assert "all 1 checks passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda C: 12 * C * C + 9 * C, "two LayerNorms"),
        (lambda C: 12 * C * C, "only the weight matrices"),
        (lambda C: 4 * C * C + 13 * C, "fall short of 12 C"),
        (lambda C: 12 * C * C + 14 * C, "expected a different count"),
    ],
)
def test_block_params_wrong(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_block_params(wrong)


def attention_mask(pad, causal):
    T = pad.shape[1]
    allowed = pad.bool()[:, None, :].expand(-1, T, -1)
    return allowed & torch.ones(T, T, dtype=torch.bool).tril() if causal else allowed


def test_attention_mask_passes():
    check_attention_mask(attention_mask)  # raises if the answer is rejected


def test_attention_mask_upper_triangle_rejected():
    def triu(pad, causal):
        T = pad.shape[1]
        allowed = pad.bool()[:, None, :].expand(-1, T, -1)
        return allowed & torch.ones(T, T, dtype=torch.bool).triu() if causal else allowed

    with pytest.raises(ExerciseError, match="keep the lower triangle"):
        check_attention_mask(triu)


def test_attention_mask_padding_on_queries_rejected():
    def rows(pad, causal):
        return attention_mask(pad, causal).transpose(1, 2)

    with pytest.raises(ExerciseError, match="you masked padding QUERIES"):
        check_attention_mask(rows)


def test_attention_mask_ignoring_padding_or_causality_rejected():
    def no_padding(pad, causal):
        return attention_mask(torch.ones_like(pad), causal)

    with pytest.raises(ExerciseError, match="padding keys"):
        check_attention_mask(no_padding)

    with pytest.raises(ExerciseError, match="token 0 may not see token 1"):
        check_attention_mask(lambda pad, causal: attention_mask(pad, False))
    with pytest.raises(ExerciseError, match="boolean"):
        check_attention_mask(lambda pad, causal: attention_mask(pad, causal).float())


def mean_pool(hidden, mask):
    m = mask[..., None].to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1)


def test_mean_pool_passes():
    check_mean_pool(mean_pool)  # raises if the answer is rejected


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda h, m: h.mean(1), "padding vectors were averaged in"),
        (lambda h, m: (h * m[..., None]).sum(1) / h.shape[1], "number of REAL tokens"),
        (lambda h, m: (h * m[..., None]).sum(1), "you summed"),
        (lambda h, m: h.mean(2), r"return shape \(batch, C\)"),
    ],
)
def test_mean_pool_wrong(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_mean_pool(wrong)


def test_not_yet_answered():
    for check in (
        check_block_params,
        check_attention_mask,
        check_mean_pool,
        check_changed_positions,
        check_fixed_attention,
    ):
        with pytest.raises(NotYetAnswered):
            check(None)


def changed_by_rule(T, S, side, j):
    return list(range(T)) if side == "source" else list(range(j, T))


def changed_by_experiment(T, S, side, j):  # a second right answer: run a block and look
    torch.manual_seed(0)
    block = CrossAttentionBlock(8, 2, 16)
    x, memory = torch.randn(1, T, 8), torch.randn(1, S, 8)
    edited_x, edited_memory = x.clone(), memory.clone()
    # a random vector: adding one number to every feature would be undone by the LayerNorm
    (edited_memory if side == "source" else edited_x)[0, j] += torch.randn(8)
    with torch.no_grad():
        change = (block(edited_x, edited_memory) - block(x, memory)).abs().amax(-1)[0]
    return (change > 1e-6).nonzero().flatten().tolist()


@pytest.mark.parametrize("right", [changed_by_rule, changed_by_experiment])
def test_changed_positions_passes(right, capsys):
    check_changed_positions(right)  # raises if the answer is rejected
    assert "all 2 checks passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, hint",
    [
        # the source treated as causal, like the target
        (lambda T, S, side, j: list(range(min(j, T), T)), "the source is not causal"),
        # the target treated as bidirectional
        (lambda T, S, side, j: list(range(T)), "self-attention is causal"),
        # only the edited position changes
        (
            lambda T, S, side, j: list(range(T)) if side == "source" else [j],
            "not only position",
        ),
        # the last source position mapped onto the target
        (
            lambda T, S, side, j: [min(j, T - 1)] if side == "source" else list(range(j, T)),
            "expected",
        ),
        (lambda T, S, side, j: len(range(T)), "return a list of target positions"),
        (lambda T, S, side, j: list(range(T))[::-1], "in increasing order"),
    ],
)
def test_changed_positions_wrong(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_changed_positions(wrong)


def fixed_attention(x, W_qkv, W_out):
    T, C = x.shape[-2:]
    q, k, v = (x @ W_qkv).split(C, dim=-1)
    scores = q @ k.transpose(-2, -1) / math.sqrt(C)
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    scores = scores.masked_fill(future, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v @ W_out


def fixed_attention_sdpa(x, W_qkv, W_out):
    # a second right answer: PyTorch's fused attention, in float64
    C = x.shape[-1]
    q, k, v = (x.double() @ W_qkv.double()).split(C, dim=-1)
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    return out @ W_out.double()


@pytest.mark.parametrize("right", [fixed_attention, fixed_attention_sdpa])
def test_fixed_attention_passes(right, capsys):
    check_fixed_attention(right)  # raises if the answer is rejected
    assert "all 2 checks passed" in capsys.readouterr().out


def _variant(mask, dim=-1, scale=True):
    def attention(x, W_qkv, W_out):
        T, C = x.shape[-2:]
        q, k, v = (x @ W_qkv).split(C, dim=-1)
        scores = q @ k.transpose(-2, -1) / (math.sqrt(C) if scale else 1.0)
        scores = scores.masked_fill(mask(T), float("-inf"))
        return torch.softmax(scores, dim=dim) @ v @ W_out

    return attention


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (buggy_attention, "future still leaks"),  # the bug, unfixed
        (_variant(lambda T: torch.ones(T, T, dtype=torch.bool).tril(-1)), "future still leaks"),
        (_variant(lambda T: torch.ones(T, T, dtype=torch.bool).triu()), "NaN"),
        (_variant(lambda T: torch.ones(T, T, dtype=torch.bool).triu(1), scale=False), "differ"),
    ],
)
def test_fixed_attention_wrong(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_fixed_attention(wrong)
