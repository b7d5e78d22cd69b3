"""Checks for the exercises of chapter 3, self-attention.

check_stable_softmax(stable_softmax)    softmax along the last dimension, without overflow
check_attention(newest_attention)       causal attention for the queries of the last L of S tokens
check_causal_mask(causal_mask)          a boolean (T, T) mask, True where i may attend to j
check_shuffle_gap(shuffle_gap)          how far shuffling the tokens is from shuffling the output
check_padded_attention(padded_attention) batched attention in which no query reads a padding key
"""

from __future__ import annotations

import math

import torch

from llmcourse.exercises import ExerciseError, as_number, expect, expect_close, run_checks

__all__ = [
    "check_stable_softmax",
    "check_attention",
    "check_causal_mask",
    "check_shuffle_gap",
    "check_padded_attention",
]


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _close(got, want) -> bool:
    """``got`` (float32 or float64) equals ``want`` within float32 rounding."""
    return (
        isinstance(got, torch.Tensor)
        and got.shape == want.shape
        and torch.allclose(got.double(), want.double(), atol=1e-5, rtol=1e-4)
    )


def check_stable_softmax(stable_softmax) -> None:
    """``stable_softmax(x)``: softmax of a tensor along its last dimension, safe for large x."""

    def small(f):
        x = torch.tensor([0.0, math.log(3.0)])
        expect(
            _close(f(x), torch.tensor([0.25, 0.75])),
            "softmax([0, log 3]) is [1/4, 3/4]: exponentiate, then divide by the sum",
        )

    def last_dim(f):
        x = _randn(3, 5)
        got = f(x)
        expect(
            isinstance(got, torch.Tensor) and got.shape == x.shape,
            f"the output must have the input's shape {tuple(x.shape)}",
        )
        expect(
            torch.allclose(got.double().sum(-1), torch.ones(3, dtype=torch.float64), atol=1e-5),
            "each row (the last dimension) must sum to 1: normalise along dim=-1, "
            "not over the whole tensor",
        )
        expect(_close(got, torch.softmax(x, dim=-1)), "the values differ from torch.softmax")

    def large(f):
        x = torch.tensor([[1000.0, 1001.0, 1002.0], [-5.0, 800.0, 0.0]])
        got = f(x)
        expect(
            bool(torch.isfinite(got).all()),
            "on large inputs exp overflows to inf and inf/inf gives nan: subtract each "
            "row's maximum before exponentiating (it cancels out)",
        )
        expect(_close(got, torch.softmax(x, dim=-1)), "the values differ from torch.softmax")

    return run_checks("Exercise: stable softmax", stable_softmax, [small, last_dim, large])


def _newest(Q, K, V, shift=None, scale=True, dim=-1):
    """Causal attention, in float64, for queries that are the last L of S tokens: query i may
    attend to keys j <= S - L + i (``shift`` moves that diagonal: the usual slips)."""
    Q, K, V = Q.double(), K.double(), V.double()
    L, S = Q.shape[-2], K.shape[-2]
    scores = Q @ K.T / (math.sqrt(K.shape[-1]) if scale else 1.0)
    if shift is not False:
        diagonal = S - L if shift is None else shift
        allowed = torch.ones(L, S, dtype=torch.bool).tril(diagonal=diagonal)
        scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.softmax(scores, dim=dim) @ V


