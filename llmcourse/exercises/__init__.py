"""Exercise checks: a student calls ``check_...(answer)`` on their answer.

Each chapter has a module here (``llmcourse.exercises.ch01``, ...) with one check function
per exercise. A check runs the answer on cases with known results. A correct answer prints
one line saying so (and the check returns None, so a notebook shows only that line); a
wrong one raises ``ExerciseError`` whose message says what is wrong and hints at the usual
mistake; an answer not yet written raises ``NotYetAnswered``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["ExerciseError", "NotYetAnswered", "run_checks", "expect", "expect_close"]


class ExerciseError(AssertionError):
    """The answer is wrong; the message says how."""


class NotYetAnswered(NotImplementedError):
    """The exercise has not been answered yet."""


def expect(condition: bool, hint: str) -> None:
    """Fail with ``hint`` unless ``condition`` holds."""
    if not condition:
        raise ExerciseError(hint)


def as_number(got: Any, what: str) -> float:
    """``got`` (a number, or a one-element tensor or array) as a float, or an ExerciseError
    asking for ``what``: "return one number (WHAT), got list"."""
    if callable(getattr(got, "numel", None)) and got.numel() == 1:  # a one-element tensor
        return float(got.reshape(()))
    try:
        return float(got)
    except (TypeError, ValueError):
        raise ExerciseError(f"return one number ({what}), got {type(got).__name__}") from None


def expect_close(got: Any, want: float, hint: str, rel: float = 1e-6, abs_: float = 1e-9) -> None:
    """Fail with ``hint`` (and both numbers) unless ``got`` is a number close to ``want``."""
    try:
        value = float(got)
    except (TypeError, ValueError):
        raise ExerciseError(f"expected a number, got {type(got).__name__}: {got!r}") from None
    if not math.isclose(value, want, rel_tol=rel, abs_tol=abs_):
        raise ExerciseError(f"{hint} (expected {want:.6g}, got {value:.6g})")


def run_checks(exercise: str, answer: Any, checks: Sequence[Callable[[Any], None]]) -> None:
    """Run every check on ``answer``; print a pass line or raise with the first failure."""
    if answer is None or answer is Ellipsis:
        raise NotYetAnswered(
            f"{exercise}: not yet answered. Write your answer, then run the check."
        )
    for number, check in enumerate(checks, start=1):
        try:
            check(answer)
        except ExerciseError as error:
            raise ExerciseError(f"{exercise}, check {number} of {len(checks)}: {error}") from None
        except NotImplementedError:
            raise NotYetAnswered(
                f"{exercise}: not yet answered (your function raises NotImplementedError)."
            ) from None
        except Exception as error:  # the answer crashed: report it as a wrong answer
            raise ExerciseError(
                f"{exercise}, check {number} of {len(checks)}: your answer raised "
                f"{type(error).__name__}: {error}"
            ) from error
    print(f"✓ {exercise}: all {len(checks)} checks passed.")
