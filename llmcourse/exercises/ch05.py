"""Checks for the exercises of chapter 5, positional encoding.

check_pe_vector(pe_vector)              the sinusoidal encoding of one position
check_offset_matrix(offset_matrix)      the matrix M_k with PE(pos + k) = M_k PE(pos)
check_wavelength(wavelength)            how many positions before pair i repeats
check_rope_rotate(rope_rotate)          RoPE on one query or key vector
"""

from __future__ import annotations

import math

import torch

from llmcourse.exercises import ExerciseError, expect, expect_close, run_checks
from llmcourse.positional import (
    apply_rotary,
    rotary_cos_sin,
    sinusoidal_encoding,
    sinusoidal_offset_matrix,
)

__all__ = ["check_pe_vector", "check_offset_matrix", "check_wavelength", "check_rope_rotate"]


def _vector(got, length: int, what: str) -> torch.Tensor:
    """``got`` as a float64 1-D tensor of ``length`` numbers, or a clear error."""
    try:
        t = torch.as_tensor(got, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise ExerciseError(
            f"expected {what} as a tensor or list of numbers, got {type(got).__name__}"
        ) from None
    expect(
        tuple(t.shape) == (length,), f"expected {what} of shape ({length},), got {tuple(t.shape)}"
    )
    return t


def _close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-5) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a, b.to(a.dtype), atol=tol, rtol=tol))


_INTERLEAVE = (
    "the sines and cosines must be interleaved: dimension 2i is sin and 2i + 1 is "
    "cos, not all sines first"
)


def check_pe_vector(pe_vector) -> None:
    """``pe_vector(pos, d_model)``: row ``pos`` of the sinusoidal encoding, length d_model."""

    def want(pos, d_model):
        return sinusoidal_encoding(pos + 1, d_model, dtype=torch.float64)[pos]

    def shape(f):
        _vector(f(3, 8), 8, "pe_vector(3, 8)")

    def position_zero(f):
        got = _vector(f(0, 6), 6, "pe_vector(0, 6)")
        if _close(got, want(0, 6)[[0, 2, 4, 1, 3, 5]]):
            raise ExerciseError(_INTERLEAVE)
        expect(
            _close(got, want(0, 6)),
            f"at position 0 every angle is 0, so the vector is [0, 1, 0, 1, 0, 1] "
            f"(sin 0 = 0 in even dimensions, cos 0 = 1 in odd ones); got {got.tolist()}",
        )

    def hand_worked(f):
        got = _vector(f(1, 4), 4, "pe_vector(1, 4)")
        target = torch.tensor(
            [math.sin(1), math.cos(1), math.sin(0.01), math.cos(0.01)], dtype=torch.float64
        )
        expect(
            _close(got, target),
            "for d_model = 4, pair 0 has frequency 1 and pair 1 has 1 / 10000 ** (2/4) = "
            "0.01, so pe_vector(1, 4) = [sin 1, cos 1, sin 0.01, cos 0.01]; the exponent "
            "is 2i / d_model with i the pair, shared by the sine and its cosine",
        )

    def many(f):
        for pos, d_model in ((17, 10), (250, 64)):
            got = _vector(f(pos, d_model), d_model, f"pe_vector({pos}, {d_model})")
            expect(
                _close(got, want(pos, d_model)),
                f"pe_vector({pos}, {d_model}) is wrong: PE[pos, 2i] = sin(pos / 10000 ** "
                "(2i / d_model)) and PE[pos, 2i + 1] = cos(the same angle)",
            )

    return run_checks(
        "Exercise: encoding of one position", pe_vector, [shape, position_zero, hand_worked, many]
    )


