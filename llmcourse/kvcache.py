"""A key-value cache for autoregressive generation, and the two other things the GPT and Llama
decoders share: the checks of their forward arguments and causal attention over the cache.

When a decoder generates token t, the keys and values of tokens 0..t-1 are the same as at the
previous step: only the newest token's need computing. The cache keeps them, one pair per
layer, so each step costs one token's work instead of the whole prefix's (Pope et al., 2022,
"Efficiently Scaling Transformer Inference", section 2).
Letters: B batch, h heads (key-value heads for grouped-query attention), T positions,
d head size.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from llmcourse.attention import causal_mask
from llmcourse.validation import (
    non_negative_int,
    positive_int,
    shape_of,
    token_ids,
    zeros_and_ones,
)

__all__ = ["KVCache", "decoder_inputs", "cached_causal_attention"]


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


def decoder_inputs(
    input_ids: Tensor,
    vocab_size: int,
    kv_cache: KVCache | None,
    num_layers: int,
    logits_to_keep: int = 0,
    max_positions: int | None = None,
    attention_mask: Tensor | None = None,
    position_ids: Tensor | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Check a decoder's forward arguments (GPT's and Llama's, which take the same ones) and
    return what its blocks need: the new tokens' positions and which keys are real tokens.

    ``input_ids`` (B, T) in 0..vocab_size-1; ``kv_cache`` a ``KVCache`` with ``num_layers``
    layers and the same batch; ``logits_to_keep`` an int >= 0; at most ``max_positions``
    positions in all. For a left-padded batch pass both ``attention_mask`` (B, P + T), 1 at
    real tokens and 0 at padding, over the P cached and the T new tokens, and
    ``position_ids`` (B, T), the new tokens' positions counted from each row's first real
    token (``llmcourse.generation.padding_positions``): without them the positions count the
    pads. Positions are taken as given; nothing checks that they continue the cache's.

    Returns ``positions``: ``position_ids`` as given, or ``arange(P, P + T)``, (T,); and
    ``real_keys``: (B, P + T) bool, True at real tokens, or None without a mask.
    """
    token_ids(input_ids)
    B, T = input_ids.shape
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
        if cached is not None and cached.shape[0] != B:
            raise ValueError(
                f"kv_cache holds a batch of {cached.shape[0]}, but input_ids has a batch of {B}"
            )
        past = len(kv_cache)
    limit = max_positions if max_positions is not None else float("inf")
    if past + T > limit:
        raise ValueError(
            f"sequence of length {past + T} (past {past} + new {T}) "
            f"is longer than the model's {max_positions} positions"
        )
    real_keys = None
    if attention_mask is not None:
        shape = (B, past + T)
        _beside_ids("attention_mask", attention_mask, "(batch, cached + new)", shape, input_ids)
        zeros_and_ones("attention_mask", attention_mask)
        real_keys = attention_mask.bool()
    if position_ids is None:
        return torch.arange(past, past + T, device=input_ids.device), real_keys
    _beside_ids("position_ids", position_ids, "(batch, seq)", (B, T), input_ids)
    token_ids(position_ids, "position_ids")  # integers
    low, high = int(position_ids.min()), int(position_ids.max())
    if low < 0 or high >= limit:
        allowed = f"0..{max_positions - 1}" if max_positions is not None else ">= 0"
        raise ValueError(f"position_ids must lie in {allowed}, got values from {low} to {high}")
    return position_ids, real_keys


def _beside_ids(name: str, value, dims: str, shape: tuple, input_ids: Tensor) -> None:
    """Refuse a mask or positions not of ``shape`` or not on ``input_ids``' device."""
    if not isinstance(value, Tensor) or value.shape != shape:
        got = shape_of(value)
        raise ValueError(f"{name} must be a tensor of shape {dims} = {shape}, got {got}")
    if value.device != input_ids.device:
        raise ValueError(
            f"{name} is on {value.device} but input_ids on {input_ids.device}: use one device"
        )


def cached_causal_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    real_keys: Tensor | None = None,
    dropout_p: float = 0.0,
    enable_gqa: bool = False,
) -> Tensor:
    """``softmax(q k^T / sqrt(d) + mask) v`` for T new queries (B, h, T, d) over S = P + T
    keys and values (B, h_kv, S, d), P of them cached: chapter 3's equation in PyTorch's
    fused kernel (``F.scaled_dot_product_attention``), with GPT's and Llama's one mask.

    New query i sits at position P + i and may see keys 0..P + i (``causal_mask`` with
    ``past=P``: aligned to the bottom-right); one new token, the usual cached step, sees every
    key. With ``real_keys`` (B, S), True at real tokens and False at padding, no query sees
    a pad, and each sees at least itself, so no row is empty. ``enable_gqa`` lets h / h_kv
    query heads share each key-value head without copying it (grouped-query attention,
    chapter 12).
    """
    T, S = q.shape[-2], k.shape[-2]
    if real_keys is not None:
        keys = torch.arange(S, device=q.device)
        itself = keys == keys[S - T :, None]  # (T, S): query i is key S - T + i
        causal = causal_mask(T, S, past=S - T, device=q.device)
        mask = (causal & real_keys[:, None, None, :]) | itself  # (B, 1, T, S)
    else:  # square: PyTorch's own causal path; one query: no mask at all
        mask = None if T == 1 or T == S else causal_mask(T, S, past=S - T, device=q.device)
    return F.scaled_dot_product_attention(
        q,
        k,
        v,
        attn_mask=mask,
        is_causal=mask is None and T == S and T > 1,
        dropout_p=dropout_p,
        enable_gqa=enable_gqa,
    )
