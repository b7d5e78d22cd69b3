"""Checks for the exercises of chapter 5, positional encoding.

check_shuffle_gap_with_positions(f)     shuffling tokens that carry positions: the gap
check_pe_vector(pe_vector)              the sinusoidal encoding of one position
check_wavelength(wavelength)            how many positions before pair i repeats
check_rope_complex(rope_complex)        RoPE on one vector, as a complex multiplication
check_rope_score_curve(f)               RoPE scores of one query and key against distance
"""

from __future__ import annotations

import math

import torch

from llmcourse.exercises import ExerciseError, as_number, expect, expect_close, run_checks
from llmcourse.positional import apply_rotary, rotary_cos_sin, sinusoidal_encoding

__all__ = [
    "check_shuffle_gap_with_positions",
    "check_pe_vector",
    "check_wavelength",
    "check_rope_complex",
    "check_rope_score_curve",
]


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


def check_rope_complex(rope_complex) -> None:
    """``rope_complex(x, pos)``: RoPE on one vector x (head_dim,), Hugging Face's layout,
    computed as a complex multiplication (the check sees only the result)."""
    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(16, generator=gen), torch.randn(16, generator=gen)

    def want(v, pos):
        cos, sin = rotary_cos_sin(torch.tensor([pos]), v.shape[-1])
        return apply_rotary(v.float()[None], cos, sin)[0]

    def rotated(f, v, pos):
        got = f(v.clone(), pos)
        if isinstance(got, torch.Tensor) and got.is_complex():
            raise ExerciseError(
                "return a real vector: put the real parts of the turned pairs in the first "
                "half and the imaginary parts in the second (torch.cat([z.real, z.imag]))"
            )
        return _vector(got, v.shape[-1], f"rope_complex(x, {pos})").float()

    def position_zero(f):
        expect(_close(rotated(f, x, 0), x), "at position 0 every angle is 0: x is unchanged")

    def keeps_length(f):
        got = rotated(f, x, 7)
        expect(
            math.isclose(float(got.norm()), float(x.norm()), rel_tol=1e-4),
            f"a rotation keeps the length of x ({float(x.norm()):.4f}), got "
            f"{float(got.norm()):.4f}: multiply by e^(i pos theta_j), whose length is 1",
        )

    def values(f):
        got = rotated(f, x, 7)
        cos, sin = rotary_cos_sin(torch.tensor([7]), 16)
        # The RoFormer paper's interleaved layout: pairs (2i, 2i + 1), angle pos * inv_freq[i].
        c, s = cos[0, :8].repeat_interleave(2), sin[0, :8].repeat_interleave(2)
        interleaved = x * c + torch.stack([-x[1::2], x[0::2]], -1).reshape(16) * s
        if _close(got, x * cos[0] - (want(x, 7) - x * cos[0])):
            raise ExerciseError(
                "you turn the wrong way: multiply by e^(+i pos theta_j), not by its "
                "conjugate e^(-i pos theta_j)"
            )
        if _close(got, interleaved):
            raise ExerciseError(
                "pair dimension j with j + head_dim/2 (Hugging Face's layout: z_j = x_j + "
                "i x_(j + D/2)), not neighbours 2j and 2j + 1"
            )
        expect(
            _close(got, want(x, 7)),
            "turn pair (j, j + head_dim/2) by pos * theta_j, theta_j = 1 / 10000 ** "
            "(2j / head_dim): z_j = x_j + i x_(j + D/2), times e^(i pos theta_j)",
        )

    def float64(f):
        got = f(x.double(), 300)
        expect(
            isinstance(got, torch.Tensor) and got.dtype == torch.float64,
            "with a float64 x, return float64: give the result the dtype of x",
        )
        expect(
            _close(got.float(), want(x, 300), tol=1e-4),
            "with a float64 x at position 300 the values are wrong",
        )

    def relative(f):
        s1 = rotated(f, x, 9) @ rotated(f, y, 4)
        s2 = rotated(f, x, 105) @ rotated(f, y, 100)
        expect(
            math.isclose(float(s1), float(s2), rel_tol=1e-3, abs_tol=1e-4),
            "the score q(m) . k(n) should depend on m - n only",
        )

    return run_checks(
        "Exercise: RoPE as a complex multiplication",
        rope_complex,
        [position_zero, keeps_length, values, float64, relative],
    )


