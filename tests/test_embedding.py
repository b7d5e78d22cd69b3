"""The embedding lookup equals one-hot @ matrix and ``nn.Embedding`` with the same weight."""

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from llmcourse.embedding import (
    TokenEmbedding,
    cosine_similarity_matrix,
    embedding_lookup,
    one_hot,
    one_hot_embedding,
)


def test_one_hot_equals_torch():
    ids = torch.tensor([[0, 3, 2], [4, 4, 1]])
    assert_close(one_hot(ids, 5), nn.functional.one_hot(ids, 5).float())
    assert one_hot(ids, 5).sum(-1).eq(1).all()


@pytest.mark.parametrize("shape", [(1,), (1, 1), (3, 7), (2, 3, 5)])
def test_lookup_equals_one_hot_and_nn_embedding(shape):
    torch.manual_seed(0)
    reference = nn.Embedding(11, 6)  # V != D: a transposed weight would fail
    ours = TokenEmbedding(11, 6)
    ours.load_state_dict(reference.state_dict())
    ids = torch.randint(0, 11, shape)
    want = reference(ids)
    assert_close(ours(ids), want, atol=1e-6, rtol=1e-6)
    assert_close(embedding_lookup(ids, reference.weight), want, atol=1e-6, rtol=1e-6)
    assert_close(one_hot_embedding(ids, reference.weight), want, atol=1e-6, rtol=1e-6)
    assert ours(ids).shape == (*shape, 6)


def test_state_dict_copies_both_ways_and_gradient_reaches_used_rows_only():
    ours = TokenEmbedding(5, 3)
    reference = nn.Embedding(5, 3)
    reference.load_state_dict(ours.state_dict())
    assert_close(reference.weight, ours.weight)
    ours(torch.tensor([1, 3, 1])).sum().backward()
    assert ours.weight.grad[[0, 2, 4]].eq(0).all()
    assert_close(ours.weight.grad[1], torch.full((3,), 2.0))  # used twice
    assert_close(ours.weight.grad[3], torch.ones(3))


def test_one_hot_embedding_is_differentiable_like_lookup():
    weight = torch.randn(4, 2, requires_grad=True)
    one_hot_embedding(torch.tensor([2, 2, 0]), weight).sum().backward()
    assert_close(weight.grad, torch.tensor([[1.0, 1.0], [0, 0], [2.0, 2.0], [0, 0]]))


def test_cosine_similarity_matrix_equals_torch():
    torch.manual_seed(1)
    x = torch.randn(5, 9)
    want = nn.functional.cosine_similarity(x[:, None, :], x[None, :, :], dim=-1)
    assert_close(cosine_similarity_matrix(x), want, atol=1e-6, rtol=1e-6)
    assert_close(
        cosine_similarity_matrix(torch.tensor([[3.0, 4.0], [4.0, 3.0]]))[0, 1],
        torch.tensor(24 / 25),
    )


def test_validation_messages():
    weight = torch.randn(4, 2)
    with pytest.raises(ValueError, match=r"token ids must lie in 0..3, got values from 0 to 4"):
        embedding_lookup(torch.tensor([0, 4]), weight)
    with pytest.raises(ValueError, match=r"token ids must lie in 0..3, got values from -1"):
        one_hot_embedding(torch.tensor([-1, 2]), weight)
    with pytest.raises(ValueError, match="expected integer token ids, got dtype torch.float32"):
        TokenEmbedding(4, 2)(torch.tensor([1.0]))
    with pytest.raises(ValueError, match="expected ids as a torch.Tensor, got list"):
        embedding_lookup([1, 2], weight)
    with pytest.raises(
        ValueError,
        match=r"expected weight of shape \(num_embeddings, "
        r"embedding_dim\), got \(4,\)",
    ):
        embedding_lookup(torch.tensor([1]), torch.randn(4))
    with pytest.raises(ValueError, match="embedding_dim must be a positive int, got 0"):
        TokenEmbedding(3, 0)
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        one_hot(torch.tensor([0]), 0)
    with pytest.raises(ValueError, match=r"expected x of shape \(N, D\), got \(3,\)"):
        cosine_similarity_matrix(torch.randn(3))
