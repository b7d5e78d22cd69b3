"""Chapter 6: layer normalization (Ba, Kiros & Hinton, 2016), written from scratch.

Each position's vector is normalized on its own, over its last dimension(s):

    mu      = mean(x)                                  over the normalized dims
    var     = mean((x - mu)^2)                         biased: divide by N, not N - 1
    y       = (x - mu) / sqrt(var + eps) * weight + bias

This is exactly what ``torch.nn.LayerNorm`` computes (biased variance, eps inside the square
root), and ``LayerNorm`` here keeps its signature and parameter names (``weight``, ``bias``)
so a state dict copies across one to one. The Annotated Transformer (Rush, 2018) instead
divides by ``std + eps`` with the unbiased (N - 1) std: a different function, see chapter 6.
Letters: B batch, T sequence length, C model width (d_model); N the number of normalized values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["layer_norm", "LayerNorm"]


def _as_shape(normalized_shape) -> tuple[int, ...]:
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if not shape or not all(isinstance(n, int) and n > 0 for n in shape):
        raise ValueError(
            f"normalized_shape must be a positive int or a non-empty tuple of "
            f"positive ints, got {normalized_shape!r}"
        )
    return shape


def _check_trailing(x: torch.Tensor, shape: tuple[int, ...]) -> None:
    if x.dim() < len(shape) or tuple(x.shape[x.dim() - len(shape) :]) != shape:
        raise ValueError(
            f"expected x whose trailing dimensions are normalized_shape={shape}, "
            f"got x of shape {tuple(x.shape)}"
        )


def layer_norm(
    x: torch.Tensor,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
    normalized_shape: Sequence[int] | int | None = None,
) -> torch.Tensor:
    """Normalize ``x`` over its trailing dims to mean 0, variance 1, then scale and shift.

    ``normalized_shape`` defaults to ``weight.shape`` (or the last dimension when there is no
    weight), as in ``torch.nn.functional.layer_norm``.
    """
    if not isinstance(x, torch.Tensor) or x.dim() == 0:
        raise ValueError(f"expected x to be a torch.Tensor with at least one dimension, got {x!r}")
    if normalized_shape is None:
        normalized_shape = tuple(weight.shape) if weight is not None else tuple(x.shape[-1:])
    shape = _as_shape(normalized_shape)
    _check_trailing(x, shape)
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.shape) != shape:
            raise ValueError(f"expected {name} of shape {shape}, got {tuple(p.shape)}")
    dims = tuple(range(-len(shape), 0))
    mean = x.mean(dim=dims, keepdim=True)  # (..., 1): one mean per position
    var = ((x - mean) ** 2).mean(dim=dims, keepdim=True)  # biased: divide by N
    y = (x - mean) / torch.sqrt(var + eps)  # eps inside the root, like nn.LayerNorm
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


class LayerNorm(nn.Module):
    """``torch.nn.LayerNorm`` from scratch: same signature, same parameter names and values."""

    def __init__(
        self,
        normalized_shape,
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
    ):
        super().__init__()
        self.normalized_shape = _as_shape(normalized_shape)
        if not (isinstance(eps, (int, float)) and eps >= 0 and math.isfinite(eps)):
            raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
        self.eps = float(eps)
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = nn.Parameter(torch.ones(self.normalized_shape))  # the gain, gamma
            if bias:
                self.bias = nn.Parameter(torch.zeros(self.normalized_shape))  # the shift, beta
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., *normalized_shape) -> the same shape."""
        return layer_norm(x, self.weight, self.bias, self.eps, self.normalized_shape)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, "
            f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}"
        )
