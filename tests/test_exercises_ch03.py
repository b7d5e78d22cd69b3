"""The chapter 3 checks pass the model answers and reject plausible wrong ones."""

import math

import pytest
import torch
import torch.nn.functional as F

from llmcourse.exercises import ExerciseError, NotYetAnswered
from llmcourse.exercises.ch03 import check_attention, check_causal_mask, check_stable_softmax

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


# --- causal attention for the newest tokens ---------------------------------------------


def newest_attention(Q, K, V):
    L, S = Q.shape[-2], K.shape[-2]
    allowed = torch.ones(L, S, dtype=torch.bool).tril(diagonal=S - L)
    scores = Q @ K.T / math.sqrt(K.shape[-1])
    return torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1) @ V


def newest_attention_float64(Q, K, V):
    # float64, positions compared explicitly, the exp-normalise written out
    Q, K, V = Q.double(), K.double(), V.double()
    L, S = Q.shape[0], K.shape[0]
    token = torch.arange(S - L, S)[:, None]  # the position of each query's token
    scores = Q @ K.transpose(-2, -1) / Q.shape[-1] ** 0.5
    scores = torch.where(torch.arange(S)[None, :] <= token, scores, -torch.inf)
    weights = (scores - scores.amax(-1, keepdim=True)).exp()
    return weights / weights.sum(-1, keepdim=True) @ V


def newest_attention_sdpa(Q, K, V):
    # F.scaled_dot_product_attention is ruled out by the prompt, but it is right
    L, S = Q.shape[-2], K.shape[-2]
    mask = torch.ones(L, S, dtype=torch.bool).tril(diagonal=S - L)
    return F.scaled_dot_product_attention(Q, K, V, attn_mask=mask)


@pytest.mark.parametrize(
    "answer", [newest_attention, newest_attention_float64, newest_attention_sdpa]
)
def test_attention_right(answer, capsys):
    check_attention(answer)  # raises if the answer is rejected
    assert "all 6 checks passed" in capsys.readouterr().out


def attention(Q, K, V):  # the chapter's, passed unchanged
    return torch.softmax(Q @ K.transpose(-2, -1) / math.sqrt(Q.shape[-1]), dim=-1) @ V


def causal_attention_weights(Q, K):  # the chapter's, top-left aligned
    L, S = Q.shape[-2], K.shape[-2]
    allowed = torch.ones(L, S, dtype=torch.bool).tril()
    scores = Q @ K.transpose(-2, -1) / math.sqrt(Q.shape[-1])
    return torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)


def test_attention_the_chapters_attention_has_no_mask():
    with pytest.raises(ExerciseError, match="apply the causal mask"):
        check_attention(attention)


def test_attention_the_chapters_mask_is_top_left():
    with pytest.raises(ExerciseError, match="top left"):
        check_attention(lambda Q, K, V: causal_attention_weights(Q, K) @ V)


def test_attention_query_does_not_see_itself():
    def strict(Q, K, V):
        L, S = Q.shape[-2], K.shape[-2]
        allowed = torch.ones(L, S, dtype=torch.bool).tril(diagonal=S - L - 1)
        scores = Q @ K.T / math.sqrt(K.shape[-1])
        return torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1) @ V

    with pytest.raises(ExerciseError, match="its own token too"):
        check_attention(strict)


def test_attention_without_scale():
    def unscaled(Q, K, V):
        L, S = Q.shape[-2], K.shape[-2]
        allowed = torch.ones(L, S, dtype=torch.bool).tril(diagonal=S - L)
        return torch.softmax((Q @ K.T).masked_fill(~allowed, float("-inf")), dim=-1) @ V

    with pytest.raises(ExerciseError, match="sqrt"):
        check_attention(unscaled)


def test_attention_hard_coded_scale():
    def hard(Q, K, V):
        L, S = Q.shape[-2], K.shape[-2]
        allowed = torch.ones(L, S, dtype=torch.bool).tril(diagonal=S - L)
        scores = (Q @ K.T / 4.0).masked_fill(~allowed, float("-inf"))
        return torch.softmax(scores, dim=-1) @ V

    with pytest.raises(ExerciseError, match=r"sqrt\(9\) = 3"):
        check_attention(hard)


