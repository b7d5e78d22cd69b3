"""The chapter 6 exercise checks: model answers pass, plausible wrong answers get a hint."""

import math

import pytest
import torch

from llmcourse.exercises import ExerciseError, NotYetAnswered
from llmcourse.exercises.ch06 import (
    check_ffn_param_count,
    check_gelu_tanh,
    check_layer_norm,
    check_pre_norm_block,
)

# --- layer norm -----------------------------------------------------------------------------


def layer_norm(x, weight, bias, eps):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


def test_layer_norm_passes(capsys):
    check_layer_norm(layer_norm)  # raises if the answer is rejected
    assert "all 4 checks passed" in capsys.readouterr().out


def test_layer_norm_unbiased_variance_rejected():
    def unbiased(x, weight, bias, eps):
        mean = x.mean(-1, keepdim=True)
        return (x - mean) / torch.sqrt(x.var(-1, keepdim=True) + eps) * weight + bias

    with pytest.raises(ExerciseError, match="biased variance"):
        check_layer_norm(unbiased)


def test_layer_norm_eps_outside_rejected():
    def annotated(x, weight, bias, eps):
        mean = x.mean(-1, keepdim=True)
        std = ((x - mean) ** 2).mean(-1, keepdim=True).sqrt()
        return (x - mean) / (std + eps) * weight + bias

    with pytest.raises(ExerciseError, match="eps goes inside the square root"):
        check_layer_norm(annotated)


def test_layer_norm_wrong_dimension_rejected():
    def over_batch(x, weight, bias, eps):
        mean = x.mean(0, keepdim=True)
        var = ((x - mean) ** 2).mean(0, keepdim=True)
        return (x - mean) / torch.sqrt(var + eps) * weight + bias

    with pytest.raises(ExerciseError, match="normalize over dim=-1"):
        check_layer_norm(over_batch)


def test_layer_norm_affine_order_rejected():
    def shift_then_scale(x, weight, bias, eps):
        return (layer_norm(x, 1.0, 0.0, eps) + bias) * weight

    with pytest.raises(ExerciseError, match="multiply by weight and then add bias"):
        check_layer_norm(shift_then_scale)


def test_layer_norm_not_answered():
    with pytest.raises(NotYetAnswered):
        check_layer_norm(None)

    def todo(x, weight, bias, eps):
        raise NotImplementedError

    with pytest.raises(NotYetAnswered):
        check_layer_norm(todo)


# --- GELU, tanh approximation ---------------------------------------------------------------


def gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def gelu_tanh_float32(x):
    x = x.float()  # a correct answer that computes (and returns) float32
    inner = torch.tensor(math.sqrt(2 / math.pi)) * (x + 0.044715 * x.pow(3))
    return 0.5 * x * (1 + inner.tanh())


def gelu_tanh_sigmoid(x):
    # the same function written differently: 0.5 (1 + tanh(z)) = sigmoid(2 z)
    return x * torch.sigmoid(2 * math.sqrt(2 / math.pi) * (x + 0.044715 * x * x * x))


def gelu_tanh_sigmoid_float32(x):
    x32 = x.to(torch.float32)
    return x32 * torch.sigmoid(1.5957691216057308 * (x32 + 0.044715 * x32**3))


@pytest.mark.parametrize(
    "answer", [gelu_tanh, gelu_tanh_float32, gelu_tanh_sigmoid, gelu_tanh_sigmoid_float32]
)
def test_gelu_tanh_passes(answer, capsys):
    check_gelu_tanh(answer)  # raises if the answer is rejected
    assert "all 3 checks passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda x: 0.5 * x * (1 + torch.erf(x / math.sqrt(2))), "exact GELU"),
        (
            lambda x: x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
            "factor 0.5",
        ),
        (
            lambda x: 0.5 * x * (1 + torch.tanh(math.sqrt(math.pi / 2) * (x + 0.044715 * x**3))),
            r"sqrt\(2 / pi\)",
        ),
        (lambda x: 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * x)), "cubic term"),
        (lambda x: x * torch.sigmoid(1.702 * x), "cubic term"),
        # the same slips computed in float32: still caught at the looser tolerance
        (lambda x: 0.5 * x.float() * (1 + torch.erf(x.float() / math.sqrt(2))), "exact GELU"),
        (
            lambda x: 0.5 * x.float() * (1 + torch.tanh(math.sqrt(2 / math.pi) * x.float())),
            "cubic term",
        ),
        (
            lambda x: (
                0.5
                * x.float()
                * (1 + torch.tanh(math.sqrt(math.pi / 2) * (x.float() + 0.044715 * x.float() ** 3)))
            ),
            r"sqrt\(2 / pi\)",
        ),
        # a cubic term with the wrong coefficient is still too far off to pass
        (lambda x: 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.04 * x**3))), "cubic"),
    ],
)
def test_gelu_tanh_wrong_rejected(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_gelu_tanh(wrong)


def test_gelu_tanh_not_answered():
    with pytest.raises(NotYetAnswered):
        check_gelu_tanh(None)


# --- feed-forward parameter count -----------------------------------------------------------


def test_ffn_param_count_passes():
    # raises if the answer is rejected
    check_ffn_param_count(lambda d_model, d_ff: 2 * d_model * d_ff + d_ff + d_model)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda d, f: 2 * d * f, "count the biases too"),
        (lambda d, f: 2 * d * f + 2 * f, "linear1's bias has d_ff entries"),
        (lambda d, f: d * f + f + d, "2 d_model d_ff"),
        (lambda d, f: float(2 * d * f + f + d), "return an int"),
    ],
)
def test_ffn_param_count_wrong_rejected(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_ffn_param_count(wrong)


def test_ffn_param_count_not_answered():
    with pytest.raises(NotYetAnswered):
        check_ffn_param_count(None)


# --- pre-norm block -------------------------------------------------------------------------


def test_pre_norm_block_passes():
    # raises if the answer is rejected
    check_pre_norm_block(lambda x, sublayer, norm: x + sublayer(norm(x)))


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda x, s, n: n(x + s(x)), "post-norm"),
        (lambda x, s, n: s(n(x)), "residual connection is missing"),
        (lambda x, s, n: n(x) + s(n(x)), "add the raw x"),
        (lambda x, s, n: x + n(s(x)), "x \\+ sublayer\\(norm\\(x\\)\\)"),
    ],
)
def test_pre_norm_block_wrong_rejected(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_pre_norm_block(wrong)


def test_pre_norm_block_not_answered():
    with pytest.raises(NotYetAnswered):
        check_pre_norm_block(None)
