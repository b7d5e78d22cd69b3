"""Chapter 1's exercise checks pass the model answers and reject plausible wrong ones."""

import math

import numpy as np
import pytest
import torch

from llmcourse.exercises import ExerciseError, NotYetAnswered
from llmcourse.exercises.ch01 import (
    check_add_k_bigram,
    check_count_gradient,
    check_kneser_ney,
    check_ngram_table_size,
    check_perplexity,
    check_rnn_step,
)


def test_perplexity_check():
    def pooled(documents):
        tokens = np.concatenate([np.asarray(doc, dtype=float) for doc in documents])
        return float(np.exp(-tokens.mean()))

    def by_sums(documents):  # plain Python: total log-probability over total tokens
        total = sum(sum(doc) for doc in documents)
        return math.exp(-total / sum(len(doc) for doc in documents))

    for right in (pooled, by_sums):
        check_perplexity(right)  # raises if the answer is rejected

    def mean_of_perplexities(documents):
        return float(np.mean([np.exp(-np.mean(doc)) for doc in documents]))

    def mean_of_means(documents):
        return float(np.exp(-np.mean([np.mean(doc) for doc in documents])))

    wrong = [
        (lambda docs: float(np.exp(-sum(np.sum(d) for d in docs))), "you summed"),
        (lambda docs: float(np.exp(np.mean(np.concatenate(docs)))), "minus sign"),
        (lambda docs: float(10 ** (-np.mean(np.concatenate(docs)))), "natural logs"),
        (mean_of_perplexities, "averaged the documents' perplexities"),
        (mean_of_means, "counts as much as a 99-token one"),
        (lambda docs: float(np.exp(-np.mean(docs[0]))), "all 100 tokens"),
        (
            lambda docs: by_sums(docs) if isinstance(docs[0], list) else float("nan"),
            "NumPy arrays",
        ),
    ]
    for answer, hint in wrong:
        with pytest.raises(ExerciseError, match=hint):
            check_perplexity(answer)


def test_perplexity_check_rejects_the_chapters_function():
    from llmcourse.ngram import perplexity  # a single sequence: the chapter's version

    with pytest.raises(ExerciseError):
        check_perplexity(perplexity)


def kn_torch(counts, d):
    seen = (counts > 0).to(counts.dtype)
    p_cont = seen.sum(0) / seen.sum()
    rows = counts.sum(1, keepdim=True)
    safe = rows.clamp(min=1)
    table = (counts - d).clamp(min=0) / safe + d * seen.sum(1, keepdim=True) / safe * p_cont
    return torch.where(rows > 0, table, p_cont.expand_as(table))


def kn_loops(counts, d):  # entry by entry, in NumPy
    c = np.asarray(counts, dtype=float)
    V, pairs = c.shape[0], (c > 0).sum()
    out = np.zeros((V, V))
    for a in range(V):
        for b in range(V):
            p_cont = (c[:, b] > 0).sum() / pairs
            c_a = c[a].sum()
            if c_a == 0:
                out[a, b] = p_cont
            else:
                out[a, b] = max(c[a, b] - d, 0) / c_a + d * (c[a] > 0).sum() / c_a * p_cont
    return out


def test_kneser_ney_check(capsys):
    for right in (kn_torch, kn_loops):
        check_kneser_ney(right)  # raises if a correct answer is rejected
    assert "all 5 checks passed" in capsys.readouterr().out

    def unigram_back_off(counts, d):  # P_cont replaced by the unigram frequency
        uni = counts.sum(0) / counts.sum()
        rows = counts.sum(1, keepdim=True)
        safe = rows.clamp(min=1)
        seen = (counts > 0).to(counts.dtype)
        table = (counts - d).clamp(min=0) / safe + d * seen.sum(1, keepdim=True) / safe * uni
        return torch.where(rows > 0, table, uni.expand_as(table))

    def no_clip(counts, d):  # unseen pairs get -d / c(a)
        rows = counts.sum(1, keepdim=True)
        return kn_torch(counts, d) + torch.where(
            (counts == 0) & (rows > 0), -d / rows.clamp(min=1), torch.zeros_like(counts)
        )

    def no_back_off_weight(counts, d):  # lambda(a) forgotten: back-off added with weight 1
        seen = (counts > 0).to(counts.dtype)
        p_cont = seen.sum(0) / seen.sum()
        rows = counts.sum(1, keepdim=True).clamp(min=1)
        return (counts - d).clamp(min=0) / rows + p_cont

    def divides_by_zero(counts, d):  # no special case for an empty row
        seen = (counts > 0).to(counts.dtype)
        p_cont = seen.sum(0) / seen.sum()
        rows = counts.sum(1, keepdim=True)
        return (counts - d).clamp(min=0) / rows + d * seen.sum(1, keepdim=True) / rows * p_cont

    wrong = [
        (unigram_back_off, "DIFFERENT characters"),
        (no_clip, "max\\(c\\(ab\\) - d, 0\\)"),
        (no_back_off_weight, "must go to the back-off"),
        (divides_by_zero, "must not give NaN"),
        (lambda counts, d: kn_torch(counts, 0.75), "as given"),
        (lambda counts, d: kn_torch(counts.double(), d).float() + 1e-3, "sum to"),
    ]
    for answer, hint in wrong:
        with pytest.raises(ExerciseError, match=hint):
            check_kneser_ney(answer)
    with pytest.raises(NotYetAnswered):
        check_kneser_ney(None)


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
        check_perplexity(lambda documents: 1 / 0)


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