def test_attention_crashes_and_not_answered():
    with pytest.raises(ExerciseError, match="raised"):
        check_attention(lambda Q, K, V: Q @ V)
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


# --- shuffle the tokens ------------------------------------------------------------------


def _self_attention(X, W_query, W_key, W_value, causal):
    Q, K, V = X @ W_query, X @ W_key, X @ W_value
    scores = Q @ K.T / math.sqrt(K.shape[-1])
    if causal:
        T = X.shape[0]
        scores = scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
    return torch.softmax(scores, dim=-1) @ V


def shuffle_gap(X, W_query, W_key, W_value, perm, causal):
    out = _self_attention(X, W_query, W_key, W_value, causal)
    shuffled = _self_attention(X[perm], W_query, W_key, W_value, causal)
    return (shuffled - out[perm]).abs().max().item()


def shuffle_gap_sdpa_float64(X, W_query, W_key, W_value, perm, causal):
    # a second right answer: PyTorch's attention, in float64, and a tensor returned
    X, W_query, W_key, W_value = (t.double() for t in (X, W_query, W_key, W_value))

    def run(X):
        q, k, v = ((X @ W)[None] for W in (W_query, W_key, W_value))
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)[0]

    return torch.max(torch.abs(run(X[perm]) - run(X).index_select(0, perm)))


@pytest.mark.parametrize("answer", [shuffle_gap, shuffle_gap_sdpa_float64])
def test_shuffle_gap_right(answer, capsys):
    from llmcourse.exercises.ch03 import check_shuffle_gap

    check_shuffle_gap(answer)  # raises if the answer is rejected
    assert "all 3 checks passed" in capsys.readouterr().out


def _not_shuffled_back(X, Wq, Wk, Wv, perm, causal):
    out = _self_attention(X, Wq, Wk, Wv, causal)
    return (_self_attention(X[perm], Wq, Wk, Wv, causal) - out).abs().max().item()


def _inverse(X, Wq, Wk, Wv, perm, causal):
    out = _self_attention(X, Wq, Wk, Wv, causal)[perm.argsort()]
    return (_self_attention(X[perm], Wq, Wk, Wv, causal) - out).abs().max().item()


def _mask_ignored(X, Wq, Wk, Wv, perm, causal):
    return shuffle_gap(X, Wq, Wk, Wv, perm, False)


def _mask_shuffled_with_tokens(X, Wq, Wk, Wv, perm, causal):
    # the causal mask moved with the tokens: the shuffled run is the original, reordered
    T = X.shape[0]
    Q, K, V = X[perm] @ Wq, X[perm] @ Wk, X[perm] @ Wv
    allowed = torch.ones(T, T, dtype=torch.bool)
    if causal:
        allowed = allowed.tril()[perm][:, perm]
    scores = (Q @ K.T / math.sqrt(K.shape[-1])).masked_fill(~allowed, float("-inf"))
    out = _self_attention(X, Wq, Wk, Wv, causal)
    return (torch.softmax(scores, dim=-1) @ V - out[perm]).abs().max().item()


def _signed(X, Wq, Wk, Wv, perm, causal):
    out = _self_attention(X, Wq, Wk, Wv, causal)
    return (_self_attention(X[perm], Wq, Wk, Wv, causal) - out[perm]).max().item()


def _float32_only(X, Wq, Wk, Wv, perm, causal):
    return shuffle_gap(X.float(), Wq.float(), Wk.float(), Wv.float(), perm, causal) * (
        2 if X.dtype == torch.float64 else 1
    )


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (_not_shuffled_back, "not with out itself"),
        (_inverse, "inverse permutation"),
        (_mask_ignored, "Apply the causal mask"),
        (_mask_shuffled_with_tokens, "do not shuffle the mask"),
        (_signed, r"take \.abs\(\) before \.max\(\)"),
        (lambda *args: 0.0, "should not be zero"),
        (lambda X, *args: torch.zeros(2), "return one number"),
        (_float32_only, "in float64"),
    ],
)
def test_shuffle_gap_wrong(wrong, hint):
    from llmcourse.exercises.ch03 import check_shuffle_gap

    with pytest.raises(ExerciseError, match=hint):
        check_shuffle_gap(wrong)


