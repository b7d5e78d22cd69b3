"""llmcourse.generation against Hugging Face: the same processors, the same generated tokens."""

import itertools

import pytest
import torch
from conftest import assert_equal, generator, hf_gpt2
from transformers.generation.logits_process import (
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from llmcourse.generation import (
    HuggingFaceLM,
    apply_repetition_penalty,
    apply_temperature,
    beam_search,
    generate,
    padding_positions,
    process_logits,
    top_k_filter,
    top_p_filter,
)
from llmcourse.gpt import GPT
from llmcourse.kvcache import KVCache

V = 53
SMALL = dict(vocab_size=V, n_positions=64, n_embd=16, n_layer=2, n_head=2)  # a tiny GPT-2


@pytest.fixture(scope="module")
def models():
    hf = hf_gpt2(0, **SMALL)
    # A random model's next-token distribution is nearly flat; sharpen it so that sampling
    # filters actually cut something.
    with torch.no_grad():
        hf.transformer.wte.weight.mul_(40)
    return GPT.from_hf(hf), hf


def logits_and_ids(seed=1, B=3, T=7):
    gen = generator(seed)
    return torch.randn(B, V, generator=gen) * 3, torch.randint(0, V, (B, T), generator=gen)


def test_repetition_penalty_equals_hf():
    logits, ids = logits_and_ids()
    for penalty in (1.3, 0.7):
        want = RepetitionPenaltyLogitsProcessor(penalty)(ids, logits.clone())
        assert_equal(apply_repetition_penalty(logits, ids, penalty), want)


def test_repetition_penalty_lowers_seen_tokens_once():
    logits = torch.tensor([[2.0, -2.0, 1.0]])
    got = apply_repetition_penalty(logits, torch.tensor([[0, 1, 1, 0]]), 2.0)
    torch.testing.assert_close(got, torch.tensor([[1.0, -4.0, 1.0]]))


@pytest.mark.parametrize("t", [0.3, 1.0, 2.5])
def test_temperature_equals_hf(t):
    logits, ids = logits_and_ids()
    assert_equal(apply_temperature(logits, t), TemperatureLogitsWarper(t)(ids, logits.clone()))


@pytest.mark.parametrize("k", [1, 5, V, V + 10])
def test_top_k_equals_hf(k):
    logits, ids = logits_and_ids()
    want = TopKLogitsWarper(k)(ids, logits.clone())
    got = top_k_filter(logits, k)
    assert torch.equal(torch.isinf(got), torch.isinf(want))
    assert (~torch.isinf(got)).sum(-1).tolist() == [min(k, V)] * 3


def test_top_k_keeps_ties():
    got = top_k_filter(torch.tensor([[3.0, 1.0, 3.0, 2.0, 3.0]]), 2)
    assert torch.isfinite(got).tolist() == [[True, False, True, False, True]]


@pytest.mark.parametrize("p", [0.05, 0.5, 0.9, 0.999, 1.0])
def test_top_p_equals_hf(p):
    logits, ids = logits_and_ids()
    want = TopPLogitsWarper(p)(ids, logits.clone())
    assert_equal(top_p_filter(logits, p), want)


def test_top_p_keeps_the_token_that_crosses_p():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    kept = torch.isfinite(top_p_filter(probs.log(), 0.7))
    assert kept.tolist() == [[True, True, False, False]]  # 0.5 < 0.7 <= 0.5 + 0.3
    kept = torch.isfinite(top_p_filter(probs.log(), 0.4))
    assert kept.tolist() == [[True, False, False, False]]  # the top token alone reaches 0.4


def test_processor_order_equals_hf():
    from transformers.generation.logits_process import LogitsProcessorList

    logits, ids = logits_and_ids(seed=5)
    hf = LogitsProcessorList(
        [
            RepetitionPenaltyLogitsProcessor(1.5),
            TemperatureLogitsWarper(0.7),
            TopKLogitsWarper(20),
            TopPLogitsWarper(0.8),
        ]
    )
    got = process_logits(
        logits, ids, do_sample=True, temperature=0.7, top_k=20, top_p=0.8, repetition_penalty=1.5
    )
    assert_equal(got, hf(ids, logits.clone()))
    greedy = process_logits(logits, ids, temperature=0.7, top_k=20, repetition_penalty=1.5)
    torch.testing.assert_close(greedy, RepetitionPenaltyLogitsProcessor(1.5)(ids, logits.clone()))


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("penalty", [1.0, 1.4])
def test_greedy_equals_hf(models, use_cache, penalty):
    ours, hf = models
    prompt = torch.randint(0, V, (2, 5), generator=generator(3))
    want = hf.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=20,
        do_sample=False,
        repetition_penalty=penalty,
        pad_token_id=0,
    )
    got = generate(ours, prompt, 20, repetition_penalty=penalty, use_cache=use_cache)
    assert torch.equal(got, want)


