"""Checks for the exercises of chapter 2, tokens and embeddings.

check_count_pairs(count_adjacent_pairs)     pair frequencies, the statistic BPE merges on
check_merge_pair(apply_merge)               one BPE merge applied to a list of symbols
check_split_special(split_special)          special tokens cut out whole, longest first
check_wordpiece(wordpiece)                  WordPiece's greedy longest-match-first encoding
check_one_hot_embedding(embed_one_hot)      an embedding lookup as one-hot @ matrix
check_cosine_similarity(cosine)             the cosine of the angle between two vectors
"""

from __future__ import annotations

import torch

from llmcourse.exercises import ExerciseError, expect, expect_close, run_checks

__all__ = [
    "check_count_pairs",
    "check_merge_pair",
    "check_split_special",
    "check_wordpiece",
    "check_one_hot_embedding",
    "check_cosine_similarity",
]


def check_count_pairs(count_pairs) -> None:
    """``count_pairs(word_counts)``: {tuple of symbols: count} -> {(left, right): count}."""
    corpus = {("l", "o", "w"): 5, ("l", "o", "w", "e", "r"): 2, ("n", "e", "w", "e", "s", "t"): 6}

    def as_dict(f, words):
        got = f(words)
        expect(hasattr(got, "items"), f"return a dict (or Counter), got {type(got).__name__}")
        return {tuple(k): int(v) for k, v in got.items() if v}

    def weighted(f):
        got = as_dict(f, corpus)
        expect(
            got.get(("l", "o")) == 7,
            f"('l', 'o') occurs in 'low' (5 times) and 'lower' (2 times): its count is 7, got "
            f"{got.get(('l', 'o'))}. Weight each word's pairs by how often the word occurs",
        )

    def all_pairs(f):
        got = as_dict(f, corpus)
        want = {
            ("l", "o"): 7,
            ("o", "w"): 7,
            ("w", "e"): 8,
            ("e", "r"): 2,
            ("n", "e"): 6,
            ("e", "w"): 6,
            ("e", "s"): 6,
            ("s", "t"): 6,
        }
        expect(
            got == want,
            f"expected {want}, got {got}: count adjacent pairs only, "
            "within each word, never across two words",
        )

    def repeated(f):
        got = as_dict(f, {("a", "a", "a"): 1, ("b", "a", "b", "a"): 3})
        expect(
            got.get(("a", "a")) == 2,
            "in 'a a a' the pair ('a', 'a') starts at two positions: count it twice "
            "(count every position, not distinct pairs per word)",
        )
        expect(
            got.get(("b", "a")) == 6,
            "('b', 'a') occurs twice in 'b a b a', which occurs 3 times: 6 in all",
        )

    return run_checks("Exercise: count pairs", count_pairs, [weighted, all_pairs, repeated])


def check_merge_pair(merge_pair) -> None:
    """``merge_pair(symbols, pair)``: merge every occurrence of ``pair``, left to right."""

    def once(f):
        got = f(["l", "o", "w"], ("l", "o"))
        expect(
            list(got) == ["lo", "w"],
            f"merging ('l', 'o') in l o w gives ['lo', 'w'], got {list(got)}",
        )

    def every(f):
        got = f(["t", "h", "e", "t", "h", "e", "n"], ("t", "h"))
        expect(
            list(got) == ["th", "e", "th", "e", "n"],
            f"merge every occurrence of the pair, not only the first: got {list(got)}",
        )

    def no_overlap(f):
        got = f(["a", "a", "a"], ("a", "a"))
        expect(
            list(got) == ["aa", "a"],
            f"occurrences must not overlap: a a a becomes ['aa', 'a'] (scan left to right "
            f"and skip past each merge), got {list(got)}",
        )

    def untouched(f):
        got = f(["a", "b", "c"], ("b", "a"))
        expect(
            list(got) == ["a", "b", "c"],
            "a pair that does not occur (order matters: "
            "('b', 'a') is not ('a', 'b')) changes nothing",
        )
        symbols = ["a", "b", "c"]
        f(symbols, ("a", "b"))
        expect(symbols == ["a", "b", "c"], "do not modify the input list; return a new one")

    def multichar(f):
        got = f(["Ġ", "t", "he"], ("t", "he"))
        expect(
            list(got) == ["Ġ", "the"],
            "symbols can be several characters long: compare whole symbols, not characters",
        )

    return run_checks(
        "Exercise: merge a pair", merge_pair, [once, every, no_overlap, untouched, multichar]
    )


