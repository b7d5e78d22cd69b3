"""The chapter 4 checks pass the model answers and reject plausible wrong ones."""

import pytest
import torch
from torch import nn

from llmcourse.attention import scaled_dot_product_attention
from llmcourse.exercises import ExerciseError, NotYetAnswered
from llmcourse.exercises.ch04 import (
    check_attention_flops,
    check_best_blend_accuracy,
    check_heads_one_by_one,
    check_mha_parameter_count,
    check_split_heads,
)
from llmcourse.multihead import split_heads


def split_heads_any(x, num_heads):
    return x.view(*x.shape[:-1], num_heads, x.shape[-1] // num_heads).transpose(-3, -2)


def test_split_heads_right(capsys):
    check_split_heads(split_heads_any)  # raises if the answer is rejected
    # another idiom, and a float64 copy: raise if the answer is rejected
    check_split_heads(lambda x, h: x.unflatten(-1, (h, -1)).movedim(-2, -3))
    check_split_heads(lambda x, h: split_heads_any(x.double(), h))
    assert "all 4 checks passed" in capsys.readouterr().out


def test_split_heads_the_chapters_three_dimensional_version():
    # the chapter's split_heads (the package's), passed unchanged, answers only (B, T, C)
    with pytest.raises(ExerciseError, match="B, T, C = x.shape assumes exactly three"):
        check_split_heads(split_heads)
    with pytest.raises(ExerciseError, match="B, T, C = x.shape assumes exactly three"):
        check_split_heads(lambda x, h: x.unflatten(-1, (h, -1)).permute(0, 2, 1, 3))


def test_split_heads_view_without_transpose():
    def wrong(x, h):
        return x.reshape(*x.shape[:-2], h, x.shape[-2], x.shape[-1] // h)

    with pytest.raises(ExerciseError, match="then transpose"):
        check_split_heads(wrong)


def test_split_heads_wrong_layout():
    with pytest.raises(ExerciseError, match=r"must give \(batch, heads, seq, head_dim\)"):
        check_split_heads(lambda x, h: x.view(*x.shape[:-1], h, -1))


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


# ---- a multi-head layer from single heads ----------------------------------------------------


def heads_as_modules(x, state, num_heads):
    """The book's answer: h single-head modules holding their slices of the fused weights."""
    C = x.shape[-1]
    d = C // num_heads
    outputs = []
    for i in range(num_heads):
        rows = slice(i * d, (i + 1) * d)
        q, k, v = (nn.Linear(C, d, dtype=x.dtype) for _ in range(3))
        with torch.no_grad():
            for name, layer in zip("qkv", (q, k, v)):
                layer.weight.copy_(state[f"{name}_proj.weight"][rows])
                layer.bias.copy_(state[f"{name}_proj.bias"][rows])
        outputs.append(scaled_dot_product_attention(q(x), k(x), v(x)))
    return torch.cat(outputs, dim=-1) @ state["out_proj.weight"].T + state["out_proj.bias"]


def heads_projected_one_by_one(x, state, num_heads, slip=None):
    """Tensors only, and W^O split by columns: sum over heads of head_i W^O_i (= Concat W^O).

    ``slip`` makes one of the usual mistakes instead."""
    C = x.shape[-1]
    d = C // num_heads
    total = state["out_proj.bias"].clone()
    heads = []
    for i in range(num_heads):
        rows = slice(i, None, num_heads) if slip == "strided" else slice(i * d, (i + 1) * d)
        q, k, v = (
            x @ state[f"{n}_proj.weight"][rows].T + state[f"{n}_proj.bias"][rows] for n in "qkv"
        )
        width = C if slip == "sqrt C" else d
        head = torch.softmax(q @ k.transpose(-2, -1) / width**0.5, dim=-1) @ v
        heads.append(head)
        total = total + head @ state["out_proj.weight"][:, i * d : (i + 1) * d].T
    if slip == "no W^O":
        return torch.cat(heads, dim=-1)
    if slip == "sum":
        return sum(heads)
    return total


def test_heads_one_by_one_right(capsys):
    check_heads_one_by_one(heads_as_modules)  # raises if the answer is rejected
    check_heads_one_by_one(heads_projected_one_by_one)  # raises if the answer is rejected
    assert capsys.readouterr().out.count("all 3 checks passed") == 2


@pytest.mark.parametrize(
    ("slip", "hint"),
    [
        ("strided", "contiguous rows"),
        ("no W^O", "output projection"),
        ("sqrt C", r"sqrt\(d\) of the head"),
        ("sum", "concatenate"),
    ],
)
def test_heads_one_by_one_slips(slip, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_heads_one_by_one(lambda x, s, h: heads_projected_one_by_one(x, s, h, slip))


def test_heads_one_by_one_without_biases():
    def no_bias(x, state, num_heads):
        return (
            heads_projected_one_by_one(
                x, {k: v if k.endswith("weight") else 0 * v for k, v in state.items()}, num_heads
            )
            + state["out_proj.bias"]
        )

    with pytest.raises(ExerciseError, match="slice of the biases"):
        check_heads_one_by_one(no_bias)


def test_heads_one_by_one_fixed_sizes_and_dtype():
    with pytest.raises(ExerciseError, match="not fixed numbers"):
        check_heads_one_by_one(lambda x, s, h: heads_projected_one_by_one(x, s, 2))

    def float32_result(x, state, num_heads):
        return heads_projected_one_by_one(x, state, num_heads).float()

    def float32_layers(x, state, num_heads):
        return heads_as_modules(x.float(), state, num_heads)

    def float32_modules_float64_input(x, state, num_heads):
        return heads_as_modules(x.float(), state, num_heads) + 0 * x

    for answer in (float32_result, float32_layers, float32_modules_float64_input):
        with pytest.raises(ExerciseError, match="stay float64"):
            check_heads_one_by_one(answer)


def test_heads_one_by_one_not_answered():
    with pytest.raises(NotYetAnswered):
        check_heads_one_by_one(None)


# ---- the best an even blend can do ------------------------------------------------------------


def best_blend_accuracy(values):
    vocab = values.shape[0]
    flat = ((values[:, None] + values[None, :]).double() / 2).reshape(vocab * vocab, -1)
    same = (flat[:, None] - flat[None, :]).abs().amax(-1) <= 1e-6
    return (~same.tril(-1).any(-1)).sum().item() / (vocab * vocab)


def best_blend_accuracy_greedy(values):
    # float32 throughout, a Python loop over pairs, a tensor returned
    vocab = values.shape[0]
    seen = []
    for a in range(vocab):
        for b in range(vocab):
            blend = (values[a].float() + values[b].float()) / 2
            if not any(torch.allclose(blend, s, rtol=0, atol=1e-6) for s in seen):
                seen.append(blend)
    return torch.tensor(len(seen) / vocab**2)


@pytest.mark.parametrize("answer", [best_blend_accuracy, best_blend_accuracy_greedy])
def test_best_blend_right(answer, capsys):
    check_best_blend_accuracy(answer)  # raises if the answer is rejected
    assert "all 4 checks passed" in capsys.readouterr().out


def test_best_blend_formula_for_general_position():
    with pytest.raises(ExerciseError, match="count the distinct blends of the table"):
        check_best_blend_accuracy(lambda values: (len(values) + 1) / (2 * len(values)))


def test_best_blend_unordered_pairs_only():
    def unordered(values):
        vocab = values.shape[0]
        return vocab * (vocab + 1) / 2 / (vocab * (vocab + 1) / 2)

    with pytest.raises(ExerciseError, match="divide by all vocab\\^2 ordered pairs"):
        check_best_blend_accuracy(unordered)


def test_best_blend_exact_equality():
    def exact(values):
        vocab = values.shape[0]
        flat = (values[:, None] + values[None, :]).reshape(vocab * vocab, -1) / 2
        return torch.unique(flat, dim=0).shape[0] / vocab**2

    with pytest.raises(ExerciseError, match="compare with a tolerance"):
        check_best_blend_accuracy(exact)
    with pytest.raises(NotYetAnswered):
        check_best_blend_accuracy(None)
