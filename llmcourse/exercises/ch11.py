"""Checks for the exercises of chapter 11, why LLMs are powerful.

    check_gpt2_param_count(gpt2_params)    GPT-2's parameter count from its configuration
    check_fit_power_law(fit)               a power law fitted on log-log axes
    check_chinchilla(chinchilla)           the compute-optimal model size and token count
"""

from __future__ import annotations

import math

from llmcourse.exercises import ExerciseError, expect, expect_close, run_checks
from llmcourse.scaling import chinchilla_optimal, fit_power_law, gpt2_param_count

__all__ = ["check_gpt2_param_count", "check_fit_power_law", "check_chinchilla"]


def check_gpt2_param_count(gpt2_params) -> bool:
    """``gpt2_params(n_layer, d_model, vocab_size, n_positions)``: GPT2LMHeadModel's count."""
    # Sizes chosen so that every usual slip changes the total by a different amount.
    L, d, V, P = 3, 40, 101, 17
    want = gpt2_param_count(L, d, V, P)
    slips = {
        want - P * d: "you forgot the position embeddings (wpe: n_positions x d_model)",
        want - L * 9 * d: "you forgot the biases of the linear layers (3d + d in attention, "
                          "4d + d in the MLP, per block)",
        want - 2 * d: "you forgot the final LayerNorm ln_f (a gain and a shift, 2 d_model)",
        want - L * 4 * d - 2 * d: "you forgot the LayerNorms (two per block and the final one)",
        want - L * 4 * d: "you forgot the two LayerNorms inside each block (4 d_model per block)",
        want + V * d: "you counted the output layer lm_head separately, but GPT-2 ties it to "
                      "the token embedding: the same matrix, counted once",
        want - L * 8 * d * d - L * 5 * d: "the MLP is missing: d -> 4d -> d, with biases",
    }

    def tiny(f):
        got = f(L, d, V, P)
        try:
            got_int = int(got)
        except (TypeError, ValueError):
            raise ExerciseError(f"return a number, got {type(got).__name__}") from None
        if got_int in slips:
            raise ExerciseError(slips[got_int])
        expect_close(got_int, want, f"wrong total for n_layer={L}, d_model={d}, vocab_size={V}, "
                                    f"n_positions={P}", rel=0, abs_=0.5)

    def small(f):
        got = f(12, 768, 50257, 1024)
        expect(isinstance(got, int), f"return an int, got {type(got).__name__}")
        expect(got == 124_439_808, f"GPT-2 small has 124,439,808 parameters, got {got:,}")

    return run_checks("Exercise: GPT-2's parameter count", gpt2_params, [tiny, small])


def check_fit_power_law(fit) -> bool:
    """``fit(x, y)`` returns ``(coefficient, exponent)`` of ``y = coefficient * x**exponent``."""
    x = [1e3, 1e4, 1e5, 1e6]
    exact = [5.0 * v ** -0.3 for v in x]
    noisy = [y * m for y, m in zip(exact, (1.03, 0.98, 1.01, 0.99))]
    want = fit_power_law(x, noisy)

    def shape(f):
        got = f(x, exact)
        expect(isinstance(got, (tuple, list)) and len(got) == 2,
               "return a pair (coefficient, exponent)")

    def exact_law(f):
        coefficient, exponent = f(x, exact)
        expect(not math.isclose(float(exponent), 1 / -0.3, rel_tol=1e-3),
               "the exponent came out inverted: fit log y against log x, not log x against log y")
        expect_close(exponent, -0.3, "on points exactly on y = 5 x^-0.3 the exponent should be "
                                     "-0.3: fit a straight line to (log x, log y)", rel=1e-6)
        expect(not math.isclose(float(coefficient), math.log(5), rel_tol=1e-3)
               and not math.isclose(float(coefficient), math.log10(5), rel_tol=1e-3),
               "the coefficient is the exponential of the intercept (exp, or 10**, matching "
               "the log you took), not the intercept itself")
        expect_close(coefficient, 5.0, "on y = 5 x^-0.3 the coefficient should be 5", rel=1e-6)

    def least_squares(f):
        coefficient, exponent = f(x, noisy)
        expect_close(exponent, want.exponent, "on noisy points, the exponent should be the "
                                              "least-squares slope on log-log axes", rel=1e-6)
        expect_close(coefficient, want.coefficient, "on noisy points, the coefficient should be "
                                                    "exp(the least-squares intercept)", rel=1e-6)

    return run_checks("Exercise: fitting a power law", fit, [shape, exact_law, least_squares])


def check_chinchilla(chinchilla) -> bool:
    """``chinchilla(compute)`` returns ``(n_params, n_tokens)`` with D = 20 N and C = 6 N D."""
    budget = 5.76e23  # Chinchilla's (and Gopher's) training budget in FLOPs
    n_want, d_want = chinchilla_optimal(budget)

    def pair(f):
        got = f(budget)
        expect(isinstance(got, (tuple, list)) and len(got) == 2,
               "return a pair (n_params, n_tokens)")

    def values(f):
        n, d = (float(v) for v in f(budget))
        expect(not (math.isclose(n, d_want, rel_tol=1e-3) and math.isclose(d, n_want, rel_tol=1e-3)),
               "the pair is swapped: return (n_params, n_tokens), parameters first")
        expect(not math.isclose(n, math.sqrt(budget / 20), rel_tol=1e-3),
               "you left out the 6 of C = 6 N D: with D = 20 N, C = 120 N^2")
        expect(not math.isclose(n, math.sqrt(budget / 6), rel_tol=1e-3),
               "you left out the 20 tokens per parameter: D = 20 N, so C = 6 N (20 N)")
        expect(math.isclose(d, 20 * n, rel_tol=1e-6),
               f"a compute-optimal model sees 20 tokens per parameter, got D / N = {d / n:.4g}")
        expect_close(n, n_want, f"for C = {budget:.3g} FLOPs, N = sqrt(C / 120)", rel=1e-6)

    def scaling(f):
        n1, _ = f(1e21)
        n4, _ = f(4e21)
        expect_close(float(n4) / float(n1), 2.0, "four times the compute should buy twice the "
                                                 "parameters (N grows as sqrt(C))", rel=1e-6)

    return run_checks("Exercise: Chinchilla-optimal size", chinchilla, [pair, values, scaling])
