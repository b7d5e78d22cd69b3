"""The checks made at the package's public entry points: one function per kind of argument,
so every bad argument gets the same clear message ("top_k must be a positive int, got 0").

``True`` is not accepted as the integer 1, nor NaN as a number: both are refused by name.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "positive_int",
    "non_negative_int",
    "positive_number",
    "probability",
    "token_ids",
    "shape_of",
    "tensor_of_shape",
    "zeros_and_ones",
    "logits_and_targets",
    "broadcastable",
]


def shape_of(value):
    """What came instead of the tensor a message expected: its shape, or its type's name."""
    return tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__


def tensor_of_shape(name: str, value, shape: str, rank: int | None = None, last: int | None = None):
    """Return ``value`` if it is a tensor of ``rank`` dimensions (of at least one, if None)
    whose last has size ``last`` (when given), else refuse it; ``shape`` is how the message
    names the expected shape, as in "expected x of shape (batch, seq, 8), got (3, 8)"."""
    if (
        not isinstance(value, torch.Tensor)
        or (value.dim() != rank if rank is not None else value.dim() == 0)
        or (last is not None and value.shape[-1] != last)
    ):
        raise ValueError(f"expected {name} of shape {shape}, got {shape_of(value)}")
    return value


def zeros_and_ones(name: str, mask: torch.Tensor) -> None:
    """Refuse an attention mask holding anything but 0 (padding) and 1 (real token)."""
    if not ((mask == 0) | (mask == 1)).all():
        raise ValueError(f"{name} must hold only 0 (padding) and 1 (real token)")


def positive_int(name: str, value) -> int:
    """Return ``value`` if it is an int >= 1 (a bool is not an int here), else refuse it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def non_negative_int(name: str, value) -> int:
    """Return ``value`` if it is an int >= 0 (a bool is not an int here), else refuse it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    return value


def positive_number(name: str, value, unit: str = "") -> None:
    """Refuse anything but a finite int or float > 0; ``unit`` ("seconds") names what it counts."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        what = f"a positive number of {unit}" if unit else "a positive number"
        raise ValueError(f"{name} must be {what}, got {value!r}")


def probability(name: str, value) -> None:
    """Refuse anything but a number in (0, 1] (NaN included)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(f"{name} must be a number in (0, 1], got {value!r}")


_ID_DIMS = {1: ("seq",), 2: ("batch", "seq")}


def token_ids(value, name: str = "input_ids", rank: int = 2, batch: int | None = None):
    """Return ``value`` if it is a tensor of integer token ids (a bool tensor is not) of
    ``rank`` dimensions, none of size 0 (and ``batch`` rows, when given), else refuse it.

    The ids' range is not checked here: only the model knows its vocabulary size.
    """
    dims = list(_ID_DIMS.get(rank, [f"d{i}" for i in range(rank)]))
    if batch is not None:
        dims[0] = str(batch)
    shape = f"({dims[0]},)" if rank == 1 else f"({', '.join(dims)})"
    sizes = " and ".join(f"{d} >= 1" for d in dims if not d.isdigit())
    sizes = f" with {sizes}" if sizes else ""
    if (
        not isinstance(value, torch.Tensor)
        or value.dim() != rank
        or 0 in value.shape
        or value.dtype.is_floating_point
        or value.dtype.is_complex
        or value.dtype == torch.bool
        or (batch is not None and value.shape[0] != batch)
    ):
        got = (
            f"{value.dtype} of shape {tuple(value.shape)}"
            if isinstance(value, torch.Tensor)
            else type(value).__name__
        )
        raise ValueError(f"{name} must be an integer tensor of shape {shape}{sizes}, got {got}")
    return value


def logits_and_targets(logits, targets, name: str = "targets") -> None:
    """Refuse ``logits`` not of shape (batch, seq, vocab), or ``targets`` (one token id per
    position: ``name`` says what the caller calls them) not of their (batch, seq)."""
    if not isinstance(logits, torch.Tensor) or logits.dim() != 3:
        raise ValueError(f"expected logits of shape (batch, seq, vocab), got {shape_of(logits)}")
    if not isinstance(targets, torch.Tensor) or targets.shape != logits.shape[:2]:
        raise ValueError(
            f"expected {name} of shape {tuple(logits.shape[:2])} (batch, seq), "
            f"got {shape_of(targets)}"
        )


def broadcastable(shape, to, message: str) -> None:
    """Refuse, with ``message``, a ``shape`` that does not broadcast with the shape ``to``."""
    try:
        torch.broadcast_shapes(shape, to)
    except RuntimeError:
        raise ValueError(message) from None
