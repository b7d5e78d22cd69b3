"""Chapter 6: the position-wise feed-forward network and the residual blocks around it.

The feed-forward network (Vaswani et al., 2017, section 3.3) is one small MLP applied to every
position independently, with the same weights at every position:

    FFN(x) = act(x W_1^T + b_1) W_2^T + b_2,     W_1: (F, C),  W_2: (C, F)

with act = ReLU (the 2017 paper) or GELU (Hendrycks & Gimpel, 2016; BERT, GPT-2):

    GELU(x) = x Phi(x) = 0.5 x (1 + erf(x / sqrt(2)))                      exact
            ~ 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))              "tanh" approximation

A sublayer f sits on the residual stream in one of two ways:

    post-norm (Vaswani et al., 2017):          x <- LayerNorm(x + f(x))
    pre-norm  (GPT-2; Xiong et al., 2020):     x <- x + f(LayerNorm(x))

``FeedForward`` keeps ``nn.TransformerEncoderLayer``'s parameter names (``linear1``,
``linear2``) so its weights copy across with ``load_state_dict``.
Letters: B batch, T sequence length, C model width (d_model), F hidden width (d_ff).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from llmcourse.norm import LayerNorm
from llmcourse.validation import positive_int, tensor_of_shape

__all__ = ["gelu", "FeedForward", "ResidualBlock", "PreNormBlock", "PostNormBlock"]


def gelu(x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """GELU, equal to ``torch.nn.functional.gelu(x, approximate=...)`` for "none" and "tanh"."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"expected x to be a torch.Tensor, got {type(x).__name__}")
    if approximate == "none":
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))  # x times the normal CDF
    if approximate == "tanh":
        inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)
        return 0.5 * x * (1.0 + torch.tanh(inner))
    raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")


class FeedForward(nn.Module):
    """linear1 -> activation -> dropout -> linear2, applied at every position on its own."""

    def __init__(self, d_model: int, d_ff: int, activation: str = "relu", dropout: float = 0.0):
        super().__init__()
        positive_int("d_model", d_model)
        positive_int("d_ff", d_ff)
        if activation not in ("relu", "gelu"):
            raise ValueError(f"activation must be 'relu' or 'gelu', got {activation!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.d_model, self.d_ff, self.activation = d_model, d_ff, activation
        self.linear1 = nn.Linear(d_model, d_ff)  # expand: C -> F (F = 4 C in most models)
        self.linear2 = nn.Linear(d_ff, d_model)  # project back: F -> C
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., C) -> (..., C); every position goes through the same MLP."""
        tensor_of_shape("x", x, f"(..., d_model={self.d_model})", last=self.d_model)
        h = self.linear1(x)  # (..., C) -> (..., F)
        h = torch.relu(h) if self.activation == "relu" else gelu(h)
        return self.linear2(self.dropout(h))  # (..., F) -> (..., C)


class ResidualBlock(nn.Module):
    """x + f(x): the identity path carries x (and its gradient) past the sublayer untouched."""

    def __init__(self, sublayer: nn.Module, dropout: float = 0.0):
        super().__init__()
        self.sublayer = sublayer
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.dropout(self.sublayer(x))


class _NormedResidual(nn.Module):
    """A sublayer, a LayerNorm and dropout around a residual; subclasses place the norm."""

    def __init__(self, sublayer: nn.Module, d_model: int, eps: float = 1e-5, dropout: float = 0.0):
        super().__init__()
        self.norm = LayerNorm(d_model, eps=eps)
        self.sublayer = sublayer
        self.dropout = nn.Dropout(dropout)


class PreNormBlock(_NormedResidual):
    """x + f(LayerNorm(x)), as in GPT-2 (Radford et al., 2019) and most later LLMs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.dropout(self.sublayer(self.norm(x)))


class PostNormBlock(_NormedResidual):
    """LayerNorm(x + f(x)), as in the original Transformer (Vaswani et al., 2017) and BERT."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.dropout(self.sublayer(x)))
