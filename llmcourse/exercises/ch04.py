"""Checks for the exercises of chapter 4, self-attention.

check_stable_softmax(stable_softmax)    softmax along the last dimension, without overflow
check_attention(my_attention)           softmax(Q K^T / sqrt(d_k)) V
check_causal_mask(causal_mask)          a boolean (T, T) mask, True where i may attend to j
"""

from __future__ import annotations

import math

import torch

from llmcourse.exercises import expect, run_checks

__all__ = ["check_stable_softmax", "check_attention", "check_causal_mask"]


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


def check_attention(attention) -> None:
    """``attention(Q, K, V)``: scaled dot-product attention, (L, d_k), (S, d_k), (S, d_v)."""
    Q, K, V = _randn(4, 16, seed=1), _randn(6, 16, seed=2), _randn(6, 3, seed=3)
    want = torch.softmax(Q @ K.T / 4.0, dim=-1) @ V
    # A second shape where sqrt(d_k) = 3 differs from L = 5, S = 7 and d_v = 2, so that a
    # scale taken from the wrong size, or a hard-coded 4, gives wrong values.
    Q2, K2, V2 = _randn(5, 9, seed=4), _randn(7, 9, seed=5), _randn(7, 2, seed=6)

    def shape(f):
        got = f(Q, K, V)
        expect(
            isinstance(got, torch.Tensor) and tuple(got.shape) == (4, 3),
            "queries (4, 16), keys (6, 16), values (6, 3) give an output of shape (4, 3) "
            f"(one row per query, d_v columns); got {getattr(got, 'shape', got)}",
        )

    def values(f):
        got = f(Q, K, V)
        unscaled = torch.softmax(Q @ K.T, dim=-1) @ V
        expect(
            not _close(got, unscaled),
            "the scores must be divided by sqrt(d_k) = 4 before the softmax",
        )
        wrong_dim = torch.softmax(Q @ K.T / 4.0, dim=0) @ V
        expect(
            not _close(got, wrong_dim),
            "the softmax goes along the keys (dim=-1): each query's weights sum to 1",
        )
        expect(_close(got, want), "expected softmax(Q K^T / sqrt(d_k)) V")

    def other_shape(f):
        got = f(Q2, K2, V2)
        expect(
            isinstance(got, torch.Tensor) and tuple(got.shape) == (5, 2),
            "queries (5, 9), keys (7, 9), values (7, 2) give an output of shape (5, 2); "
            f"got {getattr(got, 'shape', got)}",
        )
        expect(
            _close(got, torch.softmax(Q2 @ K2.T / 3.0, dim=-1) @ V2),
            "with d_k = 9 the scores are divided by sqrt(9) = 3: take d_k from the last "
            "dimension of Q or K, not a fixed number or another size",
        )

    def one_key(f):
        got = f(Q, K[:1], V[:1])
        expect(
            _close(got, V[:1].expand(4, 3)),
            "with a single key every query must return that key's value exactly",
        )

    return run_checks(
        "Exercise: scaled dot-product attention", attention, [shape, values, other_shape, one_key]
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
