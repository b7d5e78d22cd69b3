"""Chapter 7: the decoder block of an encoder-decoder Transformer, with cross-attention.

In the original Transformer (Vaswani et al., 2017, section 3.1) and in T5 (Raffel et al.,
2020) the decoder's blocks have three sublayers. The first is causal self-attention over the
target so far; the second is *cross-attention*, whose queries come from the target and whose
keys and values come from the encoder's output (the "memory"); the third is the feed-forward
network. Written pre-norm, as T5 and GPT-2 arrange their blocks:

    x = x + SelfAttention(LN_1(x), causal)
    x = x + CrossAttention(queries = LN_2(x), keys = values = memory)
    x = x + FFN(LN_3(x))

The memory is not normalised by the block: the encoder's own final LayerNorm does that.
``CrossAttentionBlock`` computes what ``torch.nn.TransformerDecoderLayer(d_model, nhead,
dim_feedforward, dropout=0.0, activation="gelu", batch_first=True, norm_first=True)``
computes; ``CrossAttentionBlock.from_torch(layer)`` copies such a layer's weights.

Components from earlier chapters: ``llmcourse.multihead.MultiHeadAttention`` (chapter 4),
``llmcourse.feedforward.FeedForward`` and ``llmcourse.norm.LayerNorm`` (chapter 6).
Shape letters: B batch, T target length, S source length, C d_model.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from llmcourse.checkpoints import copy_weights
from llmcourse.feedforward import FeedForward
from llmcourse.multihead import MultiHeadAttention
from llmcourse.norm import LayerNorm
from llmcourse.validation import shape_of

__all__ = ["CrossAttentionBlock"]


class CrossAttentionBlock(nn.Module):
    """Pre-norm decoder block of an encoder-decoder: causal self-attention, cross-attention to
    the encoder's output, feed-forward (exact GELU), each added to the residual stream.

    ``forward(x (B, T, C), memory (B, S, C), memory_padding=None) -> (B, T, C)``;
    ``memory_padding`` (B, S) is True at the source's padding tokens, which no query reads.
    No dropout: this module is for inference and teaching.
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int, eps: float = 1e-5):
        super().__init__()
        self.norm1 = LayerNorm(d_model, eps=eps)
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.norm2 = LayerNorm(d_model, eps=eps)
        self.cross_attn = MultiHeadAttention(d_model, num_heads)
        self.norm3 = LayerNorm(d_model, eps=eps)
        self.ffn = FeedForward(d_model, d_ff, activation="gelu")

    def forward(self, x: Tensor, memory: Tensor, memory_padding: Tensor | None = None) -> Tensor:
        for name, t in (("x", x), ("memory", memory)):
            if not isinstance(t, Tensor) or t.ndim != 3 or t.shape[-1] != self.ffn.d_model:
                shape = shape_of(t)
                raise ValueError(
                    f"expected {name} of shape (batch, seq, d_model={self.ffn.d_model}), "
                    f"got {shape}"
                )
        h = self.norm1(x)
        x = x + self.self_attn(h, h, h, is_causal=True)  # the target attends to its past
        h = self.norm2(x)  # queries from the target, keys and values from the source
        x = x + self.cross_attn(h, memory, memory, key_padding_mask=memory_padding)
        return x + self.ffn(self.norm3(x))  # (B, T, C)

    @classmethod
    def from_torch(cls, layer: nn.TransformerDecoderLayer) -> CrossAttentionBlock:
        """A copy of a pre-norm, GELU ``nn.TransformerDecoderLayer``'s weights. Its attention
        modules keep the q, k and v projections stacked in one ``in_proj_weight`` (3C, C),
        rows 0..C-1 for q, then k, then v; they are split here."""
        if not isinstance(layer, nn.TransformerDecoderLayer):
            raise ValueError(f"expected an nn.TransformerDecoderLayer, got {type(layer).__name__}")
        if not layer.norm_first or layer.activation is not F.gelu:
            raise ValueError(
                "only a pre-norm layer with the exact GELU can be copied: build it with "
                'norm_first=True, activation="gelu"'
            )
        if not layer.self_attn.batch_first:
            raise ValueError("build the layer with batch_first=True: this block is batch-first")
        C, heads = layer.self_attn.embed_dim, layer.self_attn.num_heads
        ours = cls(C, heads, layer.linear1.out_features, eps=layer.norm1.eps)
        ours = ours.to(layer.linear1.weight.device, layer.linear1.weight.dtype)
        theirs = layer.state_dict()
        state = {}
        for mine, torch_name in (("self_attn", "self_attn"), ("cross_attn", "multihead_attn")):
            for p in ("weight", "bias"):
                q, k, v = theirs[f"{torch_name}.in_proj_{p}"].chunk(3)  # (3C, ...) -> 3 x (C, ...)
                state |= {f"{mine}.q_proj.{p}": q, f"{mine}.k_proj.{p}": k, f"{mine}.v_proj.{p}": v}
                state[f"{mine}.out_proj.{p}"] = theirs[f"{torch_name}.out_proj.{p}"]
        for p in ("weight", "bias"):
            state |= {f"norm{i}.{p}": theirs[f"norm{i}.{p}"] for i in (1, 2, 3)}
            state |= {f"ffn.linear{i}.{p}": theirs[f"linear{i}.{p}"] for i in (1, 2)}
        copy_weights(ours, state)
        return ours
