"""Helpers the tests share: tiny seeded reference models, seeded random tensors, comparisons.

pytest puts this folder on ``sys.path``, so a test module imports them by name:
``from conftest import assert_equal, hf_gpt2, randn``. Each ``hf_*`` builder seeds
PyTorch's global generator first, so the same call gives the same weights every time; pass
the reference's config fields as keyword arguments to change the tiny defaults.
"""

from __future__ import annotations

import torch
from torch.testing import assert_close

# Tiny Hugging Face configurations: odd sizes, so a transposed or mis-split weight shows.
TINY_GPT2 = dict(
    vocab_size=97,
    n_positions=24,
    n_embd=20,
    n_layer=3,
    n_head=5,
    bos_token_id=None,
    eos_token_id=None,
)
TINY_BERT = dict(
    vocab_size=71,
    hidden_size=20,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=36,
    max_position_embeddings=16,
    type_vocab_size=3,
)
TINY_LLAMA = dict(
    vocab_size=97,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=8,
)


def generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed``: random inputs that do not touch the global one."""
    return torch.Generator().manual_seed(seed)


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    """Standard normal float32 values of ``shape``, the same for the same seed."""
    return torch.randn(*shape, generator=generator(seed))


def assert_equal(actual, expected, **kwargs) -> None:
    """``assert_close`` with no tolerance: the same values (and dtype, device, shape)."""
    assert_close(actual, expected, atol=0, rtol=0, **kwargs)


def hf_gpt2(seed: int = 0, **config):
    """A randomly initialised ``GPT2LMHeadModel`` (``TINY_GPT2`` updated by ``config``), eval."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    return GPT2LMHeadModel(GPT2Config(**(TINY_GPT2 | config))).eval()


def hf_bert(seed: int = 0, pooler: bool = False, **config):
    """A randomly initialised ``BertModel`` (``TINY_BERT`` updated by ``config``), eval."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    return BertModel(BertConfig(**(TINY_BERT | config)), add_pooling_layer=pooler).eval()


def hf_llama(seed: int = 0, **config):
    """A randomly initialised ``LlamaForCausalLM`` (``TINY_LLAMA`` updated by ``config``), eval."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(**(TINY_LLAMA | config))).eval()
