"""Tokenizers built from scratch: characters (chapter 1), words and byte pairs (chapter 2).

A tokenizer maps text to a list of integer ids and back. Each handles symbols it has never
seen in its own, documented way:

- ``CharTokenizer``: ``encode`` fails with a message naming the unknown character.
- ``WordTokenizer``: unknown words become the ``<unk>`` token (so they do not round-trip).
- ``BPETokenizer``: byte-level byte-pair encoding (Sennrich et al., 2016; Radford et al.,
  2019). Every string is a sequence of bytes, and all 256 bytes are in the vocabulary, so
  nothing is unknown and ``decode(encode(text)) == text`` always.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache

__all__ = ["CharTokenizer", "WordTokenizer", "BPETokenizer", "pretokenize", "merge_pair",
           "bytes_to_unicode", "PRETOKENIZE_PATTERN"]


def _checked_ids(ids, vocab_size: int) -> list[int]:
    """``ids`` as a list of ints, or a ValueError naming those outside 0..vocab_size-1."""
    ids = [int(i) for i in ids]
    bad = [i for i in ids if not 0 <= i < vocab_size]
    if bad:
        raise ValueError(f"ids {bad[:5]} are outside the vocabulary (0..{vocab_size - 1})")
    return ids


class CharTokenizer:
    """One id per distinct character of the training text, in sorted order."""

    def __init__(self, text: str):
        if not isinstance(text, str) or not text:
            raise ValueError("CharTokenizer needs a non-empty training string")
        self.chars = sorted(set(text))
        self.index = {ch: i for i, ch in enumerate(self.chars)}

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        try:
            return [self.index[ch] for ch in text]
        except KeyError as error:
            raise ValueError(
                f"character {error.args[0]!r} is not in the tokenizer's vocabulary "
                f"of {self.vocab_size} characters"
            ) from None

    def decode(self, ids) -> str:
        ids = _checked_ids(ids, self.vocab_size)
        return "".join(self.chars[i] for i in ids)

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


# --------------------------------------------------------------------------------------
# Word and byte-pair tokenizers (chapter 2)
# --------------------------------------------------------------------------------------

# Pre-tokenization: split text into "words" before any merging. A word keeps the single space
# in front of it (" the"), punctuation runs are their own pieces, and other whitespace is a
# piece of its own (leaving the last space of a run to the word after it, as GPT-2 does).
# Together the alternatives match every character, so joining the pieces gives the text back
# exactly. This is a simplified form of GPT-2's pattern (Radford et al., 2019),
# which also splits off English contractions ("'s", "'ll") and digits.
PRETOKENIZE_PATTERN = r" ?\w+| ?[^\w\s]+|\s+(?!\S)|\s+"
_PRETOKENIZE = re.compile(PRETOKENIZE_PATTERN)


def pretokenize(text: str) -> list[str]:
    """Split ``text`` into words, punctuation runs and whitespace; ``"".join`` undoes it."""
    if not isinstance(text, str):
        raise ValueError(f"expected a str, got {type(text).__name__}")
    return _PRETOKENIZE.findall(text)


class WordTokenizer:
    """One id per distinct pre-tokenized word of the training text, plus an unknown token.

    Words are the pieces of :func:`pretokenize` (so ``" the"`` and ``"the"`` are different
    words). Only the ``max_vocab - 1`` most frequent training words get an id (ties broken
    alphabetically); every other word, in training or later, becomes the unknown token
    ``unk_token`` (id 0). That is the documented fallback: ``decode`` then writes ``unk_token``
    in its place, so text with unknown words does **not** round-trip. ``count_unknown`` says
    how often that happens.
    """

    def __init__(self, text: str, max_vocab: int | None = None, unk_token: str = "<unk>"):
        if not isinstance(text, str) or not text:
            raise ValueError("WordTokenizer needs a non-empty training string")
        if max_vocab is not None and (not isinstance(max_vocab, int) or max_vocab < 2):
            raise ValueError(f"max_vocab must be an int >= 2 (room for <unk>), got {max_vocab!r}")
        counts = Counter(pretokenize(text))
        ranked = sorted(counts, key=lambda w: (-counts[w], w))
        if max_vocab is not None:
            ranked = ranked[: max_vocab - 1]
        self.unk_token = unk_token
        self.words = [unk_token] + ranked
        self.index = {w: i for i, w in enumerate(self.words)}

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    def encode(self, text: str) -> list[int]:
        return [self.index.get(w, 0) for w in pretokenize(text)]

    def count_unknown(self, text: str) -> int:
        """How many words of ``text`` are not in the vocabulary (each becomes ``unk_token``)."""
        return sum(1 for w in pretokenize(text) if w not in self.index)

    def decode(self, ids) -> str:
        ids = _checked_ids(ids, self.vocab_size)
        return "".join(self.words[i] for i in ids)

    def __repr__(self) -> str:
        return f"WordTokenizer(vocab_size={self.vocab_size})"


@lru_cache(maxsize=None)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table from the 256 byte values to 256 printable characters.

    Printable ASCII and Latin-1 bytes map to themselves; the others (space, newline, control
    bytes) are shifted to unused code points from 256 up, so that a space shows as ``Ġ`` and
    a newline as ``Ċ``. Hugging Face's ``ByteLevel`` pre-tokenizer uses the same table, which is
    why SmolLM2's tokens start with ``Ġ``.
    """
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def _pairs(symbols: list[str]) -> Counter:
    return Counter(zip(symbols, symbols[1:]))


