"""Chapter 7: an encoder-only Transformer, BERT (Devlin et al., 2019), and sentence embeddings.

An encoder reads the whole text at once: every token attends to every other token, before
and after it (bidirectional attention), except padding. BERT keeps the original Transformer's
post-norm blocks (Vaswani et al., 2017):

    x_0 = LayerNorm(word[ids] + position[t] + token_type[segment])
    x   = LayerNorm(x + attention(x))             attention.self, then attention.output
    x   = LayerNorm(x + W_2 GELU(W_1 x))          intermediate, then output

The module names are Hugging Face ``BertModel``'s checkpoint keys (``embeddings.word_embeddings``,
``encoder.layer.N.attention.self.query``, ``.attention.output.dense``, ``.intermediate.dense``,
``.output.LayerNorm``, ...), so ``Encoder.from_hf`` is a key-by-key copy (BERT's pooler, which
sentence embeddings do not use, is left out).

Sentence embeddings as sentence-transformers computes them for all-MiniLM-L6-v2 (Reimers &
Gurevych, 2019; Wang et al., 2020, MiniLM): the mean of the last hidden states over the real
(non-padding) tokens, scaled to length 1, so a dot product is a cosine similarity.

Components from earlier chapters: ``llmcourse.attention.scaled_dot_product_attention``
(chapter 3), ``llmcourse.multihead.split_heads``/``merge_heads`` (chapter 4),
``llmcourse.norm.LayerNorm`` and ``llmcourse.feedforward.gelu`` (chapter 6).
Shape letters: B batch, T sequence length, C hidden_size, h heads, d head size C / h,
F intermediate_size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from llmcourse.attention import scaled_dot_product_attention
from llmcourse.checkpoints import copy_weights
from llmcourse.feedforward import gelu
from llmcourse.multihead import merge_heads, split_heads
from llmcourse.norm import LayerNorm
from llmcourse.validation import positive_int, shape_of, tensor_of_shape, token_ids

__all__ = ["EncoderConfig", "Encoder", "mean_pool", "sentence_embeddings", "padding_mask"]


@dataclass(frozen=True)
class EncoderConfig:
    """Hyper-parameters of a BERT-style encoder (Hugging Face ``BertConfig``'s names)."""

    vocab_size: int = 30522  # number of token ids (BERT's WordPiece vocabulary)
    max_position_embeddings: int = 512  # longest input = rows of the learned position table
    type_vocab_size: int = 2  # segment ids: sentence A = 0, sentence B = 1
    hidden_size: int = 384  # model width C
    num_hidden_layers: int = 6  # number of encoder blocks
    num_attention_heads: int = 12  # heads per block; must divide hidden_size
    intermediate_size: int = 1536  # feed-forward width F (4 C)
    layer_norm_eps: float = 1e-12  # BERT's LayerNorm eps (GPT-2 uses 1e-5)

    def __post_init__(self):
        for name in (
            "vocab_size",
            "max_position_embeddings",
            "type_vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
        ):
            positive_int(name, getattr(self, name))
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size={self.hidden_size} is not divisible by "
                f"num_attention_heads={self.num_attention_heads}"
            )

    @classmethod
    def minilm(cls) -> EncoderConfig:
        """all-MiniLM-L6-v2: 6 layers, width 384, 12 heads (22.7M parameters)."""
        return cls()

    @classmethod
    def from_hf(cls, hf_config) -> EncoderConfig:
        """The same architecture as a ``transformers.BertConfig``."""
        if hf_config.hidden_act != "gelu":
            raise ValueError(f"only the exact GELU is supported, got {hf_config.hidden_act!r}")
        if getattr(hf_config, "position_embedding_type", "absolute") != "absolute":
            raise ValueError("only absolute (learned) position embeddings are supported")
        return cls(**{name: getattr(hf_config, name) for name in cls.__dataclass_fields__})


def padding_mask(attention_mask: Tensor) -> Tensor:
    """(B, S) 1 = real token, 0 = padding -> boolean (B, 1, 1, S), True where a key may be seen.

    The same mask serves every head and every query: nobody attends to padding.
    """
    return attention_mask.bool()[:, None, None, :]


class Embeddings(nn.Module):
    """Token + position + token-type embeddings, then LayerNorm (dropout omitted: inference)."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        C = config.hidden_size
        self.word_embeddings = nn.Embedding(config.vocab_size, C)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, C)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, C)
        self.LayerNorm = LayerNorm(C, eps=config.layer_norm_eps)

    def forward(self, input_ids: Tensor, token_type_ids: Tensor) -> Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)  # (T,)
        x = (
            self.word_embeddings(input_ids)
            + self.position_embeddings(positions)
            + self.token_type_embeddings(token_type_ids)
        )  # (B, T, C)
        return self.LayerNorm(x)


class SelfAttention(nn.Module):
    """Bidirectional multi-head attention: the concatenated heads, before the output layer."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        C = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.query, self.key, self.value = nn.Linear(C, C), nn.Linear(C, C), nn.Linear(C, C)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        q, k, v = (
            split_heads(f(x), self.num_heads)  # (B, T, C) -> (B, h, T, d)
            for f in (self.query, self.key, self.value)
        )
        context = scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, h, T, d)
        return merge_heads(context)  # (B, h, T, d) -> (B, T, C)


