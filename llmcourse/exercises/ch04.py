"""Checks for the exercises of chapter 4, multi-head attention.

check_split_heads(split_heads)                    (..., T, C) -> (..., h, T, C / h), any batch dims
check_mha_parameter_count(mha_parameter_count)    weights and biases of one attention layer
check_attention_flops(attention_flops)            FLOPs of one multi-head attention forward
check_heads_one_by_one(heads_one_by_one)          a fused layer rebuilt from h single heads
check_best_blend_accuracy(best_blend_accuracy)    what a read-out can get from an even blend
"""

from __future__ import annotations

import math

import torch

from llmcourse.exercises import ExerciseError, as_number, expect, run_checks

__all__ = [
    "check_split_heads",
    "check_mha_parameter_count",
    "check_attention_flops",
    "check_heads_one_by_one",
    "check_best_blend_accuracy",
]


def check_split_heads(split_heads) -> None:
    """``split_heads(x, num_heads)``: (..., T, C) -> (..., h, T, d), head i = features
    i*d:(i+1)*d, for any number of leading dimensions (none, a batch, batch and beams)."""
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
                "transpose the head and token dimensions",
            )

    def other_sizes(f):
        y = torch.randn(1, 5, 6, generator=torch.Generator().manual_seed(0))
        got = f(y, 3)
        expect(
            tuple(got.shape) == (1, 3, 5, 2) and torch.equal(got[0, 2], y[0, :, 4:]),
            "use the sizes of x and num_heads, not fixed numbers",
        )

    def leading_dims(f):
        hint = (
            "x may have any number of leading dimensions: B, T, C = x.shape assumes exactly "
            "three. Split the last dimension (x.shape[:-1] + (h, d)), then swap the token and "
            "head dimensions counted from the end (transpose(-3, -2))"
        )
        one = torch.arange(5 * 6, dtype=torch.float64).view(5, 6)  # (T, C): no batch
        try:
            got = f(one, 3)
        except Exception as error:  # noqa: BLE001 - the usual slip raises on unpacking
            raise ExerciseError(f"{hint} (on a (5, 6) input it raised {error!r})") from None
        expect(
            isinstance(got, torch.Tensor)
            and tuple(got.shape) == (3, 5, 2)
            and torch.equal(got[1], one[:, 2:4]),
            f"{hint}; a (T, C) = (5, 6) input with 3 heads gives (3, 5, 2)",
        )
        four = torch.randn(2, 3, 4, 6, generator=torch.Generator().manual_seed(1))
        try:
            got = f(four, 2)
        except Exception as error:  # noqa: BLE001
            raise ExerciseError(f"{hint} (on a (2, 3, 4, 6) input it raised {error!r})") from None
        expect(
            isinstance(got, torch.Tensor)
            and tuple(got.shape) == (2, 3, 2, 4, 3)
            and torch.equal(got[1, 2, 1], four[1, 2, :, 3:]),
            f"{hint}; a (2, 3, 4, 6) input with 2 heads gives (2, 3, 2, 4, 3)",
        )

    return run_checks(
        "Exercise: split heads", split_heads, [shape, slices, other_sizes, leading_dims]
    )


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


FLOAT64_HINT = (
    "in float64 the answer must stay float64 and agree with the fused layer: build the "
    "single-head layers in x's dtype (nn.Linear(C, d, dtype=x.dtype))"
)


def _fused_layer(C: int, h: int, seed: int, dtype=torch.float32):
    """A ``MultiHeadAttention`` with seeded random weights, its ``state_dict`` and an input."""
    from llmcourse.multihead import MultiHeadAttention

    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():  # leave the student's random state alone
        layer = MultiHeadAttention(C, h).to(dtype)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=dtype) * 0.5)
    x = torch.randn(2, 5, C, generator=g, dtype=dtype)
    return layer, {k: v.clone() for k, v in layer.state_dict().items()}, x


def _by_hand(x, state, h, strided=False, scale=None, out_proj=True, qkv_bias=True):
    """Head by head, with the usual slips as switches (the checks name the one made)."""
    C = x.shape[-1]
    d = C // h
    heads = []
    for i in range(h):
        rows = slice(i, None, h) if strided else slice(i * d, (i + 1) * d)
        q, k, v = (
            x @ state[f"{n}_proj.weight"][rows].T
            + (state[f"{n}_proj.bias"][rows] if qkv_bias else 0)
            for n in "qkv"
        )
        weights = torch.softmax(q @ k.transpose(-2, -1) / (scale or d) ** 0.5, dim=-1)
        heads.append(weights @ v)
    concat = torch.cat(heads, dim=-1)
    return concat @ state["out_proj.weight"].T + state["out_proj.bias"] if out_proj else concat


