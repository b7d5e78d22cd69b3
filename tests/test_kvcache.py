"""The key-value cache appends along the time axis and validates its input."""

import pytest
import torch

from llmcourse.kvcache import KVCache


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
