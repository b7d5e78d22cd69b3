"""The chapter 6 exercise checks: model answers pass, plausible wrong answers get a hint."""

import math

import pytest
import torch

from llmcourse.exercises import ExerciseError, NotYetAnswered
from llmcourse.exercises.ch06 import (
    CHANGES,
    check_ffn_param_count,
    check_gelu_tanh,
    check_layer_norm,
    check_layer_norm_effect,
    check_pre_norm_layer,
    check_stream_std,
)

# --- layer norm -----------------------------------------------------------------------------


def layer_norm(x, weight, bias, eps):
    dims = tuple(range(-weight.dim(), 0))
    mean = x.mean(dims, keepdim=True)
    var = ((x - mean) ** 2).mean(dims, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


def layer_norm_float32_flatten(x, weight, bias, eps):
    # a second right answer: flatten the normalized dimensions, in float32
    x32 = x.float().flatten(-weight.dim())  # (..., prod(normalized_shape))
    mean = x32.mean(-1, keepdim=True)
    var = x32.var(-1, correction=0, keepdim=True)
    out = ((x32 - mean) * torch.rsqrt(var + eps)).view(x.shape)
    return out * weight.float() + bias.float()


@pytest.mark.parametrize("answer", [layer_norm, layer_norm_float32_flatten])
def test_layer_norm_passes(answer, capsys):
    check_layer_norm(answer)  # raises if the answer is rejected
    assert "all 5 checks passed" in capsys.readouterr().out


def test_layer_norm_last_dimension_only_rejected():
    def chapters_layer_norm(x, weight, bias, eps=1e-5):  # the chapter's, unchanged
        mean = x.mean(dim=-1, keepdim=True)
        var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
        return (x - mean) / torch.sqrt(var + eps) * weight + bias

    with pytest.raises(ExerciseError, match="last dimension only"):
        check_layer_norm(chapters_layer_norm)


def test_layer_norm_mean_over_both_variance_over_one_rejected():
    def mixed(x, weight, bias, eps):
        dims = tuple(range(-weight.dim(), 0))
        mean = x.mean(dims, keepdim=True)
        var = ((x - mean) ** 2).mean(-1, keepdim=True)
        return (x - mean) / torch.sqrt(var + eps) * weight + bias

    with pytest.raises(ExerciseError, match="one mean and one"):
        check_layer_norm(mixed)


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
        return (layer_norm(x, torch.ones_like(weight), 0.0, eps) + bias) * weight

    with pytest.raises(ExerciseError, match="multiply by weight and then add bias"):
        check_layer_norm(shift_then_scale)


def test_layer_norm_not_answered():
    with pytest.raises(NotYetAnswered):
        check_layer_norm(None)

    def todo(x, weight, bias, eps):
        raise NotImplementedError

    with pytest.raises(NotYetAnswered):
        check_layer_norm(todo)


# --- what layer norm ignores ---------------------------------------------------------------


def effect_by_rule(change):
    return {
        "add 3": "same",
        "times 10": "same",
        "times -1": "negated",
        "times 0.001": "smaller",
        "add 1 to one feature": "changed",
    }[change]


def effect_by_experiment(change, dtype=torch.float32):
    # a second right answer: run layer norm and look (float32 and float64 below)
    v = torch.randn(8, generator=torch.Generator().manual_seed(0), dtype=dtype)
    v = (v - v.mean()) / v.std(correction=0)

    def ln(t):
        return torch.nn.functional.layer_norm(t, (8,), eps=1e-5)

    y, out = ln(v), ln(CHANGES[change](v))
    c = float(out @ y / (y @ y))
    if (out - c * y).norm() > 1e-3:
        return "changed"
    if abs(c - 1) < 1e-3:
        return "same"
    return "negated" if abs(c + 1) < 1e-3 else "smaller"


@pytest.mark.parametrize(
    "answer",
    [
        effect_by_rule,
        effect_by_experiment,
        lambda change: effect_by_experiment(change, torch.float64),
        lambda change: " " + effect_by_rule(change).upper(),  # case and spaces forgiven
    ],
)
def test_layer_norm_effect_passes(answer, capsys):
    check_layer_norm_effect(answer)  # raises if the answer is rejected
    assert "all 2 checks passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "slip, hint",
    [
        ({"times 0.001": "same"}, "smaller than eps"),  # eps forgotten
        ({"add 3": "changed"}, "subtracts the mean first"),
        ({"times -1": "same"}, "output is negated"),
        ({"times 10": "smaller"}, "divides by the standard deviation"),
        ({"add 1 to one feature": "same"}, "one feature relative to the others"),
        ({"times 10": "larger"}, "return one of"),
    ],
)
def test_layer_norm_effect_wrong_rejected(slip, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_layer_norm_effect(lambda change: slip.get(change, effect_by_rule(change)))


def test_layer_norm_effect_not_answered():
    with pytest.raises(NotYetAnswered):
        check_layer_norm_effect(None)


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


# --- pre-norm layer -------------------------------------------------------------------------


def pre_norm_layer(x, attn, ffn, norm1, norm2):
    h = x + attn(norm1(x))
    return h + ffn(norm2(h))


def pre_norm_layer_float64_loop(x, attn, ffn, norm1, norm2):
    # a second right answer: a loop over the two halves, computed in float64
    x = x.double()
    for sublayer, norm in ((attn, norm1), (ffn, norm2)):
        x = x + sublayer(norm(x.float())).double()
    return x


@pytest.mark.parametrize("answer", [pre_norm_layer, pre_norm_layer_float64_loop])
def test_pre_norm_layer_passes(answer, capsys):
    check_pre_norm_layer(answer)  # raises if the answer is rejected
    assert "all 2 checks passed" in capsys.readouterr().out


def test_pre_norm_layer_agrees_with_pytorch():
    layer = torch.nn.TransformerEncoderLayer(
        8, 2, 16, dropout=0.0, batch_first=True, norm_first=True
    ).eval()
    x = torch.randn(2, 5, 8)
    ours = pre_norm_layer(
        x,
        lambda h: layer.self_attn(h, h, h, need_weights=False)[0],
        lambda h: layer.linear2(torch.relu(layer.linear1(h))),
        layer.norm1,
        layer.norm2,
    )
    torch.testing.assert_close(ours, layer(x), atol=1e-5, rtol=1e-5)


def _post_norm(x, a, f, n1, n2):
    h = n1(x + a(x))
    return n2(h + f(h))


def _swapped(x, a, f, n1, n2):
    h = x + a(n2(x))
    return h + f(n1(h))


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (_post_norm, "post-norm"),
        (lambda x, a, f, n1, n2: x + a(n1(x)) + f(n2(x)), "parallel"),
        (_swapped, "swapped"),
        (lambda x, a, f, n1, n2: n2(n1(x) + a(n1(x))) + f(n2(n1(x) + a(n1(x)))), "raw stream"),
        (lambda x, a, f, n1, n2: f(n2(a(n1(x)))), r"h = x \+ attn"),
        # the chapter's one-sublayer pre_norm_block cannot take the five arguments
        (lambda x, f, norm: x + f(norm(x)), "TypeError"),
    ],
)
def test_pre_norm_layer_wrong_rejected(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_pre_norm_layer(wrong)


def test_pre_norm_layer_not_answered():
    with pytest.raises(NotYetAnswered):
        check_pre_norm_layer(None)


# --- how fast the residual stream grows ----------------------------------------------------


def stream_std_loop(n_blocks, write_ratio):
    # a second right answer: follow the variance block by block, in float32
    var = torch.tensor(1.0)
    for _ in range(n_blocks):
        var = var + write_ratio * var
    return var.sqrt()


@pytest.mark.parametrize(
    "answer",
    [
        lambda n, r: (1 + r) ** (n / 2),
        lambda n, r: math.exp(n / 2 * math.log1p(r)),
        stream_std_loop,
    ],
)
def test_stream_std_passes(answer, capsys):
    check_stream_std(answer)  # raises if the answer is rejected
    assert "all 2 checks passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda n, r: (1 + r) ** n, "VARIANCE"),
        (lambda n, r: math.sqrt(1 + n * r), "compounds"),
        (lambda n, r: 1 + n * r, "compounds"),
        (lambda n, r: math.sqrt(r) ** n, "not put in its place"),
        (lambda n, r: (1 + r) ** (n / 2) * 2, "expected"),
        (lambda n, r: f"{(1 + r) ** (n / 2)} blocks", "one number"),
    ],
)
def test_stream_std_wrong_rejected(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_stream_std(wrong)


def test_stream_std_not_answered():
    with pytest.raises(NotYetAnswered):
        check_stream_std(None)