def check_heads_one_by_one(heads_one_by_one) -> None:
    """``heads_one_by_one(x, state, num_heads)``: the fused layer's output, head by head."""

    def answer_on(f, C, h, seed, dtype=torch.float32):
        layer, state, x = _fused_layer(C, h, seed, dtype)
        with torch.no_grad():
            want = layer(x, x, x)
        try:
            got = f(x, {k: v.clone() for k, v in state.items()}, h)
        except RuntimeError as error:
            if dtype == torch.float32 or "dtype" not in str(error):
                raise
            expect(False, f"{FLOAT64_HINT} (your answer raised: {error})")
        expect(
            isinstance(got, torch.Tensor) and tuple(got.shape) == tuple(x.shape),
            f"x of shape (B, T, C) = {tuple(x.shape)} must give an output of the same shape "
            f"(concatenate the {h} heads' (B, T, C/h) outputs along the features), got "
            f"{tuple(getattr(got, 'shape', ())) or type(got).__name__}",
        )
        return got.detach(), want, state, x

    def same_as_fused(f):
        got, want, state, x = answer_on(f, 8, 2, 0)
        if torch.allclose(got, want, rtol=1e-4, atol=1e-5):
            return
        slips = [
            (
                dict(out_proj=False),
                "apply the output projection W^O (out_proj) to the "
                "concatenated heads: the fused layer mixes the heads' answers with it",
            ),
            (
                dict(strided=True),
                "head i owns the contiguous rows i*d to (i+1)*d - 1 of "
                "q_proj, k_proj and v_proj (d = C / num_heads), not every num_heads-th row",
            ),
            (
                dict(scale=x.shape[-1]),
                "scale each head's scores by sqrt(d) of the head "
                "(d = C / num_heads), not by sqrt(C) of the model",
            ),
            (
                dict(qkv_bias=False),
                "each head's query, key and value layers also take their "
                "slice of the biases q_proj.bias, k_proj.bias, v_proj.bias",
            ),
        ]
        for slip, hint in slips:
            expect(not torch.allclose(got, _by_hand(x, state, 2, **slip), atol=1e-5), hint)
        expect(
            False,
            "the output differs from the fused MultiHeadAttention with the same weights "
            "(self-attention, no mask: every token attends to every token)",
        )

    def other_sizes(f):
        for C, h, seed in ((12, 3, 1), (6, 1, 2), (16, 4, 3)):
            got, want, _, _ = answer_on(f, C, h, seed)
            expect(
                torch.allclose(got, want, rtol=1e-4, atol=1e-5),
                f"right for 2 heads of width 4 but not for {h} head(s) with C={C}: use "
                "num_heads and the sizes of x, not fixed numbers",
            )

    def float64(f):
        got, want, _, _ = answer_on(f, 8, 2, 4, torch.float64)
        expect(
            got.dtype == torch.float64 and torch.allclose(got, want, rtol=1e-7, atol=1e-9),
            FLOAT64_HINT,
        )

    return run_checks(
        "Exercise: multi-head attention from single heads",
        heads_one_by_one,
        [same_as_fused, other_sizes, float64],
    )


def _best_blend(values: torch.Tensor) -> float:
    """The reference: distinct blends (v_a + v_b) / 2, to 1e-6, over all vocab^2 pairs."""
    vocab = values.shape[0]
    flat = ((values[:, None] + values[None, :]).double() / 2).reshape(vocab * vocab, -1)
    same = (flat[:, None] - flat[None, :]).abs().amax(-1) <= 1e-6
    return (~same.tril(-1).any(-1)).sum().item() / (vocab * vocab)


def check_best_blend_accuracy(best_blend_accuracy) -> None:
    """``best_blend_accuracy(values)``: the fraction of the vocab^2 ordered pairs (a, b) that
    the best read-out of (values[a] + values[b]) / 2 gets entirely right."""
    gen = torch.Generator().manual_seed(4)

    def number(got) -> float:
        return as_number(got, "a fraction")

    def ask(f, values, what):
        got = number(f(values))
        want = _best_blend(values)
        vocab = values.shape[0]
        if math.isclose(got, (vocab + 1) / (2 * vocab), rel_tol=1e-6) and not math.isclose(
            got, want, rel_tol=1e-6
        ):
            raise ExerciseError(
                f"for {what} you returned (vocab + 1) / (2 vocab), the answer for value vectors "
                "in general position; count the distinct blends of the table you are given: "
                "equal value vectors, or values with a linear relation, make more pairs collide"
            )
        if math.isclose(got, 1.0) and want < 1:
            raise ExerciseError(
                "divide by all vocab^2 ordered pairs: (a, b) and (b, a) are different inputs "
                "(which token stands at which position) but give the same blend"
            )
        expect(
            math.isclose(got, want, rel_tol=1e-6),
            f"for {what} expected {want:.4f}, got {got:.4f}: count the groups of pairs whose "
            "blends agree to 1e-6 (each group gives the best read-out one right answer) and "
            "divide by vocab^2",
        )

    def general(f):
        ask(f, torch.randn(16, 8, generator=gen), "16 random value vectors")

    def small(f):
        ask(f, torch.randn(5, 3, generator=gen).double(), "5 random float64 value vectors")

    def equal_values(f):
        values = torch.randn(4, 6, generator=gen)
        values[3] = values[0]  # tokens 0 and 3 pass on the same vector
        ask(f, values, "a table in which tokens 0 and 3 have the same value vector")

    def linear_relation(f):
        values = torch.randn(4, 6, generator=gen, dtype=torch.float64)
        # v_0 + v_1 = v_2 + v_3 up to 1e-9: blends of (0, 1) and (2, 3) agree to rounding
        values[3] = values[0] + values[1] - values[2] + 1e-9
        got = number(f(values))
        if math.isclose(got, 10 / 16, rel_tol=1e-6):
            raise ExerciseError(
                "blends that differ only by rounding (here by 1e-9) count as the same: compare "
                "with a tolerance (no entry more than 1e-6 apart), not with exact equality"
            )
        ask(f, values, "a table with v_0 + v_1 = v_2 + v_3")

    return run_checks(
        "Exercise: the best an even blend can do",
        best_blend_accuracy,
        [general, small, equal_values, linear_relation],
    )
