"""The chapter 10 exercise checks: model answers pass, plausible wrong answers get a hint."""

import re

import pytest
import torch

from llmcourse.exercises import ExerciseError, NotYetAnswered
from llmcourse.exercises.ch10 import (
    check_chat_messages,
    check_greedy_step,
    check_judge,
    check_new_token_count,
    check_rag_messages,
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


# --- a prompt that fits its budget ----------------------------------------------------------


def rag_messages(question, passages, max_words):
    kept, words = [], 0
    for p in passages:
        words += len(p.split())
        if words > max_words:
            break
        kept.append(p)
    content = question
    if kept:
        listed = "\n".join(f"[{n}] {p}" for n, p in enumerate(kept, start=1))
        content = f"{listed}\n\nQuestion: {question}"
    return [{"role": "user", "content": content}]


def rag_messages_by_slicing(question, passages, max_words):
    """A second correct answer: count the prefix that fits, then join."""
    totals = [sum(len(p.split()) for p in passages[: n + 1]) for n in range(len(passages))]
    n = sum(t <= max_words for t in totals)  # totals only grow: the prefix that fits
    lines = [f"[{i + 1}] {p}" for i, p in enumerate(passages[:n])]
    text = "\n".join(lines + ["", f"Question: {question}"]) if lines else question
    return [dict(role="user", content=text)]


@pytest.mark.parametrize("answer", [rag_messages, rag_messages_by_slicing])
def test_rag_messages_passes(answer, capsys):
    check_rag_messages(answer)  # raises if the answer is rejected
    assert "all 5 checks passed" in capsys.readouterr().out


def _rag_variant(number_from=1, strict=False, skip=False, chars=False, sep="\n\n", first=False):
    def f(question, passages, max_words):
        kept, words = [], 0
        for p in passages:
            size = len(p) if chars else len(p.split())
            if (words + size >= max_words) if strict else (words + size > max_words):
                if skip:
                    continue
                break
            words += size
            kept.append(p)
        if not kept:
            return [{"role": "user", "content": question}]
        listed = "\n".join(f"[{n}] {p}" for n, p in enumerate(kept, start=number_from))
        if first:
            return [{"role": "user", "content": f"Question: {question}{sep}{listed}"}]
        return [{"role": "user", "content": f"{listed}{sep}Question: {question}"}]

    return f


@pytest.mark.parametrize(
    "wrong,match",
    [
        (_rag_variant(number_from=0), "number the passages from 1"),
        (_rag_variant(first=True), "the passages come first"),
        (_rag_variant(sep="\n"), "an empty line"),
        (_rag_variant(strict=True), "<=, not <"),
        (_rag_variant(skip=True), "do not skip it"),
        (_rag_variant(chars=True), "not characters"),
        (
            lambda q, p, m: [{"role": "user", "content": rag_messages(q, p, m)[0]["content"]}] * 2,
            "one message",
        ),
        (
            lambda q, p, m: [{"role": "system", "content": rag_messages(q, p, m)[0]["content"]}],
            "'user' turn",
        ),
        (lambda q, p, m: rag_messages(q, p, m)[0]["content"], "return a list of messages"),
        (
            lambda q, p, m: rag_messages(q, p, m) if p else [{"role": "user", "content": ""}],
            "with no passages the content is the question alone",
        ),
    ],
)
def test_rag_messages_wrong(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        check_rag_messages(wrong)


# --- a fairer judge -------------------------------------------------------------------------


def judge(answer, accepted):
    return any(re.search(rf"\b{re.escape(a)}\b", answer, flags=re.IGNORECASE) for a in accepted)


def judge_by_words(answer, accepted):
    """A second correct answer: compare runs of words, punctuation removed."""
    words = re.findall(r"\w+", answer.lower())
    for a in accepted:
        target = a.lower().split()
        n = len(target)
        if any(words[i : i + n] == target for i in range(len(words) - n + 1)):
            return True
    return False


@pytest.mark.parametrize("answer", [judge, judge_by_words])
def test_judge_passes(answer, capsys):
    check_judge(answer)  # raises if the answer is rejected
    assert "all 5 checks passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong,match",
    [
        (lambda answer, accepted: any(a in answer.lower() for a in accepted), "not substrings"),
        (
            lambda answer, accepted: any(
                re.search(rf"\b{re.escape(a)}\b", answer) for a in accepted
            ),
            "ignore upper and lower case",
        ),
        (
            lambda answer, accepted: any(a in answer.lower().split() for a in accepted),
            "punctuation next to a word",
        ),
        (
            lambda answer, accepted: any(
                all(w in re.findall(r"\w+", answer.lower()) for w in a.split()) for a in accepted
            ),
            "its words together and in order",
        ),
        (
            lambda answer, accepted: re.search(
                rf"\b{re.escape(accepted[0])}\b", answer, flags=re.IGNORECASE
            ),
            "return True or False",
        ),
        (
            lambda answer, accepted: judge(answer, accepted[:1]),
            "ANY accepted string",
        ),
    ],
)
def test_judge_wrong(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        check_judge(wrong)


# --- not yet answered -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "check",
    [
        check_chat_messages,
        check_new_token_count,
        check_greedy_step,
        check_top_k_search,
        check_rag_messages,
        check_judge,
    ],
)
def test_none_not_yet_answered(check):
    with pytest.raises(NotYetAnswered):
        check(None)


def test_not_implemented_not_yet_answered():
    def stub(*args):
        raise NotImplementedError

    with pytest.raises(NotYetAnswered):
        check_greedy_step(stub)
