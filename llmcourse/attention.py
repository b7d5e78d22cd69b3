"""Chapter 3: scaled dot-product attention, the core operation of the Transformer.

Vaswani et al. (2017), "Attention is all you need", section 3.2.1:

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V

Shape letters (the same as ``torch.nn.functional.scaled_dot_product_attention``):

    ...  any leading dimensions (batch, heads), broadcast between the inputs
    L    target length: the number of queries
    S    source length: the number of keys and values
    E    query and key size (the paper's d_k)
    Ev   value size (the paper's d_v)

Masks follow PyTorch's ``scaled_dot_product_attention``: a boolean ``attn_mask`` is True
where a query MAY attend to a key; a float mask is added to the scores (use ``-inf`` to
forbid). An integer mask (the 0/1 ``attention_mask`` a tokenizer returns) is refused, as
PyTorch refuses it: added to the scores it would mask nothing; pass ``mask.bool()``.
``is_causal=True`` uses the top-left aligned lower-triangular mask ``causal_mask(L, S)``.
(``torch.nn.MultiheadAttention`` uses the opposite boolean convention, True = NOT allowed;
see ``llmcourse.multihead``.)

Fully masked rows: a query that may attend to no key at all gets all-zero weights and a zero
output, as PyTorch 2.5+ does here, instead of the NaN that a plain softmax of all ``-inf``
would give.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from llmcourse.validation import broadcastable, positive_int

__all__ = ["softmax", "causal_mask", "attention_weights", "scaled_dot_product_attention"]


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    """``exp(x) / sum(exp(x))`` along ``dim``, computed stably: the maximum is subtracted first.

    Subtracting a constant does not change the result (it cancels between numerator and
    denominator) but keeps ``exp`` from overflowing to ``inf`` on large inputs. Equals
    ``torch.softmax(x, dim)``.
    """
    if not isinstance(x, Tensor):
        raise ValueError(f"expected x to be a torch.Tensor, got {type(x).__name__}")
    if x.ndim == 0:
        raise ValueError("expected x with at least one dimension, got a 0-d tensor")
    if not -x.ndim <= dim < x.ndim:
        raise ValueError(f"dim={dim} is out of range for x with {x.ndim} dimensions")
    if x.shape[dim] == 0:
        raise ValueError(
            f"softmax over an empty dimension: x has shape {tuple(x.shape)}, dim={dim}"
        )
    shifted = x - x.amax(dim=dim, keepdim=True)
    exps = shifted.exp()
    return exps / exps.sum(dim=dim, keepdim=True)


def causal_mask(L: int, S: int | None = None, *, past: int = 0, device=None) -> Tensor:
    """Boolean (L, S) mask, True where query i may attend to key j, i.e. where j <= past + i.

    ``past`` is the number of keys before the first query's own position: 0 for plain
    self-attention (``S`` defaults to ``L``; then the mask is top-left aligned like PyTorch's
    ``is_causal=True``, ``torch.ones(L, S).tril()``), and the number of cached positions,
    ``S - L``, when L new tokens attend to a KV cache (the GPT and Llama models use this).
    """
    S = L if S is None else S
    positive_int("L", L)
    positive_int("S", S)
    if not isinstance(past, int) or isinstance(past, bool) or not 0 <= past <= S - 1:
        raise ValueError(f"expected past to be an int in 0..S-1={S - 1}, got {past!r}")
    return torch.ones(L, S, dtype=torch.bool, device=device).tril(diagonal=past)


def _check_inputs(query: Tensor, key: Tensor, value: Tensor | None) -> None:
    names = (("query", query), ("key", key)) + ((("value", value),) if value is not None else ())
    for name, t in names:
        if not isinstance(t, Tensor):
            raise ValueError(f"expected {name} to be a torch.Tensor, got {type(t).__name__}")
        if t.ndim < 2:
            raise ValueError(
                f"expected {name} of shape (..., length, features) with at least "
                f"2 dimensions, got shape {tuple(t.shape)}"
            )
    if query.shape[-1] != key.shape[-1]:
        raise ValueError(
            f"query and key must have the same last dimension E, got "
            f"query {tuple(query.shape)} and key {tuple(key.shape)}"
        )
    if value is not None and value.shape[-2] != key.shape[-2]:
        raise ValueError(
            f"key and value must have the same length S, got "
            f"key {tuple(key.shape)} and value {tuple(value.shape)}"
        )
    if key.shape[-2] == 0:
        raise ValueError(f"expected at least one key (S >= 1), got key {tuple(key.shape)}")


def _masked_scores(query, key, attn_mask, is_causal, scale):
    """Scaled scores (..., L, S) with the mask applied, and the boolean 'may attend' mask."""
    L, S = query.shape[-2], key.shape[-2]
    if attn_mask is not None and is_causal:
        raise ValueError("give either attn_mask or is_causal=True, not both")
    scale = 1 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = (query @ key.transpose(-2, -1)) * scale  # (..., L, E) @ (..., E, S) -> (..., L, S)
    if is_causal:
        attn_mask = causal_mask(L, S, device=query.device)
    if attn_mask is None:
        return scores
    if not isinstance(attn_mask, Tensor):
        raise ValueError(f"expected attn_mask to be a torch.Tensor, got {type(attn_mask).__name__}")
    broadcastable(
        attn_mask.shape,
        scores.shape,
        f"attn_mask of shape {tuple(attn_mask.shape)} does not broadcast to "
        f"the scores' shape (..., L, S) = {tuple(scores.shape)}",
    )
    if attn_mask.dtype == torch.bool:
        return scores.masked_fill(~attn_mask, float("-inf"))
    if not attn_mask.dtype.is_floating_point:
        raise ValueError(
            f"attn_mask must be boolean (True = may attend) or float (added to the "
            f"scores), got {attn_mask.dtype}; for a 0/1 mask pass mask.bool()"
        )
    return scores + attn_mask


def attention_weights(
    query: Tensor,
    key: Tensor,
    attn_mask: Tensor | None = None,
    is_causal: bool = False,
    scale: float | None = None,
) -> Tensor:
    """The attention weights ``softmax(Q K^T / sqrt(E) + mask)``, shape (..., L, S).

    Each row sums to 1, except fully masked rows, which are all zeros.
    """
    _check_inputs(query, key, None)
    scores = _masked_scores(query, key, attn_mask, is_causal, scale)
    blocked = torch.isneginf(scores).all(dim=-1, keepdim=True)  # rows with nothing to attend to
    weights = softmax(scores.masked_fill(blocked, 0.0), dim=-1)
    return weights.masked_fill(blocked, 0.0)


def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Tensor | None = None,
    is_causal: bool = False,
    scale: float | None = None,
) -> Tensor:
    """``softmax(Q K^T / sqrt(E) + mask) V``.

    Shapes: (..., L, E), (..., S, E), (..., S, Ev) -> (..., L, Ev).

    The same semantics as ``torch.nn.functional.scaled_dot_product_attention`` (without
    dropout): see the module docstring for masks and fully masked rows.
    """
    _check_inputs(query, key, value)
    weights = attention_weights(query, key, attn_mask, is_causal, scale)
    return weights @ value  # (..., L, S) @ (..., S, Ev) -> (..., L, Ev)
