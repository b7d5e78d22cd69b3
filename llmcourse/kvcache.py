"""A key-value cache for autoregressive generation (shared by the GPT and Llama models).

When a decoder generates token t, the keys and values of tokens 0..t-1 are the same as at the
previous step: only the newest token's need computing. The cache keeps them, one pair per
layer, so each step costs one token's work instead of the whole prefix's (Pope et al., 2022,
"Efficiently Scaling Transformer Inference", section 2).
Letters: B batch, h heads (key-value heads for grouped-query attention), T positions,
d head size.
"""

from __future__ import annotations

import torch

__all__ = ["KVCache"]


class KVCache:
    """Past keys and values of every layer, each of shape (B, h, T_past, d)."""

    def __init__(self, num_layers: int):
        if not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"num_layers must be a positive int, got {num_layers!r}")
        self.keys: list[torch.Tensor | None] = [None] * num_layers
        self.values: list[torch.Tensor | None] = [None] * num_layers

    def __len__(self) -> int:
        """Number of cached positions (0 before the first forward pass)."""
        return 0 if self.keys[0] is None else self.keys[0].shape[2]

    def update(self, layer: int, key: torch.Tensor, value: torch.Tensor):
        """Append this step's key and value (B, h, T_new, d) to ``layer``'s cache and return
        the full keys and values (B, h, T_past + T_new, d)."""
        if not 0 <= layer < len(self.keys):
            raise ValueError(f"layer must be in 0..{len(self.keys) - 1}, got {layer}")
        if key.dim() != 4 or key.shape != value.shape:
            raise ValueError(f"expected key and value of one shape (batch, heads, time, head_dim), "
                             f"got {tuple(key.shape)} and {tuple(value.shape)}")
        if self.keys[layer] is not None:
            key = torch.cat([self.keys[layer], key], dim=2)  # (B, h, T_past + T_new, d)
            value = torch.cat([self.values[layer], value], dim=2)
        self.keys[layer], self.values[layer] = key, value
        return key, value
