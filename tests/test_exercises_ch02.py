"""Each chapter-2 check passes the model answer and rejects plausible wrong answers with a hint."""

from collections import Counter

import pytest
import torch

from llmcourse.embedding import one_hot_embedding
from llmcourse.exercises import ExerciseError, NotYetAnswered
from llmcourse.exercises.ch02 import (check_cosine_similarity, check_count_pairs,
                                      check_merge_pair, check_one_hot_embedding)
from llmcourse.tokenization import merge_pair

CHECKS = [check_count_pairs, check_merge_pair, check_one_hot_embedding, check_cosine_similarity]


@pytest.mark.parametrize("check", CHECKS)
def test_none_is_not_yet_answered(check):
    with pytest.raises(NotYetAnswered):
        check(None)


# --- count pairs ----------------------------------------------------------------------

def count_pairs(word_counts):
    counts = Counter()
    for word, n in word_counts.items():
        for pair in zip(word, word[1:]):
            counts[pair] += n
    return counts


def test_count_pairs(capsys):
    check_count_pairs(count_pairs)  # raises if the answer is rejected
    assert "all 3 checks passed" in capsys.readouterr().out


def test_count_pairs_ignoring_word_frequency_is_rejected():
    def unweighted(word_counts):
        return Counter(p for word in word_counts for p in zip(word, word[1:]))

    with pytest.raises(ExerciseError, match="Weight each word's pairs"):
        check_count_pairs(unweighted)


def test_count_pairs_distinct_per_word_is_rejected():
    def distinct(word_counts):
        counts = Counter()
        for word, n in word_counts.items():
            for pair in set(zip(word, word[1:])):
                counts[pair] += n
        return counts

    with pytest.raises(ExerciseError, match="count it twice"):
        check_count_pairs(distinct)


def test_count_pairs_across_words_is_rejected():
    def across(word_counts):
        flat = [s for word, n in word_counts.items() for _ in range(n) for s in word]
        return Counter(zip(flat, flat[1:]))

    with pytest.raises(ExerciseError, match="never across two words"):
        check_count_pairs(across)


# --- merge a pair ---------------------------------------------------------------------

def test_merge_pair(capsys):
    check_merge_pair(merge_pair)  # raises if the answer is rejected
    assert "all 5 checks passed" in capsys.readouterr().out


def test_merge_only_first_is_rejected():
    def first_only(symbols, pair):
        for i in range(len(symbols) - 1):
            if (symbols[i], symbols[i + 1]) == pair:
                return symbols[:i] + [symbols[i] + symbols[i + 1]] + symbols[i + 2:]
        return list(symbols)

    with pytest.raises(ExerciseError, match="not only the first"):
        check_merge_pair(first_only)


def test_merge_by_zipping_neighbours_is_rejected():
    def zipped(symbols, pair):  # one output per adjacent pair: drops or repeats symbols
        return [a + b if (a, b) == pair else a for a, b in zip(symbols, symbols[1:])]

    with pytest.raises(ExerciseError, match=r"gives \['lo', 'w'\]"):
        check_merge_pair(zipped)


def test_merge_in_place_is_rejected():
    def in_place(symbols, pair):
        i = 0
        while i < len(symbols) - 1:
            if (symbols[i], symbols[i + 1]) == pair:
                symbols[i:i + 2] = [symbols[i] + symbols[i + 1]]
            i += 1
        return symbols

    with pytest.raises(ExerciseError, match="do not modify the input list"):
        check_merge_pair(in_place)


def test_merge_overlapping_is_rejected():
    def overlapping(symbols, pair):
        out = [a + b for a, b in zip(symbols, symbols[1:]) if (a, b) == pair]
        return out + [s for s in symbols if s not in pair] if out else list(symbols)

    with pytest.raises(ExerciseError):
        check_merge_pair(overlapping)


# --- one-hot embedding ----------------------------------------------------------------

def test_one_hot_embedding(capsys):
    check_one_hot_embedding(one_hot_embedding)  # raises if the answer is rejected
    assert "all 3 checks passed" in capsys.readouterr().out


def test_one_hot_without_matmul_is_rejected():
    def only_one_hot(ids, weight):
        return torch.nn.functional.one_hot(ids, weight.shape[0]).float()

    with pytest.raises(ExerciseError, match=r"got \(3, 7\)"):
        check_one_hot_embedding(only_one_hot)


def test_one_hot_with_transposed_weight_is_rejected():
    def transposed(ids, weight):
        return torch.nn.functional.one_hot(ids, weight.shape[1]).float() @ weight.T

    with pytest.raises(ExerciseError, match="your answer raised"):
        check_one_hot_embedding(transposed)


def test_one_hot_on_first_dimension_is_rejected():
    def flat_only(ids, weight):
        return torch.nn.functional.one_hot(ids.flatten(), weight.shape[0]).float() @ weight

    with pytest.raises(ExerciseError, match=r"\(2, 2, D\)"):
        check_one_hot_embedding(flat_only)


# --- cosine similarity ----------------------------------------------------------------

def test_cosine_similarity(capsys):
    check_cosine_similarity(lambda a, b: a @ b / (a.norm() * b.norm()))  # raises if the answer is rejected
    assert "all 4 checks passed" in capsys.readouterr().out


def test_dot_product_is_rejected():
    with pytest.raises(ExerciseError, match="divide by both norms"):
        check_cosine_similarity(lambda a, b: a @ b)


def test_one_norm_only_is_rejected():
    with pytest.raises(ExerciseError, match="divide by both norms"):
        check_cosine_similarity(lambda a, b: a @ b / a.norm())


def test_distance_is_rejected():
    with pytest.raises(ExerciseError, match="perpendicular vectors have cosine 0"):
        check_cosine_similarity(lambda a, b: 1 - (a / a.norm() - b / b.norm()).norm())


def test_absolute_value_is_rejected():
    with pytest.raises(ExerciseError, match="not a distance"):
        check_cosine_similarity(lambda a, b: abs(a @ b) / (a.norm() * b.norm()))
