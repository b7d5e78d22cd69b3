"""Checks for the exercises of chapter 9, generating text.

check_temperature(temperature_probs)    softmax(logits / T)
check_top_k(top_k_probs)                keep the k most likely tokens, renormalise
check_top_p(top_p_probs)                nucleus: smallest top set with mass >= p, renormalise
check_sequence_log_prob(sequence_log_prob)  log p(new tokens | prompt) from the logits
check_repetition_penalty(repetition_penalty)  Hugging Face's repetition penalty, batched
check_cached_attention_step(cached_attention_step)  attention for the newest token, cached
"""

from __future__ import annotations

import torch

from llmcourse.exercises import expect, run_checks

__all__ = [
    "check_temperature",
    "check_top_k",
    "check_top_p",
    "check_sequence_log_prob",
    "check_repetition_penalty",
    "check_cached_attention_step",
]

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
        expect(
            bool((got >= 0).all()) and abs(float(got.sum()) - 1) < 1e-6,
            "return probabilities (non-negative, summing to 1): apply the softmax",
        )

    def divides(f):
        expect(
            not torch.allclose(_as_probs(f(logits, 0.5)), (logits * 0.5).softmax(0)),
            "you multiplied by T: divide the logits by the temperature, so T < 1 sharpens",
        )
        for t in (0.5, 1.0, 3.0):
            expect(
                torch.allclose(_as_probs(f(logits, t)), (logits / t).softmax(0)),
                f"for T={t} expected softmax(logits / T)",
            )

    def limits(f):
        cold = _as_probs(f(logits, 0.01))
        expect(float(cold[0]) > 0.999, "a temperature near 0 should put all mass on the argmax")

    return run_checks(
        "Exercise: temperature", temperature_probs, [is_distribution, divides, limits]
    )


def check_top_k(top_k_probs) -> None:
    """``top_k_probs(probs, k)``: zero all but the k largest probabilities, renormalise."""

    def keeps_k(f):
        for k in (1, 2, 3, 5):
            got = _as_probs(f(_PROBS.clone(), k))
            kept = int((got > 0).sum())
            expect(
                kept != k + 1,
                f"for k={k} you kept {k + 1} tokens: an off-by-one; keep exactly the k largest",
            )
            expect(kept != k - 1, f"for k={k} you kept {k - 1} tokens: the k-th largest stays")
            expect(kept == k, f"for k={k} keep exactly k tokens, you kept {kept}")

    def largest(f):
        got = _as_probs(f(_PROBS.clone(), 2))
        expect(
            bool(got[3] > 0) and bool(got[1] > 0),
            "keep the LARGEST probabilities (tokens 3 and 1 for k=2)",
        )

    def renormalised(f):
        got = _as_probs(f(_PROBS.clone(), 2))
        expect(
            abs(float(got.sum()) - 1) < 1e-6,
            f"the kept probabilities sum to {float(got.sum()):.2f}: divide by their sum "
            "so they form a distribution again",
        )
        want = torch.tensor([0, 0.3, 0, 0.4, 0], dtype=torch.float64) / 0.7
        expect(torch.allclose(got, want), "for k=2 expected [0, 3/7, 0, 4/7, 0]")

    return run_checks("Exercise: top-k", top_k_probs, [keeps_k, largest, renormalised])


def check_top_p(top_p_probs) -> None:
    """``top_p_probs(probs, p)``: keep the smallest set of most likely tokens whose mass is at
    least p (the token that crosses p included), zero the rest, renormalise."""

    def crossing_token(f):
        got = _as_probs(f(_PROBS.clone(), 0.6))  # 0.40 < 0.6 <= 0.40 + 0.30
        expect(
            int((got > 0).sum()) != 1,
            "for p=0.6 you kept only the top token (0.40): keep "
            "adding tokens until the mass reaches p, INCLUDING the one that crosses it",
        )
        expect(
            int((got > 0).sum()) == 2,
            "for p=0.6 keep the two most likely tokens (0.40 + 0.30 = 0.70 >= 0.6)",
        )

    def edges(f):
        expect(
            int((_as_probs(f(_PROBS.clone(), 0.1)) > 0).sum()) == 1,
            "for p=0.1 the top token alone (0.40) already reaches p: keep just it",
        )
        expect(
            int((_as_probs(f(_PROBS.clone(), 1.0)) > 0).sum()) == 5, "for p=1.0 every token is kept"
        )
        expect(
            int((_as_probs(f(_PROBS.clone(), 0.8)) > 0).sum()) == 3,
            "for p=0.8 keep 0.40, 0.30 and 0.15 (0.70 < 0.8 <= 0.85)",
        )

    def renormalised(f):
        got = _as_probs(f(_PROBS.clone(), 0.6))
        expect(
            abs(float(got.sum()) - 1) < 1e-6,
            f"the kept probabilities sum to {float(got.sum()):.2f}: renormalise them",
        )
        want = torch.tensor([0, 0.3, 0, 0.4, 0], dtype=torch.float64) / 0.7
        expect(torch.allclose(got, want), "for p=0.6 expected [0, 3/7, 0, 4/7, 0]")

    return run_checks(
        "Exercise: top-p (nucleus)", top_p_probs, [crossing_token, edges, renormalised]
    )


