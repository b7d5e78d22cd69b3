"""Chapter 5: positional encoding, the way a Transformer learns where each token is.

Self-attention treats its input as a set: permute the tokens and the outputs are permuted the
same way. Three remedies, in historical order:

- ``sinusoidal_encoding``: the fixed encoding of Vaswani et al. (2017), "Attention Is All You
  Need", section 3.5. For position ``pos`` and pair ``i = 0 .. C/2 - 1``:

      PE[pos, 2i]     = sin(pos * w_i),     PE[pos, 2i + 1] = cos(pos * w_i),
      w_i = 1 / base ** (2i / C),           base = 10000.

  Moving ``k`` positions rotates each (sin, cos) pair by the angle ``k * w_i``, so
  ``PE[pos + k] = M_k @ PE[pos]`` for a block-diagonal rotation ``M_k``
  (``sinusoidal_offset_matrix``).
- ``LearnedPositionalEmbedding``: one trained vector per position, added to the token
  embeddings, as in GPT-2 (Radford et al., 2019; ``wpe``) and BERT (Devlin et al., 2019).
  It has no vector for a position beyond the ``num_embeddings`` it was built with.
- Rotary position embedding, RoPE (Su et al., 2021, "RoFormer"): queries and keys are rotated
  by position-dependent angles, so that ``q_m . k_n`` depends on ``m - n`` only. We follow the
  Hugging Face Llama convention (``rotate_half``): dimension ``j`` is paired with ``j + D/2``,
  and ``x_rot = x * cos + rotate_half(x) * sin``, with
  ``inv_freq = 1 / base ** (arange(0, D, 2) / D)``.

Letters: B batch, T sequence length (positions), C model width (d_model), H heads,
D head width (head_dim).
"""

from __future__ import annotations

import torch
from torch import nn

from llmcourse.validation import broadcastable, non_negative_int, positive_int, tensor_of_shape

__all__ = [
    "sinusoidal_encoding",
    "sinusoidal_offset_matrix",
    "LearnedPositionalEmbedding",
    "rope_inv_freq",
    "rotary_cos_sin",
    "rotate_half",
    "apply_rotary",
    "RotaryEmbedding",
]


