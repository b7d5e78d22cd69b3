"""Chapter 1: character n-gram language models (Shannon, 1948; Jurafsky & Martin, ch. 3).

An n-gram model predicts the next character from the previous ``n - 1`` only:

    P(c_t | c_1 .. c_{t-1})  ~=  P(c_t | c_{t-n+1} .. c_{t-1})

and estimates it by counting. Two ways to give unseen n-grams a probability:

- ``AddKNGram``: add ``k`` to every count (Laplace smoothing when k = 1):
  ``P(w | h) = (c(h, w) + k) / (c(h) + k V)``.
- ``WittenBellNGram``: interpolate with the next-shorter context, trusting a context more the
  more often it was seen and the fewer different characters followed it (Witten & Bell, 1991):
  ``P(w | h) = (c(h, w) + T(h) P(w | h')) / (c(h) + T(h))``, where ``T(h)`` is the number of
  distinct characters seen after ``h`` and ``h'`` is ``h`` without its oldest character.

Counts are stored as sorted integer codes (an n-gram of ids ``a, b, c`` is ``(a V + b) V + c``),
so fitting 4.7 million characters takes seconds and every lookup is a binary search.
Letters: V is the vocabulary size, N the length of a text, n the model's order.
"""

from __future__ import annotations

import numpy as np

from llmcourse.tokenization import CharTokenizer

__all__ = ["AddKNGram", "WittenBellNGram", "perplexity"]


def perplexity(log_probs) -> float:
    """exp of the mean negative log-probability (natural log) per token."""
    log_probs = np.asarray(log_probs, dtype=np.float64)
    if log_probs.ndim != 1 or log_probs.size == 0:
        raise ValueError(
            f"expected a non-empty 1-D sequence of log-probabilities, got shape {log_probs.shape}"
        )
    if np.any(log_probs > 0):
        raise ValueError("log-probabilities must be <= 0 (is this a probability, not its log?)")
    return float(np.exp(-log_probs.mean()))


def _lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """``values`` at the positions of ``query`` in the sorted ``keys``; 0 where absent."""
    pos = np.searchsorted(keys, query).clip(max=len(keys) - 1)
    return np.where(keys[pos] == query, values[pos], 0)


