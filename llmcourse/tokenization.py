"""Tokenizers built from scratch: characters (chapter 1), words and byte pairs (chapter 2).

A tokenizer maps text to a list of integer ids and back. Each handles symbols it has never
seen in its own, documented way:

- ``CharTokenizer``: ``encode`` fails with a message naming the unknown character.
- ``WordTokenizer``: unknown words become the ``<unk>`` token (so they do not round-trip).
- ``BPETokenizer``: byte-level byte-pair encoding (Sennrich et al., 2016; Radford et al.,
  2019). Every string is a sequence of bytes, and all 256 bytes are in the vocabulary, so
  nothing is unknown and ``decode(encode(text)) == text`` always. ``gpt2_tokenizer()`` is the
  same class loaded with GPT-2's own vocabulary and merges: it gives GPT-2's ids.

Pre-tokenization uses the ``regex`` module, not Python's ``re``, and names its character
classes by Unicode category (``\\p{L}`` letters, ``\\p{M}`` marks, ``\\p{N}`` numbers,
``\\p{Pc}`` connectors) rather than ``\\w``, because engines disagree on ``\\w``: ``re``
counts only ``str.isalnum()`` characters and ``_``, so a combining accent (the second code
point of a decomposed, NFD, "é") or a connector such as ``‿`` ends a word; ``regex`` follows
Unicode's TR18 (which leaves out "²" and "½" but takes in "Ⓐ"); Oniguruma, the engine inside
Hugging Face ``tokenizers``, means letters, marks, numbers and connectors. Spelled out, the
pattern means the same in ``regex`` and Oniguruma, so our pieces are the library's pieces on
every character both engines' Unicode tables know (a character assigned in a newer Unicode
version than one engine's tables is the remaining, documented, difference).
"""

from __future__ import annotations

import heapq
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from functools import cache, lru_cache
from pathlib import Path

import regex

from llmcourse.validation import non_negative_int

__all__ = [
    "CharTokenizer",
    "WordTokenizer",
    "BPETokenizer",
    "pretokenize",
    "merge_pair",
    "bytes_to_unicode",
    "gpt2_tokenizer",
    "PRETOKENIZE_PATTERN",
    "GPT2_PATTERN",
]


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
# exactly. A word character is a letter, a mark (a combining accent), a number or a connector
# such as "_": what \w means in Oniguruma, the regex engine of Hugging Face ``tokenizers``,
# spelled out because \w differs between engines (see the module docstring). This is a
# simplified form of GPT-2's pattern (Radford et al., 2019), which also splits off English
# contractions ("'s", "'ll") and separates letters from digits.
PRETOKENIZE_PATTERN = r" ?[\p{L}\p{M}\p{N}\p{Pc}]+| ?[^\s\p{L}\p{M}\p{N}\p{Pc}]+|\s+(?!\S)|\s+"

# GPT-2's own pattern (OpenAI's encoder.py; the same in tiktoken's "gpt2" encoding and in
# Hugging Face's ByteLevel pre-tokenizer): contractions, then letters, numbers, other symbols.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

ENDOFTEXT = "<|endoftext|>"

# How many characters past a piece either pattern looks before it settles the piece: one to
# see that a run has ended, three to tell "'" from "'ll". encode_iterable relies on it.
_LOOKAHEAD = 3


@lru_cache(maxsize=16)
def _compile(pattern: str):
    return regex.compile(pattern)


def pretokenize(text: str, pattern: str = PRETOKENIZE_PATTERN) -> list[str]:
    """Split ``text`` into words, punctuation runs and whitespace; ``"".join`` undoes it.

    ``pattern`` is :data:`PRETOKENIZE_PATTERN` (the chapter's simplified one) or
    :data:`GPT2_PATTERN`, written for the ``regex`` module (``\\p{L}``: any letter).
    """
    if not isinstance(text, str):
        raise ValueError(f"expected a str, got {type(text).__name__}")
    return _compile(pattern).findall(text)


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
        if max_vocab is not None and (not _is_int(max_vocab) or max_vocab < 2):
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


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


