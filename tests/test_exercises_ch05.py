"""The chapter 5 checks pass a right answer and reject plausible wrong ones with a hint."""

import math

import pytest
import torch

from llmcourse.attention import scaled_dot_product_attention
from llmcourse.exercises import ExerciseError, NotYetAnswered
from llmcourse.exercises.ch05 import (
    check_pe_vector,
    check_rope_complex,
    check_rope_score_curve,
    check_shuffle_gap_with_positions,
    check_wavelength,
)
from llmcourse.positional import (
    apply_rotary,
    rotary_cos_sin,
    sinusoidal_encoding,
    sinusoidal_offset_matrix,
)

# ---- encoding of one position -----------------------------------------------------------------


def pe_vector(pos, d_model):
    i = torch.arange(0, d_model, 2, dtype=torch.float64)
    angle = pos / 10000 ** (i / d_model)
    return torch.stack([angle.sin(), angle.cos()], -1).reshape(d_model)


def test_pe_vector_right(capsys):
    check_pe_vector(pe_vector)  # raises if the answer is rejected
    assert "all 4 checks passed" in capsys.readouterr().out
    # a list is fine too; raises if the answer is rejected
    check_pe_vector(lambda pos, d: pe_vector(pos, d).tolist())


def test_pe_vector_sin_cos_swapped():
    def swapped(pos, d_model):
        return pe_vector(pos, d_model).reshape(-1, 2).flip(-1).reshape(d_model)

    with pytest.raises(ExerciseError, match="check 2 of 4.*at position 0 every angle is 0"):
        check_pe_vector(swapped)


def test_pe_vector_not_interleaved():
    def concatenated(pos, d_model):
        v = pe_vector(pos, d_model)
        return torch.cat([v[0::2], v[1::2]])

    with pytest.raises(ExerciseError, match="must be interleaved"):
        check_pe_vector(concatenated)