def _shuffle_attention(X, W_query, W_key, W_value, pe=None):
    """Unmasked self-attention of the rows of X (plus ``pe``, by position), in float64."""
    X, W_query, W_key, W_value = (t.double() for t in (X, W_query, W_key, W_value))
    if pe is not None:
        X = X + pe
    Q, K, V = X @ W_query, X @ W_key, X @ W_value
    return torch.softmax(Q @ K.T / math.sqrt(Q.shape[-1]), dim=-1) @ V


def check_shuffle_gap_with_positions(shuffle_gap_with_positions) -> None:
    """``shuffle_gap_with_positions(X, W_query, W_key, W_value, perm)``: the largest absolute
    difference between unmasked self-attention of ``X[perm] + PE`` and that of ``X + PE``
    shuffled by ``perm``."""

    def data(T, d_model, d_k, seed):
        g = torch.Generator().manual_seed(seed)
        X = torch.randn(T, d_model, generator=g)
        Ws = [torch.randn(d_model, d_k, generator=g) / 2 for _ in range(3)]
        return X, Ws

    def gaps(X, Ws, perm):
        """The right gap and those of the usual slips, in float64."""
        T, d_model = X.shape
        pe = sinusoidal_encoding(T, d_model, dtype=torch.float64)
        out = _shuffle_attention(X, *Ws, pe)
        shuffled = _shuffle_attention(X[perm], *Ws, pe)
        unscaled = [
            torch.softmax((Z @ Ws[0].double()) @ (Z @ Ws[1].double()).T, -1) @ (Z @ Ws[2].double())
            for Z in (X.double() + pe, X[perm].double() + pe)
        ]
        return {
            "right": (shuffled - out[perm]).abs().max().item(),
            "not shuffled back": (shuffled - out).abs().max().item(),
            "inverse": (shuffled - out[perm.argsort()]).abs().max().item(),
            "signed": (shuffled - out[perm]).max().item(),
            "unscaled": (unscaled[1] - unscaled[0][perm]).abs().max().item(),
        }

    hints = {
        "not shuffled back": "row i of the shuffled input is token perm[i], so compare its output "
        "with the first output shuffled the same way, out[perm], not with out itself",
        "inverse": "you shuffled the first output with the inverse permutation: row i of "
        "X[perm] is token perm[i], so compare with out[perm]",
        "signed": "return the largest *absolute* difference: take .abs() before .max()",
        "unscaled": "divide the scores by sqrt(d_k) before the softmax",
    }

    def one_case(f, X, Ws, perm):
        slips = gaps(X, Ws, perm)
        got = as_number(f(X, *Ws, perm), "the largest absolute difference")
        if abs(got) <= 1e-4:
            raise ExerciseError(
                "with positions the gap should not be zero. Add the encoding by position: "
                "position t's vector goes to row t of X and to row t of X[perm], so a token "
                "moved to another slot gets another position vector. Adding it before "
                "shuffling, (X + PE)[perm], moves the positions with the tokens, and then "
                "attention cannot tell the difference"
            )
        for name, hint in hints.items():
            if math.isclose(got, slips[name], rel_tol=1e-3, abs_tol=1e-4) and not math.isclose(
                got, slips["right"], rel_tol=1e-3, abs_tol=1e-4
            ):
                raise ExerciseError(hint)
        expect_close(
            got,
            slips["right"],
            "expected the largest absolute difference between unmasked self-attention of "
            "X[perm] + PE and that of X + PE shuffled by perm (PE = the sinusoidal encoding "
            "of positions 0..T-1, scores divided by sqrt(d_k))",
            rel=1e-3,
            abs_=1e-4,
        )

    # one cycle through all six positions: not its own inverse
    perm6 = torch.tensor([1, 2, 3, 4, 5, 0])

    def small(f):
        X, Ws = data(6, 8, 4, seed=21)
        one_case(f, X, Ws, perm6)

    def other_sizes(f):
        X, Ws = data(9, 12, 5, seed=22)
        one_case(f, X, Ws, torch.tensor([4, 0, 7, 1, 8, 2, 3, 6, 5]))

    def float64(f):
        X, Ws = data(6, 8, 4, seed=23)
        one_case(f, X.double(), [W.double() for W in Ws], perm6)

    return run_checks(
        "Exercise: shuffling tokens that carry positions",
        shuffle_gap_with_positions,
        [small, other_sizes, float64],
    )