def _log_prob_case(seed: int, T: int = 7, V: int = 11):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(T, V, generator=gen, dtype=torch.float64) * 2
    ids = torch.randint(0, V, (T,), generator=gen)
    return logits, ids


def _reference_log_prob(logits, ids, prompt_len) -> float:
    logp = logits.double().log_softmax(-1)[prompt_len - 1 : -1]  # rows predicting the new tokens
    return float(logp.gather(1, ids[prompt_len:, None]).sum())


def check_sequence_log_prob(sequence_log_prob) -> None:
    """``sequence_log_prob(logits, ids, prompt_len)``: logits (T, V) of the sequence ``ids``
    (T,); the sum of log p(ids[t] | ids[:t]) over the new tokens t = prompt_len..T-1."""

    def value(f, logits, ids, prompt_len):
        got = f(logits.clone(), ids.clone(), prompt_len)
        try:
            got = float(got)
        except (TypeError, ValueError, RuntimeError):
            expect(False, f"return one number (a float or a 0-d tensor), got {type(got).__name__}")
        return got

    def is_a_log_prob(f):
        logits, ids = _log_prob_case(0)
        got = value(f, logits, ids, 3)
        probs = logits.softmax(-1)[2:-1].gather(1, ids[3:, None])
        expect(
            abs(got - float(probs.sum())) > 1e-6 and abs(got - float(probs.prod())) > 1e-9,
            "you returned probabilities: sum the LOG-probabilities",
        )
        expect(
            got <= 0,
            f"got {got:.3f} > 0: a log-probability is never positive; take the "
            "log_softmax of the logits, not the raw logits",
        )

    def aligned(f):
        logits, ids = _log_prob_case(1)
        got, want = value(f, logits, ids, 3), _reference_log_prob(logits, ids, 3)
        same_position = float(logits.log_softmax(-1)[3:].gather(1, ids[3:, None]).sum())
        expect(
            abs(got - same_position) > 1e-6 or abs(got - want) < 1e-6,
            "the logits at position t predict token t + 1: score token t with row t - 1",
        )
        new = len(ids) - 3
        expect(abs(got - want / new) > 1e-6, "you averaged: return the SUM over the new tokens")
        expect(
            abs(got - _reference_log_prob(logits, ids, 1)) > 1e-6,
            "you scored the prompt's tokens too: only tokens prompt_len.. count",
        )
        expect(abs(got - want) < 1e-6, f"expected {want:.4f}, got {got:.4f}")

    def prompt_lengths(f):
        for seed, prompt_len in ((2, 1), (3, 4), (4, 6)):
            logits, ids = _log_prob_case(seed)
            want = _reference_log_prob(logits, ids, prompt_len)
            got = value(f, logits, ids, prompt_len)
            expect(
                abs(got - want) < 1e-6,
                f"for prompt_len={prompt_len} expected {want:.4f}, got {got:.4f}",
            )

    return run_checks(
        "Exercise: sequence log-probability",
        sequence_log_prob,
        [is_a_log_prob, aligned, prompt_lengths],
    )


def _hf_repetition_penalty(logits, input_ids, penalty):
    """Hugging Face's RepetitionPenaltyLogitsProcessor: the reference."""
    from transformers import RepetitionPenaltyLogitsProcessor

    return RepetitionPenaltyLogitsProcessor(penalty)(input_ids, logits.clone())


