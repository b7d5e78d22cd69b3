"""Chapter 10: helpers around Hugging Face pipelines, in a few small, checkable functions.

A ``pipeline`` hides three steps behind one call: tokenize, run the model, post-process.
This module holds what the chapter needs around the two pipelines it uses, so that the
course can check the library against plain code:

- ``mean_pool``: the ``"feature-extraction"`` pipeline returns one vector per token; the
  average over the real (unpadded) tokens, scaled to length 1, is a sentence embedding
  (Reimers & Gurevych, 2019, "Sentence-BERT", section 3).
- ``semantic_search``: rank a corpus by cosine similarity to each query, with the signature
  and result format of ``sentence_transformers.util.semantic_search``.
- ``hub_is_reachable`` and ``captured_warnings``: run the online demo only where the model
  hub answers, and turn library warnings into values a notebook can print deterministically.

The ``"text-generation"`` loop itself is chapter 9's ``llmcourse.generation.generate``,
which runs a Hugging Face model through ``llmcourse.generation.HuggingFaceLM``.

Shape letters: B batch, T tokens (positions), D hidden size, V vocabulary size,
Q queries, N corpus entries.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import warnings

import torch
from torch import Tensor

from llmcourse import encoder
from llmcourse.validation import positive_int, positive_number, tensor_of_shape

__all__ = ["hub_is_reachable", "captured_warnings", "mean_pool", "semantic_search"]

HUB_HOST = "huggingface.co"
_TRUE = {"1", "on", "yes", "true"}


def hub_is_reachable(timeout: float = 2.0, host: str = HUB_HOST, port: int = 443) -> bool:
    """True if the Hugging Face hub may be used: not in offline mode, and ``host`` answers.

    With ``HF_HUB_OFFLINE`` set (``llmcourse.notebook.setup()`` sets it everywhere but Colab)
    the answer is False at once, without touching the network. Otherwise one TCP connection
    to ``host:port`` is tried for at most ``timeout`` seconds, so an offline laptop waits
    seconds, not the minutes of the library's own retries.
    """
    positive_number("timeout", timeout, unit="seconds")
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE:
        return False
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:  # no route, refused, DNS failure, timeout
        return False


@contextlib.contextmanager
def captured_warnings():
    """Collect, instead of printing, the warnings transformers emits inside the block.

    Yields a list that receives each message (a string), in order: those logged by
    transformers at level WARNING or above, and those raised with ``warnings.warn``. The
    library's own verbosity and handlers are restored afterwards.
    """
    from transformers.utils import logging as hf_logging

    messages: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    root = hf_logging.get_logger()  # the "transformers" logger
    handler, verbosity = _Collect(logging.WARNING), hf_logging.get_verbosity()
    hf_logging.disable_default_handler()  # no copy on stderr
    root.addHandler(handler)
    hf_logging.set_verbosity_warning()
    try:
        with warnings.catch_warnings(record=True) as raised:
            warnings.simplefilter("always")
            yield messages
        messages.extend(str(w.message) for w in raised)
    finally:
        root.removeHandler(handler)
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_default_handler()


def mean_pool(
    last_hidden_state: Tensor, attention_mask: Tensor | None = None, normalize: bool = True
) -> Tensor:
    """Average the token vectors of each sequence, padding excluded: ``(B, T, D) -> (B, D)``.

    ``attention_mask`` is 1 for real tokens and 0 for padding, shape ``(B, T)`` (None: all
    real). With ``normalize`` the result is scaled to unit length, so that a dot product of
    two embeddings is their cosine similarity (all-MiniLM-L6-v2's recipe). The pooling itself
    is chapter 7's ``llmcourse.encoder.mean_pool``.
    """
    if attention_mask is None and isinstance(last_hidden_state, Tensor):
        attention_mask = torch.ones(last_hidden_state.shape[:2])
    if (
        isinstance(attention_mask, Tensor)
        and attention_mask.dim() == 2
        and (attention_mask.sum(dim=1) == 0).any()
    ):
        raise ValueError("a sequence has no real token (its attention_mask is all zero)")
    pooled = encoder.mean_pool(last_hidden_state, attention_mask)
    return torch.nn.functional.normalize(pooled, dim=-1) if normalize else pooled


def semantic_search(
    query_embeddings: Tensor, corpus_embeddings: Tensor, top_k: int = 10
) -> list[list[dict]]:
    """For each query, the ``top_k`` corpus entries by cosine similarity, best first.

    ``(Q, D)`` and ``(N, D)`` (a 1-D query is taken as ``Q = 1``). Returns, per query, a list
    of ``{"corpus_id": int, "score": float}``, as ``sentence_transformers.util.semantic_search``.
    """
    q, c = query_embeddings, corpus_embeddings
    if isinstance(q, Tensor) and q.dim() == 1:
        q = q[None, :]  # (D,) -> (1, D)
    for name, t in (("query_embeddings", q), ("corpus_embeddings", c)):
        tensor_of_shape(name, t, "(n, dim)", rank=2)
    if q.shape[1] != c.shape[1]:
        raise ValueError(f"query dim {q.shape[1]} does not match corpus dim {c.shape[1]}")
    positive_int("top_k", top_k)
    unit = torch.nn.functional.normalize
    scores = unit(q, dim=-1) @ unit(c, dim=-1).T  # (Q, D) @ (D, N) -> (Q, N)
    best = scores.topk(min(top_k, c.shape[0]), dim=1)  # sorted, highest first
    return [
        [{"corpus_id": int(i), "score": float(s)} for s, i in zip(row_s, row_i)]
        for row_s, row_i in zip(best.values, best.indices)
    ]