class AddNorm(nn.Module):
    """Post-norm residual: LayerNorm(residual + dense(h)) (Hugging Face's BertSelfOutput)."""

    def __init__(self, in_features: int, config: EncoderConfig):
        super().__init__()
        self.dense = nn.Linear(in_features, config.hidden_size)
        self.LayerNorm = LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, h: Tensor, residual: Tensor) -> Tensor:
        return self.LayerNorm(residual + self.dense(h))


class Attention(nn.Module):
    """Self-attention followed by its output projection, residual and LayerNorm."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.self = SelfAttention(config)
        self.output = AddNorm(config.hidden_size, config)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return self.output(self.self(x, mask), x)


class Intermediate(nn.Module):
    """The feed-forward network's first half: C -> F, then the exact GELU."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)

    def forward(self, x: Tensor) -> Tensor:
        return gelu(self.dense(x))  # (B, T, C) -> (B, T, F)


class EncoderLayer(nn.Module):
    """One post-norm encoder block: attention sublayer, then feed-forward sublayer."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.attention = Attention(config)
        self.intermediate = Intermediate(config)
        self.output = AddNorm(config.intermediate_size, config)  # F -> C, + residual, norm

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = self.attention(x, mask)
        return self.output(self.intermediate(x), x)


class _Stack(nn.Module):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.layer = nn.ModuleList(EncoderLayer(config) for _ in range(config.num_hidden_layers))


class Encoder(nn.Module):
    """A BERT encoder: ``forward(input_ids, attention_mask, token_type_ids) -> (B, T, C)``."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        if not isinstance(config, EncoderConfig):
            raise ValueError(f"expected an EncoderConfig, got {type(config).__name__}")
        self.config = config
        self.embeddings = Embeddings(config)
        self.encoder = _Stack(config)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
    ) -> Tensor:
        """The last hidden states (B, T, C); padding positions get vectors too, ignore them."""
        attention_mask, token_type_ids = self._check_inputs(
            input_ids, attention_mask, token_type_ids
        )
        mask = padding_mask(attention_mask)  # (B, 1, 1, T)
        x = self.embeddings(input_ids, token_type_ids)
        for layer in self.encoder.layer:
            x = layer(x, mask)
        return x

    def _check_inputs(self, input_ids, attention_mask, token_type_ids):
        c = self.config
        token_ids(input_ids)
        if input_ids.shape[1] > c.max_position_embeddings:
            raise ValueError(
                f"sequence of length {input_ids.shape[1]} is longer than "
                f"max_position_embeddings={c.max_position_embeddings}"
            )
        for name, ids, n in (
            ("input_ids", input_ids, c.vocab_size),
            ("token_type_ids", token_type_ids, c.type_vocab_size),
        ):
            if ids is not None and ids.numel() and (ids.min() < 0 or ids.max() >= n):
                raise ValueError(
                    f"{name} must lie in 0..{n - 1}, got values from "
                    f"{int(ids.min())} to {int(ids.max())}"
                )
        for name, t in (("attention_mask", attention_mask), ("token_type_ids", token_type_ids)):
            if t is not None and (not isinstance(t, Tensor) or t.shape != input_ids.shape):
                got = shape_of(t)
                raise ValueError(
                    f"expected {name} of the same shape as input_ids "
                    f"{tuple(input_ids.shape)}, got {got}"
                )
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        return attention_mask, token_type_ids

    @classmethod
    def from_hf(cls, hf_model) -> Encoder:
        """A copy of a ``transformers.BertModel``'s weights, key by key (pooler excluded)."""
        from transformers import BertModel

        if not isinstance(hf_model, BertModel):
            raise ValueError(f"expected a transformers BertModel, got {type(hf_model).__name__}")
        ref = hf_model.embeddings.word_embeddings.weight
        model = cls(EncoderConfig.from_hf(hf_model.config)).to(ref.device, ref.dtype)
        pooler = [k for k in hf_model.state_dict() if k.startswith("pooler.")]
        copy_weights(model, hf_model.state_dict(), ignored=pooler)
        return model.eval()


def mean_pool(hidden_states: Tensor, attention_mask: Tensor) -> Tensor:
    """The mean of each sequence's hidden states over its real tokens: (B, T, C) -> (B, C).

    Padding positions (mask 0) are left out of both the sum and the count, as
    sentence-transformers' mean pooling does (the count is clamped at 1e-9).
    """
    tensor_of_shape("hidden_states", hidden_states, "(batch, seq, hidden)", rank=3)
    if not isinstance(attention_mask, Tensor) or attention_mask.shape != hidden_states.shape[:2]:
        got = shape_of(attention_mask)
        raise ValueError(
            f"expected attention_mask of shape (batch, seq) = "
            f"{tuple(hidden_states.shape[:2])}, got {got}"
        )
    weights = attention_mask.to(hidden_states.dtype).unsqueeze(-1)  # (B, T) -> (B, T, 1)
    total = (hidden_states * weights).sum(dim=1)  # (B, C)
    return total / weights.sum(dim=1).clamp(min=1e-9)


def sentence_embeddings(
    encoder: Encoder,
    input_ids: Tensor,
    attention_mask: Tensor | None = None,
    token_type_ids: Tensor | None = None,
) -> Tensor:
    """Unit-length sentence vectors (B, C): mean pooling over real tokens, then L2 norm."""
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    hidden = encoder(input_ids, attention_mask, token_type_ids)
    pooled = mean_pool(hidden, attention_mask)
    return pooled / pooled.norm(dim=-1, keepdim=True).clamp(min=1e-12)  # as F.normalize