def check_repetition_penalty(repetition_penalty) -> None:
    """``repetition_penalty(logits, input_ids, penalty)``: HF's processor, batched."""
    logits = torch.tensor(
        [[2.0, -1.0, 0.5, 3.0, 0.0, -2.5], [1.0, 4.0, -0.5, -3.0, 2.0, 0.0]],
        dtype=torch.float64,
    )
    ids = torch.tensor([[0, 1, 1, 4], [3, 3, 5, 1]])  # repeats, a zero logit, two rows

    def compare(f, z, i, penalty):
        before = z.clone()
        got = f(z, i, penalty)
        expect(isinstance(got, torch.Tensor), f"return a tensor, got {type(got).__name__}")
        expect(
            tuple(got.shape) == tuple(z.shape),
            f"return logits of the same shape {tuple(z.shape)}, got {tuple(got.shape)}",
        )
        expect(
            torch.equal(z, before),
            "leave the logits passed in unchanged: work on a copy (logits.clone()) or build "
            "a new tensor, as Hugging Face's processor does",
        )
        return got.double(), _hf_repetition_penalty(z.double(), i, penalty)

    def seen_once(f):
        got, want = compare(f, logits, ids, 2.0)
        expect(
            got[0, 1] != -4.0,
            "token 1 occurs twice in row 0 but is penalised once: a token is either seen or "
            "not, however often it occurs (use scatter or gather, not a loop that "
            "penalises per occurrence)",
        )
        expect(
            got[0, 1] != -0.5,
            "a negative logit is MULTIPLIED by the penalty (-1 -> -2): dividing it would "
            "raise it, making a seen token more likely",
        )
        expect(
            got[0, 2] == 0.5 and got[0, 3] == 3.0,
            "only tokens already in input_ids are penalised: unseen tokens keep their logits",
        )
        expect(
            torch.allclose(got[0], want[0]),
            f"row 0 should be {want[0].tolist()}, got {got[0].tolist()}",
        )

    def per_row(f):
        got, want = compare(f, logits, ids, 2.0)
        expect(
            torch.allclose(got[1], want[1]),
            f"each row uses its own input_ids: row 1 should be {want[1].tolist()}, got "
            f"{got[1].tolist()}",
        )

    def other_penalty(f):
        z = torch.randn(3, 40, dtype=torch.float32, generator=torch.Generator().manual_seed(1))
        i = torch.randint(0, 40, (3, 12), generator=torch.Generator().manual_seed(2))
        got, want = compare(f, z, i, 1.3)
        expect(
            got.shape == want.shape and torch.allclose(got, want, atol=1e-6),
            "float32, penalty 1.3: your logits differ from Hugging Face's processor",
        )
        got, want = compare(f, z, i, 1.0)
        expect(torch.allclose(got, z.double()), "a penalty of 1.0 changes nothing")

    return run_checks(
        "Exercise: the repetition penalty",
        repetition_penalty,
        [seen_once, per_row, other_penalty],
    )


def _attend(q, K, V):
    """softmax(q K^T / sqrt(d)) V, in float64."""
    scores = q.double() @ K.double().transpose(-2, -1) / K.shape[-1] ** 0.5
    return scores.softmax(dim=-1) @ V.double()


def check_cached_attention_step(cached_attention_step) -> None:
    """``cached_attention_step(q, k, v, K_cache, V_cache) -> (out, K_cache, V_cache)``."""
    g = torch.Generator().manual_seed(0)
    B, H, T, d = 2, 3, 5, 4
    Q, K, V = (torch.randn(B, H, T + 1, d, generator=g) for _ in range(3))
    causal = torch.ones(T + 1, T + 1, dtype=torch.bool).tril()
    scores = Q.double() @ K.double().transpose(-2, -1) / d**0.5
    full = scores.masked_fill(~causal, float("-inf")).softmax(-1) @ V.double()

    def step(f, t):
        """Step t: the cache holds positions 0..t-1, the new token is position t."""
        got = f(
            Q[:, :, t : t + 1], K[:, :, t : t + 1], V[:, :, t : t + 1], K[:, :, :t], V[:, :, :t]
        )
        expect(
            isinstance(got, tuple) and len(got) == 3,
            "return three things: (out, K_cache, V_cache), the caches with the new key and "
            "value appended",
        )
        return got

    def caches(f):
        _, K2, V2 = step(f, T)
        expect(
            tuple(K2.shape) == (B, H, T + 1, d),
            f"append the new key along the positions (dim=2): the cache grows from "
            f"{(B, H, T, d)} to {(B, H, T + 1, d)}, got {tuple(K2.shape)}",
        )
        expect(
            torch.equal(K2, K) and torch.equal(V2, V[:, :, : T + 1]),
            "the new cache is the old one with the new key (value) appended at the END, "
            "keys in K_cache and values in V_cache",
        )

    def output(f):
        out, _, _ = step(f, T)
        expect(
            tuple(out.shape) == (B, H, 1, d),
            f"the output is the new token's only: shape {(B, H, 1, d)}, got {tuple(out.shape)}",
        )
        out = out.double()
        expect(
            not torch.allclose(out, _attend(Q[:, :, T:], K[:, :, :T], V[:, :, :T]), atol=1e-5),
            "the new token attends to itself too: append its key and value to the cache "
            "BEFORE attending",
        )
        expect(
            not torch.allclose(out, V[:, :, :1].double(), atol=1e-5),
            "no causal mask here: the newest token may see every cached position. A mask "
            "row taken from tril() (the FIRST row) lets it see only position 0",
        )
        expect(
            not torch.allclose(
                out,
                (Q[:, :, T:].double() @ K.double().transpose(-2, -1)).softmax(-1) @ V.double(),
                atol=1e-5,
            ),
            "scale the scores by 1/sqrt(d), d the size of one head's key",
        )
        expect(
            torch.allclose(out, full[:, :, T:], atol=1e-5),
            "the output should equal the last row of full causal attention over all positions",
        )

    def empty_cache(f):
        out, K1, _ = step(f, 0)
        expect(
            tuple(K1.shape) == (B, H, 1, d),
            "an empty cache (0 positions) works too: after the first step it holds one",
        )
        expect(
            torch.allclose(out.double(), V[:, :, :1].double(), atol=1e-6),
            "the first token attends only to itself: its output is its own value",
        )

    return run_checks(
        "Exercise: one cached attention step",
        cached_attention_step,
        [caches, output, empty_cache],
    )
