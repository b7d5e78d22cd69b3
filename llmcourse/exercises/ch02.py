"""Checks for the exercises of chapter 2, tokens and embeddings.

check_next_merge(next_merge)                the pair BPE merges next (frequency, then rank)
check_merge_pair(apply_merge)               one BPE merge applied to a list of symbols
check_split_special(split_special)          special tokens cut out whole, longest first
check_wordpiece(wordpiece)                  WordPiece's greedy longest-match-first encoding
check_embedding_grad(embedding_grad)        the embedding table's gradient, without autograd
check_decode_tokens(decode_tokens)          byte-level BPE tokens back to text
check_tokens_per_merges(tokens_per_merges)  an unseen word's token count as merges grow
check_cosine_similarity(cosine)             the cosine of the angle between two vectors
"""

from __future__ import annotations

import torch

from llmcourse.exercises import ExerciseError, expect, expect_close, run_checks
from llmcourse.tokenization import bytes_to_unicode, merge_pair

__all__ = [
    "check_next_merge",
    "check_merge_pair",
    "check_split_special",
    "check_wordpiece",
    "check_embedding_grad",
    "check_decode_tokens",
    "check_tokens_per_merges",
    "check_cosine_similarity",
]


def _next_merge(word_counts, rank):
    counts: dict = {}
    for word, n in word_counts.items():
        for pair in zip(word, word[1:]):
            counts[pair] = counts.get(pair, 0) + n
    top = max(counts.values())
    return min((p for p, c in counts.items() if c == top), key=lambda p: (rank[p[0]], rank[p[1]]))


def check_next_merge(next_merge) -> None:
    """``next_merge(word_counts, rank)``: {tuple of symbols: count}, {symbol: id} -> the
    pair BPE merges next: the most frequent adjacent pair, ties to the smallest ranks."""
    corpus = {("l", "o", "w"): 5, ("l", "o", "w", "e", "r"): 2, ("n", "e", "w", "e", "s", "t"): 6}
    alphabetical = {c: i for i, c in enumerate("elnorstw")}

    def as_pair(got):
        expect(
            isinstance(got, (tuple, list)) and len(got) == 2,
            f"return one pair (left, right), got {got!r}",
        )
        return tuple(got)

    def weighted(f):
        got = as_pair(f(corpus, alphabetical))
        expect(
            got != ("l", "o"),
            "('l', 'o') occurs in 2 different words, but ('w', 'e') occurs 2 + 6 = 8 times: "
            "weight each word's pairs by how often the word occurs",
        )
        expect(
            got == ("w", "e"),
            f"('w', 'e') is the most frequent pair (2 in 'lower' + 6 in 'newest' = 8), got "
            f"{got}: count adjacent pairs within each word, weighted by the word's count",
        )

    def tie(f):
        words = {("l", "o", "w"): 5, ("n", "e", "w", "e", "s", "t"): 6}
        got = as_pair(f(words, alphabetical))
        expect(
            got == ("e", "s"),
            f"five pairs tie at 6 here; the rule takes the smallest (rank[left], "
            f"rank[right]), which is ('e', 's'), got {got}",
        )

    def by_rank(f):
        words = {("b", "a"): 3, ("a", "b"): 3, ("c", "d"): 2}
        reverse = {"d": 0, "c": 1, "b": 2, "a": 3}
        got = as_pair(f(words, reverse))
        expect(
            got == ("b", "a"),
            f"break ties by the ids in rank, not by the symbols' alphabetical order: with "
            f"rank {reverse}, ('b', 'a') has ranks (2, 3), smaller than ('a', 'b')'s "
            f"(3, 2); got {got}",
        )
        got = as_pair(f({("c", "d"): 2, ("b", "a"): 3, ("a", "b"): 3}, reverse))
        expect(
            got == ("b", "a"),
            "the answer must not depend on the order of the words in the dict: pick the "
            "tied pair with the smallest ranks, not the first one found",
        )

    def repeated(f):
        words = {("a", "a", "a"): 2, ("a", "b"): 3}
        got = as_pair(f(words, {"a": 0, "b": 1}))
        expect(
            got == ("a", "a"),
            "in 'a a a' the pair ('a', 'a') starts at two positions: count it twice "
            "(2 positions x 2 occurrences = 4 beats ('a', 'b')'s 3)",
        )
        words = {("c", "a"): 1, ("b", "d"): 1, ("e", "a"): 1, ("b", "f"): 1}
        got = as_pair(f(words, {c: i for i, c in enumerate("abcdef")}))
        expect(
            got == ("b", "d"),
            f"four pairs occur once each and the smallest ranks win, ('b', 'd'), got {got}: "
            "pairs never cross from one word to the next (no ('a', 'b') here)",
        )

    return run_checks("Exercise: next merge", next_merge, [weighted, tie, by_rank, repeated])


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


