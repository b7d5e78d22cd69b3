"""Chapter 12's exercise checks pass the model answers and reject plausible wrong ones."""

import math

import pytest
import torch
from torch.nn import functional as F

from llmcourse import llama
from llmcourse.exercises import ExerciseError, NotYetAnswered
from llmcourse.exercises.ch12 import (
    check_kv_cache_bytes,
    check_llama_param_count,
    check_permute_for_rotate_half,
    check_repeat_kv,
    check_rms_norm,
    check_swiglu,
)

ALL = [
    check_rms_norm,
    check_swiglu,
    check_repeat_kv,
    check_kv_cache_bytes,
    check_permute_for_rotate_half,
    check_llama_param_count,
]


@pytest.mark.parametrize("check", ALL)
def test_none_is_not_yet_answered(check):
    with pytest.raises(NotYetAnswered):
        check(None)


def in_float32(f):
    """The same answer computed in float32 (the check's inputs are float64)."""
    return lambda *args: f(*(a.float() if torch.is_tensor(a) else a for a in args))


def test_rms_norm():
    def right(x, w, eps):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w

    check_rms_norm(right)  # raises if the answer is rejected
    check_rms_norm(in_float32(right))  # a float32 answer passes too
    # raises if the answer is rejected
    check_rms_norm(lambda x, w, eps: llama.rms_norm(x.double(), w.double(), eps))

    def centred(x, w, eps):
        x = x - x.mean(-1, keepdim=True)
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w

    def eps_outside(x, w, eps):
        return x / (x.pow(2).mean(-1, keepdim=True).sqrt() + eps) * w

    def wrong_dim(x, w, eps):
        return x * torch.rsqrt(x.pow(2).mean(0, keepdim=True) + eps) * w

    for wrong, hint in [
        (centred, "that is layer norm"),
        (eps_outside, "eps goes inside"),
        (wrong_dim, "root mean square 1"),
        (lambda x, w, eps: right(x, 1.0, eps), "multiply by weight"),
        (lambda x, w, eps: right(x, w, eps)[0], "shape"),
    ]:
        with pytest.raises(ExerciseError, match=hint):
            check_rms_norm(wrong)


def test_swiglu():
    def right(x, g, u, d):
        return F.silu(x @ g.T) * (x @ u.T) @ d.T

    def right_linear(x, g, u, d):
        return F.linear(F.silu(F.linear(x, g)) * F.linear(x, u), d)

    for answer in (right, right_linear, in_float32(right), in_float32(right_linear)):
        check_swiglu(answer)  # raises if the answer is rejected (float64 and float32 answers)

    def swapped(x, g, u, d):
        return F.silu(x @ u.T) * (x @ g.T) @ d.T

    def geglu(x, g, u, d):
        return F.gelu(x @ g.T) * (x @ u.T) @ d.T

    for wrong, hint in [
        (in_float32(swapped), "gate and up are swapped"),
        (in_float32(geglu), "that is GeGLU"),
        (lambda *a: right(*a).half(), "compute in float32 or float64"),
    ]:
        with pytest.raises(ExerciseError, match=hint):
            check_swiglu(wrong)
    for wrong, hint in [
        (lambda x, g, u, d: F.silu(x @ u.T) * (x @ g.T) @ d.T, "gate and up are swapped"),
        (lambda x, g, u, d: F.gelu(x @ g.T) * (x @ u.T) @ d.T, "that is GeGLU"),
        (lambda x, g, u, d: F.silu(x @ g.T) @ d.T, "up projection is missing"),
        (lambda x, g, u, d: F.relu(x @ g.T) * (x @ u.T) @ d.T, "elementwise"),
        (lambda x, g, u, d: F.silu(x @ g) * (x @ u) @ d, "x @ W.T"),
    ]:
        with pytest.raises(ExerciseError, match=hint):
            check_swiglu(wrong)


def test_repeat_kv():
    check_repeat_kv(llama.repeat_kv)  # raises if the answer is rejected
    check_repeat_kv(lambda x, n: x.repeat_interleave(n, dim=1))  # raises if the answer is rejected
    for wrong, hint in [
        (lambda x, n: x.repeat(1, n, 1, 1), "repeat_interleave, not repeat"),
        (lambda x, n: x.repeat_interleave(n, dim=2), "shape"),
        (lambda x, n: x.repeat_interleave(2, dim=1), "n_rep=1"),
    ]:
        with pytest.raises(ExerciseError, match=hint):
            check_repeat_kv(wrong)


def test_kv_cache_bytes():
    # raises if the answer is rejected
    check_kv_cache_bytes(lambda L, K, D, T, b: 2 * L * K * D * T * b)
    for wrong, hint in [
        (lambda L, K, D, T, b: L * K * D * T * b, "both the keys and the values"),
        (lambda L, K, D, T, b: 2 * L * 3 * K * D * T * b, "counts 9 heads"),
        (lambda L, K, D, T, b: 2.0 * L * K * D * T * b, "an int"),
        (lambda L, K, D, T, b: 2 * L * K * D * T, "positions x bytes"),
    ]:
        with pytest.raises(ExerciseError, match=hint):
            check_kv_cache_bytes(wrong)


