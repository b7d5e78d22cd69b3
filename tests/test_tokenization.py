"""Tokenizers from scratch: exact round trips, explicit unknowns, and our BPE against the
``tokenizers`` library's BPE trained on the same text with the same settings."""

import itertools
import json
import random
import re
import tracemalloc
import unicodedata

import pytest
import regex
from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

from llmcourse.offline import gpt2_tokenizer_files, shakespeare_text
from llmcourse.tokenization import (
    ENDOFTEXT,
    GPT2_PATTERN,
    PRETOKENIZE_PATTERN,
    BPETokenizer,
    CharTokenizer,
    WordTokenizer,
    bytes_to_unicode,
    gpt2_tokenizer,
    merge_pair,
    pretokenize,
)

TEXT = (
    "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n"
    "The slings and arrows of outrageous fortune,\nOr to take arms against a sea of troubles\n"
    "And by opposing end them. To die, to sleep;  no more; and by a sleep to say we end\n"
) * 3


def hf_bpe(text, num_merges):
    """The same byte-level BPE, trained by Hugging Face ``tokenizers``."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=256 + num_merges,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator([text], trainer=trainer)
    merges = json.loads(tok.to_str())["model"]["merges"]
    return tok, [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in merges]


# --- characters -----------------------------------------------------------------------


def test_char_round_trip_and_unknown():
    tok = CharTokenizer("hello world")
    assert tok.vocab_size == 8
    assert tok.decode(tok.encode("low hello")) == "low hello"
    with pytest.raises(ValueError, match="character 'z' is not in the tokenizer's vocabulary"):
        tok.encode("zebra")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([8])


# --- pre-tokenization and words -------------------------------------------------------


def test_pretokenize_covers_every_character():
    text = "  Hello,  world!\n\nIt's 3 o'clock...\t ok "
    pieces = pretokenize(text)
    assert "".join(pieces) == text
    assert pieces[:5] == [" ", " Hello", ",", " ", " world"]  # a space run leaves one space
    assert pieces[-3:] == ["\t", " ok", " "] and "..." in pieces
    with pytest.raises(ValueError, match="expected a str"):
        pretokenize(b"bytes")


def test_word_tokenizer_round_trip_and_unknown_fallback():
    tok = WordTokenizer(TEXT)
    assert tok.decode(tok.encode(TEXT)) == TEXT
    assert tok.encode(" to be") == [tok.index[" to"], tok.index[" be"]]
    ids = tok.encode("To be, or not to flee")
    assert ids[-1] == 0 and tok.count_unknown("To be, or not to flee") == 1
    assert tok.decode(ids) == "To be, or not to<unk>"


def test_word_tokenizer_max_vocab_keeps_most_frequent():
    tok = WordTokenizer("b b b b a a c", max_vocab=3)
    assert tok.words == ["<unk>", " b", " a"]  # "b" (no space) and " c" once each: dropped
    assert tok.encode("b a c") == [0, 2, 0]
    with pytest.raises(ValueError, match="max_vocab must be an int >= 2"):
        WordTokenizer("a b", max_vocab=1)
    with pytest.raises(ValueError, match="needs a non-empty training string"):
        WordTokenizer("")
    with pytest.raises(ValueError, match=r"ids \[3\] are outside the vocabulary"):
        tok.decode([3])


# --- byte-pair encoding ---------------------------------------------------------------


def test_bytes_to_unicode_is_gpt2_table():
    table = bytes_to_unicode()
    assert len(set(table.values())) == 256
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[ord("a")] == "a"


def test_merge_pair_is_left_to_right_without_overlap():
    assert merge_pair(list("aaa"), ("a", "a")) == ["aa", "a"]
    assert merge_pair(list("aaaa"), ("a", "a")) == ["aa", "aa"]
    assert merge_pair(["t", "h", "e", "t", "h"], ("t", "h")) == ["th", "e", "th"]
    assert merge_pair(["a", "b"], ("b", "a")) == ["a", "b"]


def test_bpe_hand_worked_example():
    # Words "low" x5 (no space: start of text) ... pair counts decide the first merges.
    bpe = BPETokenizer("low low low lower lowest", num_merges=3)
    # ('l','o') and ('o','w') occur 5 times each and ('Ġ','l') 4 times; the tie between
    # ('l','o') and ('o','w') goes to the smaller ids: 'l' < 'o'.
    assert bpe.merges == [("l", "o"), ("lo", "w"), ("Ġ", "low")]
    assert bpe.tokenize(" lowest") == ["Ġlow", "e", "s", "t"]
    assert bpe.vocab_size == 259


def test_bpe_round_trips_any_text():
    bpe = BPETokenizer(TEXT, num_merges=60)
    for text in [TEXT, "Zebra ünïcödé — 日本語 🙂\r\n\t", "", " "]:
        assert bpe.decode(bpe.encode(text)) == text
    assert len(bpe.encode(TEXT)) < len(TEXT.encode("utf-8")) / 2  # merges compress the text


def test_bpe_show_your_work_matches_encode():
    bpe = BPETokenizer(TEXT, num_merges=60)
    work = bpe.encode_and_show_work(" question, whether")
    assert [part["word"] for part in work] == [" question", ",", " whether"]
    assert sum((part["ids"] for part in work), []) == bpe.encode(" question, whether")
    first = work[0]
    assert first["bytes"] == list("Ġquestion")
    assert [m["rank"] for m in first["merges"]] == sorted(m["rank"] for m in first["merges"])
    assert first["merges"][-1]["symbols"] == first["tokens"]
    for step in first["merges"]:
        assert "".join(step["symbols"]) == "Ġquestion"


@pytest.mark.parametrize("num_merges", [1, 25, 150])
def test_bpe_equals_huggingface_tokenizers(num_merges):
    ours = BPETokenizer(TEXT, num_merges=num_merges)
    theirs, their_merges = hf_bpe(TEXT, num_merges)
    assert ours.merges == their_merges
    assert ours.vocab == sorted(theirs.get_vocab(), key=theirs.get_vocab().get)
    probe = "Whether 'tis nobler to sleep, perchance to dream: zzz!"
    assert ours.encode(probe) == theirs.encode(probe).ids


def test_bpe_stops_when_nothing_left_to_merge():
    bpe = BPETokenizer("ab", num_merges=10)
    assert bpe.merges == [("a", "b")]
    assert bpe.encode("abab") == [bpe.index["ab"], bpe.index["ab"]]


def test_bpe_rebuilt_symbol_gets_one_id():
    bpe = BPETokenizer("abc abc ab bc", num_merges=0)
    assert bpe.vocab_size == 256
    bpe = BPETokenizer("xab xab ab bc bc abc", num_merges=20)
    assert len(bpe.vocab) == len(set(bpe.vocab)) == len(bpe.index)


def test_bpe_validation():
    with pytest.raises(ValueError, match="num_merges must be an int >= 0"):
        BPETokenizer("abc", num_merges=-1)
    with pytest.raises(ValueError, match="needs a non-empty training string"):
        BPETokenizer("", num_merges=3)
    bpe = BPETokenizer("abc", num_merges=1)
    with pytest.raises(ValueError, match=r"ids \[257\] are outside the vocabulary \(0..256\)"):
        bpe.decode([257])


# --- Unicode: the same pieces as tokenizers' Oniguruma (issue 10's bug) ---------------------


def _tokenizers_pieces(pattern, text):
    split = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
    return [piece for piece, _ in split.pre_tokenize_str(text)]


@pytest.mark.parametrize(
    "text",
    [
        unicodedata.normalize("NFD", "café naïve Ångström"),  # combining marks after the letter
        "x\u0301\u0302y a\u20dd",  # stacked marks, an enclosing mark
        "snake_case a‿b c⁀d e﹏f",  # connector punctuation (\p{Pc})
        "x² ½ Ⓐ zw\u200dj",  # numbers that are not digits; So; a join control
        "\x1c\x1d\x1e\x1f a",  # separators Python's str.isspace() calls whitespace
    ],
)
def test_pretokenize_matches_tokenizers_where_re_did_not(text):
    assert pretokenize(text) == _tokenizers_pieces(PRETOKENIZE_PATTERN, text)
    with_w = r" ?\w+| ?[^\w\s]+|\s+(?!\S)|\s+"  # the pattern before, written with \w
    # Each case is one that \w splits wrongly, in Python's re or in the regex module.
    assert pretokenize(text) not in (
        [re.findall(with_w, text)],
        [regex.findall(with_w, text)],
    ) or re.findall(with_w, text) != regex.findall(with_w, text)


def test_pretokenize_matches_tokenizers_on_every_seventh_code_point():
    # Every seventh character that Python's Unicode tables assign (both engines know them), in
    # word, number and quote positions; both patterns. A slow sweep, kept to one pass.
    chars = [
        chr(c)
        for c in range(1, 0x110000, 7)
        if not 0xD800 <= c < 0xE000 and unicodedata.category(chr(c)) != "Cn"
    ]
    text = "".join(f"a{ch}b {ch}x{ch}{ch} 1{ch}'{ch}\n" for ch in chars)
    assert pretokenize(text) == _tokenizers_pieces(PRETOKENIZE_PATTERN, text)
    table = bytes_to_unicode()
    ours = ["".join(table[b] for b in p.encode("utf-8")) for p in pretokenize(text, GPT2_PATTERN)]
    level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    assert ours == [piece for piece, _ in level.pre_tokenize_str(text)]


# --- GPT-2's tokenizer, from GPT-2's own files ----------------------------------------------


@pytest.fixture(scope="module")
def gpt2():
    return gpt2_tokenizer()


@pytest.fixture(scope="module")
def hf_gpt2():
    from transformers import GPT2TokenizerFast

    return GPT2TokenizerFast.from_pretrained(gpt2_tokenizer_files())


@pytest.fixture(scope="module")
def tiktoken_gpt2():
    tiktoken = pytest.importorskip("tiktoken")
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks

    folder = gpt2_tokenizer_files()
    ranks = data_gym_to_mergeable_bpe_ranks(str(folder / "merges.txt"), str(folder / "vocab.json"))
    return tiktoken.Encoding(
        "gpt2-offline",
        pat_str=GPT2_PATTERN,
        mergeable_ranks=ranks,
        special_tokens={ENDOFTEXT: 50256},
    )


ADVERSARIAL = [
    "",
    " ",
    "don't I'll we'VE 'tis ''' 's",
    "DON'T",
    "  \n\n   x\t\t y  ",
    "\r\n\r\n",
    "1234567890 3.14159 1,000,000",
    "🙂🙂 👩‍👩‍👧 日本語 한국어 العربية",
    "\x00\x01\x7f\u200b",
    unicodedata.normalize("NFC", "Ångström café naïve"),
    unicodedata.normalize("NFD", "Ångström café naïve"),
    "Hello<|endoftext|>World",
    "<|endoftext|><|endoftext|>",
    "<|endoftext",
    "<|endoftext|",
    "a<|endoftext|> b",
    "x" * 3000,
    " " * 500 + "y",
    "Ġ Ċ ĠĊ",
    "<|endoftext|>" * 3 + "\n",
]


def test_gpt2_tokenizer_shape(gpt2):
    assert gpt2.vocab_size == 50257 and len(gpt2.merges) == 50000
    assert gpt2.special_tokens == {ENDOFTEXT: 50256}
    assert gpt2.encode("don't") == [9099, 470] and pretokenize("don't", GPT2_PATTERN) == [
        "don",
        "'t",
    ]


def test_gpt2_equals_huggingface_and_tiktoken(gpt2, hf_gpt2, tiktoken_gpt2):
    for text in ADVERSARIAL:
        ids = gpt2.encode(text)
        assert ids == hf_gpt2(text)["input_ids"], text
        assert ids == tiktoken_gpt2.encode(text, allowed_special="all"), text
        assert gpt2.decode(ids) == text


def test_gpt2_equals_huggingface_on_the_validation_play(gpt2, hf_gpt2, tiktoken_gpt2):
    text = shakespeare_text("validation")
    ids = gpt2.encode(text)
    assert ids == hf_gpt2(text)["input_ids"]
    assert ids == tiktoken_gpt2.encode(text, allowed_special="all")
    assert gpt2.decode(ids) == text


# --- special tokens -------------------------------------------------------------------------


def test_special_tokens_stay_whole_longest_first(gpt2, hf_gpt2):
    double = ENDOFTEXT * 2
    tok = BPETokenizer.from_merges(
        gpt2.vocab, gpt2.merges, pattern=GPT2_PATTERN, special_tokens=[ENDOFTEXT, double]
    )
    assert tok.special_tokens == {ENDOFTEXT: 50256, double: 50257}
    text = "a" + ENDOFTEXT * 3 + " b"
    assert tok.encode(text) == [64, 50257, 50256, 275]
    assert tok.tokenize(text) == ["a", double, ENDOFTEXT, "Ġb"]
    assert tok.decode(tok.encode(text)) == text
    # Without the special token, the same text is cut into ordinary pieces.
    plain = BPETokenizer.from_merges(gpt2.vocab[:50256], gpt2.merges, pattern=GPT2_PATTERN)
    assert ENDOFTEXT in plain.decode(plain.encode(text)) and 50256 not in plain.encode(text)
    assert len(plain.encode(ENDOFTEXT)) > 1


def test_training_never_merges_across_a_special_token():
    stories = ["once upon a time.", "upon the hill.", "a time to go."]
    joined = ENDOFTEXT.join(stories * 20)
    with_special = BPETokenizer(joined, 60, special_tokens=[ENDOFTEXT])
    # The pairs counted are exactly those of the stories, each on its own.
    separate = BPETokenizer("\n".join(stories * 20).replace("\n", ""), 0)
    assert all("<" not in a + b and "|" not in a + b for a, b in with_special.merges)
    assert (".", "<") not in with_special.merges and ("<", "|") not in with_special.merges
    plain = BPETokenizer(joined, 60)
    assert any("|" in a + b for a, b in plain.merges)  # without it, the marker gets merged
    assert with_special.special_tokens == {ENDOFTEXT: with_special.vocab_size - 1}
    assert with_special.encode(ENDOFTEXT) == [with_special.vocab_size - 1]
    assert with_special.decode(with_special.encode(joined)) == joined
    assert separate.vocab_size == 256
    with pytest.raises(ValueError, match="special token 'a' is also an ordinary token"):
        BPETokenizer("abc", 1, special_tokens=["a"])
    with pytest.raises(ValueError, match="list of strings, not one string"):
        BPETokenizer("abc", 1, special_tokens=ENDOFTEXT)


def test_training_with_special_tokens_equals_tokenizers_on_the_pieces():
    # tokenizers' trainer sees the documents as separate texts: the same pair counts.
    docs = [TEXT[:200], TEXT[200:420], TEXT[420:]]
    ours = BPETokenizer(ENDOFTEXT.join(docs), 40, special_tokens=[ENDOFTEXT])
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=256 + 40,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(docs, trainer=trainer)
    theirs = [tuple(m) for m in json.loads(tok.to_str())["model"]["merges"]]
    assert ours.merges == theirs


# --- tokenizers as objects: build, save, load, stream ---------------------------------------


def test_from_merges_save_load_round_trip(tmp_path):
    trained = BPETokenizer(TEXT, 50, special_tokens=[ENDOFTEXT, "<|pad|>"])
    rebuilt = BPETokenizer.from_merges(
        trained.vocab, trained.merges, special_tokens=list(trained.special_tokens)
    )
    loaded = BPETokenizer.load(trained.save(tmp_path / "tok.json"))
    probe = TEXT[:300] + ENDOFTEXT + "<|pad|> zebra ünïcödé"
    for tok in (rebuilt, loaded):
        assert tok.vocab == trained.vocab and tok.merges == trained.merges
        assert tok.special_tokens == trained.special_tokens
        assert tok.pattern == trained.pattern
        assert tok.encode(probe) == trained.encode(probe)
    data = json.loads((tmp_path / "tok.json").read_text(encoding="utf-8"))
    assert data["format"] == "llmcourse-bpe" and data["vocab"][:1] == ["!"]


def test_from_merges_and_load_errors(tmp_path):
    vocab = sorted(bytes_to_unicode().values())
    with pytest.raises(ValueError, match="lacks 1 of the 256 byte symbols"):
        BPETokenizer.from_merges(vocab[1:], [])
    with pytest.raises(ValueError, match=r"merge 0 \('a', 'b'\) uses or makes a token"):
        BPETokenizer.from_merges(vocab, [("a", "b")])
    with pytest.raises(ValueError, match="ids must be exactly 0..len"):
        BPETokenizer.from_merges({t: i + 1 for i, t in enumerate(vocab)}, [])
    with pytest.raises(ValueError, match="neither bytes written through"):
        BPETokenizer.from_merges(vocab + ["日本"], [])
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ValueError, match="is not a saved BPETokenizer"):
        BPETokenizer.load(tmp_path / "x.json")


def _random_chunks(text, rng):
    cuts = sorted(rng.sample(range(1, len(text)), k=min(len(text) - 1, len(text) // 7)))
    return [text[a:b] for a, b in zip([0] + cuts, cuts + [len(text)])]


@pytest.mark.parametrize("seed", range(4))
def test_encode_iterable_equals_encode_however_the_text_is_cut(gpt2, seed):
    rng = random.Random(seed)
    text = "".join(
        rng.choice(ADVERSARIAL[2:14] + [ENDOFTEXT, "<|end", " \n", TEXT[:80]]) for _ in range(60)
    )
    chunks = _random_chunks(text, rng)
    assert list(gpt2.encode_iterable(chunks)) == gpt2.encode(text)
    simple = BPETokenizer(TEXT, 30, special_tokens=[ENDOFTEXT, ENDOFTEXT * 2])
    assert list(simple.encode_iterable(chunks)) == simple.encode(text)
    assert list(simple.encode_iterable(iter(text))) == simple.encode(text)  # one char a chunk
    with pytest.raises(ValueError, match="iterable of strings"):
        list(simple.encode_iterable(text))


def test_encode_iterable_line_by_line_equals_encode(gpt2):
    # A settled piece is emitted as cut, never re-split: ".]\n\n" alone would split as
    # ".]", "\n\n", but before "COUNTESS" the blank line is "\n", "\n".
    chunks = ["in black.]\n", "\n", "COUNTESS.\n"]
    assert list(gpt2.encode_iterable(chunks)) == gpt2.encode("".join(chunks))
    text = shakespeare_text("validation")[:30_000]
    assert list(gpt2.encode_iterable(text.splitlines(keepends=True))) == gpt2.encode(text)


def test_encode_iterable_streams_in_bounded_memory(tmp_path):
    tok = BPETokenizer(TEXT, 60)
    path = tmp_path / "big.txt"
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(2000):  # 1.5 MB on disk
            f.write(TEXT)

    def peak_while_streaming(num_lines):
        tracemalloc.start()
        with open(path, encoding="utf-8") as f:
            count = sum(1 for _ in tok.encode_iterable(itertools.islice(f, num_lines)))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return count, peak

    peak_while_streaming(100)  # warm the word cache
    small_count, small_peak = peak_while_streaming(300)
    big_count, big_peak = peak_while_streaming(3000)
    assert big_count > 9 * small_count
    assert big_peak < 100_000 and big_peak < 2 * small_peak + 20_000  # flat, not growing
    assert path.stat().st_size > 10 * big_peak
