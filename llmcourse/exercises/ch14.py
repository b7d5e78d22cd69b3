"""Checks for the exercises of chapter 14, small and fast.

check_gguf_bytes(gguf_bytes)                          bytes of a tensor in F32, Q8_0, Q4_1
check_encode_q4_1(encode_q4_1)                        the Q4_1 encoder of one block
check_expected_tokens_per_pass(expected_tokens)       speculative decoding's yield per pass
"""

from __future__ import annotations

import math

import torch

from llmcourse.exercises import ExerciseError, expect, expect_close, run_checks

__all__ = ["check_encode_q4_1", "check_expected_tokens_per_pass", "check_gguf_bytes"]


def check_gguf_bytes(gguf_bytes) -> None:
    """``gguf_bytes(n_weights, fmt)``: bytes that ``n_weights`` weights take in ``fmt``
    (``"F32"``, ``"Q8_0"`` or ``"Q4_1"``), an int; n_weights is a multiple of 32."""

    def f32(f):
        got = f(64, "F32")
        expect(got == 256, f"F32 stores 4 bytes per weight: 64 weights take 256 bytes, got {got!r}")

    def q8_0(f):
        got = f(32, "Q8_0")
        expect(
            got != 32,
            "Q8_0 stores more than the 32 one-byte codes: each block also has its float16 scale",
        )
        expect(got != 8.5 * 32 and got != 272, "the answer is in bytes, not bits")
        expect(got == 34, f"one Q8_0 block: a 2-byte scale and 32 one-byte codes, got {got!r}")

    def q4_1(f):
        got = f(32, "Q4_1")
        expect(
            got != 16,
            "Q4_1 stores more than the 32 half-byte codes: each block also has "
            "its float16 scale d and float16 minimum m",
        )
        expect(got != 18, "you counted the scale but forgot the minimum m (2 more bytes)")
        expect(got != 160, "the answer is in bytes, not bits")
        expect(
            got == 20, f"one Q4_1 block: d (2 bytes), m (2 bytes), 32 codes of 4 bits, got {got!r}"
        )

    def many_blocks(f):
        got = f(576 * 1536, "Q4_1")
        want = 576 * 1536 // 32 * 20
        expect(
            got == want,
            f"a 576 x 1536 matrix has {576 * 1536 // 32} blocks of 32: "
            f"{want} bytes in Q4_1, got {got!r}",
        )
        expect(
            isinstance(got, int) and isinstance(f(32, "Q8_0"), int),
            f"return an int (a number of bytes), got {type(got).__name__}",
        )

    return run_checks(
        "Exercise: bytes of a GGUF tensor", gguf_bytes, [f32, q8_0, q4_1, many_blocks]
    )


def _as_floats(x) -> torch.Tensor:
    return torch.as_tensor(x, dtype=torch.float64)