def check_attention(newest_attention) -> None:
    """``newest_attention(Q, K, V)``: causal attention for queries (L, d_k) that belong to the
    last L of the S tokens whose keys (S, d_k) and values (S, d_v) are given."""
    Q, K, V = _randn(3, 16, seed=1), _randn(7, 16, seed=2), _randn(7, 3, seed=3)
    # A second shape where sqrt(d_k) = 3 differs from every other size, so that a scale taken
    # from the wrong size, or a hard-coded 4, gives wrong values.
    Q2, K2, V2 = _randn(2, 9, seed=4), _randn(5, 9, seed=5), _randn(5, 2, seed=6)

    def diagnose(got, Q, K, V):
        """Name the slip ``got`` matches, unless it also matches the right answer."""
        L, S = Q.shape[-2], K.shape[-2]
        if _close(got, _newest(Q, K, V)):
            return
        for want, hint in (
            (
                _newest(Q, K, V, shift=False),
                "no query may attend to a later key: apply the causal mask (scores of keys "
                "after the query's own token set to -inf before the softmax)",
            ),
            (
                _newest(Q, K, V, shift=0),
                "the mask's diagonal sits at the top left, as if the queries were the first "
                "L tokens: query i is token S - L + i, so it may see keys 0..S - L + i "
                "(tril(diagonal=S - L))",
            ),
            (
                _newest(Q, K, V, shift=S - L - 1),
                "each query may attend to its own token too: keys 0..S - L + i, "
                "including S - L + i",
            ),
            (_newest(Q, K, V, scale=False), "divide the scores by sqrt(d_k) before the softmax"),
            (
                _newest(Q, K, V, shift=False, dim=0),
                "the softmax goes along the keys (dim=-1): each query's weights sum to 1",
            ),
        ):
            if _close(got, want):
                raise ExerciseError(hint)

    def shape(f):
        got = f(Q, K, V)
        expect(
            isinstance(got, torch.Tensor) and tuple(got.shape) == (3, 3),
            "queries (3, 16) for the last 3 of 7 tokens, keys (7, 16), values (7, 3) give an "
            f"output of shape (3, 3) (one row per query); got {getattr(got, 'shape', got)}",
        )

    def newest(f):
        got = f(Q, K, V)
        diagnose(got, Q, K, V)
        expect(
            _close(got, _newest(Q, K, V)),
            "expected the last 3 rows of causal attention over all 7 tokens: softmax(Q K^T / "
            "sqrt(d_k)) V with query i allowed keys 0..S - L + i",
        )

    def all_tokens(f):
        full_Q = torch.cat([_randn(4, 16, seed=7), Q])  # L = S: the chapter's causal case
        got = f(full_Q, K, V)
        diagnose(got, full_Q, K, V)
        expect(
            _close(got, _newest(full_Q, K, V)),
            "with as many queries as keys (L = S) this is ordinary causal attention",
        )

    def one_query(f):
        got = f(Q[-1:], K, V)
        expect(
            _close(got, _newest(Q[-1:], K, V, shift=False)),
            "a single query is the newest token: it may attend to every key",
        )

    def other_shape(f):
        got = f(Q2, K2, V2)
        expect(
            isinstance(got, torch.Tensor) and tuple(got.shape) == (2, 2),
            f"queries (2, 9), keys (5, 9), values (5, 2) give (2, 2); got "
            f"{getattr(got, 'shape', got)}",
        )
        diagnose(got, Q2, K2, V2)
        expect(
            _close(got, _newest(Q2, K2, V2)),
            "with d_k = 9 the scores are divided by sqrt(9) = 3: take d_k from the last "
            "dimension of Q or K, and L and S from the inputs, not fixed numbers",
        )

    def float64(f):
        got = f(Q.double(), K.double(), V.double())
        expect(
            isinstance(got, torch.Tensor) and _close(got, _newest(Q, K, V)),
            "with float64 inputs the output must be the same (up to rounding)",
        )

    return run_checks(
        "Exercise: causal attention for the newest tokens",
        newest_attention,
        [shape, newest, all_tokens, one_query, other_shape, float64],
    )


def check_causal_mask(causal_mask) -> None:
    """``causal_mask(T)``: boolean (T, T) tensor, True where position i may attend to j <= i."""

    def hand_worked(f):
        got = f(3)
        want = torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.bool)
        expect(
            isinstance(got, torch.Tensor) and got.dtype == torch.bool,
            "return a boolean tensor (True = may attend)",
        )
        expect(tuple(got.shape) == (3, 3), f"expected shape (3, 3), got {tuple(got.shape)}")
        expect(
            bool(got.diagonal().all()),
            "every position must be allowed to attend to itself: keep the diagonal",
        )
        expect(
            not bool(got.triu(1).any()),
            "a position must not see the future: everything above the diagonal is False",
        )
        expect(torch.equal(got, want), f"expected {want.int().tolist()}")

    def other_sizes(f):
        for T in (1, 5):
            got = f(T)
            expect(
                torch.equal(got, torch.ones(T, T, dtype=torch.bool).tril()),
                f"wrong mask for T={T}: use T, not a fixed size",
            )

    return run_checks("Exercise: causal mask", causal_mask, [hand_worked, other_sizes])


def _self_attention(X, W_query, W_key, W_value, causal):
    """Self-attention of the rows of X, in float64; with ``causal``, by position."""
    X, W_query, W_key, W_value = (t.double() for t in (X, W_query, W_key, W_value))
    Q, K, V = X @ W_query, X @ W_key, X @ W_value
    scores = Q @ K.T / math.sqrt(Q.shape[-1])
    if causal:
        T = X.shape[0]
        scores = scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
    return torch.softmax(scores, dim=-1) @ V


def _number(got):
    return as_number(got, "the largest absolute difference")


