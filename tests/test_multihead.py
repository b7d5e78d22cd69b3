"""llmcourse.multihead against torch.nn.MultiheadAttention with the same weights."""

import pytest
import torch
from conftest import randn
from torch import nn
from torch.testing import assert_close

from llmcourse.attention import causal_mask
from llmcourse.multihead import MultiHeadAttention, merge_heads, split_heads

TOL = dict(atol=1e-5, rtol=1e-5)


def pair(embed_dim, num_heads, bias=True, seed=0):
    torch.manual_seed(seed)
    ref = nn.MultiheadAttention(embed_dim, num_heads, bias=bias, batch_first=True).eval()
    with torch.no_grad():  # random biases too (PyTorch initialises them to zero)
        for p in ref.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    return MultiHeadAttention.from_torch(ref), ref


# --- split / merge -----------------------------------------------------------------------


def test_split_heads_gives_each_head_a_contiguous_slice():
    x = torch.arange(2 * 3 * 6.0).view(2, 3, 6)
    heads = split_heads(x, 2)
    assert heads.shape == (2, 2, 3, 3)
    assert torch.equal(heads[1, 0], x[1, :, :3]) and torch.equal(heads[1, 1], x[1, :, 3:])
    assert torch.equal(merge_heads(heads), x)


def test_split_merge_validation():
    with pytest.raises(ValueError, match=r"expected x of shape \(batch, seq, embed_dim\)"):
        split_heads(torch.zeros(3, 4), 2)
    with pytest.raises(ValueError, match="embed_dim=10 is not divisible by num_heads=3"):
        split_heads(torch.zeros(1, 2, 10), 3)
    with pytest.raises(ValueError, match=r"expected x of shape \(batch, heads, seq, head_dim\)"):
        merge_heads(torch.zeros(2, 3, 4))


# --- the module against PyTorch ----------------------------------------------------------

CONFIGS = [  # (embed_dim, num_heads, B, L, S)
    (8, 2, 2, 5, 5),  # self-attention sizes
    (12, 3, 1, 4, 7),  # batch 1, cross-attention L != S
    (15, 5, 3, 7, 3),  # odd sizes, L > S
    (6, 1, 2, 1, 4),  # one head, one query
    (16, 16, 2, 3, 3),  # head_dim 1
]


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("bias", [True, False])
def test_matches_torch(cfg, bias):
    C, h, B, L, S = cfg
    ours, ref = pair(C, h, bias=bias)
    q, k, v = randn(B, L, C, seed=1), randn(B, S, C, seed=2), randn(B, S, C, seed=3)
    out, w = ours(q, k, v, need_weights=True)
    ref_out, ref_w = ref(q, k, v, need_weights=True, average_attn_weights=False)
    assert_close(out, ref_out, **TOL)
    assert_close(w, ref_w, **TOL)
    assert w.shape == (B, h, L, S)
    assert_close(ours(q, k, v), ref_out, **TOL)  # need_weights=False returns the output alone


def test_self_attention_same_tensor():
    ours, ref = pair(12, 4)
    x = randn(2, 6, 12)
    assert_close(ours(x, x, x), ref(x, x, x)[0], **TOL)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_boolean_mask_uses_opposite_convention(cfg):
    C, h, B, L, S = cfg
    ours, ref = pair(C, h)
    q, k, v = randn(B, L, C, seed=1), randn(B, S, C, seed=2), randn(B, S, C, seed=3)
    allowed = randn(L, S, seed=4) > 0
    allowed[:, 0] = True  # no fully masked rows (PyTorch gives NaN there)
    out, w = ours(q, k, v, attn_mask=allowed, need_weights=True)
    ref_out, ref_w = ref(q, k, v, attn_mask=~allowed, average_attn_weights=False)
    assert_close(out, ref_out, **TOL)
    assert_close(w, ref_w, **TOL)
    assert (w[..., ~allowed] == 0).all()


def test_float_mask_and_per_head_mask_match_torch():
    C, h, B, L, S = 12, 3, 2, 4, 5
    ours, ref = pair(C, h)
    q, k, v = randn(B, L, C, seed=1), randn(B, S, C, seed=2), randn(B, S, C, seed=3)
    float_mask = randn(L, S, seed=5)
    assert_close(ours(q, k, v, attn_mask=float_mask), ref(q, k, v, attn_mask=float_mask)[0], **TOL)
    per_head = randn(B * h, L, S, seed=6) > -0.5  # PyTorch's (B * h, L, S) layout
    per_head[..., 0] = True
    assert_close(ours(q, k, v, attn_mask=per_head), ref(q, k, v, attn_mask=~per_head)[0], **TOL)


@pytest.mark.parametrize("cfg", [(8, 2, 2, 5, 5), (15, 5, 1, 7, 7)])
def test_is_causal_matches_torch_with_explicit_mask(cfg):
    C, h, B, L, S = cfg
    ours, ref = pair(C, h)
    x = randn(B, L, C, seed=1)
    blocked = ~causal_mask(L)  # PyTorch: True = NOT allowed; is_causal is only a hint there
    ref_out, ref_w = ref(x, x, x, attn_mask=blocked, is_causal=True, average_attn_weights=False)
    out, w = ours(x, x, x, is_causal=True, need_weights=True)
    assert_close(out, ref_out, **TOL)
    assert_close(w, ref_w, **TOL)
    assert_close(ours(x, x, x, attn_mask=causal_mask(L)), ref_out, **TOL)


