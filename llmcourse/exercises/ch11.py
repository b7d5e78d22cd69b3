"""Checks for the exercises of chapter 11, why LLMs are powerful.

check_gpt2_param_count(gpt2_params)    GPT-2's parameter count from its configuration
check_params_for_loss(params_for_loss) inverting a power law: the size for a target loss
check_chinchilla(chinchilla)           the compute-optimal model size and token count
"""

from __future__ import annotations

import math

from llmcourse.exercises import ExerciseError, expect, expect_close, run_checks
from llmcourse.scaling import (
    KAPLAN_ALPHA_N,
    KAPLAN_N_C,
    PowerLaw,
    chinchilla_optimal,
    gpt2_param_count,
)

__all__ = ["check_gpt2_param_count", "check_params_for_loss", "check_chinchilla"]


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
