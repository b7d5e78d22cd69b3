"""Chapter 14's exercise checks pass right answers and reject plausible wrong ones."""

import pytest
import torch

from llmcourse.exercises import ExerciseError, NotYetAnswered
from llmcourse.exercises.ch14 import (
    check_encode_q4_1,
    check_expected_tokens_per_pass,
    check_gguf_bytes,
)

ALL = [check_gguf_bytes, check_encode_q4_1, check_expected_tokens_per_pass]


@pytest.mark.parametrize("check", ALL)
def test_none_is_not_yet_answered(check):
    with pytest.raises(NotYetAnswered):
        check(None)


def test_gguf_bytes():
    def right(n, fmt):
        per_block = {"F32": 32 * 4, "Q8_0": 2 + 32, "Q4_1": 2 + 2 + 16}[fmt]
        return n // 32 * per_block

    def right_by_bits(n, fmt):
        bits = {"F32": 32, "Q8_0": 8 + 16 / 32, "Q4_1": 4 + 32 / 32}[fmt]
        return int(n * bits) // 8

    check_gguf_bytes(right)  # raises if the answer is rejected
    check_gguf_bytes(right_by_bits)  # raises if the answer is rejected
    for wrong, hint in [
        (lambda n, fmt: n // 32 * {"F32": 128, "Q8_0": 34, "Q4_1": 18}[fmt], "forgot the minimum"),
        (lambda n, fmt: n // 32 * {"F32": 128, "Q8_0": 32, "Q4_1": 16}[fmt], "scale"),
        (lambda n, fmt: n * {"F32": 4, "Q8_0": 8.5, "Q4_1": 5}[fmt], "not bits"),
        (lambda n, fmt: n * {"F32": 4, "Q8_0": 34 / 32, "Q4_1": 20 / 32}[fmt], "return an int"),
        (lambda n, fmt: n * {"F32": 32, "Q8_0": 34, "Q4_1": 20}[fmt], "4 bytes per weight"),
    ]:
        with pytest.raises(ExerciseError, match=hint):
            check_gguf_bytes(wrong)


def _right_encoder(dtype):
    def encode(block):
        block = block.to(dtype)
        low, high = block.min(), block.max()
        d = (high - low) / 15
        if d == 0:
            return d, low, torch.zeros(32, dtype=torch.uint8)
        return d, low, torch.round((block - low) / d).to(torch.uint8)

    return encode


def test_encode_q4_1():
    check_encode_q4_1(_right_encoder(torch.float32))  # raises if the answer is rejected
    check_encode_q4_1(_right_encoder(torch.float64))  # raises if the answer is rejected

    def symmetric(block):
        d = block.abs().max() / 7
        return d, 0.0, torch.round(block / d).long()

    def floor(block):
        low = block.min()
        d = (block.max() - low) / 15
        return d, low, torch.floor((block - low) / d).long()

    def sixteen_steps(block):
        low = block.min()
        d = (block.max() - low) / 16
        return d, low, torch.round((block - low) / d).long()

    def float_codes(block):
        d, m, codes = _right_encoder(torch.float64)(block)
        return d, m, codes.double()

    def divides_by_zero(block):
        low = block.min()
        d = (block.max() - low) / 15
        return d, low, torch.round((block - low) / d).long()  # 0 / 0 = nan for a constant block

    for wrong, hint in [
        (symmetric, "0..15"),
        (floor, "half a step"),
        (sixteen_steps, "15 steps"),
        (float_codes, "codes are integers"),
        (divides_by_zero, "constant block"),
        (lambda block: (1.0, 0.0), "return a tuple"),
    ]:
        with pytest.raises(ExerciseError, match=hint):
            check_encode_q4_1(wrong)


def test_expected_tokens_per_pass():
    # raises if rejected
    check_expected_tokens_per_pass(lambda a, k: sum(a**i for i in range(k + 1)))
    check_expected_tokens_per_pass(  # the closed form, with alpha = 1 handled; raises if rejected
        lambda a, k: k + 1.0 if a == 1 else (1 - a ** (k + 1)) / (1 - a)
    )
    for wrong, hint in [
        (lambda a, k: sum(a**i for i in range(k)) if k else 1.0, "left out the target's own"),
        (lambda a, k: 1 + a * k, "alpha\\^i, not alpha"),
        (lambda a, k: (1 - a ** (k + 1)) / (1 - a), "divides by 1 - alpha"),
        (lambda a, k: sum(a**i for i in range(1, k + 1)), "one token of its own"),
    ]:
        with pytest.raises(ExerciseError, match=hint):
            check_expected_tokens_per_pass(wrong)
