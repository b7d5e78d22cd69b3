"""Chapter 4: multi-head attention, split -> attend -> concatenate -> project.

Vaswani et al. (2017), "Attention is all you need", section 3.2.2:

    MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O,
    head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)

The h per-head projections of size d_k = C / h are stored side by side in one (C, C) linear
layer each (``q_proj``, ``k_proj``, ``v_proj``), so "split into heads" is a reshape.

Shape letters:

    B    batch size
    L    target length (number of queries)
    S    source length (number of keys and values); S = L in self-attention
    C    embed_dim, the model width (the paper's d_model)
    h    num_heads
    d    head_dim = C / h (the paper's d_k = d_v)

Inputs are batch-first, (B, L, C) and (B, S, C), like ``torch.nn.MultiheadAttention(...,
batch_first=True)``. ``MultiHeadAttention.from_torch(mha)`` copies that module's weights, after
which both give the same outputs.

Masks. ``attn_mask`` follows ``torch.nn.functional.scaled_dot_product_attention`` and
``llmcourse.attention``: a boolean mask is True where a query MAY attend; a float mask is
added to the scores. Its shape is (L, S), or 4-d broadcasting to (B, h, L, S), or
PyTorch's 3-d (B * h, L, S). CAREFUL: ``torch.nn.MultiheadAttention`` uses the OPPOSITE boolean
convention (True = NOT allowed); pass ``~mask`` to one of them. ``key_padding_mask`` (B, S)
keeps its name's meaning, as in PyTorch: True marks a padding key, which no query attends to.
``is_causal=True`` applies the causal mask by itself, with or without a ``key_padding_mask``
(PyTorch's module only accepts it as a hint next to an explicit ``attn_mask``).

A query that may attend to no key gets zero weights, so its output is ``out_proj.bias``
(PyTorch's module returns NaN there).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from llmcourse.attention import attention_weights, causal_mask
from llmcourse.checkpoints import copy_weights
from llmcourse.validation import positive_int, tensor_of_shape

__all__ = ["MultiHeadAttention", "split_heads", "merge_heads"]


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """(B, T, C) -> (B, h, T, d): each head gets its own contiguous slice of d features."""
    tensor_of_shape("x", x, "(batch, seq, embed_dim)", rank=3)
    B, T, C = x.shape
    if C % num_heads:
        raise ValueError(f"embed_dim={C} is not divisible by num_heads={num_heads}")
    return x.view(B, T, num_heads, C // num_heads).transpose(1, 2)  # (B, T, h, d) -> (B, h, T, d)


def merge_heads(x: Tensor) -> Tensor:
    """(B, h, T, d) -> (B, T, C): the inverse of ``split_heads`` (the paper's Concat)."""
    tensor_of_shape("x", x, "(batch, heads, seq, head_dim)", rank=4)
    B, h, T, d = x.shape
    return x.transpose(1, 2).reshape(B, T, h * d)  # (B, h, T, d) -> (B, T, h, d) -> (B, T, C)


class MultiHeadAttention(nn.Module):
    """Multi-head attention with separate q, k, v projections, equal to nn.MultiheadAttention.

    ``forward(query, key, value)`` returns the output (B, L, C); with ``need_weights=True`` it
    returns ``(output, weights)`` with per-head weights (B, h, L, S) (take ``.mean(1)`` for
    PyTorch's default head-averaged weights). No dropout: this module is for inference and
    teaching.
    """

    def __init__(self, embed_dim: int, num_heads: int, bias: bool = True):
        super().__init__()
        positive_int("embed_dim", embed_dim)
        positive_int("num_heads", num_heads)
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim={embed_dim} is not divisible by num_heads={num_heads}")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        attn_mask: Tensor | None = None,
        is_causal: bool = False,
        need_weights: bool = False,
        key_padding_mask: Tensor | None = None,
    ):
        self._check_inputs(query, key, value)
        if is_causal and key_padding_mask is not None:  # one mask: causal, and no padding key
            if attn_mask is not None:
                raise ValueError("give either attn_mask or is_causal=True, not both")
            attn_mask = causal_mask(query.shape[1], key.shape[1], device=query.device)
            is_causal = False
        mask = self._combined_mask(query, key, attn_mask, key_padding_mask)
        q = split_heads(self.q_proj(query), self.num_heads)  # (B, L, C) -> (B, h, L, d)
        k = split_heads(self.k_proj(key), self.num_heads)  # (B, S, C) -> (B, h, S, d)
        v = split_heads(self.v_proj(value), self.num_heads)  # (B, S, C) -> (B, h, S, d)
        weights = attention_weights(q, k, attn_mask=mask, is_causal=is_causal)  # (B, h, L, S)
        output = self.out_proj(merge_heads(weights @ v))  # (B, h, L, d) -> (B, L, C)
        return (output, weights) if need_weights else output

    def _check_inputs(self, query: Tensor, key: Tensor, value: Tensor) -> None:
        C = self.embed_dim
        for name, t in (("query", query), ("key", key), ("value", value)):
            tensor_of_shape(name, t, f"(batch, seq, embed_dim={C})", rank=3, last=C)
        if key.shape[:2] != value.shape[:2]:
            raise ValueError(
                f"key and value must have the same (batch, seq) sizes, got "
                f"{tuple(key.shape)} and {tuple(value.shape)}"
            )
        if query.shape[0] != key.shape[0]:
            raise ValueError(
                f"query and key must have the same batch size, got "
                f"{query.shape[0]} and {key.shape[0]}"
            )

    def _combined_mask(self, query, key, attn_mask, key_padding_mask):
        """One 'may attend' mask (bool) or additive mask (float) that broadcasts to (B, h, L, S)."""
        (B, L, _), S = query.shape, key.shape[1]
        h = self.num_heads
        if isinstance(attn_mask, Tensor) and attn_mask.ndim == 3:  # PyTorch's (B * h, L, S) layout
            if attn_mask.shape != (B * h, L, S):
                raise ValueError(
                    f"expected a 3-d attn_mask of shape (batch * num_heads, L, S) = "
                    f"({B * h}, {L}, {S}), got {tuple(attn_mask.shape)}"
                )
            attn_mask = attn_mask.view(B, h, L, S)
        if key_padding_mask is None:
            return attn_mask
        if (
            not isinstance(key_padding_mask, Tensor)
            or key_padding_mask.shape != (B, S)
            or key_padding_mask.dtype != torch.bool
        ):
            got = (
                f"{key_padding_mask.dtype} {tuple(key_padding_mask.shape)}"
                if isinstance(key_padding_mask, Tensor)
                else type(key_padding_mask).__name__
            )
            raise ValueError(
                f"expected a boolean key_padding_mask of shape (batch, S) = ({B}, {S}), got {got}"
            )
        keep = ~key_padding_mask[:, None, None, :]  # (B, S) -> (B, 1, 1, S), True = may attend
        if attn_mask is None:
            return keep
        if attn_mask.dtype == torch.bool:
            return attn_mask & keep
        return attn_mask.masked_fill(~keep, float("-inf"))

    @classmethod
    def from_torch(cls, mha: nn.MultiheadAttention) -> MultiHeadAttention:
        """A copy of an ``nn.MultiheadAttention``'s weights (its fused ``in_proj`` split in 3)."""
        if not isinstance(mha, nn.MultiheadAttention):
            raise ValueError(f"expected a torch.nn.MultiheadAttention, got {type(mha).__name__}")
        if not mha._qkv_same_embed_dim or mha.bias_k is not None or mha.add_zero_attn:
            raise ValueError(
                "only nn.MultiheadAttention without kdim/vdim, add_bias_kv or "
                "add_zero_attn can be copied"
            )
        bias = mha.in_proj_bias is not None
        ref = mha.out_proj.weight
        ours = cls(mha.embed_dim, mha.num_heads, bias=bias).to(ref.device, ref.dtype)
        C = mha.embed_dim
        state = {"out_proj.weight": mha.out_proj.weight}
        for i, name in enumerate(("q_proj", "k_proj", "v_proj")):
            state[f"{name}.weight"] = mha.in_proj_weight[i * C : (i + 1) * C]
            if bias:
                state[f"{name}.bias"] = mha.in_proj_bias[i * C : (i + 1) * C]
        if bias:
            state["out_proj.bias"] = mha.out_proj.bias
        copy_weights(ours, state)
        return ours