def check_embedding_grad(embedding_grad) -> None:
    """``embedding_grad(ids, grad_output, num_embeddings)``: ``(*,)`` ids and the loss's
    gradient with respect to the looked-up vectors, ``(*, D)`` -> dL/dW, ``(V, D)``."""
    gen = torch.Generator().manual_seed(2)
    V, D = 7, 3  # V != D, so a transposed answer fails
    ids = torch.tensor([[3, 1, 3], [6, 0, 3]])
    grad_output = torch.randn(2, 3, D, generator=gen, dtype=torch.float64)

    def reference(ids, g, V):
        return torch.zeros(V, g.shape[-1], dtype=g.dtype).index_add_(
            0, ids.reshape(-1), g.reshape(-1, g.shape[-1])
        )

    def as_tensor(got, shape):
        got = torch.as_tensor(got.detach() if isinstance(got, torch.Tensor) else got)
        expect(
            tuple(got.shape) == shape,
            f"the gradient has the table's shape (num_embeddings, D) = {shape}, got "
            f"{tuple(got.shape)}: one row per vocabulary entry, used or not",
        )
        return got.double()

    def ones(f):
        got = as_tensor(f(ids, torch.ones(2, 3, D, dtype=torch.float64), V), (V, D))
        expect(
            not torch.allclose(got[3], torch.ones(D, dtype=torch.float64)),
            "id 3 is looked up three times, so row 3 collects three gradients: add them, "
            "do not average them (and indexed assignment keeps only one; use index_add_ "
            "or one-hot^T @ grad)",
        )
        expect(
            torch.allclose(got[3], torch.full((D,), 3.0, dtype=torch.float64))
            and torch.allclose(got[5], torch.zeros(D, dtype=torch.float64)),
            "with a gradient of ones, row 3 (used three times) is 3 everywhere and row 5 "
            "(never used) is 0",
        )

    def values(f):
        got = as_tensor(f(ids, grad_output.clone(), V), (V, D))
        uses = torch.bincount(ids.reshape(-1), minlength=V).clamp(min=1).double()
        expect(
            not torch.allclose(got, reference(ids, grad_output, V) / uses[:, None]),
            "add the gradients of every use of an id; do not average them",
        )
        expect(
            torch.allclose(got, reference(ids, grad_output, V), atol=1e-10),
            "row v of the gradient is the sum of grad_output over the positions where "
            "ids == v: one_hot(ids)^T @ grad_output",
        )

    def unused_rows(f):
        got = as_tensor(f(torch.tensor([0, 2]), grad_output[0, :2].clone(), 10), (10, D))
        expect(
            torch.allclose(got[3:], torch.zeros(7, D, dtype=torch.float64)),
            "rows of ids that do not occur get a zero gradient",
        )

    def float32(f):
        got = f(ids, grad_output.float(), V)
        expect(
            torch.allclose(as_tensor(got, (V, D)), reference(ids, grad_output, V), atol=1e-5),
            "it should also work on a float32 grad_output",
        )

    return run_checks(
        "Exercise: embedding gradient", embedding_grad, [ones, values, unused_rows, float32]
    )


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


def _decode_symbols(tokens) -> str:
    back = {c: b for b, c in bytes_to_unicode().items()}
    return bytes(back[c] for token in tokens for c in token).decode("utf-8")


