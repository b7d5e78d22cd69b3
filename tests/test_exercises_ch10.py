"""The chapter 10 exercise checks: model answers pass, plausible wrong answers get a hint."""

import pytest
import torch

from llmcourse.exercises import ExerciseError, NotYetAnswered
from llmcourse.exercises.ch10 import (
    check_chat_messages,
    check_greedy_step,
    check_new_token_count,
    check_top_k_search,
)

# --- chat messages --------------------------------------------------------------------------


def chat_messages(system, user):
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def test_chat_messages_passes(capsys):
    check_chat_messages(chat_messages)  # raises if the answer is rejected
    assert "all 3 checks passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong,match",
    [
        (lambda s, u: [("system", s), ("user", u)], "each message is a dict"),
        (lambda s, u: [{"role": "user", "content": u}], "two messages"),
        (
            lambda s, u: [{"role": "system", "text": s}, {"role": "user", "text": u}],
            "exactly the keys 'role' and 'content'",
        ),
        (
            lambda s, u: [{"role": "user", "content": u}, {"role": "system", "content": s}],
            "'system' then 'user'",
        ),
        (
            lambda s, u: [
                {"role": "system", "content": f"<|im_start|>system\n{s}"},
                {"role": "user", "content": u},
            ],
            "the chat template adds the markers",
        ),
        (
            lambda s, u: chat_messages("You are a terse assistant.", "What is a token?"),
            "use the arguments",
        ),
        (lambda s, u: {"system": s, "user": u}, "return a list of messages, got dict"),
    ],
)
def test_chat_messages_wrong(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        check_chat_messages(wrong)


# --- new token count ------------------------------------------------------------------------


def new_token_count(prompt_len, max_length=None, max_new_tokens=None):
    if max_new_tokens is not None:
        return max_new_tokens
    if prompt_len >= max_length:
        raise ValueError(f"no room: prompt {prompt_len}, max_length {max_length}")
    return max_length - prompt_len


def new_token_count_by_cases(prompt_len, max_length=None, max_new_tokens=None):
    """A second correct answer, written the other way round."""
    room = None if max_length is None else max_length - prompt_len
    if max_new_tokens is None and room <= 0:
        raise ValueError("the prompt fills max_length")
    return room if max_new_tokens is None else max_new_tokens


@pytest.mark.parametrize("answer", [new_token_count, new_token_count_by_cases])
def test_new_token_count_passes(answer, capsys):
    check_new_token_count(answer)  # raises if the answer is rejected
    assert "all 4 checks passed" in capsys.readouterr().out


def _raise():
    raise ValueError("no room")


@pytest.mark.parametrize(
    "wrong,match",
    [
        (
            lambda p, max_length=None, max_new_tokens=None: max_new_tokens or max_length,
            "50 is the total",
        ),
        (
            lambda p, max_length=None, max_new_tokens=None: max_new_tokens or max_length + p,
            "not the new tokens added to the prompt",
        ),
        (
            lambda p, max_length=None, max_new_tokens=None: (
                max_length - p if max_length else max_new_tokens
            ),
            "max_new_tokens takes precedence",
        ),
        (
            lambda p, max_length=None, max_new_tokens=None: max_new_tokens or max_length - p,
            "not a negative count",
        ),
        (
            lambda p, max_length=None, max_new_tokens=None: (
                max_new_tokens or max(0, max_length - p)
            ),
            "generate raises a ValueError",
        ),
        (
            lambda p, max_length=None, max_new_tokens=None: (
                (max_new_tokens or max_length - p)
                if (max_new_tokens or max_length - p > 1)
                else _raise()
            ),
            "one position left",
        ),
        (
            lambda p, max_length=None, max_new_tokens=None: (
                max_new_tokens - p if max_new_tokens else max_length - p
            ),
            "counts only the generated tokens",
        ),
    ],
)
def test_new_token_count_wrong(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        check_new_token_count(wrong)


# --- greedy step ----------------------------------------------------------------------------


def greedy_step(input_ids, logits):
    next_id = logits[:, -1, :].argmax(dim=-1)
    return torch.cat([input_ids, next_id[:, None]], dim=1)


def test_greedy_step_passes(capsys):
    check_greedy_step(greedy_step)  # raises if the answer is rejected
    assert "all 3 checks passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong,match",
    [
        (
            lambda ids, logits: torch.cat([ids, logits[:, 0].argmax(-1, keepdim=True)], 1),
            "LAST position",
        ),
        (
            lambda ids, logits: torch.cat([ids, logits[:, -1].argmin(-1, keepdim=True)], 1),
            "argmax, not argmin",
        ),
        (lambda ids, logits: logits[:, -1].argmax(-1), r"shape \(2, 4\)"),
        (
            lambda ids, logits: torch.cat([ids.float(), logits[:, -1].argmax(-1, keepdim=True)], 1),
            "stay integers",
        ),
        (
            lambda ids, logits: torch.cat(
                [ids, logits[:, -1].argmax(-1, keepdim=True)], 1
            ).tolist(),
            "return a tensor, got list",
        ),
    ],
)
def test_greedy_step_wrong(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        check_greedy_step(wrong)


# --- top-k search ---------------------------------------------------------------------------


def top_k_search(query, corpus, k):
    scores = torch.nn.functional.cosine_similarity(query[None, :], corpus, dim=-1)
    return scores.argsort(descending=True)[:k].tolist()


def test_top_k_search_passes(capsys):
    check_top_k_search(top_k_search)  # raises if the answer is rejected
    assert "all 2 checks passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong,match",
    [
        (lambda q, c, k: (c @ q).argsort(descending=True)[:k].tolist(), "ranking by dot product"),
        (
            lambda q, c, k: (
                torch.nn.functional.cosine_similarity(q[None], c).argsort()[:k].tolist()
            ),
            "descending order",
        ),
        (
            lambda q, c, k: torch.nn.functional.cosine_similarity(q[None], c).argsort(
                descending=True
            )[:k],
            "return a list of ints, got Tensor",
        ),
        (lambda q, c, k: top_k_search(q, c, k + 1), "exactly k indices"),
    ],
)
def test_top_k_search_wrong(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        check_top_k_search(wrong)


# --- not yet answered -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "check", [check_chat_messages, check_new_token_count, check_greedy_step, check_top_k_search]
)
def test_none_not_yet_answered(check):
    with pytest.raises(NotYetAnswered):
        check(None)


def test_not_implemented_not_yet_answered():
    def stub(*args):
        raise NotImplementedError

    with pytest.raises(NotYetAnswered):
        check_greedy_step(stub)
