"""Each chapter-2 check passes the model answer and rejects plausible wrong answers with a hint."""

from collections import Counter

import pytest
import torch

from llmcourse.embedding import one_hot_embedding
from llmcourse.exercises import ExerciseError, NotYetAnswered
from llmcourse.exercises.ch02 import (
    check_cosine_similarity,
    check_decode_tokens,
    check_embedding_grad,
    check_merge_pair,
    check_next_merge,
    check_split_special,
    check_tokens_per_merges,
    check_wordpiece,
)
from llmcourse.tokenization import bytes_to_unicode, merge_pair

CHECKS = [
    check_next_merge,
    check_merge_pair,
    check_embedding_grad,
    check_decode_tokens,
    check_tokens_per_merges,
    check_cosine_similarity,
    check_split_special,
    check_wordpiece,
]


@pytest.mark.parametrize("check", CHECKS)
def test_none_is_not_yet_answered(check):
    with pytest.raises(NotYetAnswered):
        check(None)


# --- next merge -----------------------------------------------------------------------


def next_merge(word_counts, rank):
    counts = Counter()
    for word, n in word_counts.items():
        for pair in zip(word, word[1:]):
            counts[pair] += n
    top = max(counts.values())
    return min((p for p, c in counts.items() if c == top), key=lambda p: (rank[p[0]], rank[p[1]]))


def next_merge_sorted(word_counts, rank):  # a second correct answer: one sort
    counts = {}
    for word, n in word_counts.items():
        for i in range(len(word) - 1):
            counts[word[i], word[i + 1]] = counts.get((word[i], word[i + 1]), 0) + n
    return sorted(counts, key=lambda p: (-counts[p], rank[p[0]], rank[p[1]]))[0]


@pytest.mark.parametrize("answer", [next_merge, next_merge_sorted])
def test_next_merge(answer, capsys):
    check_next_merge(answer)  # raises if the answer is rejected
    assert "all 4 checks passed" in capsys.readouterr().out