def _score_curve(q, k, max_distance, start, layout="half", query_only=False, reverse=False):
    """Scores of q at start + d (start - d with ``reverse``) with k at start, in float64; the
    usual slips as options."""
    D = q.shape[-1]
    theta = 10000.0 ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)

    def turn(x, pos):
        x = x.double()
        angle = pos * theta
        if layout == "half":
            a, b = x[: D // 2], x[D // 2 :]
            c, s = angle.cos(), angle.sin()
            return torch.cat([a * c - b * s, a * s + b * c])
        a, b = x[0::2], x[1::2]
        c, s = angle.cos(), angle.sin()
        return torch.stack([a * c - b * s, a * s + b * c], -1).reshape(D)

    key = k.double() if query_only else turn(k, start)
    sign = -1 if reverse else 1
    return torch.stack([turn(q, start + sign * d) @ key for d in range(max_distance + 1)])


def check_rope_score_curve(rope_score_curve) -> None:
    """``rope_score_curve(q, k, max_distance, start=100)``: entry d is RoPE(q, start + d) .
    RoPE(k, start), Hugging Face's layout, base 10000."""
    gen = torch.Generator().manual_seed(5)
    q, k = torch.randn(16, generator=gen), torch.randn(16, generator=gen)

    def curve(f, q, k, max_distance, **kwargs):
        got = f(q.clone(), k.clone(), max_distance, **kwargs)
        try:
            got = torch.as_tensor(got, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise ExerciseError(
                f"return a tensor of {max_distance + 1} scores, got {type(got).__name__}"
            ) from None
        expect(
            tuple(got.shape) == (max_distance + 1,),
            f"with max_distance = {max_distance} return {max_distance + 1} scores (distances "
            f"0 to {max_distance}), got shape {tuple(got.shape)}",
        )
        return got

    def near(got, want, q, k):
        return bool(torch.allclose(got, want, rtol=0, atol=1e-4 * float(q.norm() * k.norm())))

    def compare(got, q, k, max_distance, start):
        want = _score_curve(q, k, max_distance, start)
        if near(got, want, q, k):
            return
        for slip, hint in (
            (
                {"reverse": True},
                "the query stands d positions *after* the key: query at start + d, key at "
                "start (not the query at start - d)",
            ),
            (
                {"query_only": True},
                "rotate the key too, by its own position start: RoPE turns queries and keys",
            ),
            (
                {"layout": "pairs"},
                "pair dimension j with j + D/2 (Hugging Face's layout), not neighbours 2j "
                "and 2j + 1",
            ),
        ):
            if near(got, _score_curve(q, k, max_distance, start, **slip), q, k):
                raise ExerciseError(hint)
        if near(got, torch.full_like(want, float(q.double() @ k.double())), q, k):
            raise ExerciseError(
                "the scores do not change with distance: the query must be turned by its own "
                "position start + d and the key by start"
            )
        raise ExerciseError(
            "entry d should be RoPE(q, start + d) . RoPE(k, start), with theta_j = "
            "10000 ** (-2j / D)"
        )

    def distance_zero(f):
        got = curve(f, q, k, 5)
        if not math.isclose(float(got[0]), float(q @ k), rel_tol=1e-4, abs_tol=1e-4):
            compare(got, q, k, 5, 100)  # names the slip, if it is a usual one
        expect(
            math.isclose(float(got[0]), float(q @ k), rel_tol=1e-4, abs_tol=1e-4),
            "at distance 0 both are turned by the same angle, so the score is q . k",
        )

    def values(f):
        compare(curve(f, q, k, 30), q, k, 30, 100)

    def other_start(f):
        compare(curve(f, q, k, 12, start=7), q, k, 12, 7)

    def float64(f):
        q64, k64 = torch.randn(8, generator=gen).double(), torch.randn(8, generator=gen).double()
        compare(curve(f, q64, k64, 50), q64, k64, 50, 100)

    return run_checks(
        "Exercise: RoPE scores over distance",
        rope_score_curve,
        [distance_zero, values, other_start, float64],
    )