def test_shuffle_gap_not_answered():
    from llmcourse.exercises.ch03 import check_shuffle_gap

    with pytest.raises(NotYetAnswered):
        check_shuffle_gap(None)


# --- attention that ignores padding ------------------------------------------------------


def padded_attention(Q, K, V, lengths):
    T = K.shape[-2]
    real_key = torch.arange(T)[None, None, :] < lengths[:, None, None]
    scores = Q @ K.transpose(-2, -1) / math.sqrt(Q.shape[-1])
    return torch.softmax(scores.masked_fill(~real_key, float("-inf")), dim=-1) @ V


def padded_attention_loop(Q, K, V, lengths):
    # a second right answer: one sequence at a time, its padding cut off, zeros after
    out = torch.zeros(*Q.shape[:2], V.shape[-1], dtype=torch.float64)
    for b, n in enumerate(lengths.tolist()):
        q, k, v = Q[b, :n].double(), K[b, :n].double(), V[b, :n].double()
        out[b, :n] = torch.softmax(q @ k.T / k.shape[-1] ** 0.5, dim=-1) @ v
    return out


def padded_attention_sdpa(Q, K, V, lengths):
    # a third: PyTorch's attention with a boolean mask (True = may attend), float32
    real_key = torch.arange(K.shape[1])[None, None, :] < lengths[:, None, None]
    Q, K, V = Q.float(), K.float(), V.float()
    return F.scaled_dot_product_attention(Q, K, V, attn_mask=real_key)


@pytest.mark.parametrize("answer", [padded_attention, padded_attention_loop, padded_attention_sdpa])
def test_padded_attention_right(answer, capsys):
    from llmcourse.exercises.ch03 import check_padded_attention

    check_padded_attention(answer)  # raises if the answer is rejected
    assert "all 4 checks passed" in capsys.readouterr().out


def _masked(Q, K, V, mask, scale=True, how="-inf"):
    scores = Q @ K.transpose(-2, -1) / (math.sqrt(Q.shape[-1]) if scale else 1.0)
    if how == "zero":
        scores = scores * mask
    elif how == "-inf":
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    if how == "after":
        weights = weights * mask
    return weights @ V


def _keys(K, lengths, offset=0):
    return (torch.arange(K.shape[1])[None, :] < lengths[:, None] + offset)[:, None, :]


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda Q, K, V, n: _masked(Q, K, V, torch.ones_like(_keys(K, n))), "padding keys still"),
        (lambda Q, K, V, n: _masked(Q, K, V, _keys(K, n), how="zero"), "not to 0"),
        (lambda Q, K, V, n: _masked(Q, K, V, _keys(K, n), how="after"), "sum to less than 1"),
        (lambda Q, K, V, n: _masked(Q, K, V, _keys(K, n, offset=1)), "off by one"),
        (lambda Q, K, V, n: _masked(Q, K, V, _keys(K, n).transpose(1, 2)), "masking the queries"),
        (lambda Q, K, V, n: F.scaled_dot_product_attention(Q, K, V), "padding keys still"),
        (lambda Q, K, V, n: _masked(Q, K, V, _keys(K, n), scale=False), "sqrt\\(d_k\\)"),
        (lambda Q, K, V, n: _masked(Q, K, V, _keys(K, n))[:, :, :1], "give an output of shape"),
        (
            lambda Q, K, V, n: _masked(Q[:, :6], K[:, :6], V[:, :6], _keys(K[:, :6], n)),
            "take T from the inputs",
        ),
        (lambda Q, K, V, n: _masked(Q, K, V, _keys(K, n)).float().round(), "differ from"),
    ],
)
def test_padded_attention_wrong(wrong, hint):
    from llmcourse.exercises.ch03 import check_padded_attention

    with pytest.raises(ExerciseError, match=hint):
        check_padded_attention(wrong)


def test_padded_attention_not_answered():
    from llmcourse.exercises.ch03 import check_padded_attention

    with pytest.raises(NotYetAnswered):
        check_padded_attention(None)