def check_offset_matrix(offset_matrix) -> None:
    """``offset_matrix(k, d_model)``: the (d_model, d_model) M_k, PE(pos + k) = M_k @ PE(pos)."""
    pe = sinusoidal_encoding(120, 8, dtype=torch.float64)

    def as_matrix(got, d_model):
        try:
            m = torch.as_tensor(got, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise ExerciseError(f"expected a matrix (tensor), got {type(got).__name__}") from None
        expect(
            tuple(m.shape) == (d_model, d_model),
            f"expected a ({d_model}, {d_model}) matrix, got shape {tuple(m.shape)}",
        )
        return m

    def zero_offset(f):
        expect(
            _close(as_matrix(f(0, 8), 8), torch.eye(8, dtype=torch.float64)),
            "moving 0 positions changes nothing: M_0 must be the identity",
        )

    def maps_forward(f):
        M = as_matrix(f(3, 8), 8)
        moved = pe[:100] @ M.T  # each row: M @ PE(pos)
        if _close(moved[3:], pe[:97]):
            raise ExerciseError(
                "your matrix moves back: it maps PE(pos) to PE(pos - k). In "
                "each 2x2 block the sin(k w) above the diagonal is +, below -"
            )
        expect(
            _close(moved, pe[3:103]),
            "M_3 @ PE(pos) should equal PE(pos + 3) for every pos; each 2x2 block rotates "
            "(sin, cos) of pair i by the angle k * w_i, with w_i = 1 / 10000 ** (2i/d_model)",
        )

    def one_frequency_per_block(f):
        M = as_matrix(f(5, 8), 8)
        expect(
            _close(M, sinusoidal_offset_matrix(5, 8, dtype=torch.float64)),
            "each of the d_model / 2 blocks uses its own frequency w_i, and the blocks sit "
            "on the diagonal (zeros elsewhere)",
        )

    def other_sizes(f):
        for k, d_model in ((-4, 6), (40, 16)):
            expect(
                _close(
                    as_matrix(f(k, d_model), d_model),
                    sinusoidal_offset_matrix(k, d_model, dtype=torch.float64),
                ),
                f"offset_matrix({k}, {d_model}) is wrong: use k and d_model as given",
            )

    return run_checks(
        "Exercise: the offset matrix",
        offset_matrix,
        [zero_offset, maps_forward, one_frequency_per_block, other_sizes],
    )


def check_wavelength(wavelength) -> None:
    """``wavelength(i, d_model)``: the period, in positions, of pair i: 2 pi 10000 ** (2i/d)."""

    def want(i, d_model):
        return 2 * math.pi * 10000 ** (2 * i / d_model)

    def number(got) -> float:
        try:
            return float(got)
        except (TypeError, ValueError):
            raise ExerciseError(f"expected a number, got {type(got).__name__}") from None

    def fastest(f):
        got = number(f(0, 512))
        if math.isclose(got, 1.0):
            raise ExerciseError(
                "sin(pos) takes 2 pi positions to repeat, not 1: the wavelength is 2 pi / w_i"
            )
        expect_close(got, 2 * math.pi, "pair 0 is sin(pos), which repeats every 2 pi positions")

    def slower(f):
        got = number(f(64, 512))
        if math.isclose(got, want(32, 512), rel_tol=1e-6):
            raise ExerciseError(
                "pair i sits in dimensions 2i and 2i + 1: the exponent is "
                "2i / d_model, not i / d_model"
            )
        expect_close(
            got, want(64, 512), "the wavelength of pair i is 2 pi * 10000 ** (2i / d_model)"
        )

    def slowest(f):
        expect_close(
            f(255, 512),
            want(255, 512),
            "the slowest pair (i = d_model/2 - 1) has a wavelength just under "
            "2 pi * 10000 positions",
        )

    return run_checks("Exercise: wavelength of a pair", wavelength, [fastest, slower, slowest])


def check_rope_rotate(rope_rotate) -> None:
    """``rope_rotate(x, pos)``: RoPE on one vector x (head_dim,), Hugging Face convention."""
    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(16, generator=gen), torch.randn(16, generator=gen)

    def want(v, pos):
        cos, sin = rotary_cos_sin(torch.tensor([pos]), v.shape[-1])
        return apply_rotary(v[None], cos, sin)[0]

    def rotated(f, v, pos):
        return _vector(f(v.clone(), pos), v.shape[-1], f"rope_rotate(x, {pos})").float()

    def position_zero(f):
        expect(_close(rotated(f, x, 0), x), "at position 0 every angle is 0: x is unchanged")

    def keeps_length(f):
        got = rotated(f, x, 7)
        expect(
            math.isclose(float(got.norm()), float(x.norm()), rel_tol=1e-4),
            f"a rotation keeps the length of x ({float(x.norm()):.4f}), got "
            f"{float(got.norm()):.4f}: use x * cos + rotate_half(x) * sin",
        )

    def values(f):
        got = rotated(f, x, 7)
        cos, sin = rotary_cos_sin(torch.tensor([7]), 16)
        # The RoFormer paper's interleaved layout: pairs (2i, 2i + 1), angle pos * inv_freq[i].
        c, s = cos[0, :8].repeat_interleave(2), sin[0, :8].repeat_interleave(2)
        interleaved = x * c + torch.stack([-x[1::2], x[0::2]], -1).reshape(16) * s
        if _close(got, x * cos[0] - (want(x, 7) - x * cos[0])):
            raise ExerciseError(
                "you rotate the wrong way: it is x * cos + rotate_half(x) * "
                "sin, with rotate_half([x1, x2]) = [-x2, x1]"
            )
        if _close(got, interleaved):
            raise ExerciseError(
                "pair dimension j with j + head_dim/2 (the Hugging Face "
                "'rotate_half' layout), not neighbours 2i and 2i + 1"
            )
        expect(
            _close(got, want(x, 7)),
            "rotate pair (j, j + head_dim/2) by pos * inv_freq[j], inv_freq = 1 / 10000 ** "
            "(arange(0, head_dim, 2) / head_dim)",
        )

    def relative(f):
        s1 = rotated(f, x, 9) @ rotated(f, y, 4)
        s2 = rotated(f, x, 105) @ rotated(f, y, 100)
        expect(
            math.isclose(float(s1), float(s2), rel_tol=1e-3, abs_tol=1e-4),
            "the score q(m) . k(n) should depend on m - n only",
        )

    return run_checks(
        "Exercise: RoPE on one vector", rope_rotate, [position_zero, keeps_length, values, relative]
    )