def permute_reshape(w, n_heads):
    """Hugging Face's conversion script: (H, D/2, 2, C) -> (H, 2, D/2, C)."""
    rows, C = w.shape
    return w.view(n_heads, rows // n_heads // 2, 2, C).transpose(1, 2).reshape(rows, C)


def permute_indices(w, n_heads):
    """The same permutation as a list of row indices: even rows of each head, then odd."""
    D = w.shape[0] // n_heads
    order = list(range(0, D, 2)) + list(range(1, D, 2))
    return w[[h * D + i for h in range(n_heads) for i in order]]


def test_permute_for_rotate_half():
    for right in (permute_reshape, permute_indices):
        check_permute_for_rotate_half(right)  # raises if the answer is rejected

    def whole_matrix(w, n_heads):
        return permute_reshape(w, 1)

    def inverse(w, n_heads):
        rows, C = w.shape
        return w.view(n_heads, 2, rows // n_heads // 2, C).transpose(1, 2).reshape(rows, C)

    for wrong, hint in [
        (lambda w, n_heads: w, "w is unchanged"),
        (lambda w, n_heads: w.clone(), "w is unchanged"),
        (whole_matrix, "as if it were one head"),
        (inverse, "that is the inverse permutation"),
        (lambda w, n_heads: permute_reshape(w, n_heads) * 2, "move whole rows"),
        (lambda w, n_heads: permute_reshape(w, n_heads).T, "w's shape"),
        (lambda w, n_heads: permute_reshape(w, n_heads).float(), "dtype torch.float64"),
    ]:
        with pytest.raises(ExerciseError, match=hint):
            check_permute_for_rotate_half(wrong)


def test_rope_layouts_differ_and_the_permutation_reconciles_them():
    """The premise of the exercise: with the same weights the two layouts disagree, and the
    check's rotate-half RoPE is Hugging Face's (llmcourse.positional.apply_rotary)."""
    from llmcourse.exercises import ch12
    from llmcourse.positional import apply_rotary, rotary_cos_sin

    torch.manual_seed(0)
    x, w_q, w_k = torch.randn(6, 16), torch.randn(2 * 8, 16), torch.randn(8, 16)
    half = ch12._scores(x, w_q, w_k, 2, 1, ch12._rope_rotate_half)
    interleaved = ch12._scores(x, w_q, w_k, 2, 1, ch12._rope_interleaved)
    assert (half - interleaved).abs().max() > 1.0
    fixed = ch12._scores(
        x, permute_reshape(w_q, 2), permute_reshape(w_k, 1), 2, 1, ch12._rope_rotate_half
    )
    torch.testing.assert_close(fixed, interleaved)
    q = (x @ w_q.T).view(6, 2, 8).transpose(0, 1)
    cos, sin = rotary_cos_sin(torch.arange(6), 8, 10000.0)
    torch.testing.assert_close(ch12._rope_rotate_half(q, 10000.0), apply_rotary(q, cos, sin))
    # and its interleaved RoPE is Meta's: pairs (2i, 2i + 1) as complex numbers, times
    # e^{i m theta_i} (llama/model.py, apply_rotary_emb)
    angles = torch.arange(6)[:, None] * 10000.0 ** (-torch.arange(0, 8, 2) / 8)
    freqs_cis = torch.polar(torch.ones_like(angles), angles)  # (T, D/2)
    meta = torch.view_as_real(torch.view_as_complex(q.reshape(2, 6, 4, 2)) * freqs_cis)
    torch.testing.assert_close(ch12._rope_interleaved(q, 10000.0), meta.flatten(-2))


# ---- a Llama's parameters ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        (49152, 576, 1536, 30, 9, 3, True),
        (1000, 64, 176, 3, 8, 2, False),
        (50, 32, 96, 2, 4, 4, True),
    ],
)
def test_the_parameter_formula_is_llamas(config):
    from transformers import LlamaConfig, LlamaForCausalLM

    from llmcourse.exercises.ch12 import llama_param_count

    V, C, F, L, H, K, tied = config
    hf = LlamaConfig(
        vocab_size=V,
        hidden_size=C,
        intermediate_size=F,
        num_hidden_layers=L,
        num_attention_heads=H,
        num_key_value_heads=K,
        tie_word_embeddings=tied,
    )
    with torch.device("meta"):  # shapes only: no memory, no time
        model = LlamaForCausalLM(hf)
    assert llama_param_count(*config) == sum(p.numel() for p in model.parameters())


def test_llama_param_count_right_answers():
    def by_formula(V, C, F, L, H, K, tied):
        D = C // H
        attention = C * H * D + 2 * C * K * D + H * D * C
        return V * C + L * (attention + 3 * C * F + 2 * C) + C + (0 if tied else V * C)

    def by_modules(V, C, F, L, H, K, tied):
        shapes = {"q": (C, C), "k": (K * C // H, C), "v": (K * C // H, C), "o": (C, C)}
        shapes |= {"gate": (F, C), "up": (F, C), "down": (C, F), "norm1": (C,), "norm2": (C,)}
        block = sum(math.prod(s) for s in shapes.values())
        head = 0 if tied else V * C
        return int(V * C + L * block + C + head)

    check_llama_param_count(by_formula)
    check_llama_param_count(by_modules)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (
            lambda V, C, F, L, H, K, t: V * C + L * (4 * C * C + 3 * C * F + 2 * C) + C,
            "num_kv_heads",
        ),
        (
            lambda V, C, F, L, H, K, t: (
                2 * V * C + L * (2 * C * C + 2 * K * C // H * C + 3 * C * F + 2 * C) + C
            ),
            "reuses the embedding",
        ),
        (
            lambda V, C, F, L, H, K, t: (
                V * C + L * (2 * C * C + 2 * K * C // H * C + 2 * C * F + 2 * C) + C
            ),
            "three matrices",
        ),
        (
            lambda V, C, F, L, H, K, t: V * C + L * (2 * C * C + 2 * K * C // H * C + 3 * C * F),
            "RMSNorm gains",
        ),
        (
            lambda V, C, F, L, H, K, t: float(
                V * C
                + L * (2 * C * C + 2 * K * C // H * C + 3 * C * F + 2 * C)
                + C
                + (not t) * V * C
            ),
            "return an int",
        ),
    ],
)
def test_llama_param_count_wrong_answers(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_llama_param_count(wrong)
