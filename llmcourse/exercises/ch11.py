"""Checks for the exercises of chapter 11, why LLMs are powerful.

check_gpt2_param_count(gpt2_params)    GPT-2's parameter count from its configuration
check_params_for_loss(params_for_loss) inverting a power law: the size for a target loss
check_chinchilla(chinchilla)           the compute-optimal model size and token count
check_samples_needed(samples_needed)   how many samples pin a pass rate to a given precision
check_budget_for_ratio(budget_for_ratio) the budget at which approach 3 wants a given D / N
"""

from __future__ import annotations

import math

from llmcourse.exercises import ExerciseError, expect, expect_close, run_checks
from llmcourse.scaling import (
    CHINCHILLA_FIT,
    KAPLAN_ALPHA_N,
    KAPLAN_N_C,
    PowerLaw,
    chinchilla_optimal,
    gpt2_param_count,
)

__all__ = [
    "check_gpt2_param_count",
    "check_params_for_loss",
    "check_chinchilla",
    "check_samples_needed",
    "check_budget_for_ratio",
]

Z95 = 1.96  # the normal quantile of a two-sided 95 % interval


def _isclose(got, want: float, rel: float = 1e-6) -> bool:
    try:
        return math.isclose(float(got), want, rel_tol=rel)
    except (TypeError, ValueError):
        raise ExerciseError(f"expected a number, got {type(got).__name__}: {got!r}") from None


def check_gpt2_param_count(gpt2_params) -> None:
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
        expect_close(
            got_int,
            want,
            f"wrong total for n_layer={L}, d_model={d}, vocab_size={V}, n_positions={P}",
            rel=0,
            abs_=0.5,
        )

    def small(f):
        got = f(12, 768, 50257, 1024)
        expect(isinstance(got, int), f"return an int, got {type(got).__name__}")
        expect(got == 124_439_808, f"GPT-2 small has 124,439,808 parameters, got {got:,}")

    return run_checks("Exercise: GPT-2's parameter count", gpt2_params, [tiny, small])


def check_params_for_loss(params_for_loss) -> None:
    """``params_for_loss(coefficient, exponent, loss)``: N with coefficient * N**exponent = loss."""
    law = PowerLaw(coefficient=KAPLAN_N_C**KAPLAN_ALPHA_N, exponent=-KAPLAN_ALPHA_N)

    def toy(f):
        got = f(10.0, -0.5, 1.0)  # 10 / sqrt(N) = 1  ->  N = 100
        expect(
            not _isclose(got, 0.01),
            "your N is upside down (0.01 instead of 100): solve "
            "loss = c N^a for N = (loss / c)^(1 / a)",
        )
        expect(
            not _isclose(got, 10.0 * 1.0**-0.5),
            "that applies the law to the loss; invert it: N = (loss / c)^(1 / a)",
        )
        expect(
            not _isclose(got, (1.0 / 10.0) ** -0.5),
            "raise to the power 1 / exponent, not exponent: N = (loss / c)^(1 / a)",
        )
        expect_close(got, 100.0, "for loss = 10 / sqrt(N) and loss 1, N is 100", rel=1e-9)

    def kaplan(f):
        want = KAPLAN_N_C * 2.0 ** (-1 / KAPLAN_ALPHA_N)
        got = f(law.coefficient, law.exponent, 2.0)
        expect_close(
            got,
            want,
            "with Kaplan et al.'s law, a loss of 2.0 nats needs "
            "N = N_c / 2^(1 / 0.076) non-embedding parameters",
            rel=1e-6,
        )
        expect(
            _isclose(law(float(got)), 2.0),
            "plugging your N back into the law should give the loss you asked for",
        )

    def monotone(f):
        expect(
            float(f(law.coefficient, law.exponent, 1.9))
            > float(f(law.coefficient, law.exponent, 2.0)),
            "a lower loss must need more parameters",
        )

    return run_checks(
        "Exercise: parameters for a target loss", params_for_loss, [toy, kaplan, monotone]
    )


def check_chinchilla(chinchilla) -> None:
    """``chinchilla(compute)`` returns ``(n_params, n_tokens)`` with D = 20 N and C = 6 N D."""
    budget = 5.76e23  # Chinchilla's (and Gopher's) training budget in FLOPs
    n_want, d_want = chinchilla_optimal(budget)

    def pair(f):
        got = f(budget)
        expect(
            isinstance(got, (tuple, list)) and len(got) == 2, "return a pair (n_params, n_tokens)"
        )

    def values(f):
        n, d = (float(v) for v in f(budget))
        swapped = math.isclose(n, d_want, rel_tol=1e-3) and math.isclose(d, n_want, rel_tol=1e-3)
        expect(not swapped, "the pair is swapped: return (n_params, n_tokens), parameters first")
        expect(
            not math.isclose(n, math.sqrt(budget / 20), rel_tol=1e-3),
            "you left out the 6 of C = 6 N D: with D = 20 N, C = 120 N^2",
        )
        expect(
            not math.isclose(n, math.sqrt(budget / 6), rel_tol=1e-3),
            "you left out the 20 tokens per parameter: D = 20 N, so C = 6 N (20 N)",
        )
        expect(
            math.isclose(d, 20 * n, rel_tol=1e-6),
            f"a compute-optimal model sees 20 tokens per parameter, got D / N = {d / n:.4g}",
        )
        expect_close(n, n_want, f"for C = {budget:.3g} FLOPs, N = sqrt(C / 120)", rel=1e-6)

    def scaling(f):
        n1, _ = f(1e21)
        n4, _ = f(4e21)
        expect_close(
            float(n4) / float(n1),
            2.0,
            "four times the compute should buy twice the parameters (N grows as sqrt(C))",
            rel=1e-6,
        )

    return run_checks("Exercise: Chinchilla-optimal size", chinchilla, [pair, values, scaling])


