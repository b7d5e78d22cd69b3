"""Checks for the exercises of chapter 1, the rise of language models.

check_perplexity(corpus_perplexity)           the perplexity of documents pooled
check_kneser_ney(kneser_ney_bigram)           an interpolated Kneser-Ney bigram table
check_add_k_bigram(add_k_bigram)              an add-k smoothed bigram probability
check_ngram_table_size(ngram_table_size)      how big an n-gram table can get
check_rnn_step(rnn_step)                      one step of an Elman RNN
check_count_gradient(count_gradient)          the bigram loss's gradient, from the counts
"""

from __future__ import annotations

import math

import numpy as np
import torch

from llmcourse.exercises import expect, expect_close, run_checks

__all__ = [
    "check_perplexity",
    "check_add_k_bigram",
    "check_ngram_table_size",
    "check_rnn_step",
    "check_count_gradient",
    "check_kneser_ney",
]


def _pooled_perplexity(documents) -> float:
    """exp of the mean negative log-probability over every token of every document."""
    tokens = np.concatenate([np.asarray(doc, dtype=float).ravel() for doc in documents])
    return float(np.exp(-tokens.mean()))


def check_perplexity(corpus_perplexity) -> None:
    """``corpus_perplexity(documents)``: natural-log probabilities, one sequence per
    document (of different lengths) -> the perplexity of the whole corpus."""

    def uniform(f):
        got = f([[math.log(1 / 4)] * 3])  # one document: three tokens, each given 1/4
        value = float(got)
        expect(
            not math.isclose(value, 4.0**3),
            "you summed the log-probabilities: average them over the tokens (a sum makes "
            "perplexity grow with the length of the text)",
        )
        expect(
            not math.isclose(value, 1 / 4),
            "perplexity is never below 1: did you forget the minus sign?",
        )
        expect(
            not math.isclose(value, 10 ** math.log(4)),
            "the inputs are natural logs: undo them with exp, not 10 ** or 2 **",
        )
        expect_close(got, 4.0, "a model that gives every token probability 1/4 has perplexity 4")

    # the prompt's example: one token at 1/100, then a document of 99 tokens at 1/2
    short, long = [math.log(1 / 100)], [math.log(1 / 2)] * 99

    def pooled(f):
        value = float(f([short, long]))
        expect(
            not math.isclose(value, (100 + 2) / 2),
            "you averaged the documents' perplexities (51): the corpus's perplexity pools "
            "every token, so the one-token document weighs 1 token in 100",
        )
        expect(
            not math.isclose(value, math.exp((math.log(100) + math.log(2)) / 2)),
            "you averaged each document's mean log-probability, so a one-token document "
            "counts as much as a 99-token one: average over all the tokens of the corpus",
        )
        expect_close(
            value,
            _pooled_perplexity([short, long]),
            "exp of minus the mean log-probability over all 100 tokens: "
            "100 ** (1 / 100) * 2 ** (99 / 100), about 2.08",
        )

    def order_free(f):
        expect_close(
            f([long, short]),
            _pooled_perplexity([short, long]),
            "the order of the documents must not matter",
        )

    def arrays(f):
        documents = [np.log(np.array([0.2, 0.2])), np.log(np.array([0.5, 0.1, 0.25]))]
        expect_close(
            f(documents),
            _pooled_perplexity(documents),
            "it should accept NumPy arrays of different lengths",
        )

    return run_checks(
        "Exercise: corpus perplexity",
        corpus_perplexity,
        [uniform, pooled, order_free, arrays],
    )


def _reference_add_k_bigram(text: str, prev: str, nxt: str, k: float) -> float:
    vocab = sorted(set(text))
    pairs = sum(1 for a, b in zip(text, text[1:]) if a == prev and b == nxt)
    starts = sum(1 for a in text[:-1] if a == prev)
    return (pairs + k) / (starts + k * len(vocab))


