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


# --- the repetition penalty -----------------------------------------------------------------


def repetition_penalty(logits, input_ids, penalty):
    seen = logits.gather(1, input_ids)  # (B, T): each seen token's logit
    seen = torch.where(seen < 0, seen * penalty, seen / penalty)
    return logits.scatter(1, input_ids, seen)


def repetition_penalty_by_mask(logits, input_ids, penalty):
    """A second correct answer: a mask of seen tokens, row by row, in float64."""
    out = logits.double().clone()
    for row, ids in zip(out, input_ids):
        mask = torch.zeros_like(row, dtype=torch.bool)
        mask[ids] = True
        row[mask] = torch.where(row[mask] > 0, row[mask] / penalty, row[mask] * penalty)
    return out.to(logits.dtype)


@pytest.mark.parametrize("answer", [repetition_penalty, repetition_penalty_by_mask])
def test_repetition_penalty_passes(answer, capsys):
    from llmcourse.exercises.ch09 import check_repetition_penalty

    check_repetition_penalty(answer)  # raises if the answer is rejected
    assert "all 3 checks passed" in capsys.readouterr().out


def _per_occurrence(z, ids, p):
    out = z.clone()
    for b in range(ids.shape[0]):
        for t in ids[b].tolist():
            out[b, t] = out[b, t] / p if out[b, t] > 0 else out[b, t] * p
    return out


def _in_place(z, ids, p):
    seen = z.gather(1, ids)
    z.scatter_(1, ids, torch.where(seen < 0, seen * p, seen / p))
    return z


@pytest.mark.parametrize(
    "wrong,hint",
    [
        (_per_occurrence, "penalised once"),
        (lambda z, ids, p: z.scatter(1, ids, z.gather(1, ids) / p), "MULTIPLIED"),
        (lambda z, ids, p: torch.where(z < 0, z * p, z / p), "unseen tokens keep"),
        (lambda z, ids, p: repetition_penalty(z, ids[:1].expand_as(ids), p), "its own input_ids"),
        (_in_place, "unchanged"),
        (lambda z, ids, p: repetition_penalty(z, ids, p).tolist(), "return a tensor"),
    ],
)
def test_repetition_penalty_wrong(wrong, hint):
    from llmcourse.exercises.ch09 import check_repetition_penalty

    with pytest.raises(ExerciseError, match=hint):
        check_repetition_penalty(wrong)


# --- one cached attention step --------------------------------------------------------------


def cached_attention_step(q, k, v, K_cache, V_cache):
    K_cache = torch.cat([K_cache, k], dim=2)  # (B, H, T, d) -> (B, H, T + 1, d)
    V_cache = torch.cat([V_cache, v], dim=2)
    scores = q @ K_cache.transpose(-2, -1) / q.shape[-1] ** 0.5  # (B, H, 1, T + 1)
    return scores.softmax(dim=-1) @ V_cache, K_cache, V_cache


def cached_attention_step_sdpa(q, k, v, K_cache, V_cache):
    """A second correct answer: PyTorch's attention in float64, no mask."""
    K2, V2 = torch.cat((K_cache, k), -2), torch.cat((V_cache, v), -2)
    out = torch.nn.functional.scaled_dot_product_attention(q.double(), K2.double(), V2.double())
    return out, K2, V2


@pytest.mark.parametrize("answer", [cached_attention_step, cached_attention_step_sdpa])
def test_cached_attention_step_passes(answer, capsys):
    from llmcourse.exercises.ch09 import check_cached_attention_step

    check_cached_attention_step(answer)  # raises if the answer is rejected
    assert "all 3 checks passed" in capsys.readouterr().out


def _attend_before_append(q, k, v, K, V):
    if K.shape[2] == 0:
        return cached_attention_step(q, k, v, K, V)
    out = (q @ K.transpose(-2, -1) / q.shape[-1] ** 0.5).softmax(-1) @ V
    return out, torch.cat([K, k], 2), torch.cat([V, v], 2)


def _first_mask_row(q, k, v, K, V):
    K2, V2 = torch.cat([K, k], 2), torch.cat([V, v], 2)
    n = K2.shape[2]
    mask = torch.ones(n, n, dtype=torch.bool).tril()[:1]  # the first row, not the last
    scores = (q @ K2.transpose(-2, -1) / q.shape[-1] ** 0.5).masked_fill(~mask, float("-inf"))
    return scores.softmax(-1) @ V2, K2, V2


@pytest.mark.parametrize(
    "wrong,hint",
    [
        (_attend_before_append, "BEFORE attending"),
        (_first_mask_row, "FIRST row"),
        (
            lambda q, k, v, K, V: (
                (q @ torch.cat([K, k], 2).transpose(-2, -1)).softmax(-1) @ torch.cat([V, v], 2),
                torch.cat([K, k], 2),
                torch.cat([V, v], 2),
            ),
            "1/sqrt\\(d\\)",
        ),
        (
            lambda q, k, v, K, V: (
                cached_attention_step(q, k, v, K, V)[:2] + (torch.cat([V, k], 2),)
            ),
            "at the END",
        ),
        (
            lambda q, k, v, K, V: (
                cached_attention_step(q, k, v, K, V)[0],
                torch.cat([k, K], 2),
                torch.cat([v, V], 2),
            ),
            "at the END",
        ),
        (lambda q, k, v, K, V: cached_attention_step(q, k, v, K, V)[0], "three things"),
    ],
)
def test_cached_attention_step_wrong(wrong, hint):
    from llmcourse.exercises.ch09 import check_cached_attention_step

    with pytest.raises(ExerciseError, match=hint):
        check_cached_attention_step(wrong)


@pytest.mark.parametrize("name", ["check_repetition_penalty", "check_cached_attention_step"])
def test_new_checks_not_answered(name):
    from llmcourse.exercises import ch09

    with pytest.raises(NotYetAnswered):
        getattr(ch09, name)(None)