def _wilson_half_width(rate: float, n: int, z: float = Z95) -> float:
    """Half the width of the Wilson interval around an observed pass rate over n samples."""
    return z / (1 + z * z / n) * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n))


def _samples_needed(rate: float, half_width: float, width=_wilson_half_width) -> int:
    n = 1
    while width(rate, n) > half_width:
        n += 1
    return n


def check_samples_needed(samples_needed) -> None:
    """``samples_needed(rate, half_width)``: the fewest samples whose Wilson 95 % interval around
    an observed pass rate ``rate`` is at most ``half_width`` either side."""
    cases = [(0.5, 0.1), (0.5, 0.05), (0.1, 0.05), (0.0, 0.1), (0.9, 0.15)]

    def got_int(f, rate, h):
        got = f(rate, h)
        try:
            value = int(got)
        except (TypeError, ValueError):
            raise ExerciseError(f"return a whole number of samples, got {got!r}") from None
        expect(value == got, f"return a whole number of samples, got {got!r}")
        return value

    def wald(f):
        for rate, h in [(0.5, 0.1), (0.0, 0.1)]:  # Wald: 97 and 0; Wilson: 93 and 16
            got, want = got_int(f, rate, h), _samples_needed(rate, h)
            wald_n = math.ceil(Z95**2 * rate * (1 - rate) / h**2)
            expect(
                not (got == wald_n and got != want),
                f"for rate {rate} and half-width {h} you gave {got}, the normal-approximation "
                "(Wald) answer z^2 p(1 - p) / h^2; use the Wilson interval's half-width",
            )

    def values(f):
        for rate, h in cases:
            got, want = got_int(f, rate, h), _samples_needed(rate, h)
            full = _samples_needed(rate, h, lambda r, n: 2 * _wilson_half_width(r, n))
            expect(
                not (got == full and got != want),
                f"for rate {rate} and half-width {h} you gave {got}: that makes the whole "
                "width (upper minus lower) at most h; half_width is the distance either side",
            )
            expect(
                got != want - 1,
                f"for rate {rate} and half-width {h}, {got} samples still give a half-width of "
                f"{_wilson_half_width(rate, got):.4f} > {h}: return the smallest n that is "
                "precise enough, not the last one that is not",
            )
            expect(
                got == want,
                f"for rate {rate} and half-width {h} the fewest samples are {want}, got {got}",
            )

    return run_checks("Exercise: samples for a tight interval", samples_needed, [wald, values])


def _g() -> float:
    fit = CHINCHILLA_FIT
    return (fit.alpha * fit.A / (fit.beta * fit.B)) ** (1 / (fit.alpha + fit.beta))


def _budget_for_ratio(tokens_per_param: float, g_squared: float | None = None) -> float:
    fit = CHINCHILLA_FIT
    g_squared = _g() ** 2 if g_squared is None else g_squared
    # D / N = (C/6)^((alpha - beta) / (alpha + beta)) / G^2, solved for C
    return 6 * (tokens_per_param * g_squared) ** ((fit.alpha + fit.beta) / (fit.alpha - fit.beta))


def check_budget_for_ratio(budget_for_ratio) -> None:
    """``budget_for_ratio(tokens_per_param)``: the compute C (FLOPs) at which approach 3's
    compute-optimal model sees ``tokens_per_param`` tokens per parameter."""

    def round_trip(f):
        for ratio in (20.0, 50.0, 93.0):
            got = f(ratio)
            try:
                budget = float(got)
            except (TypeError, ValueError):
                raise ExerciseError(f"return a number of FLOPs, got {got!r}") from None
            expect(budget > 0 and math.isfinite(budget), f"a budget is positive, got {got!r}")
            want = _budget_for_ratio(ratio)
            expect(
                not math.isclose(budget, want / 6, rel_tol=1e-3),
                "that is C / 6, not C: the closed form is in C / 6, so multiply back by 6",
            )
            for slip in (1.0, _g()):  # G left out, or G instead of G^2
                expect(
                    not math.isclose(budget, _budget_for_ratio(ratio, g_squared=slip)),
                    "you left out part of G^2: D / N = (C/6)^((alpha - beta)/(alpha + beta))"
                    " / G^2, with G = (alpha A / (beta B))^(1 / (alpha + beta))",
                )
            n, d = CHINCHILLA_FIT.optimal(budget)
            expect_close(
                d / n,
                ratio,
                f"at your budget {budget:.4g} FLOPs, approach 3's optimum has D / N = "
                f"{d / n:.4g}, not {ratio}",
                rel=1e-4,
            )

    def grows(f):
        expect(
            float(f(93.0)) > float(f(20.0)),
            "more tokens per parameter needs a bigger budget (the ratio grows with C)",
        )

    return run_checks("Exercise: where approach 3 says 20", budget_for_ratio, [round_trip, grows])