def check_decode_tokens(decode_tokens) -> None:
    """``decode_tokens(tokens)``: byte-level BPE tokens (strings in GPT-2's byte alphabet)
    -> the text they spell."""

    def spaces(f):
        got = f(["To", "Ġbe", ",", "Ġor", "Ċ"])
        expect(
            got != "ToĠbe,ĠorĊ",
            "joining the tokens is not enough: each character of a token stands for one "
            "byte ('Ġ' is the space byte, 'Ċ' the newline); map them back to bytes",
        )
        expect(got == "To be, or\n", f"expected 'To be, or\\n', got {got!r}")

    def split_character(f):
        tokens = ["Ġca", "f", "Ã", "©"]  # the two bytes of 'é' are two tokens
        got = f(tokens)
        expect(
            isinstance(got, str) and "\ufffd" not in got,
            "a character can be split across tokens ('é' is the bytes C3 A9, here two "
            "tokens): join the bytes of all the tokens, then decode UTF-8 once",
        )
        expect(
            got == " café",
            f"expected ' café', got {got!r}: every one of the 256 byte characters must be "
            "mapped back to its byte ('Ã' and '©' are the bytes C3 and A9), not only 'Ġ'",
        )

    def every_byte(f):
        text = "naïve 東京 🙂\t«x»"
        data = text.encode("utf-8")
        table = bytes_to_unicode()
        tokens = [table[b] for b in data[:3]] + ["".join(table[b] for b in data[3:8])]
        tokens += [table[b] for b in data[8:]]
        got = f(tokens)
        expect(
            got == text,
            f"expected {text!r}, got {got!r}: every one of the 256 byte characters must be "
            "mapped back, not only 'Ġ' and 'Ċ'",
        )

    def empty(f):
        expect(f([]) == "", "no tokens decode to the empty string")

    return run_checks(
        "Exercise: decode tokens", decode_tokens, [spaces, split_character, every_byte, empty]
    )


def _tokens_per_merges(word, merges, sizes):
    table = bytes_to_unicode()
    start = [table[b] for b in word.encode("utf-8")]
    out = []
    for m in sizes:
        symbols = list(start)
        for pair in merges[:m]:
            symbols = merge_pair(symbols, tuple(pair))
        out.append(len(symbols))
    return out


def check_tokens_per_merges(tokens_per_merges) -> None:
    """``tokens_per_merges(word, merges, sizes)``: how many tokens byte-level BPE gives
    ``word`` with the first m merges, for each m in ``sizes``."""
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("e", "r"), ("Ã", "©"), ("o", "u")]
    merges += [("Ġthe", "r"), ("c", "a"), ("f", "Ã©"), ("Ġ", "ca")]

    def as_list(got, n):
        got = list(got)
        expect(len(got) == n, f"return one count per size: {n} sizes, got {len(got)} counts")
        return [int(x) for x in got]

    def bytes_first(f):
        got = as_list(f(" café", merges, [0]), 1)
        expect(
            got != [5],
            "byte-level BPE starts from bytes, not characters: 'é' is two bytes in UTF-8, "
            "so ' café' is 6 symbols before any merge",
        )
        expect(got == [6], f"' café' is 6 bytes, so 6 tokens with no merges, got {got}")

    def growing(f):
        sizes = [0, 1, 2, 3, 4, 7, 10]
        got = as_list(f(" there", merges, sizes), 7)
        want = _tokens_per_merges(" there", merges, sizes)
        expect(
            got == want,
            f"for sizes {sizes} expected {want}, got {got}: with m merges, replay "
            "merges[:m] in order (m = 0: the bytes alone)",
        )

    def order_matters(f):
        # merged in this order, 'abc' becomes a + bc: the merge ab never applies, so
        # neither does abc, although 'abc' is in the vocabulary
        late = [("b", "c"), ("a", "b"), ("ab", "c")]
        got = as_list(f("abc", late, [1, 3]), 2)
        expect(
            got == [2, 2],
            f"expected [2, 2], got {got}: apply the merges in the order they were learned "
            "(b + c first, and then a + b no longer applies), not the longest vocabulary "
            "entry first",
        )

    def no_merge_applies(f):
        got = as_list(f("xyz", merges, [0, 10]), 2)
        expect(got == [3, 3], f"no merge touches 'xyz': 3 tokens whatever m, got {got}")

    return run_checks(
        "Exercise: tokens per merges",
        tokens_per_merges,
        [bytes_first, growing, order_matters, no_merge_applies],
    )
