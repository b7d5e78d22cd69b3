"""The chapter 7 exercise checks: model answers pass, plausible wrong answers get a hint."""

import pytest
import torch

from llmcourse.exercises import ExerciseError, NotYetAnswered
from llmcourse.exercises.ch07 import check_attention_mask, check_block_params, check_mean_pool


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
    for check in (check_block_params, check_attention_mask, check_mean_pool):
        with pytest.raises(NotYetAnswered):
            check(None)
