"""The chapter 11 exercise checks: model answers pass, plausible wrong answers get a hint."""

import math

import pytest

from llmcourse.exercises import ExerciseError, NotYetAnswered
from llmcourse.exercises.ch11 import check_chinchilla, check_gpt2_param_count, check_params_for_loss

# --- GPT-2's parameter count ----------------------------------------------------------------


def gpt2_params(n_layer, d_model, vocab_size, n_positions):
    embeddings = vocab_size * d_model + n_positions * d_model
    attention = 3 * d_model * d_model + 3 * d_model + d_model * d_model + d_model
    mlp = 4 * d_model * d_model + 4 * d_model + 4 * d_model * d_model + d_model
    block = attention + mlp + 4 * d_model
    return embeddings + n_layer * block + 2 * d_model


def test_gpt2_params_passes(capsys):
    check_gpt2_param_count(gpt2_params)  # raises if the answer is rejected
    assert "all 2 checks passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda L, d, V, P: gpt2_params(L, d, V, P) - P * d, "position embeddings"),
        (lambda L, d, V, P: gpt2_params(L, d, V, P) - L * 9 * d, "biases"),
        (lambda L, d, V, P: gpt2_params(L, d, V, P) - 2 * d, "final LayerNorm"),
        (lambda L, d, V, P: gpt2_params(L, d, V, P) - L * 4 * d - 2 * d, "forgot the LayerNorms"),
        (lambda L, d, V, P: gpt2_params(L, d, V, P) - L * 4 * d, "inside each block"),
        (lambda L, d, V, P: gpt2_params(L, d, V, P) + V * d, "ties it to the token embedding"),
        (lambda L, d, V, P: gpt2_params(L, d, V, P) - L * (8 * d * d + 5 * d), "MLP is missing"),
        (lambda L, d, V, P: 12 * L * d * d, "wrong total"),
        (lambda L, d, V, P: "many", "return a number"),
    ],
)
def test_gpt2_params_wrong_answers(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_gpt2_param_count(wrong)


def test_gpt2_params_float_rejected():
    with pytest.raises(ExerciseError, match="return an int"):
        check_gpt2_param_count(lambda L, d, V, P: float(gpt2_params(L, d, V, P)))


def test_gpt2_params_not_answered():
    with pytest.raises(NotYetAnswered):
        check_gpt2_param_count(None)


# --- parameters for a target loss -----------------------------------------------------------


def params_for_loss(coefficient, exponent, loss):
    return (loss / coefficient) ** (1 / exponent)


def test_params_for_loss_passes(capsys):
    check_params_for_loss(params_for_loss)  # raises if the answer is rejected
    assert "all 3 checks passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda c, a, loss: (c / loss) ** (1 / a), "upside down"),
        (lambda c, a, loss: c * loss**a, "applies the law to the loss"),
        (lambda c, a, loss: (loss / c) ** a, "power 1 / exponent, not exponent"),
        (lambda c, a, loss: 2 * (loss / c) ** (1 / a), "for loss = 10 / sqrt\\(N\\)"),
        (lambda c, a, loss: "a lot", "expected a number"),
    ],
)
def test_params_for_loss_wrong_answers(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_params_for_loss(wrong)


def test_params_for_loss_not_monotone_rejected():
    def clamped(c, a, loss):  # right on the two cases it is tried on first, then constant
        return params_for_loss(c, a, loss) if loss in (1.0, 2.0) else 1.0

    with pytest.raises(ExerciseError, match="lower loss must need more parameters"):
        check_params_for_loss(clamped)


def test_params_for_loss_not_answered():
    with pytest.raises(NotYetAnswered):
        check_params_for_loss(None)


# --- Chinchilla-optimal size ----------------------------------------------------------------


def chinchilla(compute):
    n = math.sqrt(compute / 120)
    return n, 20 * n


def test_chinchilla_passes(capsys):
    check_chinchilla(chinchilla)  # raises if the answer is rejected
    assert "all 3 checks passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda c: chinchilla(c)[0], "return a pair"),
        (lambda c: chinchilla(c)[::-1], "swapped"),
        (lambda c: (math.sqrt(c / 20), 20 * math.sqrt(c / 20)), "left out the 6"),
        (lambda c: (math.sqrt(c / 6), math.sqrt(c / 6)), "left out the 20"),
        (lambda c: (math.sqrt(c / 120), math.sqrt(c / 120) * 10), "20 tokens per parameter"),
        (lambda c: (c / 120 / 1e12, 20 * c / 120 / 1e12), "N = sqrt"),
    ],
)
def test_chinchilla_wrong_answers(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_chinchilla(wrong)


def test_chinchilla_not_answered():
    with pytest.raises(NotYetAnswered):
        check_chinchilla(None)