def check_add_k_bigram(add_k_bigram) -> None:
    """``add_k_bigram(text, prev, nxt, k)``: P(nxt | prev) with add-k smoothing."""
    text = "abracadabra"

    def hand_worked(f):
        # "ab" occurs twice; "a" starts 4 bigrams (the final "a" starts none); V = 5.
        got = float(f(text, "a", "b", 1.0))
        expect(
            not math.isclose(got, 3 / 5),
            "the denominator needs k times the vocabulary size, c(prev) + k V, so that "
            "the probabilities after prev sum to 1",
        )
        expect(
            not math.isclose(got, 3 / 10),
            "count prev only where a character follows it: the last character of the "
            "text starts no bigram",
        )
        expect_close(
            got,
            3 / 9,
            "P(b | a) = (c(ab) + k) / (c(a as a first letter) + k V) = (2 + 1) / (4 + 5)",
        )

    def unseen(f):
        expect_close(
            f(text, "a", "a", 1.0), 1 / 9, "an unseen bigram gets k / (c(prev) + k V), not zero"
        )

    def context_count(f):
        expect_close(
            f("abca", "a", "b", 1.0),
            (1 + 1) / (1 + 3),
            "count prev only where a character follows it: the last character of the "
            "text starts no bigram",
        )

    def sums_to_one(f):
        for k in (0.5, 1.0, 2.0):
            total = sum(float(f(text, "r", c, k)) for c in sorted(set(text)))
            expect(
                abs(total - 1) < 1e-9,
                f"with k={k}, P(. | r) sums to {total:.4f} over the vocabulary, not 1: the "
                "denominator needs k times the vocabulary size",
            )

    def other_k(f):
        expect_close(
            f(text, "c", "a", 0.1),
            _reference_add_k_bigram(text, "c", "a", 0.1),
            "use k as given (here 0.1), not a fixed 1",
        )

    return run_checks(
        "Exercise: add-k bigram",
        add_k_bigram,
        [hand_worked, unseen, context_count, sums_to_one, other_k],
    )


def check_ngram_table_size(ngram_table_size) -> None:
    """``ngram_table_size(vocab_size, n)``: entries of a full n-gram probability table."""

    def small(f):
        expect(f(2, 1) == 2, "a unigram table over 2 symbols has 2 entries")
        expect(f(2, 3) == 8, "a trigram table over 2 symbols has 2 * 2 * 2 = 8 entries")

    def exponential(f):
        expect(
            f(83, 5) == 83**5,
            "n - 1 characters of context and one next character: V ** n entries, "
            "not V * n or n ** V",
        )

    def exact_int(f):
        got = f(50_000, 3)
        expect(
            isinstance(got, int) and got == 50_000**3,
            "return an exact int (use **, not math.pow, which rounds to a float)",
        )

    return run_checks(
        "Exercise: n-gram table size", ngram_table_size, [small, exponential, exact_int]
    )


def check_rnn_step(rnn_step) -> None:
    """``rnn_step(x, h, W_ih, W_hh, b)``: one Elman step, ``tanh(x W_ih^T + h W_hh^T + b)``."""
    gen = torch.Generator().manual_seed(1)
    x, h = torch.randn(3, 4, generator=gen), torch.randn(3, 5, generator=gen)
    W_ih, W_hh = torch.randn(5, 4, generator=gen), torch.randn(5, 5, generator=gen)
    b = torch.randn(5, generator=gen)
    want = torch.tanh(x @ W_ih.T + h @ W_hh.T + b)

    def shape(f):
        got = f(x, h, W_ih, W_hh, b)
        expect(
            tuple(got.shape) == (3, 5),
            f"expected shape (batch, hidden) = (3, 5), got {tuple(got.shape)}",
        )

    def squashed(f):
        got = f(x, h, W_ih, W_hh, b)
        expect(
            bool((got.abs() <= 1).all()),
            "every hidden value must lie in [-1, 1]: apply tanh to the sum",
        )

    def values(f):
        got = f(x, h, W_ih, W_hh, b)
        expect(
            torch.allclose(got, want, atol=1e-5),
            "h_t = tanh(x W_ih^T + h_prev W_hh^T + b): check which weight multiplies the "
            "input and which the previous state, and the transposes",
        )

    def uses_state(f):
        other = f(x, torch.zeros_like(h), W_ih, W_hh, b)
        expect(
            not torch.allclose(other, f(x, h, W_ih, W_hh, b)),
            "the result must depend on the previous hidden state h",
        )

    return run_checks("Exercise: RNN step", rnn_step, [shape, squashed, values, uses_state])


