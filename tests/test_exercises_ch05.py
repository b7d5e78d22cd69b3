"""The chapter 5 checks pass a right answer and reject plausible wrong ones with a hint."""

import math

import pytest
import torch

from llmcourse.exercises import ExerciseError, NotYetAnswered
from llmcourse.exercises.ch05 import (
    check_offset_matrix,
    check_pe_vector,
    check_rope_rotate,
    check_wavelength,
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


# ---- offset matrix ----------------------------------------------------------------------------


def offset_matrix(k, d_model):
    w = 10000 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    blocks = [
        torch.tensor([[math.cos(k * wi), math.sin(k * wi)], [-math.sin(k * wi), math.cos(k * wi)]])
        for wi in w.tolist()
    ]
    return torch.block_diag(*blocks)


def test_offset_matrix_right():
    check_offset_matrix(offset_matrix)  # raises if the answer is rejected


def test_offset_matrix_transposed():
    with pytest.raises(ExerciseError, match="your matrix moves back"):
        check_offset_matrix(lambda k, d: offset_matrix(k, d).T)


def test_offset_matrix_one_frequency_for_all_blocks():
    def same_angle(k, d_model):
        block = torch.tensor([[math.cos(k), math.sin(k)], [-math.sin(k), math.cos(k)]])
        return torch.block_diag(*[block] * (d_model // 2))

    with pytest.raises(ExerciseError, match=r"check 2 of 4.*M_3 @ PE\(pos\) should equal"):
        check_offset_matrix(same_angle)


def test_offset_matrix_ignores_k_and_shape():
    with pytest.raises(ExerciseError, match="M_0 must be the identity"):
        check_offset_matrix(lambda k, d: offset_matrix(1, d))
    with pytest.raises(ExerciseError, match=r"expected a \(8, 8\) matrix, got shape \(4, 4\)"):
        check_offset_matrix(lambda k, d: offset_matrix(k, d // 2))
    with pytest.raises(ExerciseError, match="expected a matrix .tensor., got str"):
        check_offset_matrix(lambda k, d: "M_k")
    with pytest.raises(NotYetAnswered):
        check_offset_matrix(None)


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


# ---- RoPE on one vector -----------------------------------------------------------------------


def inv_freq(head_dim):
    return 1.0 / 10000 ** (torch.arange(0, head_dim, 2, dtype=torch.float) / head_dim)


def rope_rotate(x, pos):
    half = x.shape[-1] // 2
    angle = pos * inv_freq(x.shape[-1]).repeat(2)
    rotated_half = torch.cat([-x[half:], x[:half]])
    return x * angle.cos() + rotated_half * angle.sin()


def test_rope_right():
    check_rope_rotate(rope_rotate)  # raises if the answer is rejected


def test_rope_wrong_direction():
    with pytest.raises(ExerciseError, match="you rotate the wrong way"):
        check_rope_rotate(lambda x, pos: rope_rotate(x, -pos))


def test_rope_interleaved_pairs():
    def interleaved(x, pos):
        angle = pos * inv_freq(x.shape[-1]).repeat_interleave(2)
        return x * angle.cos() + torch.stack([-x[1::2], x[0::2]], -1).reshape(-1) * angle.sin()

    with pytest.raises(ExerciseError, match="rotate_half' layout"):
        check_rope_rotate(interleaved)


def test_rope_not_a_rotation_and_unanswered():
    def no_cos(x, pos):  # forgets the x * cos term
        angle = pos * inv_freq(x.shape[-1]).repeat(2)
        half = x.shape[-1] // 2
        return x + torch.cat([-x[half:], x[:half]]) * angle.sin()

    with pytest.raises(ExerciseError, match="a rotation keeps the length"):
        check_rope_rotate(no_cos)
    with pytest.raises(ExerciseError, match="at position 0 every angle is 0"):
        check_rope_rotate(lambda x, pos: rope_rotate(x, pos + 1))
    with pytest.raises(NotYetAnswered):
        check_rope_rotate(None)
