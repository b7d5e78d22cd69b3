"""The models, ``generate`` and ``train`` run on whatever device their tensors are on.

The tests stay on the CPU, so they check device-agnosticism two ways:

- with every input on the CPU but PyTorch's *default* device set to ``meta``, any tensor the
  code creates without ``device=`` (an ``arange`` of positions, a mask, the tokens appended
  by a decoding loop) lands on ``meta`` and the next operation fails: what runs here creates
  every tensor on its inputs' device (or on the CPU on purpose, where it says so);
- the functions with no data-dependent step (no ``.item()``, no value check) run with every
  tensor on ``meta``, and their outputs stay there.

What only a GPU would show (a ``.cpu()`` round trip's cost, CUDA generators, pinned memory)
is not tested here.
"""

import pytest
import torch
from conftest import generator

from llmcourse import llama
from llmcourse.attention import causal_mask, scaled_dot_product_attention
from llmcourse.embedding import one_hot
from llmcourse.encoder import Encoder, EncoderConfig, padding_mask, sentence_embeddings
from llmcourse.encoder_decoder import CrossAttentionBlock
from llmcourse.generation import beam_search, generate
from llmcourse.gpt import GPT, GPTConfig
from llmcourse.multihead import MultiHeadAttention
from llmcourse.positional import RotaryEmbedding, rotary_cos_sin
from llmcourse.rnn import CharRNN, rnn_log_probs, train_char_rnn, train_char_rnn_tbptt
from llmcourse.speculative import EarlyExitDraft, speculative_generate
from llmcourse.training import TrainConfig, sequence_log_probs, train

V = 20


@pytest.fixture(scope="module")
def cpu_models():
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=V, block_size=16, n_layer=2, n_head=2, n_embd=8)).eval()
    lm = llama.LlamaForCausalLM(llama.LlamaConfig.tiny(vocab_size=V, num_hidden_layers=2))
    encoder = EncoderConfig(
        vocab_size=V,
        max_position_embeddings=8,
        hidden_size=8,
        num_attention_heads=2,
        intermediate_size=16,
        num_hidden_layers=1,
    )
    rnn = CharRNN(V, embed_size=4, hidden_size=8)
    return {"gpt": gpt, "llama": lm.eval(), "encoder": Encoder(encoder).eval(), "rnn": rnn}


def _cases(models):
    gpt, lm, encoder, rnn = models["gpt"], models["llama"], models["encoder"], models["rnn"]
    ids = torch.randint(0, V, (2, 3), generator=generator(1))
    mask = torch.tensor([[0, 1, 1], [1, 1, 1]])
    x = torch.randn(2, 3, 8, generator=generator(2))
    data = torch.randint(0, V, (300,), generator=generator(3))
    sampler = generator(4)
    positions = torch.arange(3)
    mha, block = MultiHeadAttention(8, 2), CrossAttentionBlock(8, 2, 16)
    config = TrainConfig(
        steps=3, batch_size=2, block_size=8, warmup_steps=1, eval_every=2, eval_batches=1
    )
    return {
        "generate greedy, cached": lambda: generate(gpt, ids, 4, eos_token_id=3),
        "generate, no cache": lambda: generate(gpt, ids, 4, use_cache=False),
        "generate, left padding": lambda: generate(gpt, ids, 4, attention_mask=mask),
        "generate sampled": lambda: generate(
            gpt,
            ids,
            4,
            do_sample=True,
            top_k=5,
            top_p=0.9,
            temperature=0.7,
            repetition_penalty=1.2,
            generator=sampler,
        ),
        "generate with a Llama": lambda: generate(lm, ids, 4),
        "beam search": lambda: beam_search(gpt, ids[:1], 3, 4, eos_token_id=2),
        "speculative, greedy": lambda: speculative_generate(lm, EarlyExitDraft(lm, 1), ids[:1], 6),
        "speculative, sampled": lambda: speculative_generate(
            lm, EarlyExitDraft(lm, 1), ids[:1], 6, k=2, do_sample=True, generator=sampler
        ),
        "encoder": lambda: encoder(ids, mask),
        "sentence embeddings": lambda: sentence_embeddings(encoder, ids),
        "train": lambda: train(gpt, data, data, config, progress=False),
        "sequence_log_probs": lambda: sequence_log_probs(gpt, data[:30], 8),
        "train_char_rnn": lambda: train_char_rnn(rnn, data.numpy(), steps=2, batch_size=2),
        "train_char_rnn_tbptt": lambda: train_char_rnn_tbptt(
            rnn, data.numpy(), steps=2, batch_size=2, seq_len=8, log_every=1
        ),
        "rnn_log_probs": lambda: torch.from_numpy(rnn_log_probs(rnn, data[:40], streams=4)),
        "one_hot": lambda: one_hot(ids, V),
        "rotary_cos_sin": lambda: rotary_cos_sin(positions, 8),
        "multi-head, causal": lambda: mha(x, x, x, is_causal=True),
        "cross-attention block": lambda: block(x, x),
    }


CASES = list(_cases({"gpt": None, "llama": None, "encoder": None, "rnn": None}))  # the names only


@pytest.mark.parametrize("case", CASES)
def test_nothing_is_created_on_the_default_device(cpu_models, case):
    """Inputs and weights on the CPU, the default device ``meta``: runs, and returns CPU."""
    run = _cases(cpu_models)[case]  # inputs built on the CPU, before the default changes
    with torch.device("meta"):
        out = run()
    tensors = [t for t in (out if isinstance(out, tuple) else (out,)) if torch.is_tensor(t)]
    for t in tensors:
        assert t.device.type == "cpu", case


def test_what_needs_no_values_runs_entirely_on_meta():
    with torch.device("meta"):
        x = torch.randn(2, 5, 8)
        outputs = [
            scaled_dot_product_attention(x, x, x, is_causal=True),
            MultiHeadAttention(8, 2)(x, x, x, is_causal=True),
            CrossAttentionBlock(8, 2, 16)(x, x, torch.zeros(2, 5, dtype=torch.bool)),
            *RotaryEmbedding(8)(torch.arange(5)),
            *rotary_cos_sin(torch.arange(5)[None], 8),
        ]
    assert all(t.device.type == "meta" for t in outputs)


def test_masks_follow_the_input_device_and_stay_boolean():
    assert causal_mask(3, 5, past=2, device="meta").device.type == "meta"
    assert causal_mask(3, 5, past=2, device="meta").dtype == torch.bool
    mask = padding_mask(torch.ones(2, 4, dtype=torch.long, device="meta"))
    assert (mask.device.type, mask.dtype, mask.shape) == ("meta", torch.bool, (2, 1, 1, 4))
