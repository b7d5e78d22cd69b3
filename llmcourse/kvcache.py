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

from llmcourse.validation import non_negative_int, positive_int

__all__ = ["KVCache", "check_decoder_input"]


class KVCache:
    """Past keys and values of every layer, each of shape (B, h, T_past, d)."""

    def __init__(self, num_layers: int):
        positive_int("num_layers", num_layers)
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
            raise ValueError(
                f"expected key and value of one shape (batch, heads, time, head_dim), "
                f"got {tuple(key.shape)} and {tuple(value.shape)}"
            )
        if self.keys[layer] is not None:
            key = torch.cat([self.keys[layer], key], dim=2)  # (B, h, T_past + T_new, d)
            value = torch.cat([self.values[layer], value], dim=2)
        self.keys[layer], self.values[layer] = key, value
        return key, value


def check_decoder_input(
    input_ids: torch.Tensor,
    vocab_size: int,
    kv_cache: KVCache | None,
    num_layers: int,
    logits_to_keep: int = 0,
    max_positions: int | None = None,
) -> int:
    """Validate a decoder's forward arguments (GPT's and Llama's); return the number of cached
    positions. Token ids (B, T) with B, T >= 1 in 0..vocab_size-1; a cache with one entry per
    layer and the same batch; ``logits_to_keep`` an int >= 0; at most ``max_positions`` in all.
    """
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or 0 in input_ids.shape:
        shape = (
            tuple(input_ids.shape)
            if isinstance(input_ids, torch.Tensor)
            else type(input_ids).__name__
        )
        raise ValueError(
            f"expected input_ids of shape (batch, seq) with batch >= 1 and seq >= 1, got {shape}"
        )
    if input_ids.dtype.is_floating_point or input_ids.dtype == torch.bool:
        raise ValueError(f"expected integer token ids, got dtype {input_ids.dtype}")
    low, high = int(input_ids.min()), int(input_ids.max())
    if low < 0 or high >= vocab_size:
        raise ValueError(
            f"token ids must lie in 0..{vocab_size - 1} (vocab_size={vocab_size}), "
            f"got ids from {low} to {high}"
        )
    non_negative_int("logits_to_keep", logits_to_keep)
    past = 0
    if kv_cache is not None:
        if not isinstance(kv_cache, KVCache) or len(kv_cache.keys) != num_layers:
            raise ValueError(
                f"kv_cache must be a KVCache with {num_layers} layers, got {kv_cache!r}"
            )
        cached = kv_cache.keys[0]
        if cached is not None and cached.shape[0] != input_ids.shape[0]:
            raise ValueError(
                f"kv_cache holds a batch of {cached.shape[0]}, but input_ids has "
                f"a batch of {input_ids.shape[0]}"
            )
        past = len(kv_cache)
    total = past + input_ids.shape[1]
    if max_positions is not None and total > max_positions:
        raise ValueError(
            f"sequence of length {total} (past {past} + new {input_ids.shape[1]}) "
            f"is longer than the model's {max_positions} positions"
        )
    return past