@pytest.mark.parametrize(
    "settings",
    [
        dict(),
        dict(temperature=0.7),
        dict(top_k=5),
        dict(top_p=0.8),
        dict(temperature=1.3, top_k=10, top_p=0.9, repetition_penalty=1.2),
    ],
)
def test_sampling_equals_hf(models, settings):
    ours, hf = models
    prompt = torch.randint(0, V, (3, 4), generator=generator(4))
    hf_settings = dict(settings)
    hf_settings.setdefault("top_k", 0)  # HF samples with top_k=50 unless told otherwise
    torch.manual_seed(123)
    want = hf.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=15,
        do_sample=True,
        pad_token_id=0,
        **hf_settings,
    )
    for use_cache in (True, False):
        torch.manual_seed(123)
        got = generate(ours, prompt, 15, do_sample=True, use_cache=use_cache, **settings)
        assert torch.equal(got, want)


def test_eos_stops_and_pads_like_hf(models):
    ours, hf = models
    prompt = torch.randint(0, V, (2, 3), generator=generator(7))
    free = generate(ours, prompt, 12)
    eos = int(free[0, 6])  # a token the first row produces at its 4th step
    want = hf.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=12,
        do_sample=False,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    got = generate(ours, prompt, 12, eos_token_id=eos)
    assert torch.equal(got, want)
    assert (got[0, 7:] == eos).all()


def test_generator_and_cache_give_the_same_tokens(models):
    ours, _ = models
    prompt = torch.randint(0, V, (1, 4))
    runs = [
        generate(
            ours,
            prompt,
            10,
            do_sample=True,
            use_cache=c,
            top_p=0.9,
            generator=generator(9),
        )
        for c in (True, False)
    ]
    assert torch.equal(runs[0], runs[1])
    assert runs[0].shape == (1, 14) and torch.equal(runs[0][:, :4], prompt)
    assert torch.equal(generate(ours, prompt, 0), prompt)


def test_generate_restores_training_mode(models):
    ours, _ = models
    ours.train()
    generate(ours, torch.zeros(1, 2, dtype=torch.long), 2)
    assert ours.training
    ours.eval()


def test_validation_messages(models):
    ours, _ = models
    logits, ids = logits_and_ids()
    with pytest.raises(ValueError, match="temperature must be a positive number, got 0"):
        apply_temperature(logits, 0)
    with pytest.raises(ValueError, match="top_k must be a positive int, got 0"):
        top_k_filter(logits, 0)
    with pytest.raises(ValueError, match=r"top_p must be a number in \(0, 1\], got 1.5"):
        top_p_filter(logits, 1.5)
    with pytest.raises(ValueError, match="repetition_penalty must be a positive number, got -1.0"):
        apply_repetition_penalty(logits, ids, -1.0)
    with pytest.raises(ValueError, match=r"expected input_ids of shape \(batch=3, seq\)"):
        apply_repetition_penalty(logits, ids[:2], 1.2)
    with pytest.raises(ValueError, match="input_ids must lie in 0..52"):
        apply_repetition_penalty(logits, ids + V, 1.2)
    with pytest.raises(ValueError, match=r"expected float logits of shape \(batch, vocab\)"):
        top_k_filter(logits[0], 3)
    with pytest.raises(ValueError, match="max_new_tokens must be an int >= 0"):
        generate(ours, ids, -1)
    with pytest.raises(
        ValueError, match=r"input_ids must be an integer tensor of shape \(batch, seq\)"
    ):
        generate(ours, ids[0], 3)
    with pytest.raises(ValueError, match="top_k must be a positive int"):
        generate(ours, ids, 3, do_sample=True, top_k=0)
    with pytest.raises(ValueError, match="eos_token_id must be an int >= 0"):
        generate(ours, ids, 3, eos_token_id=-2)

    class NoLayers(torch.nn.Module):
        def forward(self, input_ids, kv_cache=None):
            return torch.zeros(*input_ids.shape, V)

    with pytest.raises(ValueError, match="needs a model with an int attribute num_layers"):
        generate(NoLayers(), ids, 3)
    assert generate(NoLayers(), ids, 2, use_cache=False).shape == (3, 9)