def check_encode_q4_1(encode_q4_1) -> None:
    """``encode_q4_1(block)``: a tensor of 32 weights -> (d, m, codes), with codes integers in
    0..15 such that ``d * codes + m`` is as close to the block as Q4_1 allows."""
    gen = torch.Generator().manual_seed(14)
    blocks = [
        torch.randn(32, generator=gen, dtype=dtype) * scale + shift
        for dtype, scale, shift in [
            (torch.float32, 0.05, 0.0),
            (torch.float64, 2.0, 1.0),
            (torch.float32, 0.3, -0.7),
        ]
    ]

    def unpack(f, block):
        result = f(block)
        expect(
            isinstance(result, tuple) and len(result) == 3,
            f"return a tuple (d, m, codes), got {type(result).__name__}",
        )
        d, m, codes = result
        codes = torch.as_tensor(codes)
        expect(
            codes.shape == (32,),
            f"codes must have one entry per weight (32), got shape {tuple(codes.shape)}",
        )
        expect(
            not codes.dtype.is_floating_point and codes.dtype != torch.bool,
            f"codes are integers (for example torch.uint8 or torch.long), got {codes.dtype}",
        )
        return float(d), float(m), codes.long()

    def code_range(f):
        for block in blocks:
            _, _, codes = unpack(f, block)
            expect(
                int(codes.min()) >= 0,
                f"Q4_1 codes lie in 0..15 (4 bits, no sign), got {int(codes.min())}.."
                f"{int(codes.max())}: subtract the minimum before dividing by the scale",
            )
            expect(
                int(codes.max()) <= 15,
                f"a code of {int(codes.max())} does not fit in 4 bits: 16 levels have 15 "
                f"steps between them, so d = (max - min) / 15 and the largest code is 15",
            )
            expect(
                int(codes.min()) == 0 and int(codes.max()) == 15,
                "the smallest weight should get code 0 and the largest code 15: m is the "
                "block's minimum, d spreads 16 levels from min to max",
            )

    def scale_and_minimum(f):
        for block in blocks:
            d, m, _ = unpack(f, block)
            low, high = block.min().item(), block.max().item()
            expect_close(m, low, "m is the block's smallest weight", rel=1e-6)
            expect(
                not math.isclose(d, (high - low) / 16, rel_tol=1e-6),
                "16 levels have 15 steps between them: d = (max - min) / 15",
            )
            expect_close(d, (high - low) / 15, "d = (max - min) / 15", rel=1e-6)

    def round_to_nearest(f):
        for block in blocks:
            d, m, codes = unpack(f, block)
            error = (d * codes.double() + m - _as_floats(block)).abs().max().item()
            expect(
                error <= d / 2 * (1 + 1e-6),
                f"some weight is {error / d:.2f} steps from its reconstruction; rounding "
                f"to the nearest code keeps every weight within half a step (d / 2): use "
                f"round, not floor or truncation",
            )

    def constant_block(f):
        d, m, codes = unpack(f, torch.full((32,), 0.25))
        expect(
            all(math.isfinite(v) for v in (d, m))
            and (d * codes + m == 0.25).all().item()
            and int(codes.min()) >= 0
            and int(codes.max()) <= 15,
            "a constant block (max = min, so d = 0) must come back exactly, without "
            "dividing by zero: give every weight code 0",
        )

    return run_checks(
        "Exercise: encode Q4_1",
        encode_q4_1,
        [code_range, scale_and_minimum, round_to_nearest, constant_block],
    )


def check_expected_tokens_per_pass(expected_tokens_per_pass) -> None:
    """``expected_tokens_per_pass(alpha, k)``: tokens produced per target pass when each
    drafted token is accepted independently with probability alpha, k drafted per pass."""

    def want(alpha, k):
        return sum(alpha**i for i in range(k + 1))

    def never(f):
        expect_close(
            f(0.0, 4),
            1.0,
            "with a draft that is always rejected, each target pass "
            "still produces one token of its own",
        )

    def bonus(f):
        got = float(f(0.5, 3))
        expect(
            not math.isclose(got, want(0.5, 2), rel_tol=1e-6),
            "you left out the target's own token after the last accepted draft: a pass "
            "yields the accepted drafts plus one",
        )
        expect(
            not math.isclose(got, 1 + 0.5 * 3, rel_tol=1e-6),
            "a drafted token counts only if every token before it was accepted too: the "
            "i-th is kept with probability alpha^i, not alpha",
        )
        expect_close(got, want(0.5, 3), "1 + alpha + alpha^2 + ... + alpha^k")

    def always(f):
        try:
            got = f(1.0, 4)
        except ZeroDivisionError:
            raise ExerciseError(
                "alpha = 1 (a perfect draft) divides by 1 - alpha = 0: handle it "
                "apart, or sum the powers of alpha"
            ) from None
        expect_close(
            got,
            5.0,
            "a perfect draft (alpha = 1): all k drafts plus the target's own "
            "token; take care not to divide by 1 - alpha = 0",
        )

    def many(f):
        for alpha, k in [(0.9, 4), (0.3, 1), (0.75, 8)]:
            expect_close(f(alpha, k), want(alpha, k), f"wrong for alpha={alpha}, k={k}")

    return run_checks(
        "Exercise: tokens per target pass", expected_tokens_per_pass, [never, bonus, always, many]
    )
