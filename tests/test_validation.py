"""The shared argument checks: what each accepts, and that each refusal names the argument."""

import math

import pytest
import torch

from llmcourse.validation import (
    non_negative_int,
    positive_int,
    positive_number,
    probability,
    token_ids,
)


def test_good_values_pass_and_ints_come_back():
    assert positive_int("n", 3) == 3
    assert non_negative_int("n", 0) == 0
    positive_number("beta", 0.1)
    probability("top_p", 1)
    probability("top_p", 0.5)


@pytest.mark.parametrize(
    "check, value, message",
    [
        (positive_int, 0, "n must be a positive int, got 0"),
        (positive_int, True, "n must be a positive int, got True"),
        (positive_int, 2.0, "n must be a positive int, got 2.0"),
        (non_negative_int, -1, "n must be an int >= 0, got -1"),
        (non_negative_int, False, "n must be an int >= 0, got False"),
        (positive_number, math.nan, "n must be a positive number, got nan"),
        (positive_number, math.inf, "n must be a positive number, got inf"),
        (positive_number, True, "n must be a positive number, got True"),
        (positive_number, -0.5, "n must be a positive number, got -0.5"),
        (probability, 1.5, r"n must be a number in \(0, 1\], got 1.5"),
        (probability, math.nan, r"n must be a number in \(0, 1\], got nan"),
        (probability, 0, r"n must be a number in \(0, 1\], got 0"),
    ],
)
def test_bad_values_are_refused_by_name(check, value, message):
    with pytest.raises(ValueError, match=message):
        check("n", value)


def test_the_unit_is_named():
    with pytest.raises(ValueError, match="timeout must be a positive number of seconds"):
        positive_number("timeout", 0, unit="seconds")


def test_token_ids_accepts_every_integer_dtype_and_returns_the_tensor():
    for dtype in (torch.int64, torch.int32, torch.int16, torch.uint8):
        ids = torch.zeros(2, 3, dtype=dtype)
        assert token_ids(ids) is ids
    assert token_ids(torch.zeros(4, dtype=torch.long), "ids", rank=1).shape == (4,)
    token_ids(torch.zeros(1, 5, dtype=torch.long), batch=1)


@pytest.mark.parametrize(
    "value, kwargs, message",
    [
        ([[1, 2]], {}, r"input_ids must be an integer tensor of shape \(batch, seq\).*got list"),
        (torch.zeros(2, 3), {}, r"\(batch, seq\).*got torch.float32 of shape \(2, 3\)"),
        (torch.zeros(2, 3, dtype=torch.bool), {}, "got torch.bool"),
        (torch.zeros(2, 3, dtype=torch.complex64), {}, "got torch.complex64"),
        (torch.zeros(3, dtype=torch.long), {}, r"got torch.int64 of shape \(3,\)"),
        (torch.zeros(2, 0, dtype=torch.long), {}, r"with batch >= 1 and seq >= 1, got .* \(2, 0\)"),
        (torch.zeros(0, 3, dtype=torch.long), {}, r"with batch >= 1 and seq >= 1, got .* \(0, 3\)"),
        (
            torch.zeros(2, 3, dtype=torch.long),
            {"batch": 1},
            r"shape \(1, seq\) with seq >= 1, got .*\(2, 3\)",
        ),
        (
            torch.zeros(2, 3, dtype=torch.long),
            {"rank": 1, "name": "ids"},
            r"ids .* \(seq,\) with seq >= 1",
        ),
    ],
)
def test_token_ids_refusals_name_the_shape_and_what_came(value, kwargs, message):
    with pytest.raises(ValueError, match=message):
        token_ids(value, **kwargs)