def test_prompts_holding_token_zero_are_not_padding(models):
    """pad_token_id=0 with an explicit attention mask: a real token 0 in the prompt counts."""
    ours, hf = models
    prompt = torch.tensor([[0, 7, 0, 3], [5, 0, 0, 9]])
    want = hf.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=8,
        do_sample=False,
        pad_token_id=0,
    )
    assert torch.equal(generate(ours, prompt, 8), want)


def test_hugging_face_models_run_through_the_same_loop():
    hf = hf_gpt2(1, **SMALL)
    prompt = torch.randint(1, V, (3, 4), generator=generator(5))
    free = generate(HuggingFaceLM(hf), prompt, 10, use_cache=False)
    want = hf.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=10,
        do_sample=False,
        pad_token_id=0,
    )
    assert torch.equal(free, want)
    eos = int(free[0, 4 + 2])
    got = generate(HuggingFaceLM(hf), prompt, 10, use_cache=False, eos_token_id=eos)
    want = hf.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=10,
        do_sample=False,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    assert torch.equal(got, want)
    assert not hf.training  # generate put the model back in eval mode, where it was
    with pytest.raises(ValueError, match="num_layers"):
        generate(HuggingFaceLM(hf), prompt, 2)
    with pytest.raises(ValueError, match="use_cache=False"):
        HuggingFaceLM(hf)(prompt, kv_cache=KVCache(2))


# ---- beam search ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def beam_models():
    """A twin whose every weight matrix is drawn with std 0.6: its text does not collapse into
    one repeated token (as ``models``' does), so beam search often disagrees with greedy and a
    chosen end-of-sequence token ends hypotheses at many different lengths."""
    hf = hf_gpt2(0, **SMALL)
    with torch.no_grad():
        for p in hf.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.6)
    return GPT.from_hf(hf), hf


def beam_prompt(seed):
    return torch.randint(0, V, (1, 3 + seed), generator=generator(seed))


def hf_beams(hf, prompt, num_beams, n, eos=None, **settings):
    return hf.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=n,
        num_beams=num_beams,
        do_sample=False,
        eos_token_id=eos,
        pad_token_id=0 if eos is None else eos,
        **settings,
    )


@pytest.mark.parametrize("num_beams", [2, 4])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_beam_search_equals_hf(beam_models, num_beams, seed):
    ours, hf = beam_models
    prompt = beam_prompt(seed)
    no_eos = beam_search(ours, prompt, num_beams, 12)
    eos = int(no_eos[0, prompt.shape[1] + 4])  # a token the best beam holds: it can end beams
    for length_penalty, early_stopping, with_eos in itertools.product(
        (1.0, 0.5, 2.0), (False, True), (False, True)
    ):
        e = eos if with_eos else None
        want = hf_beams(
            hf,
            prompt,
            num_beams,
            12,
            e,
            length_penalty=length_penalty,
            early_stopping=early_stopping,
        )
        got = beam_search(
            ours,
            prompt,
            num_beams,
            12,
            length_penalty=length_penalty,
            eos_token_id=e,
            early_stopping=early_stopping,
        )
        assert torch.equal(got, want), (length_penalty, early_stopping, e)


