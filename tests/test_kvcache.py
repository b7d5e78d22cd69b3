"""The key-value cache appends along the time axis and validates its input."""

import pytest
import torch

from llmcourse.kvcache import KVCache, cached_causal_attention


def test_update_appends_and_returns_everything():
    cache = KVCache(num_layers=2)
    assert len(cache) == 0
    k1, v1 = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4)
    k, v = cache.update(0, k1, v1)
    assert torch.equal(k, k1) and len(cache) == 3
    k2, v2 = torch.randn(1, 2, 1, 4), torch.randn(1, 2, 1, 4)
    k, v = cache.update(0, k2, v2)
    assert torch.equal(k, torch.cat([k1, k2], 2)) and torch.equal(v, torch.cat([v1, v2], 2))
    assert len(cache) == 4 and cache.keys[1] is None


def test_update_rejects_bad_input():
    cache = KVCache(1)
    with pytest.raises(ValueError, match="layer must be in 0..0"):
        cache.update(1, torch.randn(1, 1, 1, 1), torch.randn(1, 1, 1, 1))
    with pytest.raises(ValueError, match=r"\(batch, heads, time, head_dim\)"):
        cache.update(0, torch.randn(1, 1, 1), torch.randn(1, 1, 1))
    with pytest.raises(ValueError, match="num_layers must be a positive int"):
        KVCache(0)


@pytest.mark.parametrize("T", [1, 3, 5])
@pytest.mark.parametrize("padded", [False, True])
def test_cached_causal_attention_is_the_from_scratch_equation(T, padded):
    """T new queries over S = 5 keys (5 - T cached), with GQA's shared key-value heads and a
    left-padding mask: the fused call equals chapter 3's attention with the mask written out
    (query i sees keys 0..P + i that are not padding, and always itself)."""
    from llmcourse.attention import scaled_dot_product_attention

    B, H, K, S, D = 2, 4, 2, 5, 8
    g = torch.Generator().manual_seed(T)
    q, k, v = (torch.randn(B, h, n, D, generator=g) for h, n in [(H, T), (K, S), (K, S)])
    pad = torch.tensor([[True] * S, [False, False, True, True, True]]) if padded else None
    got = cached_causal_attention(q, k, v, pad, enable_gqa=True)
    P, real = S - T, pad if pad is not None else torch.ones(B, S, dtype=torch.bool)
    mask = torch.tensor(
        [
            [[j == P + i or (j <= P + i and bool(real[b, j])) for j in range(S)] for i in range(T)]
            for b in range(B)
        ]
    )[:, None]  # (B, 1, T, S)
    want = scaled_dot_product_attention(
        q, k.repeat_interleave(H // K, 1), v.repeat_interleave(H // K, 1), mask
    )
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