def test_next_merge_rejects_the_chapters_count_pairs():
    with pytest.raises(ExerciseError, match="return one pair"):
        check_next_merge(lambda word_counts, rank: Counter(word_counts))


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (  # each word counted once
            lambda wc, rank: next_merge(dict.fromkeys(wc, 1), rank),
            "weight each word's pairs",
        ),
        (  # Counter.most_common: the first pair found among the tied ones
            lambda wc, rank: Counter({p: c for p, c in _counts(wc).items()}).most_common(1)[0][0],
            "smallest",
        ),
        (  # ties broken alphabetically
            lambda wc, rank: min(
                (p for p, c in _counts(wc).items() if c == max(_counts(wc).values())),
            ),
            "not by the symbols' alphabetical order",
        ),
        (  # pairs counted across word boundaries
            lambda wc, rank: next_merge(
                {tuple(s for w, n in wc.items() for _ in range(n) for s in w): 1}, rank
            ),
            "never cross",
        ),
    ],
)
def test_next_merge_slips_are_rejected(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_next_merge(wrong)


def _counts(word_counts):
    counts = Counter()
    for word, n in word_counts.items():
        for pair in zip(word, word[1:]):
            counts[pair] += n
    return counts


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


# --- embedding gradient ---------------------------------------------------------------


def grad_index_add(ids, grad_output, num_embeddings):
    D = grad_output.shape[-1]
    out = torch.zeros(num_embeddings, D, dtype=grad_output.dtype)
    return out.index_add_(0, ids.reshape(-1), grad_output.reshape(-1, D))


def grad_one_hot(ids, grad_output, num_embeddings):  # one_hot(ids)^T @ grad_output
    one_hot = torch.nn.functional.one_hot(ids.reshape(-1), num_embeddings).to(grad_output.dtype)
    return one_hot.T @ grad_output.reshape(-1, grad_output.shape[-1])


@pytest.mark.parametrize("answer", [grad_index_add, grad_one_hot])
def test_embedding_grad(answer, capsys):
    check_embedding_grad(answer)  # raises if the answer is rejected
    assert "all 4 checks passed" in capsys.readouterr().out


def test_embedding_grad_rejects_the_chapters_one_hot_embedding():
    with pytest.raises(ExerciseError):
        check_embedding_grad(lambda ids, g, V: one_hot_embedding(ids, g))


def grad_assigned(ids, grad_output, num_embeddings):  # repeated ids overwrite each other
    out = torch.zeros(num_embeddings, grad_output.shape[-1], dtype=grad_output.dtype)
    out[ids.reshape(-1)] = grad_output.reshape(-1, grad_output.shape[-1])
    return out


def grad_averaged(ids, grad_output, num_embeddings):
    uses = torch.bincount(ids.reshape(-1), minlength=num_embeddings).clamp(min=1)
    return grad_index_add(ids, grad_output, num_embeddings) / uses[:, None].to(grad_output.dtype)


def grad_only_used_rows(ids, grad_output, num_embeddings):  # sized by the largest id
    return grad_index_add(ids, grad_output, int(ids.max()) + 1)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (grad_assigned, "indexed assignment keeps only one"),
        (grad_averaged, "do not average"),
        (grad_only_used_rows, "one row per vocabulary entry"),
        (lambda ids, g, V: grad_index_add(ids, g, V).T, "shape"),
    ],
)
def test_embedding_grad_slips_are_rejected(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_embedding_grad(wrong)


# --- decode tokens --------------------------------------------------------------------------


def decode_bytes(tokens):
    back = {c: b for b, c in bytes_to_unicode().items()}
    return bytes(back[c] for token in tokens for c in token).decode("utf-8")


def decode_bytearray(tokens):  # a second correct answer: a bytearray, errors="strict"
    back = {c: b for b, c in bytes_to_unicode().items()}
    data = bytearray()
    for token in tokens:
        data.extend(back[c] for c in token)
    return data.decode("utf-8", errors="strict")


@pytest.mark.parametrize("answer", [decode_bytes, decode_bytearray])
def test_decode_tokens(answer, capsys):
    check_decode_tokens(answer)  # raises if the answer is rejected
    assert "all 4 checks passed" in capsys.readouterr().out


def decode_per_token(tokens):  # decodes each token on its own
    back = {c: b for b, c in bytes_to_unicode().items()}
    return "".join(bytes(back[c] for c in t).decode("utf-8", errors="replace") for t in tokens)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda tokens: "".join(tokens), "map them back to bytes"),
        (
            lambda tokens: "".join(tokens).replace("Ġ", " ").replace("Ċ", "\n"),
            "every one of the 256 byte characters",
        ),
        (decode_per_token, "decode UTF-8 once"),
    ],
)
def test_decode_tokens_slips_are_rejected(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_decode_tokens(wrong)


# --- tokens per merges ----------------------------------------------------------------------


def tokens_replay(word, merges, sizes):  # each merge in order, over the whole word
    table = bytes_to_unicode()
    out = []
    for m in sizes:
        symbols = [table[b] for b in word.encode("utf-8")]
        for pair in merges[:m]:
            symbols = merge_pair(symbols, tuple(pair))
        out.append(len(symbols))
    return out


def tokens_by_rank(word, merges, sizes):  # the chapter's loop: the earliest merge first
    table = bytes_to_unicode()
    out = []
    for m in sizes:
        ranks = {tuple(p): r for r, p in enumerate(merges[:m])}
        symbols = [table[b] for b in word.encode("utf-8")]
        while True:
            found = [p for p in zip(symbols, symbols[1:]) if p in ranks]
            if not found:
                break
            symbols = merge_pair(symbols, min(found, key=ranks.get))
        out.append(len(symbols))
    return out


@pytest.mark.parametrize("answer", [tokens_replay, tokens_by_rank])
def test_tokens_per_merges(answer, capsys):
    check_tokens_per_merges(answer)  # raises if the answer is rejected
    assert "all 4 checks passed" in capsys.readouterr().out


def tokens_from_characters(word, merges, sizes):
    out = []
    for m in sizes:
        symbols = ["Ġ" if c == " " else c for c in word]
        for pair in merges[:m]:
            symbols = merge_pair(symbols, tuple(pair))
        out.append(len(symbols))
    return out


def tokens_longest_match(word, merges, sizes):  # WordPiece-style greedy, not BPE
    table = bytes_to_unicode()
    out = []
    for m in sizes:
        vocab = {a + b for a, b in merges[:m]}
        text, n, i = "".join(table[b] for b in word.encode("utf-8")), 0, 0
        while i < len(text):
            j = max((k for k in range(i + 1, len(text) + 1) if text[i:k] in vocab), default=i + 1)
            n, i = n + 1, j
        out.append(n)
    return out


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (tokens_from_characters, "starts from bytes"),
        (tokens_longest_match, "not the longest vocabulary"),
        (
            lambda w, merges, sizes: tokens_replay(w, merges, [m + 1 for m in sizes]),
            "merges\\[:m\\]",
        ),
        (lambda w, merges, sizes: tokens_replay(w, merges, sizes[:1]), "one count per size"),
    ],
)
def test_tokens_per_merges_slips_are_rejected(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_tokens_per_merges(wrong)


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
