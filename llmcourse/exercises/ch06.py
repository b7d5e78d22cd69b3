"""Checks for the exercises of chapter 6, feed-forward, residual connections and layer norm.

check_layer_norm(layer_norm)              LayerNorm over the last dimension, from scratch
check_gelu_tanh(gelu_tanh)                the tanh approximation of GELU
check_ffn_param_count(ffn_param_count)    parameters of a position-wise feed-forward network
check_pre_norm_block(pre_norm_block)      the order of operations in a pre-norm block
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from llmcourse.exercises import expect, run_checks

__all__ = ["check_layer_norm", "check_gelu_tanh", "check_ffn_param_count", "check_pre_norm_block"]


def _close(got, want, atol: float) -> bool:
    got = torch.as_tensor(got, dtype=want.dtype)
    return got.shape == want.shape and bool(torch.allclose(got, want, atol=atol, rtol=0))


def check_layer_norm(layer_norm) -> None:
    """``layer_norm(x, weight, bias, eps)``: normalize x over its last dimension, like
    nn.LayerNorm."""
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(3, 5, 4, generator=gen, dtype=torch.float64) * 2 + 1
    w = torch.randn(4, generator=gen, dtype=torch.float64)
    b = torch.randn(4, generator=gen, dtype=torch.float64)

    def shape(f):
        got = f(x, w, b, 1e-5)
        expect(
            tuple(got.shape) == (3, 5, 4),
            f"the output keeps the input's shape (3, 5, 4), got {tuple(got.shape)}",
        )

    def plain(f):
        got = f(x, torch.ones_like(w), torch.zeros_like(b), 0.0)
        expect(
            _close(got.mean(-1), torch.zeros(3, 5, dtype=x.dtype), 1e-6),
            "with weight 1 and bias 0 every position (last dimension) should have mean 0: "
            "normalize over dim=-1, not over the batch or the sequence",
        )
        var = got.var(-1, unbiased=False)
        expect(
            not _close(var, torch.full_like(var, 3 / 4), 1e-6),
            "the variance came out 3/4, not 1: use the biased variance (divide by N, "
            "unbiased=False), as nn.LayerNorm does",
        )
        expect(
            _close(var, torch.ones_like(var), 1e-6),
            "with weight 1, bias 0 and eps 0 each position should have variance 1 "
            "(divide by N, not N - 1)",
        )

    def affine(f):
        want = F.layer_norm(x, (4,), w, b, 1e-5)
        expect(
            _close(f(x, w, b, 1e-5), want, 1e-4),
            "after normalizing, multiply by weight and then add bias",
        )

    def eps_inside(f):
        tiny = x * 1e-3  # variance about 4e-6, comparable to eps
        want = F.layer_norm(tiny, (4,), w, b, 1e-5)
        expect(
            _close(f(tiny, w, b, 1e-5), want, 1e-6),
            "for inputs with a small variance the result is off: eps goes inside the square "
            "root, (x - mean) / sqrt(var + eps), not (x - mean) / (std + eps)",
        )

    return run_checks("Exercise: layer norm", layer_norm, [shape, plain, affine, eps_inside])


def check_gelu_tanh(gelu_tanh) -> None:
    """``gelu_tanh(x)``: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    x = torch.linspace(-6, 6, 241, dtype=torch.float64)
    want = F.gelu(x, approximate="tanh")
    # Tolerance: a correct float32 answer is off by about 1e-6 here, while the exact GELU
    # differs from the tanh form by up to 4.7e-4 and the usual slips by far more.
    tol = 2e-5

    def values(f):
        got = f(x)
        expect(
            isinstance(got, torch.Tensor) and got.shape == x.shape,
            "return a tensor of the same shape as x",
        )
        expect(
            not _close(got, F.gelu(x), tol),
            "this is the exact GELU (erf); write the tanh approximation",
        )

    def exact(f):
        got = f(x)
        expect(not _close(got, 2 * want, tol), "you are missing the factor 0.5 in front")
        expect(
            _close(got, want, tol),
            "0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))): check sqrt(2 / pi) "
            "(not sqrt(pi / 2)) and the cubic term 0.044715 x^3",
        )

    def limits(f):
        got = f(torch.tensor([-20.0, 0.0, 20.0], dtype=torch.float64))
        expect(abs(float(got[1])) < 1e-12, "GELU(0) is 0")
        expect(
            abs(float(got[2]) - 20) < 1e-5 and abs(float(got[0])) < 1e-5,
            "GELU(x) is about x for large positive x and about 0 for large negative x",
        )

    return run_checks("Exercise: GELU, tanh approximation", gelu_tanh, [values, exact, limits])


def check_ffn_param_count(ffn_param_count) -> None:
    """``ffn_param_count(d_model, d_ff)``: weights and biases of linear1 and linear2."""

    def tiny(f):
        expect(f(1, 1) == 4, "d_model = d_ff = 1: two 1x1 weights and two biases, 4 parameters")

    def biases(f):
        got = f(10, 40)
        expect(got != 2 * 10 * 40, "count the biases too: linear1 has d_ff, linear2 d_model")
        expect(
            got != 2 * 10 * 40 + 2 * 40 and got != 2 * 10 * 40 + 2 * 10,
            "linear1's bias has d_ff entries, linear2's has d_model entries",
        )
        expect(got == 2 * 10 * 40 + 40 + 10, "2 d_model d_ff + d_ff + d_model")

    def gpt2(f):
        got = f(768, 3072)
        expect(
            isinstance(got, int) and got == 4_722_432,
            f"GPT-2 small's MLP (d_model=768, d_ff=3072) has 4,722,432 parameters per block, "
            f"got {got!r} (return an int)",
        )

    return run_checks(
        "Exercise: feed-forward parameter count", ffn_param_count, [biases, tiny, gpt2]
    )


def check_pre_norm_block(pre_norm_block) -> None:
    """``pre_norm_block(x, sublayer, norm)``: x + sublayer(norm(x))."""
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(2, 3, 4, generator=gen) * 3 + 1
    weight = torch.randn(4, 4, generator=gen)

    def sublayer(h):
        return torch.tanh(h @ weight)

    def norm(h):
        return F.layer_norm(h, (4,))

    def order(f):
        got = f(x, sublayer, norm)
        expect(
            not torch.allclose(got, norm(x + sublayer(x)), atol=1e-5),
            "that is a post-norm block, norm(x + sublayer(x)); pre-norm normalizes the "
            "sublayer's input only",
        )
        expect(
            not torch.allclose(got, sublayer(norm(x)), atol=1e-5),
            "the residual connection is missing: add x back",
        )
        expect(
            not torch.allclose(got, norm(x) + sublayer(norm(x)), atol=1e-5),
            "add the raw x, not norm(x): the residual stream itself is never normalized "
            "in a pre-norm block",
        )
        expect(torch.allclose(got, x + sublayer(norm(x)), atol=1e-5), "x + sublayer(norm(x))")

    def identity(f):
        zero = f(x, lambda h: torch.zeros_like(h), norm)
        expect(
            torch.allclose(zero, x),
            "with a sublayer that outputs zeros the block must return x unchanged",
        )

    return run_checks("Exercise: pre-norm block", pre_norm_block, [order, identity])