def merge_pair(symbols: list[str], pair: tuple[str, str]) -> list[str]:
    """Replace every occurrence of the adjacent ``pair`` in ``symbols``, left to right.

    Occurrences do not overlap: merging ``("a", "a")`` in ``a a a`` gives ``aa a``.
    """
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            out.append(symbols[i] + symbols[i + 1])
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


class BPETokenizer:
    """Byte-level byte-pair encoding (Sennrich et al., 2016; byte-level as in GPT-2).

    Training starts from the 256 byte symbols (shown through :func:`bytes_to_unicode`) and
    repeatedly merges the most frequent adjacent pair of symbols within the pre-tokenized
    words of the training text, ``num_merges`` times. Ties between equally frequent pairs go to
    the pair whose symbols have the smallest ids (bytes by code point, then merged symbols in
    the order they were made): the rule Hugging Face's ``tokenizers`` ``BpeTrainer`` uses, so
    training is deterministic and comparable with it.

    Encoding applies the learned merges to each word in the order they were learned (lowest
    rank first), as GPT-2 does. Because the base vocabulary has every byte, any text can be
    encoded: there is no unknown token, and ``decode(encode(text)) == text`` for every string.
    Ids 0..255 are the byte symbols sorted by code point (GPT-2's order: ``!`` is 0, ``Ġ``
    is 220); then each new symbol gets
    the next id in the order the merges made it (a merge that rebuilds an existing symbol, say
    ``Ġt + he`` and ``Ġth + e``, adds no new id).
    """

    def __init__(self, text: str, num_merges: int):
        if not isinstance(text, str) or not text:
            raise ValueError("BPETokenizer needs a non-empty training string")
        if not isinstance(num_merges, int) or num_merges < 0:
            raise ValueError(f"num_merges must be a non-negative int, got {num_merges!r}")
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {c: b for b, c in self.byte_encoder.items()}
        self.merges = self._train(Counter(pretokenize(text)), num_merges)
        self.ranks = {pair: r for r, pair in enumerate(self.merges)}
        self.vocab = sorted(self.byte_encoder.values())  # GPT-2's order: by code point
        self.index = {symbol: i for i, symbol in enumerate(self.vocab)}
        for a, b in self.merges:
            if a + b not in self.index:
                self.index[a + b] = len(self.vocab)
                self.vocab.append(a + b)
        self._cache: dict[str, list[str]] = {}

    def _symbols(self, word: str) -> list[str]:
        return [self.byte_encoder[b] for b in word.encode("utf-8")]

    def _train(self, word_counts: Counter, num_merges: int) -> list[tuple[str, str]]:
        words = [self._symbols(w) for w in word_counts]
        freqs = list(word_counts.values())
        pair_counts: Counter = Counter()
        where: dict[tuple[str, str], set[int]] = {}  # pair -> indices of words containing it
        for i, symbols in enumerate(words):
            for pair, n in _pairs(symbols).items():
                pair_counts[pair] += n * freqs[i]
                where.setdefault(pair, set()).add(i)
        # Tie-break order of symbols: bytes by code point, then merged symbols as they appear.
        order = {c: ord(c) for c in self.byte_encoder.values()}
        merges = []
        while len(merges) < num_merges and pair_counts:
            best = min(pair_counts.items(),
                       key=lambda kv: (-kv[1], order[kv[0][0]], order[kv[0][1]]))[0]
            merges.append(best)
            order.setdefault(best[0] + best[1], 1000 + len(merges))
            for i in where.pop(best):  # update only the words that contain the pair
                before = _pairs(words[i])
                words[i] = merge_pair(words[i], best)
                after = _pairs(words[i])
                for pair in before | after:
                    change = (after[pair] - before[pair]) * freqs[i]
                    if change:
                        pair_counts[pair] += change
                    if pair in after:
                        where.setdefault(pair, set()).add(i)
            pair_counts = +pair_counts  # drop pairs whose count fell to zero
        return merges

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def _bpe(self, word: str, trace: list | None = None) -> list[str]:
        if trace is None and word in self._cache:
            return self._cache[word]
        symbols = self._symbols(word)
        while len(symbols) > 1:
            ranked = [(self.ranks[p], p) for p in zip(symbols, symbols[1:]) if p in self.ranks]
            if not ranked:
                break
            rank, pair = min(ranked)
            symbols = merge_pair(symbols, pair)
            if trace is not None:
                trace.append({"rank": rank, "pair": pair, "symbols": list(symbols)})
        if trace is None:
            self._cache[word] = symbols
        return symbols

    def tokenize(self, text: str) -> list[str]:
        """The token strings of ``text`` (bytes shown through :func:`bytes_to_unicode`)."""
        return [s for word in pretokenize(text) for s in self._bpe(word)]

    def encode(self, text: str) -> list[int]:
        return [self.index[s] for s in self.tokenize(text)]

    def encode_and_show_work(self, text: str) -> list[dict]:
        """Encode ``text`` and return every step: per word, its bytes and each merge applied.

        Each entry is ``{"word", "bytes", "merges": [{"rank", "pair", "symbols"}], "tokens",
        "ids"}``, where ``symbols`` is the word after that merge (like minGPT's
        ``encode_and_show_work``).
        """
        parts = []
        for word in pretokenize(text):
            trace: list = []
            tokens = self._bpe(word, trace)
            parts.append({"word": word, "bytes": self._symbols(word), "merges": trace,
                          "tokens": tokens, "ids": [self.index[s] for s in tokens]})
        return parts

    def decode(self, ids) -> str:
        ids = _checked_ids(ids, self.vocab_size)
        data = bytes(self.byte_decoder[c] for i in ids for c in self.vocab[i])
        # A slice of ids may cut a multi-byte character in two: show it as U+FFFD, like GPT-2.
        return data.decode("utf-8", errors="replace")

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)})"
