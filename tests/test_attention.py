"""llmcourse.attention against torch.softmax and F.scaled_dot_product_attention."""

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import randn
from torch.testing import assert_close

from llmcourse.attention import (
    attention_weights,
    causal_mask,
    scaled_dot_product_attention,
    softmax,
)

TOL = dict(atol=1e-6, rtol=1e-5)


# --- softmax -----------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [-1, 0, 1])
def test_softmax_matches_torch(dim):
    x = randn(3, 5, 7)
    assert_close(softmax(x, dim=dim), torch.softmax(x, dim=dim), **TOL)


def test_softmax_is_stable_on_large_inputs():
    x = torch.tensor([[1000.0, 1001.0, 1002.0], [-1000.0, 0.0, 1000.0]])
    got = softmax(x)
    assert torch.isfinite(got).all()
    assert_close(got, torch.softmax(x, dim=-1), **TOL)
    naive = x.exp() / x.exp().sum(-1, keepdim=True)
    assert torch.isnan(naive).any()  # the reason for subtracting the max


def test_softmax_rows_sum_to_one_and_shift_invariant():
    x = randn(4, 9)
    assert_close(softmax(x).sum(-1), torch.ones(4))
    assert_close(softmax(x + 123.0), softmax(x), **TOL)


def test_softmax_validation():
    with pytest.raises(ValueError, match="expected x to be a torch.Tensor"):
        softmax([1.0, 2.0])
    with pytest.raises(ValueError, match="at least one dimension"):
        softmax(torch.tensor(1.0))
    with pytest.raises(ValueError, match="dim=2 is out of range"):
        softmax(torch.zeros(2, 3), dim=2)


# --- causal_mask -------------------------------------------------------------------------


def test_causal_mask_values():
    expected = torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    assert torch.equal(causal_mask(3), expected)


def test_causal_mask_non_square_is_top_left_aligned():
    assert torch.equal(causal_mask(2, 4), torch.ones(2, 4, dtype=torch.bool).tril())
    assert torch.equal(causal_mask(4, 2), torch.ones(4, 2, dtype=torch.bool).tril())
    assert causal_mask(2, 4).tolist() == [[True, False, False, False], [True, True, False, False]]


def test_causal_mask_validation():
    with pytest.raises(ValueError, match="L must be a positive int, got 0"):
        causal_mask(0)
    with pytest.raises(ValueError, match="S must be a positive int"):
        causal_mask(3, 2.5)


# --- scaled_dot_product_attention ---------------------------------------------------------

SHAPES = [
    ((2, 5, 8), (2, 5, 8), (2, 5, 8)),  # self-attention
    ((1, 3, 4), (1, 7, 4), (1, 7, 6)),  # batch 1, L != S, Ev != E
    ((2, 3, 7, 5), (2, 3, 4, 5), (2, 3, 4, 3)),  # batch and heads, odd sizes
    ((7, 5), (9, 5), (9, 2)),  # no batch dimension
    ((2, 1, 6, 4), (1, 3, 5, 4), (1, 3, 5, 4)),  # broadcast over batch and heads
]


@pytest.mark.parametrize("shapes", SHAPES)
def test_sdpa_matches_torch(shapes):
    q, k, v = (randn(*s, seed=i) for i, s in enumerate(shapes))
    assert_close(
        scaled_dot_product_attention(q, k, v), F.scaled_dot_product_attention(q, k, v), **TOL
    )


@pytest.mark.parametrize("shapes", SHAPES)
def test_sdpa_causal_matches_torch(shapes):
    q, k, v = (randn(*s, seed=i) for i, s in enumerate(shapes))
    assert_close(
        scaled_dot_product_attention(q, k, v, is_causal=True),
        F.scaled_dot_product_attention(q, k, v, is_causal=True),
        **TOL,
    )


@pytest.mark.parametrize("shapes", SHAPES)
def test_sdpa_boolean_mask_matches_torch(shapes):
    q, k, v = (randn(*s, seed=i) for i, s in enumerate(shapes))
    L, S = q.shape[-2], k.shape[-2]
    mask = randn(L, S, seed=9) > -0.5
    mask[:, 0] = True  # no fully masked rows here (tested separately)
    assert_close(
        scaled_dot_product_attention(q, k, v, attn_mask=mask),
        F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
        **TOL,
    )


