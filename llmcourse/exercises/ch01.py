"""Checks for the exercises of chapter 1, the rise of language models.

check_perplexity(perplexity)                  exp of the mean negative log-probability
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
]


def check_perplexity(perplexity) -> None:
    """``perplexity(log_probs)``: natural-log probabilities of each token -> perplexity."""

    def uniform(f):
        got = f([math.log(1 / 4)] * 3)  # three tokens, each given probability 1/4
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

    def unequal(f):
        expect_close(
            f([math.log(0.5), math.log(0.25)]),
            math.sqrt(8),
            "perplexity is exp of the MEAN negative log-probability",
        )

    def arrays(f):
        expect_close(f(np.log(np.array([0.2, 0.2]))), 5.0, "it should accept a NumPy array")

    return run_checks("Exercise: perplexity", perplexity, [uniform, unequal, arrays])


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
