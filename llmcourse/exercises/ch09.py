"""Checks for the exercises of chapter 9, generating text.

    check_temperature(temperature_probs)    softmax(logits / T)
    check_top_k(top_k_probs)                keep the k most likely tokens, renormalise
    check_top_p(top_p_probs)                nucleus: smallest top set with mass >= p, renormalise
"""

from __future__ import annotations

import torch

from llmcourse.exercises import expect, run_checks

__all__ = ["check_temperature", "check_top_k", "check_top_p"]

_PROBS = torch.tensor([0.05, 0.30, 0.10, 0.40, 0.15], dtype=torch.float64)


def _as_probs(got, n=5):
    got = torch.as_tensor(got, dtype=torch.float64)
    expect(tuple(got.shape) == (n,), f"return a tensor of shape ({n},), got {tuple(got.shape)}")
    return got


def check_temperature(temperature_probs) -> None:
    """``temperature_probs(logits, T)``: the probabilities softmax(logits / T)."""
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0, 0.5], dtype=torch.float64)

    def is_distribution(f):
        got = _as_probs(f(logits, 0.5))
        expect(bool((got >= 0).all()) and abs(float(got.sum()) - 1) < 1e-6,
               "return probabilities (non-negative, summing to 1): apply the softmax")

    def divides(f):
        expect(not torch.allclose(_as_probs(f(logits, 0.5)), (logits * 0.5).softmax(0)),
               "you multiplied by T: divide the logits by the temperature, so T < 1 sharpens")
        for t in (0.5, 1.0, 3.0):
            expect(torch.allclose(_as_probs(f(logits, t)), (logits / t).softmax(0)),
                   f"for T={t} expected softmax(logits / T)")

    def limits(f):
        cold = _as_probs(f(logits, 0.01))
        expect(float(cold[0]) > 0.999, "a temperature near 0 should put all mass on the argmax")

    return run_checks("Exercise: temperature", temperature_probs, [is_distribution, divides,
                                                                   limits])


def check_top_k(top_k_probs) -> None:
    """``top_k_probs(probs, k)``: zero all but the k largest probabilities, renormalise."""

    def keeps_k(f):
        for k in (1, 2, 3, 5):
            got = _as_probs(f(_PROBS.clone(), k))
            kept = int((got > 0).sum())
            expect(kept != k + 1, f"for k={k} you kept {k + 1} tokens: an off-by-one; keep "
                   "exactly the k largest")
            expect(kept != k - 1, f"for k={k} you kept {k - 1} tokens: the k-th largest stays")
            expect(kept == k, f"for k={k} keep exactly k tokens, you kept {kept}")

    def largest(f):
        got = _as_probs(f(_PROBS.clone(), 2))
        expect(bool(got[3] > 0) and bool(got[1] > 0),
               "keep the LARGEST probabilities (tokens 3 and 1 for k=2)")

    def renormalised(f):
        got = _as_probs(f(_PROBS.clone(), 2))
        expect(abs(float(got.sum()) - 1) < 1e-6,
               f"the kept probabilities sum to {float(got.sum()):.2f}: divide by their sum "
               "so they form a distribution again")
        want = torch.tensor([0, 0.3, 0, 0.4, 0], dtype=torch.float64) / 0.7
        expect(torch.allclose(got, want), "for k=2 expected [0, 3/7, 0, 4/7, 0]")

    return run_checks("Exercise: top-k", top_k_probs, [keeps_k, largest, renormalised])


def check_top_p(top_p_probs) -> None:
    """``top_p_probs(probs, p)``: keep the smallest set of most likely tokens whose mass is at
    least p (the token that crosses p included), zero the rest, renormalise."""

    def crossing_token(f):
        got = _as_probs(f(_PROBS.clone(), 0.6))  # 0.40 < 0.6 <= 0.40 + 0.30
        expect(int((got > 0).sum()) != 1, "for p=0.6 you kept only the top token (0.40): keep "
               "adding tokens until the mass reaches p, INCLUDING the one that crosses it")
        expect(int((got > 0).sum()) == 2, "for p=0.6 keep the two most likely tokens "
               "(0.40 + 0.30 = 0.70 >= 0.6)")

    def edges(f):
        expect(int((_as_probs(f(_PROBS.clone(), 0.1)) > 0).sum()) == 1,
               "for p=0.1 the top token alone (0.40) already reaches p: keep just it")
        expect(int((_as_probs(f(_PROBS.clone(), 1.0)) > 0).sum()) == 5,
               "for p=1.0 every token is kept")
        expect(int((_as_probs(f(_PROBS.clone(), 0.8)) > 0).sum()) == 3,
               "for p=0.8 keep 0.40, 0.30 and 0.15 (0.70 < 0.8 <= 0.85)")

    def renormalised(f):
        got = _as_probs(f(_PROBS.clone(), 0.6))
        expect(abs(float(got.sum()) - 1) < 1e-6,
               f"the kept probabilities sum to {float(got.sum()):.2f}: renormalise them")
        want = torch.tensor([0, 0.3, 0, 0.4, 0], dtype=torch.float64) / 0.7
        expect(torch.allclose(got, want), "for p=0.6 expected [0, 3/7, 0, 4/7, 0]")

    return run_checks("Exercise: top-p (nucleus)", top_p_probs, [crossing_token, edges,
                                                                 renormalised])
