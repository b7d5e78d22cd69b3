"""The chapter 5 checks pass the model answers and reject plausible wrong ones."""

import pytest

from llmcourse.exercises import ExerciseError, NotYetAnswered
from llmcourse.exercises.ch05 import (
    check_attention_flops,
    check_mha_parameter_count,
    check_split_heads,
)
from llmcourse.multihead import split_heads


def test_split_heads_right(capsys):
    check_split_heads(split_heads)  # raises if the answer is rejected
    # raises if the answer is rejected
    check_split_heads(lambda x, h: x.unflatten(-1, (h, -1)).permute(0, 2, 1, 3))
    assert "all 3 checks passed" in capsys.readouterr().out


def test_split_heads_view_without_transpose():
    def wrong(x, h):
        B, T, C = x.shape
        return x.reshape(B, h, T, C // h)

    with pytest.raises(ExerciseError, match="then transpose"):
        check_split_heads(wrong)


def test_split_heads_wrong_layout():
    with pytest.raises(ExerciseError, match=r"must give \(batch, heads, seq, head_dim\)"):
        check_split_heads(lambda x, h: x.view(x.shape[0], x.shape[1], h, -1))


def test_split_heads_fixed_sizes():
    with pytest.raises(ExerciseError, match="your answer raised|not fixed numbers"):
        check_split_heads(lambda x, h: x.view(2, 3, 4, 2).transpose(1, 2))


def test_split_heads_not_answered():
    with pytest.raises(NotYetAnswered):
        check_split_heads(None)


def test_parameter_count_right():
    # raises if the answer is rejected
    check_mha_parameter_count(lambda d, h, bias=True: 4 * d * d + (4 * d if bias else 0))


def test_parameter_count_without_out_proj():
    with pytest.raises(ExerciseError, match="output projection"):
        check_mha_parameter_count(lambda d, h, bias=True: 3 * d * d + (3 * d if bias else 0))


def test_parameter_count_without_bias():
    with pytest.raises(ExerciseError, match="also has d_model biases"):
        check_mha_parameter_count(lambda d, h, bias=True: 4 * d * d)


def test_parameter_count_per_head():
    with pytest.raises(ExerciseError, match="parameters, got|head count"):
        check_mha_parameter_count(lambda d, h, bias=True: h * (4 * d * d + 4 * d))


def test_parameter_count_not_answered():
    with pytest.raises(NotYetAnswered):
        check_mha_parameter_count(None)


def test_flops_right():
    # raises if the answer is rejected
    check_attention_flops(lambda T, d, h: 8 * T * d * d + 4 * T * T * d)


def test_flops_multiply_adds_only():
    with pytest.raises(ExerciseError, match="multiply-add as 2 FLOPs"):
        check_attention_flops(lambda T, d, h: 4 * T * d * d + 2 * T * T * d)


def test_flops_projections_only():
    with pytest.raises(ExerciseError, match="two T x T products"):
        check_attention_flops(lambda T, d, h: 8 * T * d * d)


def test_flops_times_heads():
    with pytest.raises(ExerciseError, match="head count"):
        check_attention_flops(lambda T, d, h: 8 * T * d * d + 4 * h * T * T * d)


def test_flops_not_answered():
    with pytest.raises(NotYetAnswered):
        check_attention_flops(None)
