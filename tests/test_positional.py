"""Positional encodings against the paper's formula, PyTorch and Hugging Face references."""

import math

import pytest
import torch
from conftest import assert_equal, hf_gpt2
from torch import nn
from torch.testing import assert_close
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb
from transformers.models.marian.modeling_marian import MarianSinusoidalPositionalEmbedding

from llmcourse.positional import (
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    apply_rotary,
    rope_inv_freq,
    rotary_cos_sin,
    rotate_half,
    sinusoidal_encoding,
    sinusoidal_offset_matrix,
)


def loop_encoding(num_positions, d_model, base=10000.0):
    """The paper's two formulas, one entry at a time, in float64."""
    pe = torch.zeros(num_positions, d_model, dtype=torch.float64)
    for pos in range(num_positions):
        for i in range(d_model // 2):
            angle = pos / base ** (2 * i / d_model)
            pe[pos, 2 * i], pe[pos, 2 * i + 1] = math.sin(angle), math.cos(angle)
    return pe


# ---- sinusoidal encoding ----------------------------------------------------------------------


@pytest.mark.parametrize("num_positions, d_model", [(1, 2), (7, 6), (50, 16), (33, 130)])
def test_sinusoidal_matches_loop(num_positions, d_model):
    pe = sinusoidal_encoding(num_positions, d_model, dtype=torch.float64)
    assert pe.shape == (num_positions, d_model)
    assert_close(pe, loop_encoding(num_positions, d_model), atol=1e-12, rtol=1e-12)


def test_sinusoidal_hand_worked_values():
    pe = sinusoidal_encoding(3, 4)
    assert pe.dtype == torch.float32
    assert_close(pe[0], torch.tensor([0.0, 1.0, 0.0, 1.0]))
    # pos 1: pair 0 has w = 1, pair 1 has w = 1 / 10000 ** (2 / 4) = 1 / 100.
    assert_close(pe[1], torch.tensor([math.sin(1), math.cos(1), math.sin(0.01), math.cos(0.01)]))
    assert_close(pe[2, 2], torch.tensor(math.sin(0.02)))


def test_sinusoidal_matches_marian_after_deinterleaving():
    # Marian (Hugging Face) stores the same numbers with all sines first, then all cosines.
    marian = MarianSinusoidalPositionalEmbedding(40, 24).create_weight()
    ours = sinusoidal_encoding(40, 24)
    assert_close(torch.cat([ours[:, 0::2], ours[:, 1::2]], dim=1), marian, atol=1e-6, rtol=1e-5)


def test_sinusoidal_other_base_and_empty():
    assert_close(
        sinusoidal_encoding(9, 8, base=100.0, dtype=torch.float64),
        loop_encoding(9, 8, base=100.0),
        atol=1e-12,
        rtol=1e-12,
    )
    assert sinusoidal_encoding(0, 8).shape == (0, 8)


@pytest.mark.parametrize("k", [1, 5, -3, 250])
def test_offset_matrix_maps_pos_to_pos_plus_k(k):
    d_model = 32
    pe = sinusoidal_encoding(600, d_model, dtype=torch.float64)
    M = sinusoidal_offset_matrix(k, d_model, dtype=torch.float64)
    start = max(0, -k)
    positions = torch.arange(start, 300)
    assert_close(pe[positions] @ M.T, pe[positions + k], atol=1e-10, rtol=1e-10)
    assert_close(M @ M.T, torch.eye(d_model, dtype=torch.float64), atol=1e-12, rtol=1e-12)


def test_offset_matrix_is_block_diagonal_rotation():
    M = sinusoidal_offset_matrix(2, 4)
    assert_close(M[:2, :2], torch.tensor([[math.cos(2), math.sin(2)], [-math.sin(2), math.cos(2)]]))
    assert_close(M[:2, 2:], torch.zeros(2, 2))
    assert_close(sinusoidal_offset_matrix(0, 6), torch.eye(6))


def test_dot_product_depends_only_on_offset():
    pe = sinusoidal_encoding(200, 64, dtype=torch.float64)
    freq = 10000.0 ** (-torch.arange(0, 64, 2, dtype=torch.float64) / 64)
    for k in (0, 1, 7, 40):
        dots = (pe[: 200 - k] * pe[k:]).sum(-1)
        assert_close(dots, torch.cos(k * freq).sum().expand_as(dots), atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize(
    "args, match",
    [
        ((10, 7), "d_model must be a positive even int.*got 7"),
        ((10, 0), "d_model must be a positive even int"),
        ((10, 8.0), "d_model must be a positive even int"),
        ((-1, 8), "num_positions must be an int >= 0, got -1"),
        ((2.5, 8), "num_positions must be an int >= 0"),
    ],
)
def test_sinusoidal_validation(args, match):
    with pytest.raises(ValueError, match=match):
        sinusoidal_encoding(*args)


def test_base_and_offset_validation():
    with pytest.raises(ValueError, match="base must be a number > 1, got 1"):
        sinusoidal_encoding(4, 8, base=1)
    with pytest.raises(ValueError, match="k must be a number"):
        sinusoidal_offset_matrix("3", 8)
    with pytest.raises(ValueError, match="d_model must be a positive even int.*got 5"):
        sinusoidal_offset_matrix(1, 5)


# ---- learned positions ------------------------------------------------------------------------


def test_learned_matches_gpt2_embeddings():
    gpt2 = hf_gpt2(0, vocab_size=50, n_positions=12, n_embd=16, n_layer=1, n_head=2).transformer
    ours = LearnedPositionalEmbedding(12, 16)
    ours.load_state_dict(gpt2.wpe.state_dict())
    for batch, T in ((1, 12), (3, 5)):
        ids = torch.randint(0, 50, (batch, T))
        want = gpt2(ids, output_hidden_states=True).hidden_states[0]
        assert_close(ours(gpt2.wte(ids)), want, atol=1e-6, rtol=1e-5)


def test_learned_matches_nn_embedding_and_start():
    ours = LearnedPositionalEmbedding(9, 6)
    reference = nn.Embedding(9, 6)
    reference.load_state_dict(ours.state_dict())
    x = torch.randn(2, 4, 6)
    assert_close(ours(x), x + reference(torch.arange(4)))
    assert_close(ours(x, start=5), x + reference(torch.arange(5, 9)))
    assert list(dict(ours.named_parameters())) == ["weight"]
    assert repr(ours) == "LearnedPositionalEmbedding(9, 6)"


def test_learned_validation():
    ours = LearnedPositionalEmbedding(4, 6)
    with pytest.raises(ValueError, match=r"positions 0\.\.4 exceed the 4 learned positions"):
        ours(torch.zeros(1, 5, 6))
    with pytest.raises(ValueError, match=r"positions 3\.\.4 exceed"):
        ours(torch.zeros(1, 2, 6), start=3)
    with pytest.raises(ValueError, match=r"expected x of shape \(batch, seq, 6\), got \(5, 6\)"):
        ours(torch.zeros(5, 6))
    with pytest.raises(ValueError, match=r"expected x of shape \(batch, seq, 6\), got \(1, 2, 5\)"):
        ours(torch.zeros(1, 2, 5))
    with pytest.raises(ValueError, match="start must be an int >= 0, got -1"):
        ours(torch.zeros(1, 2, 6), start=-1)
    with pytest.raises(ValueError, match="num_embeddings must be a positive int, got 0"):
        LearnedPositionalEmbedding(0, 6)


# ---- rotary position embedding ----------------------------------------------------------------


def llama_rotary(head_dim, base):
    config = LlamaConfig(
        hidden_size=head_dim * 2,
        num_attention_heads=2,
        head_dim=head_dim,
        rope_parameters={"rope_type": "default", "rope_theta": base},
    )
    return LlamaRotaryEmbedding(config)


@pytest.mark.parametrize(
    "batch, heads, T, head_dim, base",
    [(1, 1, 1, 2, 10000.0), (2, 3, 7, 8, 10000.0), (3, 2, 11, 64, 100000.0)],
)
def test_rotary_matches_llama(batch, heads, T, head_dim, base):
    torch.manual_seed(1)
    q, k = torch.randn(batch, heads, T, head_dim), torch.randn(batch, heads, T, head_dim)
    position_ids = torch.randint(0, 500, (batch, T))
    cos_ref, sin_ref = llama_rotary(head_dim, base)(q, position_ids)
    cos, sin = rotary_cos_sin(position_ids, head_dim, base)
    assert_equal(cos, cos_ref)
    assert_equal(sin, sin_ref)
    q_ref, k_ref = apply_rotary_pos_emb(q, k, cos_ref, sin_ref)
    assert_close(apply_rotary(q, cos[:, None], sin[:, None]), q_ref, atol=1e-6, rtol=1e-5)
    assert_close(apply_rotary(k, cos[:, None], sin[:, None]), k_ref, atol=1e-6, rtol=1e-5)
    module_cos, module_sin = RotaryEmbedding(head_dim, base)(position_ids)
    assert_equal(module_cos, cos_ref)
    assert_equal(module_sin, sin_ref)


def test_rotary_module_has_no_state_dict_entries():
    module = RotaryEmbedding(8)
    assert_close(module.inv_freq, llama_rotary(8, 10000.0).inv_freq)
    assert module.state_dict() == {}
    assert repr(module) == "RotaryEmbedding(head_dim=8, base=10000.0)"


def test_rotary_hand_worked_and_norm():
    # head_dim 2: one pair (x0, x1) rotated by pos * 1 radians.
    cos, sin = rotary_cos_sin(torch.tensor([0, 1]), 2)
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert_close(apply_rotary(x, cos, sin), torch.tensor([[1.0, 0.0], [math.cos(1), math.sin(1)]]))
    y = torch.randn(4, 10, 16)
    c, s = rotary_cos_sin(torch.arange(10), 16)
    assert_close(apply_rotary(y, c, s).norm(dim=-1), y.norm(dim=-1))
    assert_close(
        rotate_half(torch.tensor([1.0, 2.0, 3.0, 4.0])), torch.tensor([-3.0, -4.0, 1.0, 2.0])
    )
    assert_close(rope_inv_freq(4), torch.tensor([1.0, 0.01]))


def test_rotary_scores_depend_only_on_offset():
    torch.manual_seed(2)
    q, k = torch.randn(32), torch.randn(32)

    def score(m, n):
        cos, sin = rotary_cos_sin(torch.tensor([m, n]), 32)
        qr = apply_rotary(q.expand(2, 32), cos, sin)[0]
        kr = apply_rotary(k.expand(2, 32), cos, sin)[1]
        return qr @ kr

    for m, n in ((5, 2), (9, 1), (0, 0)):
        for shift in (1, 17, 300):
            assert_close(score(m + shift, n + shift), score(m, n), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(score(5, 2), score(5, 3), atol=1e-3)


def test_rotary_validation():
    cos, sin = rotary_cos_sin(torch.arange(4), 8)
    with pytest.raises(ValueError, match="head_dim must be a positive even int.*got 7"):
        rotary_cos_sin(torch.arange(4), 7)
    with pytest.raises(ValueError, match=r"position_ids of shape \(seq,\) or \(batch, seq\)"):
        rotary_cos_sin(torch.zeros(1, 2, 3), 8)
    with pytest.raises(ValueError, match="position_ids must be a tensor"):
        rotary_cos_sin([0, 1], 8)
    with pytest.raises(ValueError, match=r"expected cos and sin of shape \(\.\.\., 5, 8\)"):
        apply_rotary(torch.zeros(1, 5, 8), cos, sin)
    with pytest.raises(ValueError, match="with an even head_dim, got"):
        apply_rotary(torch.zeros(1, 4, 7), cos, sin)
    with pytest.raises(ValueError, match="cos and sin must have the same shape"):
        apply_rotary(torch.zeros(1, 4, 8), cos, sin[None])
    bcos, bsin = rotary_cos_sin(torch.zeros(2, 4, dtype=torch.long), 8)
    with pytest.raises(ValueError, match=r"pass cos\[:, None\]"):
        apply_rotary(torch.zeros(2, 3, 4, 8), bcos, bsin)
    with pytest.raises(ValueError, match="base must be a number > 1"):
        RotaryEmbedding(8, base=0.5)
