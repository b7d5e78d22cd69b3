"""The chapter 11 exercise checks: model answers pass, plausible wrong answers get a hint."""

import math

import pytest

from llmcourse.exercises import ExerciseError, NotYetAnswered
from llmcourse.exercises.ch11 import (
    check_budget_for_ratio,
    check_chinchilla,
    check_gpt2_param_count,
    check_params_for_loss,
    check_samples_needed,
)

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


# --- samples for a tight interval -----------------------------------------------------------


def wilson(k, n, z=1.96):
    rate = k / n
    centre = (rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def samples_needed(rate, half_width):
    n = 1
    while True:
        lower, upper = wilson(rate * n, n)
        if (upper - lower) / 2 <= half_width:
            return n
        n += 1


def samples_needed_closed_form(rate, half_width, z=1.96):
    """Another right answer: solve the half-width's quadratic in n, in float64 with numpy."""
    import numpy as np

    h, q = np.float64(half_width), np.float64(rate * (1 - rate))
    # h (n + z^2) = z sqrt(q n + z^2 / 4)  ->  h^2 n^2 + (2 h^2 z^2 - z^2 q) n + ... = 0
    a, b, c = h * h, 2 * h * h * z * z - z * z * q, h * h * z**4 - z**4 / 4
    n = (-b + np.sqrt(b * b - 4 * a * c)) / (2 * a)
    return int(max(1, math.ceil(n - 1e-9)))


@pytest.mark.parametrize("answer", [samples_needed, samples_needed_closed_form])
def test_samples_needed_passes(answer, capsys):
    check_samples_needed(answer)  # raises if the answer is rejected
    assert "all 2 checks passed" in capsys.readouterr().out


def wald_samples(rate, half_width):
    return math.ceil(1.96**2 * rate * (1 - rate) / half_width**2)


def full_width_samples(rate, half_width):
    n = 1
    while wilson(rate * n, n)[1] - wilson(rate * n, n)[0] > half_width:
        n += 1
    return n


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (wald_samples, "Wald"),
        (full_width_samples, "whole width"),
        (lambda rate, h: samples_needed(rate, h) - 1, "smallest n"),
        (lambda rate, h: samples_needed(rate, h) + 3, "fewest samples are"),
        (lambda rate, h: samples_needed(rate, h) + 0.5, "whole number"),
        (lambda rate, h: "many", "whole number"),
    ],
)
def test_samples_needed_wrong_answers(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_samples_needed(wrong)


def test_samples_needed_not_answered():
    with pytest.raises(NotYetAnswered):
        check_samples_needed(None)


# --- where approach 3 says 20 ---------------------------------------------------------------

E, A, B, ALPHA, BETA = 1.69, 406.4, 410.7, 0.34, 0.28


def budget_for_ratio(tokens_per_param):
    g = (ALPHA * A / (BETA * B)) ** (1 / (ALPHA + BETA))
    return 6 * (tokens_per_param * g**2) ** ((ALPHA + BETA) / (ALPHA - BETA))


def budget_by_bisection(tokens_per_param):
    """Another right answer: bisect log C until the optimum's D / N is the ratio."""

    def ratio(log_c):
        g = (ALPHA * A / (BETA * B)) ** (1 / (ALPHA + BETA))
        c6 = math.exp(log_c) / 6
        return c6 ** (ALPHA / (ALPHA + BETA)) / g / (g * c6 ** (BETA / (ALPHA + BETA)))

    lo, hi = math.log(1e10), math.log(1e40)
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if ratio(mid) < tokens_per_param else (lo, mid)
    return math.exp((lo + hi) / 2)


@pytest.mark.parametrize("answer", [budget_for_ratio, budget_by_bisection])
def test_budget_for_ratio_passes(answer, capsys):
    check_budget_for_ratio(answer)  # raises if the answer is rejected
    assert "all 2 checks passed" in capsys.readouterr().out


def _budget_g(tokens_per_param, g_power):
    g = (ALPHA * A / (BETA * B)) ** (1 / (ALPHA + BETA))
    return 6 * (tokens_per_param * g**g_power) ** ((ALPHA + BETA) / (ALPHA - BETA))


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda r: budget_for_ratio(r) / 6, "C / 6"),
        (lambda r: _budget_g(r, 0), "left out part of G"),
        (lambda r: _budget_g(r, 1), "left out part of G"),
        (lambda r: 6 * r ** ((ALPHA - BETA) / (ALPHA + BETA)), "D / N ="),
        (lambda r: -budget_for_ratio(r), "positive"),
        (lambda r: "lots", "number of FLOPs"),
    ],
)
def test_budget_for_ratio_wrong_answers(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_budget_for_ratio(wrong)


def test_budget_for_ratio_not_answered():
    with pytest.raises(NotYetAnswered):
        check_budget_for_ratio(None)
