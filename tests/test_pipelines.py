"""llmcourse.pipelines against Hugging Face and sentence-transformers: pooling, search, warnings."""

import socket
import warnings

import pytest
import torch
from torch.testing import assert_close
from transformers.utils import logging as hf_logging

from llmcourse.pipelines import captured_warnings, hub_is_reachable, mean_pool, semantic_search

# --- hub_is_reachable -----------------------------------------------------------------------


def test_offline_mode_is_unreachable_without_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("must not touch the network in offline mode")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket, "create_connection", no_network)
    assert hub_is_reachable() is False


def test_reachable_when_connection_succeeds(monkeypatch):
    class Connection:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    seen = {}

    def connect(address, timeout):
        seen.update(address=address, timeout=timeout)
        return Connection()

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(socket, "create_connection", connect)
    assert hub_is_reachable(timeout=0.5) is True
    assert seen == {"address": ("huggingface.co", 443), "timeout": 0.5}


def test_unreachable_when_connection_fails(monkeypatch):
    def refuse(address, timeout):
        raise TimeoutError("timed out")

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert hub_is_reachable() is False


@pytest.mark.parametrize("timeout", [0, -1, "2", True])
def test_reachability_timeout_validated(timeout):
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        hub_is_reachable(timeout=timeout)


# --- captured_warnings ----------------------------------------------------------------------


def test_captured_warnings_collects_and_restores(capsys):
    hf_logging.set_verbosity_error()
    logger = hf_logging.get_logger("transformers.generation.utils")
    with captured_warnings() as messages:
        logger.warning("from the logger")
        logger.info("too quiet to keep")
        warnings.warn("from warnings.warn", UserWarning, stacklevel=2)
    assert messages == ["from the logger", "from warnings.warn"]
    assert hf_logging.get_verbosity() == hf_logging.ERROR
    assert "from the logger" not in capsys.readouterr().err
    logger.warning("after the block")
    assert messages == ["from the logger", "from warnings.warn"]


# --- mean_pool ------------------------------------------------------------------------------


def test_mean_pool_ignores_padding():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 7, generator=gen, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]])
    got = mean_pool(x, mask, normalize=False)
    want = torch.stack([x[0].mean(0), x[1, :2].mean(0), x[2, 0]])
    assert_close(got, want, atol=1e-12, rtol=0)
    unit = mean_pool(x, mask)
    assert_close(unit, torch.nn.functional.normalize(want, dim=-1), atol=1e-12, rtol=0)
    assert_close(unit.norm(dim=-1), torch.ones(3, dtype=x.dtype), atol=1e-12, rtol=0)


def test_mean_pool_padding_changes_nothing():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, 4, 6, generator=gen)
    padded = torch.cat([x, torch.randn(1, 3, 6, generator=gen)], dim=1)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0, 0]])
    assert_close(mean_pool(padded, mask), mean_pool(x), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize(
    "x,mask,match",
    [
        (
            torch.zeros(4, 3),
            None,
            r"expected hidden_states of shape \(batch, seq, hidden\), got \(4, 3\)",
        ),
        (
            torch.zeros(2, 4, 3),
            torch.ones(2, 3),
            r"expected attention_mask of shape \(batch, seq\) = \(2, 4\), got \(2, 3\)",
        ),
        (torch.zeros(2, 4, 3), torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0]]), "has no real token"),
    ],
)
def test_mean_pool_errors(x, mask, match):
    with pytest.raises(ValueError, match=match):
        mean_pool(x, mask)


# --- semantic_search ------------------------------------------------------------------------


def test_semantic_search_ranks_by_cosine():
    gen = torch.Generator().manual_seed(2)
    corpus = torch.randn(6, 5, generator=gen) * torch.arange(1, 7)[:, None]  # unequal norms
    queries = torch.randn(2, 5, generator=gen)
    hits = semantic_search(queries, corpus, top_k=3)
    cos = torch.nn.functional.cosine_similarity(queries[:, None], corpus[None], dim=-1)
    for q in range(2):
        order = cos[q].argsort(descending=True)[:3].tolist()
        assert [h["corpus_id"] for h in hits[q]] == order
        assert_close(torch.tensor([h["score"] for h in hits[q]]), cos[q, order], atol=1e-6, rtol=0)
        assert all(
            isinstance(h["corpus_id"], int) and isinstance(h["score"], float) for h in hits[q]
        )


def test_semantic_search_single_query_and_large_top_k():
    corpus = torch.eye(3)
    hits = semantic_search(torch.tensor([0.0, 2.0, 1.0]), corpus, top_k=10)
    assert len(hits) == 1 and [h["corpus_id"] for h in hits[0]] == [1, 2, 0]


@pytest.mark.parametrize(
    "q,c,k,match",
    [
        (
            torch.zeros(2, 2, 3),
            torch.zeros(4, 3),
            1,
            r"expected query_embeddings of shape \(n, dim\)",
        ),
        (
            torch.zeros(2, 3),
            torch.zeros(3),
            1,
            r"expected corpus_embeddings of shape \(n, dim\), got \(3,\)",
        ),
        (torch.zeros(2, 3), torch.zeros(4, 5), 1, "query dim 3 does not match corpus dim 5"),
        (torch.zeros(2, 3), torch.zeros(4, 3), 0, "top_k must be a positive int, got 0"),
    ],
)
def test_semantic_search_errors(q, c, k, match):
    with pytest.raises(ValueError, match=match):
        semantic_search(q, c, top_k=k)
