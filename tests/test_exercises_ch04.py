"""The chapter 4 checks pass the model answers and reject plausible wrong ones."""

import math

import pytest
import torch

from llmcourse.exercises import ExerciseError, NotYetAnswered
from llmcourse.exercises.ch04 import check_attention, check_causal_mask, check_stable_softmax


# --- stable softmax ----------------------------------------------------------------------

def stable_softmax(x):
    e = (x - x.amax(dim=-1, keepdim=True)).exp()
    return e / e.sum(dim=-1, keepdim=True)


def test_stable_softmax_right(capsys):
    check_stable_softmax(stable_softmax)  # raises if the answer is rejected
    assert "all 3 checks passed" in capsys.readouterr().out


def test_stable_softmax_naive_overflows():
    with pytest.raises(ExerciseError, match="subtract each row's maximum"):
        check_stable_softmax(lambda x: x.exp() / x.exp().sum(dim=-1, keepdim=True))


def test_stable_softmax_global_max_underflows():
    # Subtracting the max of the whole tensor sends a row far below it to exp(...) = 0, 0/0.
    def global_max(x):
        e = (x - x.max()).exp()
        return e / e.sum(dim=-1, keepdim=True)

    with pytest.raises(ExerciseError, match="subtract each row's maximum"):
        check_stable_softmax(global_max)


def test_stable_softmax_normalised_over_everything():
    def whole(x):
        e = (x - x.max()).exp()
        return e / e.sum()

    with pytest.raises(ExerciseError, match="normalise along dim=-1"):
        check_stable_softmax(whole)


def test_stable_softmax_not_answered():
    with pytest.raises(NotYetAnswered):
        check_stable_softmax(None)

    def todo(x):
        raise NotImplementedError

    with pytest.raises(NotYetAnswered):
        check_stable_softmax(todo)


# --- attention ---------------------------------------------------------------------------

def attention(Q, K, V):
    return torch.softmax(Q @ K.T / math.sqrt(K.shape[-1]), dim=-1) @ V


def test_attention_right():
    check_attention(attention)  # raises if the answer is rejected


def test_attention_without_scale():
    with pytest.raises(ExerciseError, match="divided by sqrt"):
        check_attention(lambda Q, K, V: torch.softmax(Q @ K.T, dim=-1) @ V)


def test_attention_softmax_over_queries():
    with pytest.raises(ExerciseError, match="along the keys"):
        check_attention(lambda Q, K, V: torch.softmax(Q @ K.T / 4, dim=0) @ V)


def test_attention_returns_weights():
    with pytest.raises(ExerciseError, match=r"output of shape \(4, 3\)"):
        check_attention(lambda Q, K, V: torch.softmax(Q @ K.T / 4, dim=-1))


def test_attention_crashes_are_reported():
    with pytest.raises(ExerciseError, match="your answer raised"):
        check_attention(lambda Q, K, V: Q @ K @ V)


def test_attention_not_answered():
    with pytest.raises(NotYetAnswered):
        check_attention(None)


# --- causal mask -------------------------------------------------------------------------

def test_causal_mask_right():
    check_causal_mask(lambda T: torch.ones(T, T, dtype=torch.bool).tril())  # raises if the answer is rejected


def test_causal_mask_without_diagonal():
    with pytest.raises(ExerciseError, match="keep the diagonal"):
        check_causal_mask(lambda T: torch.ones(T, T, dtype=torch.bool).tril(-1))


def test_causal_mask_sees_future():
    with pytest.raises(ExerciseError, match="must not see the future"):
        check_causal_mask(lambda T: torch.ones(T, T, dtype=torch.bool).triu())


def test_causal_mask_pytorch_mha_convention():
    with pytest.raises(ExerciseError, match="must not see the future"):
        check_causal_mask(lambda T: torch.ones(T, T, dtype=torch.bool).triu(1) | torch.eye(
            T, dtype=torch.bool))


def test_causal_mask_float():
    with pytest.raises(ExerciseError, match="boolean tensor"):
        check_causal_mask(lambda T: torch.ones(T, T).tril())


def test_causal_mask_fixed_size():
    with pytest.raises(ExerciseError, match="use T, not a fixed size"):
        check_causal_mask(lambda T: torch.ones(3, 3, dtype=torch.bool).tril())


def test_causal_mask_not_answered():
    with pytest.raises(NotYetAnswered):
        check_causal_mask(None)
