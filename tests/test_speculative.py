"""llmcourse.speculative: greedy speculation equals plain greedy decoding; sampling keeps the
target's distribution."""

import pytest
import torch
from conftest import generator

from llmcourse import llama
from llmcourse.generation import generate
from llmcourse.speculative import (
    EarlyExitDraft,
    accept_probability,
    residual_distribution,
    speculative_generate,
)


def _model(seed, vocab=97, layers=3, dtype=torch.float64):
    torch.manual_seed(seed)
    config = llama.LlamaConfig.tiny(vocab_size=vocab, num_hidden_layers=layers)
    model = llama.LlamaForCausalLM(config).to(dtype).eval()
    with torch.no_grad():  # larger logits than the default initialisation: peakier choices
        model.lm_head.weight.mul_(20)
    return model


@pytest.mark.parametrize("k", [1, 3, 5])
def test_greedy_equals_plain_greedy_on_many_prompts(k):
    target = _model(0)
    drafts = [_model(1), EarlyExitDraft(target, 1), target]  # poor, partial, perfect
    gen = generator(k)
    for prompt_len in (1, 2, 5, 9):
        for _ in range(4):
            prompt = torch.randint(0, 97, (1, prompt_len), generator=gen)
            want = generate(target, prompt, 17)
            for draft in drafts:
                got, stats = speculative_generate(target, draft, prompt, 17, k=k)
                assert torch.equal(got, want)
                assert 0 <= stats.accepted <= stats.drafted
    # the perfect draft (the target itself) is always accepted
    _, stats = speculative_generate(target, target, prompt, 17, k=k)
    assert stats.acceptance_rate == 1.0 and stats.target_passes == -(-17 // (k + 1))


def test_eos_stops_as_plain_generation_does():
    target, draft = _model(0), _model(1)
    prompt = torch.tensor([[3, 5, 7]])
    plain = generate(target, prompt, 20)
    eos = plain[0, 8].item()  # a token the target produces
    want = generate(target, prompt, 20, eos_token_id=eos)
    got, _ = speculative_generate(target, draft, prompt, 20, k=4, eos_token_id=eos)
    assert torch.equal(got, want) and got[0, -1].item() == eos


def test_early_exit_draft_is_the_first_layers():
    target = _model(0)
    draft = EarlyExitDraft(target, 2)
    ids = torch.randint(0, 97, (1, 6))
    with torch.no_grad():
        x = target.model.embed_tokens(ids)
        cos, sin = target.model.rotary_emb(torch.arange(6))
        for layer in target.model.layers[:2]:
            x = layer(x, cos, sin)
        torch.testing.assert_close(draft(ids), target.lm_head(target.model.norm(x)))
    assert draft.num_layers == 2
    assert torch.equal(
        generate(draft, ids, 5, use_cache=True), generate(draft, ids, 5, use_cache=False)
    )
    with pytest.raises(ValueError, match="num_layers must be"):
        EarlyExitDraft(target, 4)


def test_acceptance_rule_preserves_the_target_distribution():
    p = torch.tensor([0.5, 0.2, 0.2, 0.1, 0.0], dtype=torch.float64)
    q = torch.tensor([0.1, 0.1, 0.3, 0.3, 0.2], dtype=torch.float64)
    assert accept_probability(p, q, 0) == 1.0 and accept_probability(p, q, 4) == 0.0
    assert accept_probability(p, q, 2) == pytest.approx(2 / 3)
    residual = residual_distribution(p, q)
    torch.testing.assert_close(residual, torch.tensor([0.8, 0.2, 0, 0, 0], dtype=torch.float64))
    # Exact: P(out = x) = q(x) min(1, p(x)/q(x)) + P(reject) residual(x) = p(x).
    accept = torch.minimum(q, p)
    torch.testing.assert_close(accept + (1 - accept.sum()) * residual, p)
    torch.testing.assert_close(residual_distribution(p, p), p)
    with pytest.raises(ValueError, match="sum to 1"):
        residual_distribution(p * 2, q)
    with pytest.raises(ValueError, match="cannot be drafted"):
        accept_probability(q, p, 4)


def test_sampling_matches_the_target_distribution_empirically():
    # Vocabulary of 6, two new tokens: the joint distribution of (token 1, token 2) under
    # speculative sampling must equal the target's own, computed exactly.
    target, draft = _model(0, vocab=6, layers=2), _model(5, vocab=6, layers=1)
    with torch.no_grad():  # tied embeddings: this scales the logits by 1/100 of _model's
        target.lm_head.weight.div_(100)
        draft.lm_head.weight.div_(100)
    prompt = torch.tensor([[1, 4]])
    with torch.no_grad():
        first = target(prompt)[0, -1].softmax(-1)  # (6,)
        seconds = target(torch.cat([prompt.repeat(6, 1), torch.arange(6)[:, None]], 1))
        exact = first[:, None] * seconds[:, -1].softmax(-1)  # (6, 6)
    gen = generator(0)
    counts = torch.zeros(6, 6, dtype=torch.float64)
    runs = 3000
    for _ in range(runs):
        ids, _ = speculative_generate(target, draft, prompt, 2, k=2, do_sample=True, generator=gen)
        counts[ids[0, 2], ids[0, 3]] += 1
    total_variation = 0.5 * (counts / runs - exact).abs().sum().item()
    assert total_variation < 0.05, total_variation
    # the draft alone is measurably different, so the test can tell
    with torch.no_grad():
        draft_first = draft(prompt)[0, -1].softmax(-1)
    assert 0.5 * (draft_first - first).abs().sum().item() > 0.1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"input_ids": torch.zeros(2, 3, dtype=torch.long)}, r"shape \(1, seq\).*got torch.int64"),
        ({"input_ids": torch.zeros(1, 3)}, "input_ids must be an integer tensor"),
        ({"max_new_tokens": -1}, "max_new_tokens must be"),
        ({"k": 0}, "k must be"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    target = _model(0)
    args = {"input_ids": torch.zeros(1, 3, dtype=torch.long), "max_new_tokens": 4, "k": 2}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        speculative_generate(target, target, **args)


class _Counting(torch.nn.Module):
    """Wraps a model and counts its forward passes and the positions fed to it."""

    def __init__(self, model):
        super().__init__()
        self.model, self.calls, self.positions = model, 0, 0

    @property
    def num_layers(self):
        return self.model.num_layers

    def forward(self, input_ids, kv_cache=None, logits_to_keep=0):
        self.calls += 1
        self.positions += input_ids.shape[1]
        return self.model(input_ids, kv_cache=kv_cache, logits_to_keep=logits_to_keep)


@pytest.mark.parametrize("k", [1, 4])
def test_work_is_linear_in_the_tokens(k):
    # A cost guard: every round feeds each model only what its cache lacks (the prompt once,
    # then the last kept token and the drafts), and every round adds at least one token. A
    # cache that is not used or not cropped, or a loop that stalls, breaks these bounds.
    target, draft = _Counting(_model(0)), _Counting(_model(1))
    prompt = torch.tensor([[3, 5, 7, 11, 13]])
    n_new = 23
    ids, stats = speculative_generate(target, draft, prompt, n_new, k=k)
    assert ids.shape == (1, 5 + n_new) and torch.equal(ids, generate(target.model, prompt, n_new))
    assert target.calls == stats.target_passes <= n_new
    assert draft.calls == stats.drafted <= k * stats.target_passes
    assert stats.accepted == n_new - stats.target_passes  # each pass: its accepted drafts + 1
    assert target.positions == 5 + stats.drafted + stats.target_passes - 1
    assert draft.positions <= 5 + stats.drafted + stats.target_passes