def test_sdpa_float_mask_and_per_batch_mask_match_torch():
    q, k, v = randn(2, 3, 4, 8, seed=1), randn(2, 3, 6, 8, seed=2), randn(2, 3, 6, 5, seed=3)
    float_mask = randn(4, 6, seed=4)
    assert_close(
        scaled_dot_product_attention(q, k, v, attn_mask=float_mask),
        F.scaled_dot_product_attention(q, k, v, attn_mask=float_mask),
        **TOL,
    )
    padding = torch.ones(2, 1, 1, 6, dtype=torch.bool)
    padding[1, ..., 4:] = False  # the second sequence has two padding keys
    assert_close(
        scaled_dot_product_attention(q, k, v, attn_mask=padding),
        F.scaled_dot_product_attention(q, k, v, attn_mask=padding),
        **TOL,
    )


def test_sdpa_scale_matches_torch():
    q, k, v = randn(2, 4, 8, seed=1), randn(2, 5, 8, seed=2), randn(2, 5, 3, seed=3)
    assert_close(
        scaled_dot_product_attention(q, k, v, scale=0.3),
        F.scaled_dot_product_attention(q, k, v, scale=0.3),
        **TOL,
    )


def test_sdpa_hand_worked_example():
    # Two keys; the query matches the second one far better, so its value dominates.
    q = torch.tensor([[0.0, 2.0]])
    k = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    v = torch.tensor([[10.0], [20.0]])
    w1 = 1 / (1 + math.exp(2 / math.sqrt(2)))  # softmax([0, 2/sqrt 2])[0]
    assert_close(attention_weights(q, k), torch.tensor([[w1, 1 - w1]]))
    assert_close(scaled_dot_product_attention(q, k, v), torch.tensor([[10 * w1 + 20 * (1 - w1)]]))


def test_attention_weights_rows_sum_to_one_and_causal_zeros():
    q, k = randn(2, 5, 4, seed=1), randn(2, 5, 4, seed=2)
    w = attention_weights(q, k, is_causal=True)
    assert_close(w.sum(-1), torch.ones(2, 5))
    assert (w[:, ~causal_mask(5)] == 0).all()
    ref = torch.softmax(q @ k.transpose(-2, -1) / 2.0, dim=-1)
    assert_close(attention_weights(q, k), ref, **TOL)


def test_fully_masked_rows_give_zeros_like_torch():
    q, k, v = randn(2, 3, 4, seed=1), randn(2, 5, 4, seed=2), randn(2, 5, 6, seed=3)
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[1] = False
    out = scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.isfinite(out).all()
    assert (out[:, 1] == 0).all()
    assert (attention_weights(q, k, attn_mask=mask)[:, 1] == 0).all()
    assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), **TOL)
    float_mask = torch.zeros(3, 5).masked_fill(~mask, float("-inf"))
    assert_close(scaled_dot_product_attention(q, k, v, attn_mask=float_mask), out, **TOL)


def test_gradients_flow():
    q = randn(2, 4, 8, seed=1).requires_grad_()
    scaled_dot_product_attention(
        q, randn(2, 4, 8, seed=2), randn(2, 4, 8, seed=3), is_causal=True
    ).sum().backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()


def test_sdpa_validation():
    q, k, v = randn(2, 3, 4), randn(2, 5, 4), randn(2, 5, 6)
    with pytest.raises(ValueError, match="either attn_mask or is_causal"):
        scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(3, 5), is_causal=True)
    with pytest.raises(
        ValueError,
        match=r"expected query of shape .* at least 2 dimensions, "
        r"got shape \(4,\)",
    ):
        scaled_dot_product_attention(torch.zeros(4), k, v)
    with pytest.raises(ValueError, match="expected value of shape"):
        scaled_dot_product_attention(q, k, torch.zeros(6))
    with pytest.raises(ValueError, match="same last dimension E"):
        scaled_dot_product_attention(q, randn(2, 5, 3), v)
    with pytest.raises(ValueError, match="same length S"):
        scaled_dot_product_attention(q, k, randn(2, 4, 6))
    with pytest.raises(ValueError, match=r"attn_mask of shape \(3, 4\) does not broadcast"):
        scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="expected key to be a torch.Tensor"):
        attention_weights(q, [[1.0]])
    with pytest.raises(ValueError, match="expected attn_mask to be a torch.Tensor"):
        attention_weights(q, k, attn_mask=[[True]])
