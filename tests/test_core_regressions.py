"""Regression tests for bugs that independent checks found in the package core (issue 10):
integer masks, top_p validation, dtype-preserving weight copies, empty inputs, booleans
passed as integers, and the shared weight copier's messages."""

import math

import pytest
import torch
from conftest import assert_equal, hf_bert, hf_gpt2
from torch import nn

from llmcourse.attention import attention_weights, scaled_dot_product_attention, softmax
from llmcourse.checkpoints import copy_weights
from llmcourse.encoder import Encoder
from llmcourse.generation import generate, process_logits
from llmcourse.gpt import GPT, GPTConfig
from llmcourse.kvcache import KVCache
from llmcourse.llama import LlamaConfig, LlamaForCausalLM
from llmcourse.multihead import MultiHeadAttention

# --- an integer 0/1 mask must never be added to the scores -------------------------------


@pytest.mark.parametrize("dtype", [torch.long, torch.int32, torch.uint8])
def test_integer_attention_mask_is_refused(dtype):
    q, k, v = torch.randn(1, 3, 4), torch.randn(1, 5, 4), torch.randn(1, 5, 4)
    mask = torch.tensor([[1, 1, 0, 0, 1]], dtype=dtype)  # what a tokenizer returns
    with pytest.raises(ValueError, match=r"boolean .* or float .*mask.bool\(\)"):
        scaled_dot_product_attention(q, k, v, attn_mask=mask)
    with pytest.raises(ValueError, match="mask.bool()"):
        attention_weights(q, k, attn_mask=mask)
    # As a boolean mask the zeros are really masked: their weights are exactly 0.
    w = attention_weights(q, k, attn_mask=mask.bool())
    assert (w[..., 2:4] == 0).all() and (w[..., [0, 1, 4]] > 0).all()


def test_integer_mask_refused_by_multihead_attention():
    mha = MultiHeadAttention(8, 2)
    x = torch.randn(2, 4, 8)
    with pytest.raises(ValueError, match="mask.bool()"):
        mha(x, x, x, attn_mask=torch.ones(4, 4, dtype=torch.long))


# --- top_p is validated whatever its value ---------------------------------------------


@pytest.mark.parametrize("p", [1.5, float("nan"), 0.0, -0.1, True])
def test_bad_top_p_is_refused_everywhere(p):
    logits = torch.randn(2, 7)
    with pytest.raises(ValueError, match="top_p must be a number in"):
        process_logits(logits, torch.zeros(2, 1, dtype=torch.long), do_sample=True, top_p=p)
    model = GPT(GPTConfig.tiny())
    with pytest.raises(ValueError, match="top_p must be a number in"):
        generate(model, torch.zeros(1, 2, dtype=torch.long), 2, do_sample=True, top_p=p)


def test_top_p_of_one_keeps_everything():
    logits = torch.randn(2, 7)
    out = process_logits(logits, torch.zeros(2, 1, dtype=torch.long), do_sample=True, top_p=1.0)
    assert_equal(out, logits)


# --- weight copies keep the source's dtype ----------------------------------------------


def test_multihead_from_torch_keeps_float64_exactly():
    torch.manual_seed(0)
    ref = nn.MultiheadAttention(8, 2, batch_first=True).double()
    ours = MultiHeadAttention.from_torch(ref)
    assert ours.q_proj.weight.dtype == torch.float64
    assert torch.equal(ours.q_proj.weight, ref.in_proj_weight[:8])
    x = torch.randn(2, 3, 8, dtype=torch.float64)
    torch.testing.assert_close(
        ours(x, x, x), ref(x, x, x, need_weights=False)[0], atol=1e-12, rtol=0
    )


def test_gpt_from_and_to_hf_keep_float64_exactly():
    hf = hf_gpt2(0, vocab_size=50, n_positions=16, n_embd=16, n_layer=2, n_head=2).double()
    ours = GPT.from_hf(hf)
    assert ours.lm_head.weight.dtype == torch.float64
    assert torch.equal(
        ours.transformer.h[0].attn.c_attn.weight, hf.transformer.h[0].attn.c_attn.weight.t()
    )
    back = ours.to_hf()
    assert back.lm_head.weight.dtype == torch.float64
    for name, tensor in hf.state_dict().items():
        assert torch.equal(back.state_dict()[name], tensor), name


def test_encoder_from_hf_keeps_float64_exactly():
    hf = hf_bert(
        0,
        pooler=True,
        vocab_size=40,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=512,
        type_vocab_size=2,
    ).double()
    ours = Encoder.from_hf(hf)
    w = ours.state_dict()["embeddings.word_embeddings.weight"]
    assert w.dtype == torch.float64
    assert torch.equal(w, hf.embeddings.word_embeddings.weight)


def test_copy_weights_names_the_problem():
    target = nn.Linear(3, 2)
    good = {"weight": torch.ones(2, 3), "bias": torch.zeros(2)}
    copy_weights(target, good)
    assert torch.equal(target.weight, torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"lacks 1 tensor\(s\) .*\['bias'\]"):
        copy_weights(target, {"weight": torch.ones(2, 3)})
    with pytest.raises(ValueError, match=r"has 1 tensor\(s\) the model does not, .*\['extra'\]"):
        copy_weights(target, {**good, "extra": torch.ones(1)})
    with pytest.raises(ValueError, match=r"weight: the source's tensor has shape \(3, 2\)"):
        copy_weights(target, {**good, "weight": torch.ones(3, 2)})
    copy_weights(target, {**good, "weight": torch.ones(3, 2)}, transposed=("weight",))


# --- empty inputs and booleans get messages, not internal errors ------------------------


def test_empty_inputs_get_clear_messages():
    with pytest.raises(ValueError, match="softmax over an empty dimension"):
        softmax(torch.zeros(2, 0))
    with pytest.raises(ValueError, match=r"at least one key \(S >= 1\)"):
        scaled_dot_product_attention(
            torch.randn(1, 2, 4), torch.randn(1, 0, 4), torch.randn(1, 0, 4)
        )
    gpt, llama = GPT(GPTConfig.tiny()), LlamaForCausalLM(LlamaConfig.tiny())
    for model in (gpt, llama):
        with pytest.raises(ValueError, match="batch >= 1"):
            model(torch.zeros(0, 3, dtype=torch.long))
    encoder = Encoder.from_hf(hf_bert(vocab_size=40, hidden_size=16, num_attention_heads=2))
    with pytest.raises(ValueError, match="seq >= 1"):
        encoder(torch.zeros(1, 0, dtype=torch.long))
    with pytest.raises(ValueError, match="batch >= 1"):
        generate(gpt, torch.zeros(0, 2, dtype=torch.long), 2)


def test_booleans_are_not_integers():
    gpt = GPT(GPTConfig.tiny())
    with pytest.raises(ValueError, match="eos_token_id"):
        generate(gpt, torch.zeros(1, 2, dtype=torch.long), 2, eos_token_id=True)
    with pytest.raises(ValueError, match="num_layers"):
        KVCache(True)


def test_gpt_cache_with_another_batch_is_refused():
    gpt = GPT(GPTConfig.tiny())
    cache = KVCache(gpt.num_layers)
    gpt(torch.zeros(2, 3, dtype=torch.long), kv_cache=cache)
    with pytest.raises(ValueError, match="kv_cache holds a batch of 2"):
        gpt(torch.zeros(3, 1, dtype=torch.long), kv_cache=cache)
    with torch.no_grad():
        assert math.isfinite(float(gpt(torch.zeros(2, 1, dtype=torch.long), kv_cache=cache).sum()))
