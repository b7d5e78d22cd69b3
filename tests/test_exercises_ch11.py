"""The chapter 11 exercise checks: model answers pass, plausible wrong answers get a hint."""

import math

import numpy as np
import pytest

from llmcourse.exercises import ExerciseError, NotYetAnswered
from llmcourse.exercises.ch11 import check_chinchilla, check_fit_power_law, check_gpt2_param_count


# --- GPT-2's parameter count ----------------------------------------------------------------

def gpt2_params(n_layer, d_model, vocab_size, n_positions):
    embeddings = vocab_size * d_model + n_positions * d_model
    attention = 3 * d_model * d_model + 3 * d_model + d_model * d_model + d_model
    mlp = 4 * d_model * d_model + 4 * d_model + 4 * d_model * d_model + d_model
    block = attention + mlp + 4 * d_model
    return embeddings + n_layer * block + 2 * d_model


def test_gpt2_params_passes(capsys):
    assert check_gpt2_param_count(gpt2_params)
    assert "all 2 checks passed" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda L, d, V, P: gpt2_params(L, d, V, P) - P * d, "position embeddings"),
    (lambda L, d, V, P: gpt2_params(L, d, V, P) - L * 9 * d, "biases"),
    (lambda L, d, V, P: gpt2_params(L, d, V, P) - 2 * d, "final LayerNorm"),
    (lambda L, d, V, P: gpt2_params(L, d, V, P) - L * 4 * d - 2 * d, "forgot the LayerNorms"),
    (lambda L, d, V, P: gpt2_params(L, d, V, P) - L * 4 * d, "inside each block"),
    (lambda L, d, V, P: gpt2_params(L, d, V, P) + V * d, "ties it to the token embedding"),
    (lambda L, d, V, P: gpt2_params(L, d, V, P) - L * (8 * d * d + 5 * d), "MLP is missing"),
    (lambda L, d, V, P: 12 * L * d * d, "wrong total"),
    (lambda L, d, V, P: "many", "return a number"),
])
def test_gpt2_params_wrong_answers(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_gpt2_param_count(wrong)


def test_gpt2_params_float_rejected():
    with pytest.raises(ExerciseError, match="return an int"):
        check_gpt2_param_count(lambda L, d, V, P: float(gpt2_params(L, d, V, P)))


def test_gpt2_params_not_answered():
    with pytest.raises(NotYetAnswered):
        check_gpt2_param_count(None)


# --- fitting a power law --------------------------------------------------------------------

def fit(x, y):
    slope, intercept = np.polyfit(np.log(x), np.log(y), 1)
    return math.exp(intercept), slope


def test_fit_passes(capsys):
    assert check_fit_power_law(fit)
    assert "all 3 checks passed" in capsys.readouterr().out


def test_fit_log10_passes():
    def fit10(x, y):
        slope, intercept = np.polyfit(np.log10(x), np.log10(y), 1)
        return 10 ** intercept, slope

    assert check_fit_power_law(fit10)


@pytest.mark.parametrize("wrong, hint", [
    (lambda x, y: fit(x, y)[1], "return a pair"),
    (lambda x, y: (math.exp(np.polyfit(np.log(y), np.log(x), 1)[1]),
                   np.polyfit(np.log(y), np.log(x), 1)[0]), "inverted"),
    (lambda x, y: tuple(np.polyfit(x, y, 1)[::-1]), "straight line to \\(log x, log y\\)"),
    (lambda x, y: (np.polyfit(np.log(x), np.log(y), 1)[1], fit(x, y)[1]), "exponential of the"),
    (lambda x, y: (np.polyfit(np.log10(x), np.log10(y), 1)[1], fit(x, y)[1]),
     "exponential of the"),
    (lambda x, y: (y[0] / x[0] ** ((math.log(y[-1]) - math.log(y[0]))
                                   / (math.log(x[-1]) - math.log(x[0]))),
                   (math.log(y[-1]) - math.log(y[0])) / (math.log(x[-1]) - math.log(x[0]))),
     "least-squares slope"),
])
def test_fit_wrong_answers(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_fit_power_law(wrong)


def test_fit_not_answered():
    with pytest.raises(NotYetAnswered):
        check_fit_power_law(None)


# --- Chinchilla-optimal size ----------------------------------------------------------------

def chinchilla(compute):
    n = math.sqrt(compute / 120)
    return n, 20 * n


def test_chinchilla_passes(capsys):
    assert check_chinchilla(chinchilla)
    assert "all 3 checks passed" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda c: chinchilla(c)[0], "return a pair"),
    (lambda c: chinchilla(c)[::-1], "swapped"),
    (lambda c: (math.sqrt(c / 20), 20 * math.sqrt(c / 20)), "left out the 6"),
    (lambda c: (math.sqrt(c / 6), math.sqrt(c / 6)), "left out the 20"),
    (lambda c: (math.sqrt(c / 120), math.sqrt(c / 120) * 10), "20 tokens per parameter"),
    (lambda c: (c / 120 / 1e12, 20 * c / 120 / 1e12), "N = sqrt"),
])
def test_chinchilla_wrong_answers(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_chinchilla(wrong)


def test_chinchilla_not_answered():
    with pytest.raises(NotYetAnswered):
        check_chinchilla(None)