def check_shuffle_gap(shuffle_gap) -> None:
    """``shuffle_gap(X, W_query, W_key, W_value, perm, causal)``: the largest absolute
    difference between self-attention of the shuffled tokens ``X[perm]`` and the output of
    ``X`` shuffled the same way, with or without the causal mask."""
    T, d_model, d_k = 6, 8, 4
    X = _randn(T, d_model, seed=7)
    W_query, W_key, W_value = (_randn(d_model, d_k, seed=s) / 2 for s in (8, 9, 10))
    # one cycle through all six positions: not its own inverse, so shuffling with the
    # inverse is wrong, and on this X every usual slip gives a gap of its own
    perm = torch.tensor([1, 2, 3, 4, 5, 0])
    inverse = perm.argsort()

    def gaps(causal):
        """The right gap and those of the usual slips, in float64."""
        out = _self_attention(X, W_query, W_key, W_value, causal)
        shuffled = _self_attention(X[perm], W_query, W_key, W_value, causal)
        return {
            "right": (shuffled - out[perm]).abs().max().item(),
            "not shuffled back": (shuffled - out).abs().max().item(),
            "inverse": (shuffled - out[inverse]).abs().max().item(),
            "signed": (shuffled - out[perm]).max().item(),
        }

    def diagnose(got, slips):
        """A hint naming the slip ``got`` matches, if any."""
        for name, hint in (
            (
                "not shuffled back",
                "row i of the shuffled input is token perm[i], so compare the output of "
                "X[perm] with the original output shuffled the same way, out[perm], not "
                "with out itself",
            ),
            (
                "inverse",
                "you shuffled the original output with the inverse permutation: row i of "
                "X[perm] is token perm[i], so its output is to be compared with out[perm]",
            ),
            ("signed", "return the largest *absolute* difference: take .abs() before .max()"),
        ):
            if math.isclose(got, slips[name], rel_tol=1e-3, abs_tol=1e-4):
                raise ExerciseError(hint)

    def without_mask(f):
        slips = gaps(causal=False)
        got = _number(f(X, W_query, W_key, W_value, perm, False))
        if got > 1e-4:
            diagnose(got, slips)
        expect(
            abs(got) <= 1e-4,
            f"without a mask the gap should be zero up to rounding, got {got:.4g}: self-"
            "attention treats its inputs as a set, so shuffling the tokens only shuffles "
            "the outputs. Check that both runs use the same weights and the same scale",
        )

    def with_mask(f, X=X):
        slips = gaps(causal=True)
        got = _number(f(X, W_query, W_key, W_value, perm, True))
        if abs(got) <= 1e-4:
            raise ExerciseError(
                "with causal=True the gap should not be zero: the mask belongs to the "
                "positions, not to the tokens, so a token moved to another position sees "
                "other tokens. Apply the causal mask (by position) to both runs, and do not "
                "shuffle the mask with the tokens"
            )
        if not math.isclose(got, slips["right"], rel_tol=1e-3, abs_tol=1e-4):
            diagnose(got, slips)
        expect_close(
            got,
            slips["right"],
            "with causal=True: the largest absolute difference between causal self-attention "
            "of X[perm] and the causal output of X shuffled by perm; scores divided by "
            "sqrt(d_k), the mask on j > i",
            rel=1e-3,
            abs_=1e-4,
        )

    def float64(f):
        got = _number(f(X.double(), *(W.double() for W in (W_query, W_key, W_value)), perm, True))
        expect_close(
            got,
            gaps(causal=True)["right"],
            "in float64 the gap must be the same (up to rounding): don't hard-code a dtype",
            rel=1e-3,
            abs_=1e-4,
        )

    return run_checks(
        "Exercise: shuffle the tokens", shuffle_gap, [without_mask, with_mask, float64]
    )


def _padded_reference(Q, K, V, lengths):
    """Each sequence's real tokens attending over its real tokens only: a list of outputs."""
    return [
        _self_attention_qkv(Q[b, :n], K[b, :n], V[b, :n]) for b, n in enumerate(lengths.tolist())
    ]


def _self_attention_qkv(Q, K, V, scale=True, mask=None, zero_scores=False, after=False):
    """softmax(Q K^T / sqrt(d_k)) V in float64, and its usual slips: no scale; ``mask``
    (True = allowed) applied with -inf, or (``zero_scores``) by zeroing scores, or
    (``after``) by zeroing weights after the softmax."""
    Q, K, V = Q.double(), K.double(), V.double()
    scores = Q @ K.transpose(-2, -1) / (math.sqrt(Q.shape[-1]) if scale else 1.0)
    if mask is not None and zero_scores:
        scores = scores * mask
    elif mask is not None and not after:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    if mask is not None and after:
        weights = weights * mask
    return weights @ V


