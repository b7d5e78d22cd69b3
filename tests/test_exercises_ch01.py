"""Chapter 1's exercise checks pass the model answers and reject plausible wrong ones."""

import math

import numpy as np
import pytest
import torch

from llmcourse.exercises import ExerciseError, NotYetAnswered
from llmcourse.exercises.ch01 import (
    check_add_k_bigram,
    check_count_gradient,
    check_ngram_table_size,
    check_perplexity,
    check_rnn_step,
)


def test_perplexity_check():
    check_perplexity(lambda lp: float(np.exp(-np.mean(lp))))  # raises if the answer is rejected
    wrong = [
        (lambda lp: float(np.exp(-np.sum(lp))), "you summed"),
        (lambda lp: float(np.exp(np.mean(lp))), "minus sign"),
        (lambda lp: float(10 ** (-np.mean(lp))), "natural logs"),
        (lambda lp: float(np.exp(-np.sum(lp) / (len(lp) - 1))), "perplexity 4"),
        (
            lambda lp: math.exp(-sum(lp) / len(lp)) if isinstance(lp, list) else float("nan"),
            "NumPy array",
        ),
    ]
    for answer, hint in wrong:
        with pytest.raises(ExerciseError, match=hint):
            check_perplexity(answer)


def test_add_k_check():
    def right(text, prev, nxt, k):
        pairs = sum(1 for a, b in zip(text, text[1:]) if (a, b) == (prev, nxt))
        starts = sum(1 for a in text[:-1] if a == prev)
        return (pairs + k) / (starts + k * len(set(text)))

    def no_kv(text, prev, nxt, k):  # forgets k V in the denominator
        pairs = sum(1 for a, b in zip(text, text[1:]) if (a, b) == (prev, nxt))
        return (pairs + k) / (sum(1 for a in text[:-1] if a == prev) + k)

    def counts_last_char(text, prev, nxt, k):  # counts prev everywhere, even at the end
        pairs = sum(1 for a, b in zip(text, text[1:]) if (a, b) == (prev, nxt))
        return (pairs + k) / (text.count(prev) + k * len(set(text)))

    def fixed_k(text, prev, nxt, k):
        return right(text, prev, nxt, 1.0)

    check_add_k_bigram(right)  # raises if the answer is rejected
    for answer, hint in [
        (no_kv, "k times the vocabulary size"),
        (counts_last_char, "last character"),
        (fixed_k, "use k as given"),
    ]:
        with pytest.raises(ExerciseError, match=hint):
            check_add_k_bigram(answer)


def test_table_size_check():
    check_ngram_table_size(lambda v, n: v**n)  # raises if the answer is rejected
    for answer, hint in [
        (lambda v, n: v * n, "8 entries"),
        (lambda v, n: n**v, "entries"),
        (lambda v, n: int(math.pow(v, n)) if n < 3 else math.pow(v, n), "exact int"),
    ]:
        with pytest.raises(ExerciseError, match=hint):
            check_ngram_table_size(answer)


def test_rnn_step_check():
    # raises if the answer is rejected
    check_rnn_step(lambda x, h, W_ih, W_hh, b: torch.tanh(x @ W_ih.T + h @ W_hh.T + b))
    wrong = [
        (lambda x, h, W_ih, W_hh, b: x @ W_ih.T + h @ W_hh.T + b, "tanh"),
        (lambda x, h, W_ih, W_hh, b: torch.tanh(x @ W_ih.T + b), "which the previous state"),
        (lambda x, h, W_ih, W_hh, b: torch.tanh(x @ W_ih.T + h @ W_hh + b), "transposes"),
        (lambda x, h, W_ih, W_hh, b: torch.relu(x @ W_ih.T + h @ W_hh.T + b), "tanh"),
    ]
    for answer, hint in wrong:
        with pytest.raises(ExerciseError, match=hint):
            check_rnn_step(answer)


@pytest.mark.parametrize(
    "check", [check_perplexity, check_add_k_bigram, check_ngram_table_size, check_rnn_step]
)
def test_unanswered(check):
    with pytest.raises(NotYetAnswered, match="not yet answered"):
        check(None)


def test_stub_and_crashing_answers():

    def stub(log_probs):
        raise NotImplementedError

    with pytest.raises(NotYetAnswered):
        check_perplexity(stub)
    with pytest.raises(ExerciseError, match="raised ZeroDivisionError"):
        check_perplexity(lambda lp: 1 / 0)


def test_count_gradient_check():
    def by_formula(W, counts):
        return (counts.sum(dim=1, keepdim=True) * torch.softmax(W, dim=-1) - counts) / counts.sum()

    def by_pairs(W, counts):  # expand the counts back into pairs, average softmax - one-hot
        V = W.shape[0]
        a, b = torch.nonzero(counts, as_tuple=True)
        reps = counts[a, b].long()
        x, y = a.repeat_interleave(reps), b.repeat_interleave(reps)
        per_pair = torch.softmax(W[x], dim=-1) - torch.nn.functional.one_hot(y, V).to(W.dtype)
        return torch.zeros_like(W).index_add_(0, x, per_pair) / len(x)

    def numpy_answer(W, counts):
        W, c = np.asarray(W, dtype=np.float64), np.asarray(counts, dtype=np.float64)
        p = np.exp(W - W.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        return (c.sum(axis=1, keepdims=True) * p - c) / c.sum()

    for right in (by_formula, by_pairs, numpy_answer):
        check_count_gradient(right)  # raises if a correct answer is rejected

    def flipped(W, counts):
        return -by_formula(W, counts)

    def summed(W, counts):
        return by_formula(W, counts) * counts.sum()

    def per_row(W, counts):  # divides each row by its own count: NaN for an empty row
        rows = counts.sum(dim=1, keepdim=True)
        return (rows * torch.softmax(W, dim=-1) - counts) / rows

    def per_row_guarded(W, counts):  # the same, with the empty row patched
        rows = counts.sum(dim=1, keepdim=True).clamp(min=1)
        return (rows * torch.softmax(W, dim=-1) - counts) / rows

    def no_row_weight(W, counts):  # softmax not weighted by c(a)
        return (torch.softmax(W, dim=-1) - counts) / counts.sum()

    def log_softmax(W, counts):  # the log-probabilities instead of the probabilities
        rows = counts.sum(dim=1, keepdim=True)
        return (rows * torch.log_softmax(W, dim=-1) - counts) / counts.sum()

    wrong = [
        (flipped, "sign is flipped"),
        (summed, "divide the summed gradient by N"),
        (per_row, "must not give NaN"),
        (per_row_guarded, "no gradient"),
        (no_row_weight, "no gradient"),
        (log_softmax, r"c\(a\) softmax"),
    ]
    for answer, hint in wrong:
        with pytest.raises(ExerciseError, match=hint):
            check_count_gradient(answer)
    with pytest.raises(NotYetAnswered):
        check_count_gradient(None)