def _check_even_width(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or value % 2:
        raise ValueError(
            f"{name} must be a positive even int (the dimensions come in "
            f"(sin, cos) pairs), got {value!r}"
        )


def _check_base(base) -> None:
    if not isinstance(base, (int, float)) or isinstance(base, bool) or not base > 1:
        raise ValueError(f"base must be a number > 1, got {base!r}")


def sinusoidal_encoding(
    num_positions: int, d_model: int, base: float = 10000.0, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """The (num_positions, d_model) sinusoidal encoding of Vaswani et al. (2017).

    Even columns hold ``sin(pos * w_i)``, odd columns ``cos(pos * w_i)``, with
    ``w_i = base ** (-2i / d_model)``. Angles are computed in float64, then cast to ``dtype``,
    so that large positions stay accurate.
    """
    non_negative_int("num_positions", num_positions)
    _check_even_width("d_model", d_model)
    _check_base(base)
    pos = torch.arange(num_positions, dtype=torch.float64)[:, None]  # (T, 1)
    freq = base ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)  # (C/2,)
    angle = pos * freq  # (T, C/2)
    # Interleave: (T, C/2, 2) -> (T, C), so column 2i is sin and column 2i + 1 is cos.
    pe = torch.stack([angle.sin(), angle.cos()], dim=-1).reshape(num_positions, d_model)
    return pe.to(dtype)


def sinusoidal_offset_matrix(
    k: int, d_model: int, base: float = 10000.0, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """The (d_model, d_model) matrix ``M_k`` with ``PE[pos + k] = M_k @ PE[pos]`` for every pos.

    Block ``i`` is the rotation ``[[cos(k w_i), sin(k w_i)], [-sin(k w_i), cos(k w_i)]]`` acting
    on the pair (sin, cos): the angle-addition formulas, written as a matrix. ``k`` may be
    negative (a step back) or fractional.
    """
    if isinstance(k, bool) or not isinstance(k, (int, float)):
        raise ValueError(f"k must be a number (an offset in positions), got {k!r}")
    _check_even_width("d_model", d_model)
    _check_base(base)
    freq = base ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    c, s = torch.cos(k * freq), torch.sin(k * freq)  # (C/2,)
    blocks = torch.stack([torch.stack([c, s], -1), torch.stack([-s, c], -1)], -2)  # (C/2, 2, 2)
    return torch.block_diag(*blocks).to(dtype)


class LearnedPositionalEmbedding(nn.Module):
    """One trained vector per position, added to the token embeddings (GPT-2's ``wpe``).

    The parameter is called ``weight``, shape (num_embeddings, embedding_dim), as in
    ``nn.Embedding``, so ``load_state_dict(gpt2.transformer.wpe.state_dict())`` copies GPT-2's
    table across. ``forward(x, start)`` returns ``x`` plus the vectors of positions
    ``start .. start + T - 1`` (``start > 0`` when earlier tokens are already cached).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int):
        super().__init__()
        positive_int("num_embeddings", num_embeddings)
        positive_int("embedding_dim", embedding_dim)
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = nn.Parameter(torch.empty(num_embeddings, embedding_dim))
        nn.init.normal_(self.weight, std=0.02)  # GPT-2's initialisation

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        C = self.embedding_dim
        tensor_of_shape("x", x, f"(batch, seq, {C})", rank=3, last=C)
        T = x.shape[1]
        non_negative_int("start", start)
        if start + T > self.num_embeddings:
            raise ValueError(
                f"positions {start}..{start + T - 1} exceed the "
                f"{self.num_embeddings} learned positions: a learned table has no "
                f"vector for position {self.num_embeddings} or beyond"
            )
        return x + self.weight[start : start + T]  # (B, T, C) + (T, C)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"


def rope_inv_freq(head_dim: int, base: float = 10000.0, device=None) -> torch.Tensor:
    """The D/2 rotation speeds of RoPE, ``1 / base ** (arange(0, D, 2) / D)``, in float32."""
    _check_even_width("head_dim", head_dim)
    _check_base(base)
    exponents = torch.arange(0, head_dim, 2, dtype=torch.float, device=device) / head_dim
    return 1.0 / (base**exponents)


def _rotary_cos_sin(position_ids: torch.Tensor, inv_freq: torch.Tensor):
    freqs = position_ids[..., None].float() * inv_freq  # (..., T, 1) * (D/2,) -> (..., T, D/2)
    emb = torch.cat((freqs, freqs), dim=-1)  # (..., T, D): dimension j and j + D/2 share an angle
    return emb.cos(), emb.sin()


def _check_positions(position_ids) -> torch.Tensor:
    if not isinstance(position_ids, torch.Tensor):
        raise ValueError(
            f"position_ids must be a tensor of positions, got {type(position_ids).__name__}"
        )
    if position_ids.ndim not in (1, 2):
        raise ValueError(
            f"expected position_ids of shape (seq,) or (batch, seq), got "
            f"{tuple(position_ids.shape)}"
        )
    return position_ids


def rotary_cos_sin(position_ids: torch.Tensor, head_dim: int, base: float = 10000.0):
    """``(cos, sin)``, each of shape ``position_ids.shape + (head_dim,)``, for ``apply_rotary``.

    ``position_ids`` is (T,) or (B, T). Computed in float32 exactly as Hugging Face's
    ``LlamaRotaryEmbedding`` does, on the device of ``position_ids``.
    """
    position_ids = _check_positions(position_ids)
    # The speeds are computed on the CPU, as Hugging Face's table is, then moved.
    inv_freq = rope_inv_freq(head_dim, base, device="cpu").to(position_ids.device)
    return _rotary_cos_sin(position_ids, inv_freq)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``[x1, x2] -> [-x2, x1]`` on the last dimension, split into halves."""
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate queries or keys ``x`` (..., T, D) by RoPE: ``x * cos + rotate_half(x) * sin``.

    ``cos`` and ``sin`` come from ``rotary_cos_sin`` and must broadcast to ``x``: for ``x`` of
    shape (B, H, T, D) and position ids of shape (B, T), pass ``cos[:, None], sin[:, None]``.
    Each pair (j, j + D/2) is rotated by the angle ``pos * inv_freq[j]``; norms are unchanged.
    """
    if x.ndim < 2 or x.shape[-1] % 2:
        raise ValueError(
            f"expected x of shape (..., seq, head_dim) with an even head_dim, got {tuple(x.shape)}"
        )
    if cos.shape != sin.shape:
        raise ValueError(
            f"cos and sin must have the same shape, got {tuple(cos.shape)} and {tuple(sin.shape)}"
        )
    if cos.ndim < 2 or cos.shape[-2:] != x.shape[-2:]:
        raise ValueError(
            f"expected cos and sin of shape (..., {x.shape[-2]}, {x.shape[-1]}) "
            f"to match x's (seq, head_dim), got {tuple(cos.shape)}"
        )
    broadcastable(
        cos.shape,
        x.shape,
        f"cos of shape {tuple(cos.shape)} does not broadcast to x of shape "
        f"{tuple(x.shape)}: for x (batch, heads, seq, head_dim) pass "
        f"cos[:, None]",
    )
    return x * cos + rotate_half(x) * sin


class RotaryEmbedding(nn.Module):
    """Holds RoPE's ``inv_freq`` (a non-persistent buffer, as in ``LlamaRotaryEmbedding``);
    ``forward(position_ids)`` returns ``(cos, sin)`` for ``apply_rotary``."""

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        self.head_dim, self.base = head_dim, base
        self.register_buffer("inv_freq", rope_inv_freq(head_dim, base), persistent=False)

    def forward(self, position_ids: torch.Tensor):
        return _rotary_cos_sin(_check_positions(position_ids), self.inv_freq)

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, base={self.base}"