def test_beam_search_cases_are_not_trivial(beam_models):
    """The comparisons above cover beams that beat greedy and hypotheses ended early by eos."""
    ours, _ = beam_models
    differs, lengths = 0, set()
    for seed, num_beams in itertools.product(range(4), (2, 4)):
        prompt = beam_prompt(seed)
        no_eos = beam_search(ours, prompt, num_beams, 12)
        differs += not torch.equal(no_eos, generate(ours, prompt, 12))
        eos = int(no_eos[0, prompt.shape[1] + 4])
        for length_penalty in (1.0, 0.5):
            lengths.add(
                beam_search(
                    ours, prompt, num_beams, 12, eos_token_id=eos, length_penalty=length_penalty
                ).shape[1]
                - prompt.shape[1]
            )
    assert differs >= 3
    assert len(lengths - {1, 12}) >= 2  # stopped early, at two lengths at least


def sequence_log_prob(model, ids, prompt_len):
    with torch.no_grad():
        logp = model(ids).log_softmax(-1)[0, prompt_len - 1 : -1]  # predictions of the new tokens
    return float(logp.gather(1, ids[0, prompt_len:, None]).sum())


@pytest.mark.parametrize("length_penalty", [1.0, 0.0, 2.0])
def test_beam_search_score_is_the_normalised_log_prob(beam_models, length_penalty):
    ours, _ = beam_models
    prompt = beam_prompt(2)
    best, score = beam_search(ours, prompt, 3, 9, length_penalty=length_penalty, return_score=True)
    n = best.shape[1] - prompt.shape[1]
    want = sequence_log_prob(ours, best, prompt.shape[1]) / n**length_penalty
    assert score == pytest.approx(want, abs=1e-4)
    greedy = generate(ours, prompt, 9)
    assert (
        sequence_log_prob(ours, best, prompt.shape[1])
        >= sequence_log_prob(ours, greedy, prompt.shape[1]) - 1e-5
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_beam_is_greedy(beam_models, seed):
    ours, _ = beam_models
    prompt = beam_prompt(seed)
    greedy = generate(ours, prompt, 10)
    assert torch.equal(beam_search(ours, prompt, 1, 10), greedy)
    eos = int(greedy[0, prompt.shape[1] + 3])
    greedy_eos = generate(ours, prompt, 10, eos_token_id=eos)
    stop = (greedy_eos[0, prompt.shape[1] :] == eos).nonzero()[0, 0] + 1 + prompt.shape[1]
    assert torch.equal(beam_search(ours, prompt, 1, 10, eos_token_id=eos), greedy_eos[:, :stop])


def test_beam_search_edges_and_mode(beam_models):
    ours, _ = beam_models
    prompt = beam_prompt(0)
    assert torch.equal(beam_search(ours, prompt, 2, 0), prompt)
    assert beam_search(ours, prompt, 8, 3).shape == (1, prompt.shape[1] + 3)
    ours.train()
    beam_search(ours, prompt, 2, 2)
    assert ours.training
    ours.eval()


def test_beam_search_validation(beam_models):
    ours, _ = beam_models
    prompt = beam_prompt(0)
    one_prompt = r"input_ids must be an integer tensor of shape \(1, seq\)"
    with pytest.raises(ValueError, match=one_prompt + r".*got torch.int64 of shape \(2, 3\)"):
        beam_search(ours, prompt.repeat(2, 1), 2, 3)
    with pytest.raises(ValueError, match=one_prompt + ".*got torch.float32"):
        beam_search(ours, prompt.float(), 2, 3)
    with pytest.raises(ValueError, match="num_beams must be a positive int, got 0"):
        beam_search(ours, prompt, 0, 3)
    with pytest.raises(ValueError, match="num_beams must be a positive int, got 2.0"):
        beam_search(ours, prompt, 2.0, 3)
    with pytest.raises(ValueError, match="max_new_tokens must be an int >= 0"):
        beam_search(ours, prompt, 2, -1)
    with pytest.raises(ValueError, match="length_penalty must be a finite number"):
        beam_search(ours, prompt, 2, 3, length_penalty=float("nan"))
    with pytest.raises(ValueError, match="eos_token_id must be an int >= 0"):
        beam_search(ours, prompt, 2, 3, eos_token_id=-1)
    with pytest.raises(ValueError, match="early_stopping must be True or False"):
        beam_search(ours, prompt, 2, 3, early_stopping="never")


# ---- batched generation with left padding ---------------------------------------------------

PROMPTS = [[5, 6, 7, 8, 9, 10], [11, 12], [3, 0, 4]]


def left_padded(prompts, pad=0):
    width = max(map(len, prompts))
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    return ids, mask


def test_padding_positions():
    _, mask = left_padded(PROMPTS)
    assert padding_positions(mask).tolist() == [
        [0, 1, 2, 3, 4, 5],
        [1, 1, 1, 1, 0, 1],
        [1, 1, 1, 0, 1, 2],
    ]


@pytest.mark.parametrize("pad", [0, 17])
def test_left_padded_batch_equals_hf_and_each_prompt_alone(beam_models, pad):
    """Our loop with the mask and the positions, run on Hugging Face's model: equal to its own
    batched ``generate``, and each row to that prompt generated alone."""
    _, hf = beam_models
    ids, mask = left_padded(PROMPTS, pad)
    width = ids.shape[1]
    want = hf.generate(
        ids, attention_mask=mask, max_new_tokens=10, do_sample=False, pad_token_id=pad
    )
    got = generate(HuggingFaceLM(hf), ids, 10, attention_mask=mask, use_cache=False)
    assert torch.equal(got, want)
    for row, p in zip(got, PROMPTS):
        alone = generate(HuggingFaceLM(hf), torch.tensor([p]), 10, use_cache=False)
        assert torch.equal(row[width:], alone[0, len(p) :])
    # without the mask the padding changes the short rows' tokens: the test can fail
    unmasked = generate(HuggingFaceLM(hf), ids, 10, use_cache=False)
    assert not torch.equal(unmasked[1:], got[1:])
    torch.manual_seed(5)
    want = hf.generate(
        ids, attention_mask=mask, max_new_tokens=10, do_sample=True, top_k=0, pad_token_id=pad
    )
    torch.manual_seed(5)
    got = generate(HuggingFaceLM(hf), ids, 10, attention_mask=mask, use_cache=False, do_sample=True)
    assert torch.equal(got, want)


@pytest.mark.parametrize("use_cache", [True, False])
def test_left_padded_batch_with_our_gpt(beam_models, use_cache):
    ours, hf = beam_models
    ids, mask = left_padded(PROMPTS)
    width = ids.shape[1]
    want = hf.generate(ids, attention_mask=mask, max_new_tokens=10, do_sample=False, pad_token_id=0)
    got = generate(ours, ids, 10, attention_mask=mask, use_cache=use_cache)
    assert torch.equal(got, want)
    for row, p in zip(got, PROMPTS):
        assert torch.equal(row[width:], generate(ours, torch.tensor([p]), 10)[0, len(p) :])
    torch.manual_seed(8)
    want = hf.generate(
        ids, attention_mask=mask, max_new_tokens=10, do_sample=True, top_k=0, pad_token_id=0
    )
    torch.manual_seed(8)
    got = generate(ours, ids, 10, attention_mask=mask, use_cache=use_cache, do_sample=True)
    assert torch.equal(got, want)


def test_attention_mask_validation(beam_models):
    ours, hf = beam_models
    ids, mask = left_padded(PROMPTS)
    model = HuggingFaceLM(hf)
    with pytest.raises(ValueError, match="must be left-padded"):
        generate(model, ids, 2, attention_mask=mask.flip(1), use_cache=False)
    with pytest.raises(ValueError, match="only 0 .padding. and 1"):
        generate(model, ids, 2, attention_mask=mask * 2, use_cache=False)
    with pytest.raises(ValueError, match=r"the shape of input_ids, \(3, 6\), got \(3, 5\)"):
        generate(model, ids, 2, attention_mask=mask[:, 1:], use_cache=False)

    class NoMask(torch.nn.Module):
        def forward(self, input_ids, kv_cache=None):
            return torch.zeros(*input_ids.shape, V)

    with pytest.raises(ValueError, match="NoMask.forward takes no attention_mask"):
        generate(NoMask(), ids, 2, attention_mask=mask, use_cache=False)
    # an all-ones mask has nothing to skip: any model will do
    assert generate(
        NoMask(), ids, 2, attention_mask=torch.ones_like(ids), use_cache=False
    ).shape == (3, 8)