def test_pe_vector_wrong_exponent():
    def per_pair_index(pos, d_model):  # 10000 ** (i / d_model) with i the pair index
        i = torch.arange(d_model // 2, dtype=torch.float64)
        angle = pos / 10000 ** (i / d_model)
        return torch.stack([angle.sin(), angle.cos()], -1).reshape(d_model)

    with pytest.raises(ExerciseError, match="check 3 of 4.*the exponent is 2i / d_model"):
        check_pe_vector(per_pair_index)


def test_pe_vector_wrong_shape_and_unanswered():
    with pytest.raises(ExerciseError, match=r"pe_vector\(3, 8\) of shape \(8,\), got \(4,\)"):
        check_pe_vector(lambda pos, d: pe_vector(pos, d)[::2])
    with pytest.raises(ExerciseError, match="as a tensor or list of numbers, got str"):
        check_pe_vector(lambda pos, d: "0 1 0 1")
    with pytest.raises(NotYetAnswered):
        check_pe_vector(None)

    def todo(pos, d_model):
        raise NotImplementedError

    with pytest.raises(NotYetAnswered):
        check_pe_vector(todo)


# ---- wavelength -------------------------------------------------------------------------------


def wavelength(i, d_model):
    return 2 * math.pi * 10000 ** (2 * i / d_model)


def test_wavelength_right():
    check_wavelength(wavelength)  # raises if the answer is rejected


def test_wavelength_without_two_pi():
    with pytest.raises(ExerciseError, match="repeat, not 1"):
        check_wavelength(lambda i, d: 10000 ** (2 * i / d))


def test_wavelength_exponent_i_not_2i():
    with pytest.raises(ExerciseError, match="the exponent is 2i / d_model, not i / d_model"):
        check_wavelength(lambda i, d: 2 * math.pi * 10000 ** (i / d))


def test_wavelength_frequency_instead_and_unanswered():
    with pytest.raises(ExerciseError, match="repeats every 2 pi positions"):
        check_wavelength(lambda i, d: 1 / (2 * math.pi * 10000 ** (2 * i / d)))
    with pytest.raises(ExerciseError, match="expected a number, got list"):
        check_wavelength(lambda i, d: [wavelength(i, d)])
    with pytest.raises(NotYetAnswered):
        check_wavelength(None)


# ---- RoPE as a complex multiplication --------------------------------------------------------


def theta(head_dim, dtype=torch.float64):
    return 10000 ** (-torch.arange(0, head_dim, 2, dtype=dtype) / head_dim)


def rope_complex(x, pos):
    D = x.shape[-1]
    z = torch.complex(x[: D // 2].double(), x[D // 2 :].double())
    z = z * torch.polar(torch.ones(D // 2, dtype=torch.float64), pos * theta(D))
    return torch.cat([z.real, z.imag]).to(x.dtype)


def rope_complex_float32(x, pos):
    # all in the dtype of x (complex64 for float32), with torch.exp of an imaginary angle
    D = x.shape[-1]
    z = torch.complex(x[: D // 2], x[D // 2 :])
    z = z * torch.exp(1j * pos * theta(D, x.dtype))
    return torch.cat([z.real, z.imag])


@pytest.mark.parametrize("answer", [rope_complex, rope_complex_float32])
def test_rope_complex_right(answer, capsys):
    check_rope_complex(answer)  # raises if the answer is rejected
    assert "all 5 checks passed" in capsys.readouterr().out


def test_rope_complex_the_chapters_rope_does_not_answer():
    def chapter_rope(x, positions):  # the chapter's rope, passed unchanged
        cos, sin = rotary_cos_sin(positions, x.shape[-1])
        return apply_rotary(x, cos, sin)

    with pytest.raises(ExerciseError):
        check_rope_complex(chapter_rope)


def test_rope_complex_conjugate():
    with pytest.raises(ExerciseError, match="you turn the wrong way"):
        check_rope_complex(lambda x, pos: rope_complex(x, -pos))


def test_rope_complex_interleaved_pairs():
    def meta_layout(x, pos):  # Meta's pairs (2j, 2j + 1), as in Llama's model.py
        z = torch.view_as_complex(x.double().reshape(-1, 2).contiguous())
        z = z * torch.polar(torch.ones(x.shape[-1] // 2, dtype=torch.float64), pos * theta(16))
        return torch.view_as_real(z).reshape(-1).to(x.dtype)

    with pytest.raises(ExerciseError, match="not neighbours 2j and 2j"):
        check_rope_complex(meta_layout)


def test_rope_complex_returns_complex_or_wrong_dtype():
    def complex_out(x, pos):
        D = x.shape[-1]
        z = torch.complex(x[: D // 2].double(), x[D // 2 :].double())
        return z * torch.polar(torch.ones(D // 2, dtype=torch.float64), pos * theta(D))

    with pytest.raises(ExerciseError, match="return a real vector"):
        check_rope_complex(complex_out)
    with pytest.raises(ExerciseError, match="give the result the dtype of x"):
        check_rope_complex(lambda x, pos: rope_complex(x, pos).float())
    with pytest.raises(ExerciseError, match="at position 0 every angle is 0"):
        check_rope_complex(lambda x, pos: rope_complex(x, pos + 1))
    with pytest.raises(NotYetAnswered):
        check_rope_complex(None)


# ---- shuffling tokens that carry positions ----------------------------------------------------


def shuffle_gap_with_positions(X, W_query, W_key, W_value, perm):
    pe = sinusoidal_encoding(*X.shape, dtype=X.dtype)

    def attend(Z):
        return scaled_dot_product_attention(Z @ W_query, Z @ W_key, Z @ W_value)

    return (attend(X[perm] + pe) - attend(X + pe)[perm]).abs().max().item()


def shuffle_gap_float64_loop(X, W_query, W_key, W_value, perm):
    # float64 throughout, the encoding written out, a tensor (not a float) returned
    T, d_model = X.shape
    pe = torch.zeros(T, d_model, dtype=torch.float64)
    for t in range(T):
        for i in range(d_model // 2):
            angle = t / 10000 ** (2 * i / d_model)
            pe[t, 2 * i], pe[t, 2 * i + 1] = math.sin(angle), math.cos(angle)

    def attend(Z):
        Z = Z.double() + pe
        Q, K, V = (Z @ W.double() for W in (W_query, W_key, W_value))
        return torch.softmax(Q @ K.T / Q.shape[-1] ** 0.5, dim=-1) @ V

    return torch.max(torch.abs(attend(X[perm]) - attend(X)[perm]))


@pytest.mark.parametrize("answer", [shuffle_gap_with_positions, shuffle_gap_float64_loop])
def test_shuffle_gap_with_positions_right(answer, capsys):
    check_shuffle_gap_with_positions(answer)  # raises if the answer is rejected
    assert "all 3 checks passed" in capsys.readouterr().out


def test_shuffle_gap_positions_moved_with_the_tokens():
    def moved(X, W_query, W_key, W_value, perm):
        Z = X + sinusoidal_encoding(*X.shape, dtype=X.dtype)

        def attend(Z):
            return scaled_dot_product_attention(Z @ W_query, Z @ W_key, Z @ W_value)

        return (attend(Z[perm]) - attend(Z)[perm]).abs().max().item()

    with pytest.raises(ExerciseError, match="the gap should not be zero"):
        check_shuffle_gap_with_positions(moved)


def test_shuffle_gap_not_shuffled_back_or_signed_or_unscaled():
    def not_back(X, W_query, W_key, W_value, perm):
        pe = sinusoidal_encoding(*X.shape, dtype=X.dtype)

        def attend(Z):
            return scaled_dot_product_attention(Z @ W_query, Z @ W_key, Z @ W_value)

        return (attend(X[perm] + pe) - attend(X + pe)).abs().max().item()

    def unscaled(X, W_query, W_key, W_value, perm):
        Xd = X * 1.0
        pe = sinusoidal_encoding(*X.shape, dtype=X.dtype)

        def attend(Z):
            return torch.softmax((Z @ W_query) @ (Z @ W_key).T, -1) @ (Z @ W_value)

        return (attend(Xd[perm] + pe) - attend(Xd + pe)[perm]).abs().max().item()

    with pytest.raises(ExerciseError, match="not with out itself"):
        check_shuffle_gap_with_positions(not_back)
    with pytest.raises(ExerciseError, match="sqrt\\(d_k\\)"):
        check_shuffle_gap_with_positions(unscaled)
    with pytest.raises(NotYetAnswered):
        check_shuffle_gap_with_positions(None)


def test_ch05_checks_reject_the_chapters_own_functions():
    """An exercise must ask for something the chapter's code does not already do."""

    def offset_rotation(k, d_model, base=10000.0):  # the chapter's, which once answered one
        return sinusoidal_offset_matrix(k, d_model, dtype=torch.float64)

    def sinusoidal(num_positions, d_model, base=10000.0):
        return sinusoidal_encoding(num_positions, d_model, dtype=torch.float64)

    with pytest.raises(ExerciseError):
        check_pe_vector(sinusoidal)
    with pytest.raises(ExerciseError):
        check_shuffle_gap_with_positions(offset_rotation)


# ---- RoPE scores over distance ----------------------------------------------------------------


def rope_score_curve(q, k, max_distance, start=100):
    d = torch.arange(max_distance + 1)
    cos, sin = rotary_cos_sin(start + d, q.shape[-1])  # (max_distance + 1, D)
    queries = apply_rotary(q.expand(len(d), -1), cos, sin)
    cos0, sin0 = rotary_cos_sin(torch.tensor([start]), q.shape[-1])
    return queries @ apply_rotary(k[None], cos0, sin0)[0]


def rope_score_curve_loop(q, k, max_distance, start=100):
    # float64, one distance at a time, the pairs turned by hand, a list returned
    D = q.shape[-1]
    theta = 10000.0 ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)

    def turn(x, pos):
        a, b = x[: D // 2].double(), x[D // 2 :].double()
        c, s = (pos * theta).cos(), (pos * theta).sin()
        return torch.cat([a * c - b * s, a * s + b * c])

    key = turn(k, start)
    return [float(turn(q, start + d) @ key) for d in range(max_distance + 1)]


@pytest.mark.parametrize("answer", [rope_score_curve, rope_score_curve_loop])
def test_rope_score_curve_right(answer, capsys):
    check_rope_score_curve(answer)  # raises if the answer is rejected
    assert "all 4 checks passed" in capsys.readouterr().out


def test_rope_score_curve_query_before_the_key():
    def reversed_(q, k, max_distance, start=100):
        return rope_score_curve(k, q, max_distance, start)  # key d positions after the query

    with pytest.raises(ExerciseError, match="the query stands d positions"):
        check_rope_score_curve(reversed_)


def test_rope_score_curve_key_not_turned_or_no_distance():
    def query_only(q, k, max_distance, start=100):
        d = torch.arange(max_distance + 1)
        cos, sin = rotary_cos_sin(start + d, q.shape[-1])
        return apply_rotary(q.expand(len(d), -1), cos, sin) @ k

    def same_position(q, k, max_distance, start=100):
        return torch.full((max_distance + 1,), float(q @ k))

    with pytest.raises(ExerciseError, match="rotate the key too"):
        check_rope_score_curve(query_only)
    with pytest.raises(ExerciseError, match="do not change with distance"):
        check_rope_score_curve(same_position)
    with pytest.raises(ExerciseError, match="return 6 scores"):
        check_rope_score_curve(lambda q, k, m, start=100: rope_score_curve(q, k, m - 1, start))
    with pytest.raises(NotYetAnswered):
        check_rope_score_curve(None)