def _autograd_count_gradient(W: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    W = W.detach().clone().requires_grad_(True)
    loss = -(counts * torch.log_softmax(W, dim=-1)).sum() / counts.sum()
    loss.backward()
    return W.grad


def check_count_gradient(count_gradient) -> None:
    """``count_gradient(W, counts)``: dL/dW for L = -(1/N) sum_ab c(ab) log softmax(W_a)_b."""
    gen = torch.Generator().manual_seed(2)
    counts = torch.randint(0, 6, (5, 5), generator=gen).double()
    counts[3] = 0  # a character that never starts a pair
    counts[1, 2] = 40  # one frequent pair, so the rows' weights differ
    W = torch.randn(5, 5, generator=gen, dtype=torch.float64)
    want = _autograd_count_gradient(W, counts)

    def as_tensor(got, dtype=torch.float64):
        got = torch.as_tensor(np.asarray(got.detach() if isinstance(got, torch.Tensor) else got))
        expect(
            tuple(got.shape) == (5, 5),
            f"return a V x V table like W: expected shape (5, 5), got {tuple(got.shape)}",
        )
        return got.to(dtype)

    def finite(f):
        got = as_tensor(f(W.clone(), counts.clone()))
        expect(
            bool(torch.isfinite(got).all()),
            "a character with no counts must not give NaN: weight each row by its count "
            "c(a) and divide by the total N, not by each row's own count",
        )
        expect(
            torch.allclose(got[3], torch.zeros(5, dtype=torch.float64)),
            "a row whose character never starts a pair gets no gradient: every term of "
            "the loss that involves it has count zero",
        )

    def direction(f):
        got = as_tensor(f(W.clone(), counts.clone()))
        expect(
            not torch.allclose(got, -want, atol=1e-9),
            "the sign is flipped: the gradient is softmax minus one-hot (it points uphill, "
            "and the optimiser subtracts it)",
        )

    def scale(f):
        got = as_tensor(f(W.clone(), counts.clone()))
        expect(
            not torch.allclose(got, want * counts.sum(), atol=1e-9),
            "the loss is a mean over the N pairs: divide the summed gradient by N = counts.sum()",
        )

    def values(f):
        got = as_tensor(f(W.clone(), counts.clone()))
        expect(
            torch.allclose(got, want, atol=1e-10, rtol=1e-8),
            "every pair starting with a adds softmax(W_a) - one-hot(b) to row a: row a gets "
            "c(a) softmax(W_a) - counts[a], all divided by N",
        )

    def float32(f):
        got = f(W.float(), counts.float())
        expect(
            torch.allclose(as_tensor(got), want, atol=1e-6, rtol=1e-4),
            "it should also work on float32 tensors",
        )

    def at_zero(f):
        # At W = 0 every row is uniform: the gradient is (c(a) / V - c(ab)) / N.
        got = as_tensor(f(torch.zeros(5, 5, dtype=torch.float64), counts.clone()))
        by_hand = (counts.sum(1, keepdim=True) / 5 - counts) / counts.sum()
        expect(
            torch.allclose(got, by_hand, atol=1e-12),
            "at W = 0 the gradient should be (c(a) / V - c(ab)) / N",
        )

    return run_checks(
        "Exercise: bigram gradient from counts",
        count_gradient,
        [finite, direction, scale, values, float32, at_zero],
    )


def _reference_kneser_ney(counts, d: float) -> np.ndarray:
    """Interpolated Kneser-Ney bigram: P(b | a) = max(c(ab) - d, 0) / c(a)
    + d N1+(a .) / c(a) * P_cont(b), with P_cont(b) = N1+(. b) / N1+(. .); a context
    never seen gets P_cont (Chen and Goodman, 1999, section 3.5)."""
    c = np.asarray(counts, dtype=float)
    seen = c > 0
    p_cont = seen.sum(axis=0) / seen.sum()
    row = c.sum(axis=1, keepdims=True)
    safe = np.where(row > 0, row, 1.0)
    lam = d * seen.sum(axis=1, keepdims=True) / safe
    return np.where(row > 0, np.maximum(c - d, 0) / safe + lam * p_cont, p_cont)


def check_kneser_ney(kneser_ney_bigram) -> None:
    """``kneser_ney_bigram(counts, d)``: a V x V table of pair counts -> the interpolated
    Kneser-Ney bigram table P(b | a), V x V."""
    gen = torch.Generator().manual_seed(3)
    counts = torch.randint(0, 4, (6, 6), generator=gen).double()
    counts[:, 5] = 0
    counts[0, 5] = 30  # b = 5 is frequent, but only ever after a = 0
    counts[4] = 0  # a character that starts no pair
    want = _reference_kneser_ney(counts, 0.75)

    def as_array(got):
        if isinstance(got, torch.Tensor):
            got = got.detach().cpu().double().numpy()
        got = np.asarray(got, dtype=float)
        expect(
            got.shape == (6, 6),
            f"return a V x V table like counts: expected shape (6, 6), got {got.shape}",
        )
        return got

    def no_nan(f):
        got = as_array(f(counts.clone(), 0.75))
        expect(
            bool(np.isfinite(got[4]).all()),
            "a character that starts no pair (c(a) = 0) must not give NaN: its row is "
            "the continuation distribution P_cont alone",
        )
        expect(
            bool((got >= 0).all()),
            "a negative probability: discount with max(c(ab) - d, 0), so unseen pairs "
            "get only the back-off share",
        )

    def sums_to_one(f):
        got = as_array(f(counts.clone(), 0.75))
        expect(
            np.allclose(got.sum(axis=1), 1.0, atol=1e-9),
            f"rows sum to {np.round(got.sum(axis=1), 4).tolist()}, not 1: the discounted "
            "mass d N1+(a .) / c(a) (d times the number of different characters seen after "
            "a) must go to the back-off distribution",
        )

    def continuation(f):
        got = as_array(f(counts.clone(), 0.75))
        unigram = counts.sum(0) / counts.sum()
        expect(
            not np.isclose(got[4, 5], float(unigram[5])),
            "P_cont(b) is not how often b occurs but how many DIFFERENT characters it "
            "follows, over the number of different pairs: N1+(. b) / N1+(. .)",
        )
        expect(
            np.allclose(got, want, atol=1e-9),
            "P(b | a) = max(c(ab) - d, 0) / c(a) + d N1+(a .) / c(a) * N1+(. b) / N1+(. .)",
        )

    def other_d(f):
        got = as_array(f(counts.clone(), 0.3))
        expect(
            np.allclose(got, _reference_kneser_ney(counts, 0.3), atol=1e-9),
            "use the discount d as given (here 0.3), not a fixed 0.75",
        )

    def dtypes(f):
        got32 = as_array(f(counts.float(), 0.75))
        expect(np.allclose(got32, want, atol=1e-5), "it should also work on float32 counts")

    return run_checks(
        "Exercise: Kneser-Ney bigram",
        kneser_ney_bigram,
        [no_nan, sums_to_one, continuation, other_d, dtypes],
    )
