"""The shared argument checks: what each accepts, and that each refusal names the argument."""

import math

import pytest

from llmcourse.validation import non_negative_int, positive_int, positive_number, probability


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