def check_padded_attention(padded_attention) -> None:
    """``padded_attention(Q, K, V, lengths)``: (B, T, d_k), (B, T, d_k), (B, T, d_v) and B
    lengths; no query may give weight to a key at a position >= its sequence's length."""
    B, T, d_k, d_v = 3, 6, 9, 2
    Q, K, V = _randn(B, T, d_k, seed=11), _randn(B, T, d_k, seed=12), _randn(B, T, d_v, seed=13)
    lengths = torch.tensor([6, 4, 1])  # a full sequence, a padded one, a single token
    want = _padded_reference(Q, K, V, lengths)
    positions = torch.arange(T)
    real_key = (positions[None, :] < lengths[:, None])[:, None, :]  # (B, 1, T)
    slips = [
        (
            _self_attention_qkv(Q, K, V),
            "padding keys still get weight: before the softmax, set the scores of keys at "
            "positions j >= lengths[b] to -inf (masked_fill), so that their weight is exactly "
            "0. The mask acts on the keys (the last dimension of the scores, j): masking the "
            "queries (i) leaves real queries reading the padding",
        ),
        (
            _self_attention_qkv(Q, K, V, mask=real_key, zero_scores=True),
            "a score of 0 is not 'no attention': after the softmax it still gets weight "
            "e^0 / sum. Set the padding keys' scores to -inf, not to 0",
        ),
        (
            _self_attention_qkv(Q, K, V, mask=real_key, after=True),
            "zeroing the padding keys' weights after the softmax leaves rows that sum to "
            "less than 1: mask the scores before the softmax (with -inf) instead",
        ),
        (
            _self_attention_qkv(Q, K, V, mask=(positions[None, :] <= lengths[:, None])[:, None]),
            "off by one: a sequence of length n has real tokens at positions 0..n-1, so the "
            "key at position j is padding when j >= n (not j > n)",
        ),
        (
            _self_attention_qkv(Q, K, V, scale=False, mask=real_key),
            "the scores must still be divided by sqrt(d_k) before the softmax",
        ),
    ]

    def real_rows(got, want, lengths):
        return all(
            bool(torch.isfinite(got[b, :n]).all()) and _close(got[b, :n], w)
            for b, (n, w) in enumerate(zip(lengths.tolist(), want))
        )

    def shape(f):
        got = f(Q, K, V, lengths)
        expect(
            isinstance(got, torch.Tensor) and tuple(got.shape) == (B, T, d_v),
            f"Q, K of shape {(B, T, d_k)} and V of shape {(B, T, d_v)} give an output of "
            f"shape {(B, T, d_v)}; got {getattr(got, 'shape', got)}",
        )

    def real_tokens(f):
        got = f(Q, K, V, lengths)
        if not real_rows(got, want, lengths):
            for slip, hint in slips:
                if real_rows(got, [slip[b, :n] for b, n in enumerate(lengths.tolist())], lengths):
                    raise ExerciseError(hint)
            raise ExerciseError(
                "the outputs of real tokens differ from attention over each sequence with its "
                "padding cut off (softmax(Q K^T / sqrt(d_k)) V over the first lengths[b] keys)"
            )

    def more_padding(f):
        # The same sequences padded to a longer T, the padding full of large numbers: the
        # real tokens' outputs must not move.
        extra = 4
        junk = [100 * _randn(B, extra, d, seed=20 + d) for d in (d_k, d_k, d_v)]
        Q2, K2, V2 = (torch.cat([x, j], dim=1) for x, j in zip((Q, K, V), junk))
        # and the padding inside the shorter sequences replaced by junk too
        pad = ~(torch.arange(T + extra)[None, :] < lengths[:, None])
        K2 = K2.masked_fill(pad[..., None], 50.0)
        V2 = V2.masked_fill(pad[..., None], -50.0)
        got = f(Q2, K2, V2, lengths)
        expect(
            isinstance(got, torch.Tensor) and tuple(got.shape) == (B, T + extra, d_v),
            f"with T = {T + extra} the output must be {(B, T + extra, d_v)}: take T from the "
            "inputs, not a fixed size",
        )
        expect(
            real_rows(got, want, lengths),
            "appending more padding (or changing what the padding holds) changed the outputs "
            "of real tokens: no real query may give any weight to a padding key",
        )

    def float64(f):
        got = f(Q.double(), K.double(), V.double(), lengths)
        expect(
            real_rows(got, want, lengths),
            "with float64 inputs the outputs of real tokens must be the same (up to rounding)",
        )

    return run_checks(
        "Exercise: attention that ignores padding",
        padded_attention,
        [shape, real_tokens, more_padding, float64],
    )
