"""Each chapter-2 check passes the model answer and rejects plausible wrong answers with a hint."""

from collections import Counter

import pytest
import torch

from llmcourse.embedding import one_hot_embedding
from llmcourse.exercises import ExerciseError, NotYetAnswered
from llmcourse.exercises.ch02 import (
    check_cosine_similarity,
    check_count_pairs,
    check_merge_pair,
    check_one_hot_embedding,
    check_split_special,
    check_wordpiece,
)
from llmcourse.tokenization import merge_pair

CHECKS = [
    check_count_pairs,
    check_merge_pair,
    check_one_hot_embedding,
    check_cosine_similarity,
    check_split_special,
    check_wordpiece,
]


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
                return symbols[:i] + [symbols[i] + symbols[i + 1]] + symbols[i + 2 :]
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
                symbols[i : i + 2] = [symbols[i] + symbols[i + 1]]
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
    # raises if the answer is rejected
    check_cosine_similarity(lambda a, b: a @ b / (a.norm() * b.norm()))
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


# --- special tokens, longest first ----------------------------------------------------------


def split_special_regex(text, specials):
    import re

    pattern = "|".join(re.escape(s) for s in sorted(specials, key=len, reverse=True))
    out, start = [], 0
    for m in re.finditer(pattern, text):
        if m.start() > start:
            out.append((text[start : m.start()], False))
        out.append((m.group(), True))
        start = m.end()
    if start < len(text):
        out.append((text[start:], False))
    return out


def split_special_scan(text, specials):  # a second correct answer: an explicit scan
    out, buffer, i = [], "", 0
    while i < len(text):
        found = max((s for s in specials if text.startswith(s, i)), key=len, default=None)
        if found:
            if buffer:
                out.append((buffer, False))
                buffer = ""
            out.append((found, True))
            i += len(found)
        else:
            buffer += text[i]
            i += 1
    if buffer:
        out.append((buffer, False))
    return out


@pytest.mark.parametrize("answer", [split_special_regex, split_special_scan])
def test_split_special(answer, capsys):
    check_split_special(answer)
    assert "all 4 checks passed" in capsys.readouterr().out


def test_split_special_in_list_order_is_rejected():
    def in_order(text, specials):  # the alternation in the order given: shortest may win
        import re

        pattern = "|".join(re.escape(s) for s in specials)
        return [(p, p in specials) for p in re.split(f"({pattern})", text) if p]

    with pytest.raises(ExerciseError, match="the longer wins"):
        check_split_special(in_order)


def test_split_special_with_empty_pieces_is_rejected():
    def with_empties(text, specials):
        import re

        pattern = "|".join(re.escape(s) for s in sorted(specials, key=len, reverse=True))
        return [(p, p in specials) for p in re.split(f"({pattern})", text)]

    with pytest.raises(ExerciseError, match="no empty strings"):
        check_split_special(with_empties)


def test_split_special_losing_the_tokens_is_rejected():
    def dropped(text, specials):
        return [(p, False) for p in text.split(specials[0]) if p]

    with pytest.raises(ExerciseError, match="joining the pieces must give the text back"):
        check_split_special(dropped)


# --- WordPiece ------------------------------------------------------------------------------


def wordpiece_loop(word, vocab):
    pieces, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start:
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                break
            end -= 1
        if end == start:
            return ["[UNK]"]
        pieces.append(piece)
        start = end
    return pieces


def wordpiece_recursive(word, vocab, prefix=""):  # a second correct answer
    def go(rest, prefix):
        if not rest:
            return []
        for end in range(len(rest), 0, -1):
            if prefix + rest[:end] in vocab:
                tail = go(rest[end:], "##")
                return None if tail is None else [prefix + rest[:end]] + tail
        return None

    return go(word, "") or ["[UNK]"]


@pytest.mark.parametrize("answer", [wordpiece_loop, wordpiece_recursive])
def test_wordpiece(answer, capsys):
    check_wordpiece(answer)
    assert "all 4 checks passed" in capsys.readouterr().out


def test_wordpiece_shortest_first_is_rejected():
    def shortest(word, vocab):
        pieces, start = [], 0
        while start < len(word):
            for end in range(start + 1, len(word) + 1):
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in vocab:
                    break
            else:
                return ["[UNK]"]
            pieces.append(piece)
            start = end
        return pieces

    with pytest.raises(ExerciseError, match="every piece after the first|the longest"):
        check_wordpiece(shortest)


def test_wordpiece_without_continuation_prefix_is_rejected():
    def no_prefix(word, vocab):
        vocab = {v.removeprefix("##") for v in vocab}
        return wordpiece_loop(word, vocab)

    with pytest.raises(ExerciseError, match="'##' prefix"):
        check_wordpiece(no_prefix)


def test_wordpiece_keeping_partial_pieces_is_rejected():
    def partial(word, vocab):
        pieces, start = [], 0
        while start < len(word):
            for end in range(len(word), start, -1):
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in vocab:
                    break
            else:
                return pieces + ["[UNK]"]
            pieces.append(piece)
            start = end
        return pieces

    with pytest.raises(ExerciseError, match="the whole word becomes"):
        check_wordpiece(partial)


def test_split_special_returning_strings_is_rejected():
    def strings(text, specials):
        return [p for p, _ in split_special_regex(text, specials)]

    with pytest.raises(ExerciseError, match=r"return a list of \(piece, is_special\) pairs"):
        check_split_special(strings)
