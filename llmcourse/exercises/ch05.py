"""Checks for the exercises of chapter 5, multi-head attention.

check_split_heads(split_heads)                    (B, T, C) -> (B, h, T, C / h)
check_mha_parameter_count(mha_parameter_count)    weights and biases of one attention layer
check_attention_flops(attention_flops)            FLOPs of one multi-head attention forward
"""

from __future__ import annotations

import torch

from llmcourse.exercises import expect, run_checks

__all__ = ["check_split_heads", "check_mha_parameter_count", "check_attention_flops"]


def check_split_heads(split_heads) -> None:
    """``split_heads(x, num_heads)``: (B, T, C) -> (B, h, T, d); head i = features i*d:(i+1)*d."""
    B, T, C, h = 2, 3, 8, 4
    x = torch.arange(B * T * C, dtype=torch.float32).view(B, T, C)

    def shape(f):
        got = f(x, h)
        expect(
            isinstance(got, torch.Tensor) and tuple(got.shape) == (B, h, T, C // h),
            f"(batch, seq, embed_dim) = {(B, T, C)} with {h} heads must give (batch, heads, "
            f"seq, head_dim) = {(B, h, T, C // h)}, got {tuple(getattr(got, 'shape', ()))}",
        )

    def slices(f):
        got = f(x, h)
        for i in range(h):
            expect(
                torch.equal(got[:, i], x[:, :, 2 * i : 2 * i + 2]),
                f"head {i} must hold features {2 * i}:{2 * i + 2} of every token; a plain "
                "view(B, h, T, d) mixes tokens and features: view as (B, T, h, d), then "
                "transpose(1, 2)",
            )

    def other_sizes(f):
        y = torch.randn(1, 5, 6, generator=torch.Generator().manual_seed(0))
        got = f(y, 3)
        expect(
            tuple(got.shape) == (1, 3, 5, 2) and torch.equal(got[0, 2], y[0, :, 4:]),
            "use the sizes of x and num_heads, not fixed numbers",
        )

    return run_checks("Exercise: split heads", split_heads, [shape, slices, other_sizes])


def check_mha_parameter_count(mha_parameter_count) -> None:
    """``mha_parameter_count(d_model, num_heads, bias=True)``: parameters of one MHA layer."""

    def gpt2(f):
        got = f(768, 12, True)
        expect(
            got != 3 * 768 * 768 + 3 * 768,
            "don't forget the output projection W^O: four (d_model x d_model) matrices",
        )
        expect(
            got != 4 * 768 * 768,
            "with bias=True each of the four projections also has d_model biases",
        )
        expect(
            got == 4 * 768 * 768 + 4 * 768,
            f"GPT-2 small's attention layer (d_model=768, 12 heads) has "
            f"{4 * 768 * 768 + 4 * 768:,} parameters, got {got!r}",
        )

    def heads_free(f):
        expect(
            f(64, 1, True) == f(64, 8, True),
            "the head count does not change the parameter count: h heads of size d_model/h "
            "share the same d_model x d_model matrices",
        )

    def no_bias(f):
        expect(f(10, 2, False) == 400, "without biases: 4 * d_model ** 2 = 400 for d_model=10")

    return run_checks(
        "Exercise: attention parameter count", mha_parameter_count, [gpt2, heads_free, no_bias]
    )


def check_attention_flops(attention_flops) -> None:
    """``attention_flops(T, d_model, num_heads)``: 8 T d^2 + 4 T^2 d (multiply-add = 2 FLOPs)."""

    def small(f):
        got = f(4, 8, 2)
        expect(
            got != 4 * 4 * 64 + 2 * 16 * 8,
            "count a multiply-add as 2 FLOPs: an (m x n) @ (n x p) product costs 2 m n p",
        )
        expect(got != 8 * 4 * 64, "include the two T x T products: Q K^T and weights @ V")
        expect(
            got == 8 * 4 * 64 + 4 * 16 * 8,
            f"expected 8 T d^2 + 4 T^2 d = {8 * 4 * 64 + 4 * 16 * 8} for T=4, d_model=8, "
            f"got {got!r}",
        )

    def heads_free(f):
        expect(
            f(16, 64, 1) == f(16, 64, 8),
            "the FLOPs don't depend on the head count: h heads of size d_model/h do "
            "h * 2 T^2 (d_model/h) = 2 T^2 d_model for Q K^T",
        )

    def quadratic(f):
        ratio = f(2048, 64, 4) / f(1024, 64, 4)
        expect(
            ratio > 3.5,
            "doubling a long sequence must nearly quadruple the cost: the "
            "attention products grow with T^2",
        )

    return run_checks("Exercise: attention FLOPs", attention_flops, [heads_free, small, quadratic])
