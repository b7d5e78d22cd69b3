"""Checks for the exercises of chapter 6, feed-forward, residual connections and layer norm.

check_layer_norm(layer_norm)              LayerNorm over the trailing dimensions weight spans
check_layer_norm_effect(layer_norm_effect)  predictions: what shifting or scaling does to it
check_gelu_tanh(gelu_tanh)                the tanh approximation of GELU
check_ffn_param_count(ffn_param_count)    parameters of a position-wise feed-forward network
check_pre_norm_layer(pre_norm_layer)      a whole pre-norm layer: attention half, then FFN half
check_stream_std(stream_std)              how fast the residual stream grows with depth
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from llmcourse.exercises import ExerciseError, expect, run_checks

__all__ = [
    "check_layer_norm",
    "check_layer_norm_effect",
    "check_gelu_tanh",
    "check_ffn_param_count",
    "check_pre_norm_layer",
    "check_stream_std",
]


def _close(got, want, atol: float) -> bool:
    got = torch.as_tensor(got, dtype=want.dtype)
    return got.shape == want.shape and bool(torch.allclose(got, want, atol=atol, rtol=0))


def check_layer_norm(layer_norm) -> None:
    """``layer_norm(x, weight, bias, eps)``: normalize x over its last ``weight.dim()``
    dimensions together, like ``nn.LayerNorm(weight.shape)``."""
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(3, 5, 4, generator=gen, dtype=torch.float64) * 2 + 1
    w = torch.randn(4, generator=gen, dtype=torch.float64)
    b = torch.randn(4, generator=gen, dtype=torch.float64)
    # a normalized shape of two dimensions: one mean and one variance per (5, 4) slice
    w2 = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    b2 = torch.randn(5, 4, generator=gen, dtype=torch.float64)

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
            "with a weight of shape (4,), weight 1 and bias 0 every position (last dimension) "
            "should have mean 0: normalize over dim=-1, not over the batch or the sequence",
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

    def two_dimensions(f):
        want = F.layer_norm(x, (5, 4), w2, b2, 1e-5)
        got = torch.as_tensor(f(x, w2, b2, 1e-5), dtype=x.dtype)
        expect(
            tuple(got.shape) == (3, 5, 4),
            f"with weight of shape (5, 4) the output keeps x's shape (3, 5, 4), "
            f"got {tuple(got.shape)}",
        )
        last_only = (x - x.mean(-1, keepdim=True)) / torch.sqrt(
            x.var(-1, unbiased=False, keepdim=True) + 1e-5
        ) * w2 + b2
        expect(
            not _close(got, last_only, 1e-4),
            "with weight of shape (5, 4) you normalized over the last dimension only, as "
            "the chapter's layer_norm does: take one mean and one variance over the last "
            "weight.dim() = 2 dimensions together (dim=(-2, -1))",
        )
        expect(
            _close(got, want, 1e-4),
            "with weight of shape (5, 4), each (5, 4) slice of x gets one mean and one "
            "(biased) variance over all its 20 numbers, then the gain and shift, as "
            "nn.LayerNorm((5, 4)) does",
        )

    return run_checks(
        "Exercise: layer norm", layer_norm, [shape, plain, affine, eps_inside, two_dimensions]
    )


# the changes of ex-ch06-layer-norm-effect, applied to a vector of mean 0 and variance 1
CHANGES = {
    "add 3": lambda v: v + 3,
    "times 10": lambda v: v * 10,
    "times -1": lambda v: -v,
    "times 0.001": lambda v: v * 0.001,
    "add 1 to one feature": lambda v: v + torch.eye(v.shape[-1], dtype=v.dtype)[0],
}
EFFECTS = ("same", "negated", "smaller", "changed")
_EFFECT_OF = {
    "add 3": "same",
    "times 10": "same",
    "times -1": "negated",
    "times 0.001": "smaller",
    "add 1 to one feature": "changed",
}
_WHY = {
    "add 3": "layer norm subtracts the mean first, so a constant added to every feature "
    "is removed before anything else happens: the output is the same",
    "times 10": "layer norm divides by the standard deviation, which grows tenfold too; "
    "eps = 1e-5 is negligible beside a variance of 100: the output is the same",
    "times -1": "negating x negates its mean and every centred feature, and leaves the "
    "standard deviation alone: the output is negated",
    "times 0.001": "the variance becomes 1e-6, now smaller than eps = 1e-5 inside the root, "
    "so the division no longer brings the spread back to 1: the same direction, smaller "
    "(by about sqrt(1e-6 / 1.1e-5) = 0.30)",
    "add 1 to one feature": "this moves one feature relative to the others, which no "
    "subtraction of a mean or division by a spread can undo: the output changes",
}


def check_layer_norm_effect(layer_norm_effect) -> None:
    """``layer_norm_effect(change)``: for each change in ``CHANGES`` made to a vector of
    mean 0 and variance 1, what layer norm (weight 1, bias 0, eps 1e-5) then gives, compared
    with its output y on the vector itself: "same", "negated", "smaller" or "changed"."""

    def answer(f, change):
        got = f(change)
        expect(
            isinstance(got, str) and got.strip().lower() in EFFECTS,
            f"for {change!r} return one of {', '.join(map(repr, EFFECTS))}, got {got!r}",
        )
        return got.strip().lower()

    def shifts(f):
        for change in ("add 3", "add 1 to one feature"):
            got = answer(f, change)
            expect(got == _EFFECT_OF[change], f"{change!r}: you said {got!r}, but {_WHY[change]}")

    def scales(f):
        for change in ("times 10", "times -1", "times 0.001"):
            got = answer(f, change)
            expect(got == _EFFECT_OF[change], f"{change!r}: you said {got!r}, but {_WHY[change]}")

    return run_checks("Exercise: what layer norm ignores", layer_norm_effect, [shifts, scales])


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


def check_pre_norm_layer(pre_norm_layer) -> None:
    """``pre_norm_layer(x, attn, ffn, norm1, norm2)``: x + attn(norm1(x)), then that stream
    plus ffn(norm2(that stream))."""
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(2, 3, 4, generator=gen) * 3 + 1
    wa, wf = torch.randn(4, 4, generator=gen), torch.randn(4, 4, generator=gen)
    g1, g2 = torch.rand(4, generator=gen) + 0.5, torch.rand(4, generator=gen) + 0.5

    def attn(h):
        return torch.tanh(h @ wa)

    def ffn(h):
        return torch.sin(h @ wf)

    def norm1(h):
        return F.layer_norm(h, (4,)) * g1

    def norm2(h):
        return F.layer_norm(h, (4,)) * g2

    def reference(x, attn, ffn, norm1, norm2):
        h = x + attn(norm1(x))
        return h + ffn(norm2(h))

    def far(got, want):
        return not torch.allclose(torch.as_tensor(got, dtype=want.dtype), want, atol=1e-5)

    def order(f):
        got = f(x, attn, ffn, norm1, norm2)
        expect(
            isinstance(got, torch.Tensor) and tuple(got.shape) == (2, 3, 4),
            "return a tensor of x's shape (2, 3, 4)",
        )
        h = norm1(x + attn(x))
        expect(
            far(got, norm2(h + ffn(h))),
            "that is a post-norm layer, norm(x + sublayer(x)) twice; pre-norm normalizes "
            "each sublayer's input only",
        )
        expect(
            far(got, x + attn(norm1(x)) + ffn(norm2(x))),
            "the feed-forward half read the layer's input x: it must read the stream after "
            "the attention half has added to it (that is the 'parallel' block of GPT-J)",
        )
        h = x + attn(norm2(x))
        expect(
            far(got, h + ffn(norm1(h))),
            "the two norms are swapped: norm1 belongs to the attention half, norm2 to the "
            "feed-forward half (they have different gains)",
        )
        h = norm1(x) + attn(norm1(x))
        expect(
            far(got, norm2(h) + ffn(norm2(h))),
            "add the raw stream, not its normalized copy: the residual stream itself is "
            "never normalized in a pre-norm layer",
        )
        expect(
            not far(got, reference(x, attn, ffn, norm1, norm2)),
            "h = x + attn(norm1(x)), then h + ffn(norm2(h))",
        )

    def identity(f):
        def zero(h):
            return torch.zeros_like(h)

        expect(
            not far(f(x, zero, zero, norm1, norm2), x),
            "with sublayers that output zeros the layer must return x unchanged: add both "
            "sublayers' outputs to the stream",
        )
        only_ffn = f(x, zero, ffn, norm1, norm2)
        expect(
            not far(only_ffn, x + ffn(norm2(x))),
            "with an attention that outputs zeros, the layer is x + ffn(norm2(x))",
        )

    return run_checks("Exercise: pre-norm layer", pre_norm_layer, [order, identity])


def check_stream_std(stream_std) -> None:
    """``stream_std(n_blocks, write_ratio)``: the standard deviation of the residual stream
    after ``n_blocks`` blocks, starting from 1, when each block adds a write uncorrelated
    with the stream and of variance ``write_ratio`` times the stream's variance at its turn:
    (1 + write_ratio) ** (n_blocks / 2)."""

    def value(f, n, r):
        got = f(n, r)
        try:
            return float(got)
        except (TypeError, ValueError):
            raise ExerciseError(f"return one number, got {got!r}") from None

    def no_blocks(f):
        expect(
            math.isclose(value(f, 0, 1.0), 1.0, rel_tol=1e-6),
            "with no blocks the stream keeps its starting standard deviation, 1",
        )

    def growth(f):
        for n, r in ((32, 1.0), (10, 0.5), (32, 1 / 32), (7, 0.2), (1, 1.0)):
            got, want = value(f, n, r), (1 + r) ** (n / 2)
            if math.isclose(got, want, rel_tol=1e-5):
                continue
            expect(
                not math.isclose(got, (1 + r) ** n, rel_tol=1e-5),
                f"stream_std({n}, {r}) = {got:.6g} is the VARIANCE, (1 + r)^n: return the "
                "standard deviation, its square root",
            )
            expect(
                not math.isclose(got, math.sqrt(1 + n * r), rel_tol=1e-5)
                and not math.isclose(got, 1 + n * r, rel_tol=1e-5),
                f"stream_std({n}, {r}) = {got:.6g}: each block writes in proportion to the "
                "stream as it stands at its turn, which already holds the earlier writes, "
                "so the variance is multiplied by (1 + r) at every block (it compounds), "
                "it does not grow by a fixed r",
            )
            expect(
                not math.isclose(got, math.sqrt(r) ** n, rel_tol=1e-5),
                f"stream_std({n}, {r}) = {got:.6g}: the write is added to the stream, not "
                "put in its place, so each block multiplies the variance by 1 + r, not r",
            )
            raise ExerciseError(
                f"stream_std({n}, {r}): expected {want:.6g}, got {got:.6g}. Each block "
                "multiplies the variance by (1 + r)"
            )

    return run_checks(
        "Exercise: how fast the residual stream grows", stream_std, [growth, no_blocks]
    )