@cache
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table from the 256 byte values to 256 printable characters.

    Printable ASCII and Latin-1 bytes map to themselves; the others (space, newline, control
    bytes) are shifted to unused code points from 256 up, so that a space shows as ``Ġ`` and
    a newline as ``Ċ``. Hugging Face's ``ByteLevel`` pre-tokenizer uses the same table, which is
    why SmolLM2's tokens start with ``Ġ``.
    """
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
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


def _checked_specials(special_tokens) -> list[str]:
    if isinstance(special_tokens, str):
        raise ValueError("special_tokens must be a list of strings, not one string")
    specials = list(dict.fromkeys(special_tokens))  # unique, in the order given
    bad = [s for s in specials if not isinstance(s, str) or not s]
    if bad:
        raise ValueError(f"special tokens must be non-empty strings, got {bad[:3]!r}")
    return specials


def _train_merges(
    word_counts: Counter, num_merges: int, order: dict[str, int]
) -> list[tuple[str, str]]:
    """The ``num_merges`` most frequent pair merges of the words in ``word_counts``.

    Incremental: pair counts are kept up to date by re-counting only the words that contain
    the merged pair (``where`` indexes them), and the best pair comes from a heap whose stale
    entries (pushed before a count changed) are skipped when they reach the top. Ties go to
    the pair with the smallest symbol ranks in ``order`` (updated with each new symbol).
    """
    words = [list(w) for w in word_counts]
    freqs = list(word_counts.values())
    pair_counts: Counter = Counter()
    where: dict[tuple[str, str], set[int]] = {}  # pair -> indices of words containing it
    for i, symbols in enumerate(words):
        for pair, n in _pairs(symbols).items():
            pair_counts[pair] += n * freqs[i]
            where.setdefault(pair, set()).add(i)

    def entry(pair):
        return (-pair_counts[pair], order[pair[0]], order[pair[1]], pair)

    next_rank = max(order.values(), default=-1) + 1
    heap = [entry(pair) for pair in pair_counts]
    heapq.heapify(heap)
    merges: list[tuple[str, str]] = []
    while len(merges) < num_merges and heap:
        neg_count, _, _, best = heapq.heappop(heap)
        if -neg_count != pair_counts.get(best, 0):
            continue  # stale: the pair's count changed after this entry was pushed
        if neg_count == 0:
            break
        merges.append(best)
        if best[0] + best[1] not in order:
            order[best[0] + best[1]] = next_rank
            next_rank += 1
        changed = set()
        for i in where.pop(best):  # update only the words that contain the pair
            before = _pairs(words[i])
            words[i] = merge_pair(words[i], best)
            after = _pairs(words[i])
            for pair in before | after:
                change = (after[pair] - before[pair]) * freqs[i]
                if change:
                    pair_counts[pair] += change
                    changed.add(pair)
                if pair in after:
                    where.setdefault(pair, set()).add(i)
        del pair_counts[best]
        for pair in changed:
            if pair_counts[pair] > 0:
                heapq.heappush(heap, entry(pair))
            else:
                del pair_counts[pair]
                where.pop(pair, None)
    return merges


class BPETokenizer:
    """Byte-level byte-pair encoding (Sennrich et al., 2016; byte-level as in GPT-2).

    ``BPETokenizer(text, num_merges)`` trains: starting from the 256 byte symbols (shown
    through :func:`bytes_to_unicode`), it repeatedly merges the most frequent adjacent pair of
    symbols within the pre-tokenized words of the training text, ``num_merges`` times. Ties
    between equally frequent pairs go to the pair whose symbols have the smallest ids (bytes
    by code point, then merged symbols in the order they were made): the rule Hugging Face's
    ``tokenizers`` ``BpeTrainer`` uses, so training is deterministic and comparable with it.
    ``BPETokenizer.from_merges(vocab, merges)`` builds one from a given vocabulary and merge
    list instead (GPT-2's files: :func:`gpt2_tokenizer`).

    Encoding applies the learned merges to each word in the order they were learned (lowest
    rank first), as GPT-2 does. Because the base vocabulary has every byte, any text can be
    encoded: there is no unknown token, and ``decode(encode(text)) == text`` for every string.
    Ids 0..255 of a trained tokenizer are the byte symbols sorted by code point (GPT-2's
    order: ``!`` is 0, ``Ġ`` is 220); then each new symbol gets the next id in the order the
    merges made it (a merge that rebuilds an existing symbol, say ``Ġt + he`` and
    ``Ġth + e``, adds no new id).

    **Special tokens** (``special_tokens=["<|endoftext|>"]``) are strings that are always one
    token: ``encode`` cuts them out of the text before pre-tokenization (where two overlap,
    the longest wins), ``decode`` writes them back, and training counts pairs only between
    them, never across. A trained tokenizer gives them the ids after the merged symbols, in
    the order given (GPT-2's ``<|endoftext|>`` is its last id, 50256).

    ``pattern`` is the pre-tokenization pattern: :data:`PRETOKENIZE_PATTERN` (default) or
    :data:`GPT2_PATTERN`.

    **Saved format** (``save``/``load``): one UTF-8 JSON object, ``{"format":
    "llmcourse-bpe", "version": 1, "pattern": str, "vocab": [token strings in id order],
    "merges": [[left, right], ... in rank order], "special_tokens": {token: id}}``. Ordinary
    tokens are written through the byte table (``"Ġthe"``), special tokens as themselves.
    """

    FORMAT = "llmcourse-bpe"

    def __init__(
        self,
        text: str,
        num_merges: int,
        *,
        pattern: str = PRETOKENIZE_PATTERN,
        special_tokens: Iterable[str] = (),
    ):
        if not isinstance(text, str) or not text:
            raise ValueError("BPETokenizer needs a non-empty training string")
        non_negative_int("num_merges", num_merges)
        specials = _checked_specials(special_tokens)
        byte_symbols = sorted(bytes_to_unicode().values())  # GPT-2's order: by code point
        splitter = _special_splitter(specials)
        word_counts = Counter(
            tuple(_symbols(word))
            for part, is_special in _split_specials(text, splitter)
            if not is_special
            for word in pretokenize(part, pattern)
        )
        # Tie-break order of symbols: bytes by code point, then merged symbols as made.
        order = {c: ord(c) for c in byte_symbols}
        merges = _train_merges(word_counts, num_merges, order)
        vocab = list(byte_symbols)
        known = set(vocab)
        for a, b in merges:
            if a + b not in known:
                known.add(a + b)
                vocab.append(a + b)
        clash = [t for t in specials if t in known]
        if clash:
            raise ValueError(f"special token {clash[0]!r} is also an ordinary token")
        vocab += specials
        self._setup(
            vocab,
            merges,
            pattern,
            {s: len(vocab) - len(specials) + k for k, s in enumerate(specials)},
        )

    # --- building from a vocabulary and merges, saving, loading ------------------------

    @classmethod
    def from_merges(
        cls,
        vocab,
        merges,
        *,
        pattern: str = PRETOKENIZE_PATTERN,
        special_tokens: Iterable[str] = (),
    ) -> BPETokenizer:
        """A tokenizer from a vocabulary and a merge list, as GPT-2's files give them.

        ``vocab`` is a list of token strings in id order, or a dict {token: id} whose ids are
        0..len-1 (``vocab.json``); tokens are written through :func:`bytes_to_unicode`.
        ``merges`` is the list of pairs ``(left, right)`` in rank order (``merges.txt``).
        A special token already in ``vocab`` keeps its id; any other gets the next free id.
        """
        if isinstance(vocab, dict):
            ids = sorted(vocab.values())
            if ids != list(range(len(vocab))):
                raise ValueError("vocab ids must be exactly 0..len(vocab)-1, each once")
            vocab = sorted(vocab, key=vocab.get)
        vocab = list(vocab)
        if len(set(vocab)) != len(vocab):
            raise ValueError("vocab lists a token twice")
        merges = [tuple(m) for m in merges]
        bad = [m for m in merges if len(m) != 2]
        if bad:
            raise ValueError(f"each merge must be a pair (left, right), got {bad[0]!r}")
        specials = _checked_specials(special_tokens)
        index = {t: i for i, t in enumerate(vocab)}
        missing = [c for c in bytes_to_unicode().values() if c not in index]
        if missing:
            raise ValueError(
                f"vocab lacks {len(missing)} of the 256 byte symbols, e.g. {missing[0]!r}"
            )
        for rank, (a, b) in enumerate(merges):
            if a not in index or b not in index or a + b not in index:
                raise ValueError(
                    f"merge {rank} ({a!r}, {b!r}) uses or makes a token that is not in vocab"
                )
        special_ids = {}
        for s in specials:
            if s not in index:
                index[s] = len(vocab)
                vocab.append(s)
            special_ids[s] = index[s]
        tokenizer = cls.__new__(cls)
        tokenizer._setup(vocab, merges, pattern, special_ids)
        return tokenizer

    @classmethod
    def from_files(
        cls,
        vocab_file,
        merges_file,
        *,
        pattern: str = GPT2_PATTERN,
        special_tokens: Iterable[str] = (ENDOFTEXT,),
    ) -> BPETokenizer:
        """Load GPT-2-style ``vocab.json`` ({token: id}) and ``merges.txt`` (one pair a line,
        after a ``#version`` header)."""
        vocab = json.loads(Path(vocab_file).read_text(encoding="utf-8"))
        lines = Path(merges_file).read_text(encoding="utf-8").splitlines()
        merges = [
            tuple(line.split(" ")) for line in lines if line and not line.startswith("#version")
        ]
        return cls.from_merges(vocab, merges, pattern=pattern, special_tokens=special_tokens)

    def save(self, path) -> Path:
        """Write the tokenizer to ``path`` as JSON (the format in the class docstring)."""
        data = {
            "format": self.FORMAT,
            "version": 1,
            "pattern": self.pattern,
            "vocab": self.vocab,
            "merges": [list(m) for m in self.merges],
            "special_tokens": self.special_tokens,
        }
        path = Path(path)
        path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path) -> BPETokenizer:
        """Read a tokenizer written by :meth:`save`."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("format") != cls.FORMAT:
            raise ValueError(f"{path} is not a saved BPETokenizer (no format {cls.FORMAT!r})")
        specials = data["special_tokens"]
        # The special tokens are in the saved vocab, so from_merges keeps their ids.
        tokenizer = cls.from_merges(
            data["vocab"], data["merges"], pattern=data["pattern"], special_tokens=list(specials)
        )
        if tokenizer.special_tokens != specials:
            raise ValueError(f"{path}: special token ids {specials} disagree with its vocab")
        return tokenizer

    def _setup(self, vocab: list[str], merges, pattern: str, special_tokens: dict[str, int]):
        self.pattern = pattern
        self.vocab = vocab
        self.merges = [tuple(m) for m in merges]
        self.ranks = {pair: r for r, pair in enumerate(self.merges)}
        self.special_tokens = dict(special_tokens)
        self.index = {t: i for i, t in enumerate(vocab) if i not in self.special_tokens.values()}
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {c: b for b, c in self.byte_encoder.items()}
        specials_by_id = {i: s for s, i in self.special_tokens.items()}
        to_latin1 = {ord(c): b for c, b in self.byte_decoder.items()}  # then 1 char = 1 byte
        self._bytes = []
        for i, token in enumerate(vocab):
            if i in specials_by_id:
                self._bytes.append(specials_by_id[i].encode("utf-8"))
                continue
            try:
                self._bytes.append(token.translate(to_latin1).encode("latin-1"))
            except UnicodeEncodeError:
                raise ValueError(
                    f"token {i} ({token!r}) is neither bytes written through "
                    "bytes_to_unicode nor a special token"
                ) from None
        self._splitter = _special_splitter(list(self.special_tokens))
        self._cache: dict[str, list[str]] = {}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    # --- encoding ----------------------------------------------------------------------

    def _bpe(self, word: str, trace: list | None = None) -> list[str]:
        if trace is None and word in self._cache:
            return self._cache[word]
        symbols = _symbols(word)
        while len(symbols) > 1:
            ranked = [(self.ranks[p], p) for p in zip(symbols, symbols[1:]) if p in self.ranks]
            if not ranked:
                break
            rank, pair = min(ranked)
            symbols = merge_pair(symbols, pair)
            if trace is not None:
                trace.append({"rank": rank, "pair": pair, "symbols": list(symbols)})
        if trace is None:
            if len(self._cache) >= 100_000:  # bounded, so streaming a huge file stays flat
                self._cache.clear()
            self._cache[word] = symbols
        return symbols

    def tokenize(self, text: str) -> list[str]:
        """The token strings of ``text`` (bytes shown through :func:`bytes_to_unicode`)."""
        if not isinstance(text, str):
            raise ValueError(f"expected a str, got {type(text).__name__}")
        out = []
        for part, is_special in _split_specials(text, self._splitter):
            if is_special:
                out.append(part)
            else:
                out += [s for word in pretokenize(part, self.pattern) for s in self._bpe(word)]
        return out

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise ValueError(f"expected a str, got {type(text).__name__}")
        ids: list[int] = []
        for part, is_special in _split_specials(text, self._splitter):
            if is_special:
                ids.append(self.special_tokens[part])
            else:
                for word in pretokenize(part, self.pattern):
                    ids += [self.index[s] for s in self._bpe(word)]
        return ids

    def encode_iterable(self, texts: Iterable[str]) -> Iterator[int]:
        """Yield the ids of the concatenation of ``texts`` (e.g. the lines of an open file).

        The same ids as ``encode("".join(texts))``, but lazily, holding back only the text
        that the next chunk could still change: the pre-tokenized pieces that end within
        ``_LOOKAHEAD`` characters of the end (``" th"`` may become ``" the"``, ``"'l"`` may
        become ``"'ll"``) and any tail that could start a special token. Memory stays bounded
        by the longest piece, not by the length of the text.
        """
        if isinstance(texts, str):
            raise ValueError(
                "encode_iterable takes an iterable of strings (for example an open "
                "file); for one string use encode"
            )
        longest = max((len(s) for s in self.special_tokens), default=0)
        carry = ""
        for chunk in texts:
            if not isinstance(chunk, str):
                raise ValueError(f"encode_iterable expected strings, got {type(chunk).__name__}")
            text = carry + chunk
            # A tail that is a proper prefix of a special token waits for the next chunk.
            hold = next(
                (
                    k
                    for k in range(min(longest - 1, len(text)), 0, -1)
                    if any(s.startswith(text[-k:]) for s in self.special_tokens)
                ),
                0,
            )
            cut = len(text) - hold
            parts, end = [], 0  # the parts that start before the held tail, and where they end
            for part, is_special in _split_specials(text, self._splitter):
                if end >= cut:
                    break
                parts.append((part, is_special))
                end += len(part)
            tail_pieces: list[str] = []  # settled pieces of ordinary text that runs to the end
            if parts and not parts[-1][1]:
                last = parts.pop()[0]
                end -= len(last)
                last = last[: cut - end]
                for match in _compile(self.pattern).finditer(last):
                    if match.end() > len(last) - _LOOKAHEAD:  # may still grow: keep for later
                        break
                    tail_pieces.append(match.group())
                end += sum(len(piece) for piece in tail_pieces)
            for part, is_special in parts:
                if is_special:
                    yield self.special_tokens[part]
                else:
                    for word in pretokenize(part, self.pattern):
                        yield from (self.index[s] for s in self._bpe(word))
            for word in tail_pieces:  # not re-split: cut out, a piece could split differently
                yield from (self.index[s] for s in self._bpe(word))
            carry = text[end:]
        yield from self.encode(carry)

    def encode_and_show_work(self, text: str) -> list[dict]:
        """Encode ``text`` and return every step: per word, its bytes and each merge applied.

        Each entry is ``{"word", "bytes", "merges": [{"rank", "pair", "symbols"}], "tokens",
        "ids"}``, where ``symbols`` is the word after that merge (like minGPT's
        ``encode_and_show_work``). A special token is one entry with no bytes and no merges.
        """
        parts = []
        for part, is_special in _split_specials(text, self._splitter):
            if is_special:
                parts.append(
                    {
                        "word": part,
                        "bytes": [],
                        "merges": [],
                        "tokens": [part],
                        "ids": [self.special_tokens[part]],
                    }
                )
                continue
            for word in pretokenize(part, self.pattern):
                trace: list = []
                tokens = self._bpe(word, trace)
                parts.append(
                    {
                        "word": word,
                        "bytes": _symbols(word),
                        "merges": trace,
                        "tokens": tokens,
                        "ids": [self.index[s] for s in tokens],
                    }
                )
        return parts

    def decode(self, ids) -> str:
        ids = _checked_ids(ids, self.vocab_size)
        data = b"".join(self._bytes[i] for i in ids)
        # A slice of ids may cut a multi-byte character in two: show it as U+FFFD, like GPT-2.
        return data.decode("utf-8", errors="replace")

    def __repr__(self) -> str:
        return (
            f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)}, "
            f"special_tokens={list(self.special_tokens)})"
        )


def _symbols(word: str) -> list[str]:
    """The bytes of ``word`` in UTF-8, each shown as its :func:`bytes_to_unicode` character."""
    table = bytes_to_unicode()
    return [table[b] for b in word.encode("utf-8")]


def _special_splitter(specials: list[str]):
    """A pattern matching any special token, the longest first where several start at once."""
    if not specials:
        return None
    return regex.compile("|".join(regex.escape(s) for s in sorted(specials, key=len, reverse=True)))


def _split_specials(text: str, splitter) -> Iterator[tuple[str, bool]]:
    """``text`` as (piece, is_special) pairs: ordinary stretches and whole special tokens."""
    if splitter is None:
        if text:
            yield text, False
        return
    start = 0
    for match in splitter.finditer(text):
        if match.start() > start:
            yield text[start : match.start()], False
        yield match.group(), True
        start = match.end()
    if start < len(text):
        yield text[start:], False


def gpt2_tokenizer() -> BPETokenizer:
    """GPT-2's tokenizer (Radford et al., 2019) as a :class:`BPETokenizer`.

    GPT-2's own ``vocab.json`` and ``merges.txt`` (50,257 tokens, 50,000 merges), fetched once
    by :func:`llmcourse.offline.gpt2_tokenizer_files`, with GPT-2's pre-tokenization pattern
    and ``<|endoftext|>`` (id 50256) as its special token: the ids of Hugging Face's
    ``GPT2TokenizerFast`` and tiktoken's ``gpt2`` encoding.
    """
    from llmcourse.offline import gpt2_tokenizer_files

    folder = gpt2_tokenizer_files()
    return BPETokenizer.from_files(folder / "vocab.json", folder / "merges.txt")