class _NGramCounts:
    """Counts of every k-gram, k = 1..order, and of each context's continuations."""

    def __init__(self, ids: np.ndarray, order: int, vocab_size: int):
        self.V = vocab_size
        self.grams, self.counts = [], []  # per k: sorted codes of k-grams, their counts
        self.contexts, self.context_counts, self.context_types = [], [], []
        code = np.zeros(len(ids), dtype=np.int64)
        for k in range(1, order + 1):
            code = code[:-1] * vocab_size + ids[k - 1 :] if k > 1 else ids.astype(np.int64)
            grams, counts = np.unique(code, return_counts=True)
            # A context's count is the sum of the counts of the k-grams that extend it.
            ctx, start = np.unique(grams // vocab_size, return_index=True)
            self.grams.append(grams)
            self.counts.append(counts)
            self.contexts.append(ctx)
            self.context_counts.append(np.add.reduceat(counts, start))
            self.context_types.append(np.diff(np.append(start, len(grams))))

    def gram(self, k: int, code: np.ndarray) -> np.ndarray:
        return _lookup(self.grams[k - 1], self.counts[k - 1], code)

    def context(self, k: int, context_code: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(count, number of distinct continuations) of each (k-1)-character context."""
        c = _lookup(self.contexts[k - 1], self.context_counts[k - 1], context_code)
        t = _lookup(self.contexts[k - 1], self.context_types[k - 1], context_code)
        return c, t


class _NGramModel:
    """Shared machinery: fitting, scoring a text, sampling. Subclasses define ``_probs``."""

    def __init__(self, order: int):
        if not isinstance(order, int) or order < 1:
            raise ValueError(f"order must be an int >= 1, got {order!r}")
        self.order = order
        self.tokenizer: CharTokenizer | None = None

    def fit(self, text: str, tokenizer: CharTokenizer | None = None):
        """Count every k-gram of ``text`` (k <= order). Returns the model."""
        self.tokenizer = tokenizer or CharTokenizer(text)
        ids = np.array(self.tokenizer.encode(text), dtype=np.int64)
        if len(ids) < self.order:
            raise ValueError(f"training text has {len(ids)} characters, fewer than the order")
        self.counts = _NGramCounts(ids, self.order, self.tokenizer.vocab_size)
        return self

    def _require_fit(self) -> None:
        if self.tokenizer is None:
            raise RuntimeError("fit the model on a text before using it")

    def _histories(self, ids: np.ndarray, targets: np.ndarray) -> list[np.ndarray]:
        """For each k = 1..order, the code of the k-gram ending at each target position
        (-1 where the text is too short to hold a k-gram there)."""
        V = self.tokenizer.vocab_size
        codes, code = [], ids[targets].astype(np.int64)
        for k in range(1, self.order + 1):
            if k > 1:
                back = targets - (k - 1)
                code = np.where(back >= 0, ids[back.clip(min=0)] * V ** (k - 1) + code, -1)
            codes.append(code)
        return codes

    def log_probs(self, text: str) -> np.ndarray:
        """Natural-log probability of each character of ``text`` given the ones before it."""
        self._require_fit()
        ids = np.array(self.tokenizer.encode(text), dtype=np.int64)
        return np.log(self._probs(self._histories(ids, np.arange(len(ids)))))

    def perplexity(self, text: str) -> float:
        return perplexity(self.log_probs(text))

    def next_distribution(self, context: str) -> np.ndarray:
        """P(next character = each vocabulary entry | context), a vector of V probabilities."""
        self._require_fit()
        V = self.tokenizer.vocab_size
        ctx = self.tokenizer.encode(
            context[len(context) - (self.order - 1) :] if self.order > 1 else ""
        )
        codes = []
        for k in range(1, self.order + 1):  # the k-gram "last k-1 context chars + candidate"
            if k - 1 > len(ctx):
                codes.append(np.full(V, -1))
                continue
            history = 0
            for c in ctx[len(ctx) - (k - 1) :] if k > 1 else []:
                history = history * V + c
            codes.append(history * V + np.arange(V))
        return self._probs(codes)

    def sample(self, length: int, prompt: str = "", seed: int = 0) -> str:
        """Draw ``length`` characters after ``prompt``, reproducibly for a given ``seed``."""
        if length < 0:
            raise ValueError(f"length must be >= 0, got {length}")
        rng = np.random.default_rng(seed)
        text = prompt
        for _ in range(length):
            p = self.next_distribution(text)
            text += self.tokenizer.chars[rng.choice(len(p), p=p / p.sum())]
        return text[len(prompt) :]


class AddKNGram(_NGramModel):
    """n-gram model with add-k smoothing: ``(c(h, w) + k) / (c(h) + k V)``."""

    def __init__(self, order: int, k: float = 1.0):
        super().__init__(order)
        if not k > 0:
            raise ValueError(f"k must be > 0, got {k!r}")
        self.k = k

    def _probs(self, codes: list[np.ndarray]) -> np.ndarray:
        V, probs = self.tokenizer.vocab_size, None
        # Use the longest k-gram that fits before each position (shorter at the text's start).
        for k, code in enumerate(codes, start=1):
            c_hw = self.counts.gram(k, code)
            if k > 1:
                c_h, _ = self.counts.context(k, code // V)
            else:
                c_h = self.counts.counts[0].sum()
            p = (c_hw + self.k) / (c_h + self.k * V)
            probs = p if probs is None else np.where(code >= 0, p, probs)
        return probs

    def __repr__(self) -> str:
        return f"AddKNGram(order={self.order}, k={self.k})"


class WittenBellNGram(_NGramModel):
    """n-gram model with Witten-Bell interpolation down to a uniform distribution."""

    def _probs(self, codes: list[np.ndarray]) -> np.ndarray:
        V = self.tokenizer.vocab_size
        probs = np.full(len(codes[0]), 1.0 / V)  # order 0: every character equally likely
        for k, code in enumerate(codes, start=1):
            c_hw = self.counts.gram(k, code)
            if k == 1:
                c_h, t_h = self.counts.counts[0].sum(), len(self.counts.grams[0])
            else:
                c_h, t_h = self.counts.context(k, code // V)
            higher = (c_hw + t_h * probs) / np.maximum(c_h + t_h, 1)
            # An unseen context (c_h = 0) or a position too early for k characters keeps
            # the lower-order estimate.
            probs = np.where((code >= 0) & (c_h > 0), higher, probs)
        return probs

    def __repr__(self) -> str:
        return f"WittenBellNGram(order={self.order})"
