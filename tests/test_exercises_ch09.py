"""The chapter 9 exercise checks: model answers pass, plausible wrong answers get a hint."""

import pytest
import torch

from llmcourse.exercises import ExerciseError, NotYetAnswered
from llmcourse.exercises.ch09 import check_temperature, check_top_k, check_top_p


def temperature_probs(logits, t):
    return torch.softmax(logits / t, dim=-1)


def top_k_probs(probs, k):
    kept = torch.zeros_like(probs)
    values, index = probs.topk(k)
    kept[index] = values
    return kept / kept.sum()


def top_p_probs(probs, p):
    sorted_probs, order = probs.sort(descending=True)
    before = sorted_probs.cumsum(0) - sorted_probs  # mass of the more likely tokens
    keep = torch.zeros_like(probs, dtype=torch.bool)
    keep[order] = before < p
    kept = probs * keep
    return kept / kept.sum()


def test_model_answers_pass(capsys):
    check_temperature(temperature_probs)  # raises if the answer is rejected
    check_top_k(top_k_probs)  # raises if the answer is rejected
    check_top_p(top_p_probs)  # raises if the answer is rejected
    assert capsys.readouterr().out.count("checks passed") == 3


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda x, t: torch.softmax(x * t, -1), "you multiplied by T"),
        (lambda x, t: x / t, "apply the softmax"),
        (lambda x, t: torch.softmax(x / (t + 1), -1), "expected softmax"),
    ],
)
def test_temperature_wrong(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_temperature(wrong)


def test_top_k_wrong():
    with pytest.raises(ExerciseError, match="off-by-one"):
        check_top_k(lambda probs, k: top_k_probs(probs, min(k + 1, 5)) if k < 5 else probs)
    with pytest.raises(ExerciseError, match="the k-th largest stays"):
        check_top_k(lambda probs, k: top_k_probs(probs, k - 1) if k > 1 else top_k_probs(probs, 1))

    def unnormalised(probs, k):
        kept = torch.zeros_like(probs)
        values, index = probs.topk(k)
        kept[index] = values
        return kept

    with pytest.raises(ExerciseError, match="divide by their sum"):
        check_top_k(unnormalised)

    def smallest(probs, k):
        kept = torch.zeros_like(probs)
        values, index = probs.topk(k, largest=False)
        kept[index] = values
        return kept / kept.sum()

    with pytest.raises(ExerciseError, match="keep the LARGEST"):
        check_top_k(smallest)


def test_top_p_wrong():
    def excludes_crossing(probs, p):
        sorted_probs, order = probs.sort(descending=True)
        keep = torch.zeros_like(probs, dtype=torch.bool)
        keep[order] = sorted_probs.cumsum(0) < p
        keep[order[0]] = True
        kept = probs * keep
        return kept / kept.sum()

    with pytest.raises(ExerciseError, match="INCLUDING the one that crosses it"):
        check_top_p(excludes_crossing)

    def unnormalised(probs, p):
        return top_p_probs(probs, p) * probs[top_p_probs(probs, p) > 0].sum()

    with pytest.raises(ExerciseError, match="renormalise them"):
        check_top_p(unnormalised)
    with pytest.raises(ExerciseError, match="for p=0.1 the top token alone"):
        check_top_p(lambda probs, p: top_p_probs(probs, max(p, 0.5)))


def test_not_yet_answered():
    for check in (check_temperature, check_top_k, check_top_p):
        with pytest.raises(NotYetAnswered):
            check(None)


def sequence_log_prob(logits, ids, prompt_len):
    logp = logits.log_softmax(-1)[prompt_len - 1 : -1]
    return logp.gather(1, ids[prompt_len:, None]).sum()


def sequence_log_prob_loop(logits, ids, prompt_len):  # a second right answer, as a loop
    total = 0.0
    for t in range(prompt_len, len(ids)):
        total += torch.log_softmax(logits[t - 1], dim=-1)[ids[t]].item()
    return total


def test_sequence_log_prob_right_answers(capsys):
    from llmcourse.exercises.ch09 import check_sequence_log_prob

    check_sequence_log_prob(sequence_log_prob)
    check_sequence_log_prob(sequence_log_prob_loop)
    assert capsys.readouterr().out.count("checks passed") == 2


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda z, ids, p: z[p - 1 : -1].gather(1, ids[p:, None]).sum(), "log_softmax"),
        (
            lambda z, ids, p: z.softmax(-1)[p - 1 : -1].gather(1, ids[p:, None]).sum(),
            "returned probabilities",
        ),
        (
            lambda z, ids, p: z.log_softmax(-1)[p:].gather(1, ids[p:, None]).sum(),
            "predict token t \\+ 1",
        ),
        (
            lambda z, ids, p: z.log_softmax(-1)[p - 1 : -1].gather(1, ids[p:, None]).mean(),
            "you averaged",
        ),
        (
            lambda z, ids, p: z.log_softmax(-1)[:-1].gather(1, ids[1:, None]).sum(),
            "scored the prompt's tokens",
        ),
        (lambda z, ids, p: [1.0], "return one number"),
    ],
)
def test_sequence_log_prob_wrong(wrong, hint):
    from llmcourse.exercises.ch09 import check_sequence_log_prob

    with pytest.raises(ExerciseError, match=hint):
        check_sequence_log_prob(wrong)


def test_sequence_log_prob_not_answered():
    from llmcourse.exercises.ch09 import check_sequence_log_prob

    def todo(logits, ids, prompt_len):
        raise NotImplementedError

    with pytest.raises(NotYetAnswered):
        check_sequence_log_prob(todo)
    with pytest.raises(NotYetAnswered):
        check_sequence_log_prob(None)
