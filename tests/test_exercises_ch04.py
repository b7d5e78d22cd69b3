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


def stable_softmax_float64(x):
    x = x.double()  # a correct answer that computes (and returns) float64
    e = (x - x.max(dim=-1, keepdim=True).values).exp()
    return e / e.sum(dim=-1, keepdim=True)


@pytest.mark.parametrize("answer", [stable_softmax, stable_softmax_float64])
def test_stable_softmax_right(answer, capsys):
    check_stable_softmax(answer)  # raises if the answer is rejected
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


def my_attention(Q, K, V):
    return torch.softmax(Q @ K.T / math.sqrt(K.shape[-1]), dim=-1) @ V


def my_attention_float64(Q, K, V):
    Q, K, V = Q.double(), K.double(), V.double()
    scores = Q @ K.transpose(-2, -1) / Q.shape[-1] ** 0.5
    weights = scores.exp() / scores.exp().sum(-1, keepdim=True)
    return weights @ V


@pytest.mark.parametrize("answer", [my_attention, my_attention_float64])
def test_attention_right(answer, capsys):
    check_attention(answer)  # raises if the answer is rejected
    assert "all 4 checks passed" in capsys.readouterr().out


def test_attention_hard_coded_scale():
    # Right on the first shape, where sqrt(d_k) = 4; the second shape has sqrt(d_k) = 3.
    with pytest.raises(ExerciseError, match="divided by sqrt\\(9\\) = 3"):
        check_attention(lambda Q, K, V: torch.softmax(Q @ K.T / 4.0, dim=-1) @ V)


def test_attention_scale_from_number_of_queries():
    # Dividing by L is right by accident on the first shape (L = sqrt(d_k) = 4), not on the
    # second (L = 5, sqrt(d_k) = 3).
    with pytest.raises(ExerciseError, match="take d_k from the last dimension"):
        check_attention(lambda Q, K, V: torch.softmax(Q @ K.T / len(Q), dim=-1) @ V)


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
    # raises if the answer is rejected
    check_causal_mask(lambda T: torch.ones(T, T, dtype=torch.bool).tril())


def test_causal_mask_without_diagonal():
    with pytest.raises(ExerciseError, match="keep the diagonal"):
        check_causal_mask(lambda T: torch.ones(T, T, dtype=torch.bool).tril(-1))


def test_causal_mask_sees_future():
    with pytest.raises(ExerciseError, match="must not see the future"):
        check_causal_mask(lambda T: torch.ones(T, T, dtype=torch.bool).triu())


def test_causal_mask_pytorch_mha_convention():
    with pytest.raises(ExerciseError, match="must not see the future"):
        check_causal_mask(
            lambda T: torch.ones(T, T, dtype=torch.bool).triu(1) | torch.eye(T, dtype=torch.bool)
        )


def test_causal_mask_float():
    with pytest.raises(ExerciseError, match="boolean tensor"):
        check_causal_mask(lambda T: torch.ones(T, T).tril())


def test_causal_mask_fixed_size():
    with pytest.raises(ExerciseError, match="use T, not a fixed size"):
        check_causal_mask(lambda T: torch.ones(3, 3, dtype=torch.bool).tril())


def test_causal_mask_not_answered():
    with pytest.raises(NotYetAnswered):
        check_causal_mask(None)
