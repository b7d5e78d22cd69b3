"""Token embeddings: a table lookup that is the same as a one-hot vector times a matrix.

An embedding layer stores one learned row per token id; embedding a sequence of ids means
reading those rows. Writing each id as a one-hot vector, the lookup is a matrix product,
which is why it is a linear layer whose gradient reaches only the rows that were used
(Bengio et al., 2003; Mikolov et al., 2013). ``TokenEmbedding`` mirrors ``torch.nn.Embedding``:
same constructor arguments, a parameter named ``weight``, and the same initialisation, so
``load_state_dict`` copies weights across in either direction.

Shape letters: V vocabulary size (num_embeddings), D embedding size (embedding_dim),
``*`` any leading dimensions of the ids (for example B batch, T sequence).
"""

from __future__ import annotations

import torch
from torch import nn

from llmcourse.validation import positive_int, tensor_of_shape

__all__ = [
    "one_hot",
    "one_hot_embedding",
    "embedding_lookup",
    "TokenEmbedding",
    "cosine_similarity_matrix",
]


def _check_ids(ids: torch.Tensor, num_embeddings: int) -> None:
    if not isinstance(ids, torch.Tensor):
        raise ValueError(f"expected ids as a torch.Tensor, got {type(ids).__name__}")
    if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
        raise ValueError(f"expected integer token ids, got dtype {ids.dtype}")
    if ids.numel() and (ids.min() < 0 or ids.max() >= num_embeddings):
        raise ValueError(
            f"token ids must lie in 0..{num_embeddings - 1}, got values from "
            f"{int(ids.min())} to {int(ids.max())}"
        )


def _check_weight(weight: torch.Tensor) -> None:
    tensor_of_shape("weight", weight, "(num_embeddings, embedding_dim)", rank=2)


def one_hot(ids: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(*,)`` integer ids -> ``(*, V)`` float one-hot vectors (1 at each id, 0 elsewhere)."""
    positive_int("num_classes", num_classes)
    _check_ids(ids, num_classes)
    return (ids.unsqueeze(-1) == torch.arange(num_classes, device=ids.device)).float()


def one_hot_embedding(ids: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Embed ids as ``one_hot(ids) @ weight``: ``(*,)`` ids, ``(V, D)`` weight -> ``(*, D)``.

    The slow way on purpose: it builds a V-wide vector per token to show the lookup is linear.
    """
    _check_weight(weight)
    return one_hot(ids, weight.shape[0]).to(weight.dtype) @ weight  # (*, V) @ (V, D) -> (*, D)


def embedding_lookup(ids: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Embed ids by indexing rows: ``(*,)`` ids, ``(V, D)`` weight -> ``(*, D)``."""
    _check_weight(weight)
    _check_ids(ids, weight.shape[0])
    return weight[ids]


class TokenEmbedding(nn.Module):
    """A learned table of ``num_embeddings`` vectors of size ``embedding_dim``.

    The same as ``nn.Embedding(num_embeddings, embedding_dim)`` without its extras (padding
    index, max-norm, sparse gradients): ``weight`` is ``(V, D)``, initialised from N(0, 1),
    and ``forward`` maps ``(*,)`` integer ids to ``(*, D)`` vectors.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int):
        super().__init__()
        positive_int("num_embeddings", num_embeddings)
        positive_int("embedding_dim", embedding_dim)
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = nn.Parameter(torch.randn(num_embeddings, embedding_dim))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return embedding_lookup(ids, self.weight)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"


def cosine_similarity_matrix(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Cosine similarity of every pair of rows: ``(N, D)`` -> ``(N, N)``.

    ``cos(a, b) = a.b / (|a| |b|)``, with each norm clamped below at ``eps`` as
    ``torch.nn.functional.cosine_similarity`` does.
    """
    tensor_of_shape("x", x, "(N, D)", rank=2)
    unit = x / x.norm(dim=-1, keepdim=True).clamp_min(eps)  # (N, D), rows of length 1
    return unit @ unit.T
