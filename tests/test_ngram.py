"""The n-gram models against hand-worked examples and a direct dictionary implementation."""

import math
from collections import Counter

import numpy as np
import pytest

from llmcourse.ngram import AddKNGram, WittenBellNGram, perplexity
from llmcourse.tokenization import CharTokenizer

TEXT = "the cat sat on the mat. the dog sat on the log."


def witten_bell_reference(text, order, context, w):
    """Witten-Bell probability written directly from the formula, with dictionaries."""
    vocab = sorted(set(text))
    if order == 0:
        return 1 / len(vocab)
    lower = witten_bell_reference(text, order - 1, context, w)
    h = context[len(context) - (order - 1) :] if order > 1 else ""
    if len(h) < order - 1:
        return lower
    grams = Counter(text[i : i + order] for i in range(len(text) - order + 1))
    c_hw = grams[h + w]
    c_h = sum(c for g, c in grams.items() if g[:-1] == h)
    t_h = len({g[-1] for g in grams if g[:-1] == h})
    return lower if c_h == 0 else (c_hw + t_h * lower) / (c_h + t_h)


def test_perplexity_of_uniform_model_is_vocabulary_size():
    assert perplexity(np.log(np.full(10, 1 / 7))) == pytest.approx(7)


@pytest.mark.parametrize("bad, message", [([], "non-empty"), ([[0.0]], "1-D"), ([0.5], "<= 0")])
def test_perplexity_rejects_bad_input(bad, message):
    with pytest.raises(ValueError, match=message):
        perplexity(bad)


def test_add_k_bigram_hand_worked():
    model = AddKNGram(2, k=1.0).fit("abracadabra")
    p = dict(zip(model.tokenizer.chars, model.next_distribution("a")))
    assert p["b"] == pytest.approx((2 + 1) / (4 + 5))  # c(ab) = 2, c(a.) = 4, V = 5
    assert p["a"] == pytest.approx(1 / 9)


@pytest.mark.parametrize("order", [1, 2, 3, 5])
@pytest.mark.parametrize("cls", [AddKNGram, WittenBellNGram])
def test_distributions_sum_to_one(cls, order):
    model = cls(order).fit(TEXT)
    for context in ["", "t", "the ", "on th", "dog"]:
        assert model.next_distribution(context).sum() == pytest.approx(1, abs=1e-12)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_witten_bell_matches_direct_formula(order):
    model = WittenBellNGram(order).fit(TEXT)
    for context in ["the c", "on t", " ", "g."]:
        got = model.next_distribution(context)
        want = [witten_bell_reference(TEXT, order, context, w) for w in model.tokenizer.chars]
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_log_probs_equal_next_distribution_along_the_text():
    model = WittenBellNGram(3).fit(TEXT)
    text = "the cat sat on the log."
    scored = model.log_probs(text)
    for t in range(len(text)):
        p = model.next_distribution(text[:t])[model.tokenizer.index[text[t]]]
        assert scored[t] == pytest.approx(math.log(p))


def test_higher_order_fits_training_text_better():
    ppl = [WittenBellNGram(n).fit(TEXT).perplexity(TEXT) for n in (1, 2, 3)]
    assert ppl[0] > ppl[1] > ppl[2]


def test_sampling_is_reproducible_and_in_vocabulary():
    model = AddKNGram(3, k=0.5).fit(TEXT)
    a, b = model.sample(50, prompt="the", seed=3), model.sample(50, prompt="the", seed=3)
    assert a == b and len(a) == 50 and set(a) <= set(TEXT)
    assert model.sample(50, prompt="the", seed=4) != a


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="order must be an int >= 1"):
        WittenBellNGram(0)
    with pytest.raises(ValueError, match="k must be > 0"):
        AddKNGram(2, k=0)
    with pytest.raises(RuntimeError, match="fit the model"):
        AddKNGram(2).perplexity("abc")
    model = AddKNGram(2).fit("abc", CharTokenizer("abc"))
    with pytest.raises(ValueError, match="'z' is not in the tokenizer's vocabulary"):
        model.perplexity("abz")
