"""Tokenizers from scratch: exact round trips, explicit unknowns, and our BPE against the
``tokenizers`` library's BPE trained on the same text with the same settings."""

import json

import pytest
from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

from llmcourse.tokenization import (PRETOKENIZE_PATTERN, BPETokenizer, CharTokenizer,
                                    WordTokenizer, bytes_to_unicode, merge_pair, pretokenize)

TEXT = ("To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n"
        "The slings and arrows of outrageous fortune,\nOr to take arms against a sea of troubles\n"
        "And by opposing end them. To die, to sleep;  no more; and by a sleep to say we end\n") * 3


def hf_bpe(text, num_merges):
    """The same byte-level BPE, trained by Hugging Face ``tokenizers``."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    trainer = trainers.BpeTrainer(vocab_size=256 + num_merges, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
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
    with pytest.raises(ValueError, match="num_merges must be a non-negative int"):
        BPETokenizer("abc", num_merges=-1)
    with pytest.raises(ValueError, match="needs a non-empty training string"):
        BPETokenizer("", num_merges=3)
    bpe = BPETokenizer("abc", num_merges=1)
    with pytest.raises(ValueError, match=r"ids \[257\] are outside the vocabulary \(0..256\)"):
        bpe.decode([257])