def check_split_special(split_special) -> None:
    """``split_special(text, specials)`` -> list of ``(piece, is_special)``, in order."""
    eot = "<|endoftext|>"

    def as_list(f, text, specials):
        got = f(text, specials)
        try:
            got = [(str(p), bool(s)) for p, s in got]
        except (TypeError, ValueError):
            raise ExerciseError(
                f"return a list of (piece, is_special) pairs, got {got!r}"
            ) from None
        expect(
            "".join(p for p, _ in got) == text,
            f"joining the pieces must give the text back; got {got!r} for {text!r}",
        )
        return got

    def none(f):
        expect(
            as_list(f, "no specials here", [eot]) == [("no specials here", False)],
            "text without a special token is one ordinary piece",
        )
        expect(as_list(f, "", [eot]) == [], "the empty text has no pieces (no empty strings)")

    def whole(f):
        got = as_list(f, f"The end.{eot}Once upon", [eot])
        want = [("The end.", False), (eot, True), ("Once upon", False)]
        expect(
            got == want, f"cut the special token out whole and mark it: expected {want}, got {got}"
        )

    def edges(f):
        got = as_list(f, f"{eot}{eot}x{eot}", [eot])
        want = [(eot, True), (eot, True), ("x", False), (eot, True)]
        expect(
            got == want,
            f"adjacent specials, and specials at both ends, with no empty "
            f"ordinary pieces between them: expected {want}, got {got}",
        )

    def longest_first(f):
        double = eot + eot
        got = as_list(f, f"a{eot}{eot}{eot}b", [eot, double])
        want = [("a", False), (double, True), (eot, True), ("b", False)]
        expect(
            got == want,
            f"where two special tokens start at the same place, the longer "
            f"wins (whatever order the list gives them): expected {want}, "
            f"got {got}",
        )
        got = as_list(f, "<|a|>", ["<|a", "a|>"])
        expect(
            got == [("<|a", True), ("|>", False)],
            "scan left to right: the special token that starts first wins, even if a "
            f"later one would be longer; got {got}",
        )

    return run_checks(
        "Exercise: special tokens", split_special, [none, whole, edges, longest_first]
    )


def check_wordpiece(wordpiece) -> None:
    """``wordpiece(word, vocab)``: greedy longest-match-first pieces, ``##`` continuations."""
    vocab = {
        "un",
        "##aff",
        "##able",
        "##a",
        "##ff",
        "aff",
        "able",
        "a",
        "##b",
        "##le",
        "x",
        "##y",
        "[UNK]",
    }

    def pieces(f, word):
        got = f(word, vocab)
        expect(isinstance(got, (list, tuple)), f"return a list of pieces, got {got!r}")
        return list(got)

    def simple(f):
        got = pieces(f, "unaffable")
        expect(
            got == ["un", "##aff", "##able"],
            f"'unaffable' is ['un', '##aff', '##able'], got {got}: every piece after the "
            "first carries the '##' prefix",
        )

    def longest(f):
        got = pieces(f, "affable")
        expect(
            got == ["aff", "##able"],
            f"take the longest vocabulary entry that starts the word ('aff', not 'a'), "
            f"then the longest that continues it: expected ['aff', '##able'], got {got}",
        )

    def whole_word_unknown(f):
        got = pieces(f, "xyz")
        expect(
            got == ["[UNK]"],
            f"'xyz' gets stuck at 'z' (no '##z'): the whole word becomes ['[UNK]'], "
            f"not the pieces found so far; got {got}",
        )
        got = pieces(f, "zap")
        expect(got == ["[UNK]"], f"no entry starts 'zap': ['[UNK]'], got {got}")

    def single(f):
        expect(pieces(f, "a") == ["a"], "a word that is itself in the vocabulary is one piece")

    return run_checks(
        "Exercise: WordPiece", wordpiece, [simple, longest, whole_word_unknown, single]
    )


def check_one_hot_embedding(one_hot_embedding) -> None:
    """``one_hot_embedding(ids, weight)``: ``(*,)`` ids, ``(V, D)`` weight -> ``(*, D)``."""
    gen = torch.Generator().manual_seed(2)
    weight = torch.randn(7, 3, generator=gen)  # V != D, so a transposed weight fails

    def shape(f):
        got = f(torch.tensor([0, 6, 2]), weight)
        expect(
            isinstance(got, torch.Tensor) and tuple(got.shape) == (3, 3),
            f"3 ids and a (7, 3) weight give a (3, 3) result (one row of weight per id), "
            f"got {tuple(getattr(got, 'shape', ()))}",
        )

    def rows(f):
        ids = torch.tensor([4, 1, 4])
        got = f(ids, weight)
        expect(
            torch.allclose(got, weight[ids], atol=1e-6),
            "row i of the result must be row ids[i] of weight: multiply the one-hot rows "
            "(3, V) by weight (V, D); don't return the one-hot vectors themselves",
        )

    def batched(f):
        ids = torch.tensor([[0, 1], [5, 6]])
        got = f(ids, weight)
        expect(
            tuple(got.shape) == (2, 2, 3) and torch.allclose(got, weight[ids], atol=1e-6),
            "ids of shape (2, 2) give a (2, 2, D) result: one-hot on a new last dimension",
        )

    return run_checks("Exercise: one-hot embedding", one_hot_embedding, [shape, rows, batched])


def check_cosine_similarity(cosine_similarity) -> None:
    """``cosine_similarity(a, b)``: two 1-D tensors -> a number in [-1, 1]."""

    def parallel(f):
        a = torch.tensor([1.0, 2.0, 2.0])
        expect_close(
            f(a, 3 * a),
            1.0,
            "vectors pointing the same way have cosine 1 whatever "
            "their lengths: divide by both norms",
            rel=1e-5,
        )

    def orthogonal(f):
        expect_close(
            f(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 5.0])),
            0.0,
            "perpendicular vectors have cosine 0",
            abs_=1e-6,
        )

    def opposite(f):
        a = torch.tensor([0.5, -1.0, 2.0])
        expect_close(
            f(a, -2 * a),
            -1.0,
            "opposite vectors have cosine -1 (a similarity, not a distance)",
            rel=1e-5,
        )

    def general(f):
        a, b = torch.tensor([3.0, 4.0]), torch.tensor([4.0, 3.0])
        expect_close(f(a, b), 24 / 25, "cos = a.b / (|a| |b|) = 24 / (5 * 5)", rel=1e-5)

    return run_checks(
        "Exercise: cosine similarity", cosine_similarity, [parallel, orthogonal, opposite, general]
    )