def test_is_causal_with_key_padding_mask_matches_torch():
    C, h, B, T = 12, 4, 3, 5
    ours, ref = pair(C, h)
    x = randn(B, T, C, seed=6)
    padding = torch.zeros(B, T, dtype=torch.bool)
    padding[1, 3:] = True  # padded at the end: every query still sees key 0
    out, w = ours(x, x, x, is_causal=True, key_padding_mask=padding, need_weights=True)
    ref_out, ref_w = ref(
        x, x, x, attn_mask=~causal_mask(T), key_padding_mask=padding, average_attn_weights=False
    )
    assert_close(out, ref_out, **TOL)
    assert_close(w, ref_w, **TOL)
    with pytest.raises(ValueError, match="either attn_mask or is_causal"):
        ours(x, x, x, attn_mask=causal_mask(T), is_causal=True, key_padding_mask=padding)


def test_key_padding_mask_matches_torch():
    C, h, B, L, S = 12, 4, 3, 5, 6
    ours, ref = pair(C, h)
    q, k, v = randn(B, L, C, seed=1), randn(B, S, C, seed=2), randn(B, S, C, seed=3)
    padding = torch.zeros(B, S, dtype=torch.bool)
    padding[1, 4:] = True
    padding[2, 1:] = True  # only one real key left
    out, w = ours(q, k, v, key_padding_mask=padding, need_weights=True)
    ref_out, ref_w = ref(q, k, v, key_padding_mask=padding, average_attn_weights=False)
    assert_close(out, ref_out, **TOL)
    assert_close(w, ref_w, **TOL)
    allowed = randn(L, S, seed=4) > 0
    allowed[:, 0] = True
    assert_close(
        ours(q, k, v, attn_mask=allowed, key_padding_mask=padding),
        ref(q, k, v, attn_mask=~allowed, key_padding_mask=padding)[0],
        **TOL,
    )
    float_mask = randn(L, S, seed=5)
    float_padding = torch.zeros(B, S).masked_fill(padding, float("-inf"))  # PyTorch wants one type
    assert_close(
        ours(q, k, v, attn_mask=float_mask, key_padding_mask=padding),
        ref(q, k, v, attn_mask=float_mask, key_padding_mask=float_padding)[0],
        **TOL,
    )


def test_fully_masked_query_gives_out_proj_bias_not_nan():
    ours, ref = pair(8, 2)
    x = randn(2, 3, 8)
    allowed = torch.ones(3, 3, dtype=torch.bool)
    allowed[1] = False
    out = ours(x, x, x, attn_mask=allowed)
    assert torch.isfinite(out).all()
    assert_close(out[:, 1], ours.out_proj.bias.expand(2, 8).detach())
    assert torch.isnan(ref(x, x, x, attn_mask=~allowed)[0][:, 1]).all()  # PyTorch's choice


def test_parameter_count_and_names():
    C = 12
    ours, ref = pair(C, 3)
    assert sum(p.numel() for p in ours.parameters()) == 4 * C * C + 4 * C
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    assert sum(p.numel() for p in MultiHeadAttention(C, 3, bias=False).parameters()) == 4 * C * C
    assert set(ours.state_dict()) == {
        f"{n}.{p}" for n in ("q_proj", "k_proj", "v_proj", "out_proj") for p in ("weight", "bias")
    }


def test_gradients_flow_to_every_parameter():
    ours, _ = pair(8, 2)
    ours(randn(2, 4, 8), randn(2, 4, 8), randn(2, 4, 8), is_causal=True).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in ours.parameters())


def test_from_torch_copies_not_shares():
    ours, ref = pair(8, 2)
    with torch.no_grad():
        ref.in_proj_weight.zero_()
    assert ours.q_proj.weight.abs().sum() > 0


def test_validation():
    with pytest.raises(ValueError, match="embed_dim=10 is not divisible by num_heads=3"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match="num_heads must be a positive int, got 0"):
        MultiHeadAttention(8, 0)
    mha = MultiHeadAttention(8, 2)
    x = torch.zeros(2, 3, 8)
    with pytest.raises(
        ValueError,
        match=r"expected query of shape \(batch, seq, embed_dim=8\), "
        r"got \(3, 8\)",
    ):
        mha(torch.zeros(3, 8), x, x)
    with pytest.raises(ValueError, match=r"expected key of shape .* got \(2, 3, 6\)"):
        mha(x, torch.zeros(2, 3, 6), x)
    with pytest.raises(ValueError, match="expected value of shape"):
        mha(x, x, [[0.0]])
    with pytest.raises(ValueError, match="key and value must have the same"):
        mha(x, x, torch.zeros(2, 4, 8))
    with pytest.raises(ValueError, match="same batch size, got 1 and 2"):
        mha(torch.zeros(1, 3, 8), x, x)
    with pytest.raises(ValueError, match="either attn_mask or is_causal"):
        mha(x, x, x, attn_mask=causal_mask(3), is_causal=True)
    with pytest.raises(ValueError, match=r"key_padding_mask of shape \(batch, S\) = \(2, 3\)"):
        mha(x, x, x, key_padding_mask=torch.zeros(2, 4, dtype=torch.bool))
    with pytest.raises(
        ValueError,
        match=r"3-d attn_mask of shape \(batch \* num_heads, L, S\) = "
        r"\(4, 3, 3\), got \(2, 3, 3\)",
    ):
        mha(x, x, x, attn_mask=torch.ones(2, 3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="key_padding_mask .* got list"):
        mha(x, x, x, key_padding_mask=[[False] * 3] * 2)
    with pytest.raises(ValueError, match="expected attn_mask to be a torch.Tensor"):
        mha(x, x, x, attn_mask=[[True] * 3] * 3)
    with pytest.raises(ValueError, match="does not broadcast"):
        mha(x, x, x, attn_mask=torch.ones(3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="expected a torch.nn.MultiheadAttention"):
        MultiHeadAttention.from_torch(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="kdim/vdim"):
        MultiHeadAttention.from_torch(nn.MultiheadAttention(8, 2, kdim=4, vdim=4))
