"""Chapter 12: a Llama-style decoder, the architecture of most open LLMs since 2023.

It is the GPT decoder of chapter 7 with four changes, each small and each from a paper:

- RMSNorm (Zhang & Sennrich, 2019) instead of LayerNorm: no mean subtracted, no bias,
  ``y = x / sqrt(mean(x^2) + eps) * weight``.
- Rotary position embeddings, RoPE (Su et al., 2021), instead of added position vectors:
  queries and keys are rotated by their position (``llmcourse.positional``).
- SwiGLU (Shazeer, 2020) instead of a GELU MLP: ``down(silu(gate(x)) * up(x))``.
- Grouped-query attention, GQA (Ainslie et al., 2023): fewer key-value heads than query
  heads; each key-value head serves ``num_attention_heads // num_key_value_heads`` queries,
  which shrinks the KV cache by that factor. (LLaMA itself had none; Llama 2's 70B model,
  Mistral and Llama 3 use it.)

The output layer may reuse the token embedding matrix (tied embeddings, Press & Wolf, 2017),
as GPT-2 and SmolLM2 do; LLaMA and Mistral keep a separate one (``tie_word_embeddings``).

Module and parameter names are the Hugging Face Llama checkpoint's own
(``model.layers.N.self_attn.q_proj.weight``, ...), so loading SmolLM2-135M-Instruct
(Allal et al., 2025) is a key-by-key copy with a shape check on every tensor, after which
``LlamaForCausalLM`` computes the same function as ``transformers.LlamaForCausalLM``: in
float32 both land equally close to the exact (float64) logits, and their greedy tokens are
equal (tests/test_llama.py). How close to each other their float32 logits are depends on
the order of each sum: rounding grows with SmolLM2's large hidden states (values up to
about 2.5e4), so the tests compare both with the float64 reference, not with a fixed 1e-4.

Letters: B batch, T new positions, S all positions (cached + new), C hidden_size,
F intermediate_size, H query heads, K key-value heads, D head_dim, V vocab_size.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from llmcourse.checkpoints import copy_weights
from llmcourse.kvcache import KVCache, cached_causal_attention, decoder_inputs
from llmcourse.multihead import merge_heads, split_heads
from llmcourse.positional import RotaryEmbedding, rotate_half
from llmcourse.validation import positive_int, tensor_of_shape

__all__ = [
    "LlamaConfig",
    "rms_norm",
    "RMSNorm",
    "SwiGLU",
    "repeat_kv",
    "GroupedQueryAttention",
    "LlamaBlock",
    "LlamaForCausalLM",
    "load_llama_state_dict",
]


@dataclass(frozen=True)
class LlamaConfig:
    """The sizes of a Llama-style decoder; the defaults are SmolLM2-135M's."""

    vocab_size: int = 49152  # V, tokens in the vocabulary
    hidden_size: int = 576  # C, width of the residual stream
    intermediate_size: int = 1536  # F, hidden width of the SwiGLU MLP
    num_hidden_layers: int = 30  # decoder blocks
    num_attention_heads: int = 9  # H, query heads
    num_key_value_heads: int = 3  # K, key-value heads (K = H: multi-head; K = 1: multi-query)
    head_dim: int = 64  # D, width of one head (H * D need not equal C)
    rms_norm_eps: float = 1e-5  # added to the mean square inside the root
    rope_theta: float = 100000.0  # RoPE base; the 2021 paper and Llama 1 use 10000
    max_position_embeddings: int = 8192  # the context length the model was trained for
    tie_word_embeddings: bool = True  # lm_head.weight is model.embed_tokens.weight

    def __post_init__(self):
        for f in fields(self):
            if f.type == "int":
                positive_int(f.name, getattr(self, f.name))
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_attention_heads={self.num_attention_heads} is not divisible by "
                f"num_key_value_heads={self.num_key_value_heads}"
            )
        if self.head_dim % 2:
            raise ValueError(f"head_dim={self.head_dim} must be even: RoPE rotates pairs")
        if not self.rms_norm_eps > 0:
            raise ValueError(f"rms_norm_eps must be > 0, got {self.rms_norm_eps!r}")
        if not self.rope_theta > 1:
            raise ValueError(f"rope_theta must be > 1, got {self.rope_theta!r}")

    @classmethod
    def from_hf(cls, config) -> LlamaConfig:
        """From a Hugging Face ``config.json`` (a path, a folder holding it, a dict, or a
        ``transformers`` config object). Refuses what this module does not implement."""
        if isinstance(config, (str, Path)):
            path = Path(config)
            path = path / "config.json" if path.is_dir() else path
            config = json.loads(path.read_text())
        elif not isinstance(config, dict):
            config = config.to_dict()
        rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
        problems = {
            "model_type": (config.get("model_type", "llama"), "llama"),
            "hidden_act": (config.get("hidden_act", "silu"), "silu"),
            "rope_type": (rope.get("rope_type", "default"), "default"),
            "attention_bias": (config.get("attention_bias", False), False),
            "mlp_bias": (config.get("mlp_bias", False), False),
        }
        for key, (got, want) in problems.items():
            if got != want:
                raise ValueError(f"this decoder implements {key}={want!r} only, got {got!r}")
        heads = config["num_attention_heads"]
        return cls(
            vocab_size=config["vocab_size"],
            hidden_size=config["hidden_size"],
            intermediate_size=config["intermediate_size"],
            num_hidden_layers=config["num_hidden_layers"],
            num_attention_heads=heads,
            num_key_value_heads=config.get("num_key_value_heads") or heads,
            head_dim=config.get("head_dim") or config["hidden_size"] // heads,
            rms_norm_eps=float(config.get("rms_norm_eps", 1e-6)),
            rope_theta=float(rope.get("rope_theta", config.get("rope_theta", 10000.0))),
            max_position_embeddings=config.get("max_position_embeddings", 2048),
            tie_word_embeddings=config.get("tie_word_embeddings", False),
        )

    @classmethod
    def tiny(cls, **overrides) -> LlamaConfig:
        """A small configuration for tests and experiments (GQA with 2 queries per key)."""
        sizes = dict(
            vocab_size=97,
            hidden_size=32,
            intermediate_size=56,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=8,
            max_position_embeddings=64,
        )
        return cls(**{**sizes, **overrides})


def rms_norm(x: Tensor, weight: Tensor, eps: float = 1e-5) -> Tensor:
    """``x / sqrt(mean(x^2) + eps) * weight`` over the last dimension (Zhang & Sennrich, 2019).

    Computed in float32 and cast back before the gain, as Hugging Face's ``LlamaRMSNorm``.
    """
    n = weight.shape[-1]
    tensor_of_shape("x", x, f"(..., {n}) to match weight {tuple(weight.shape)}", last=n)
    x32 = x.float()
    mean_square = x32.pow(2).mean(-1, keepdim=True)  # (..., 1): one number per position
    return weight * (x32 * torch.rsqrt(mean_square + eps)).to(x.dtype)


class RMSNorm(nn.Module):
    """Root-mean-square normalization with a learned gain ``weight`` (no bias, no centring)."""

    def __init__(self, hidden_size: int, eps: float = 1e-5):
        super().__init__()
        positive_int("hidden_size", hidden_size)
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps!r}")
        self.eps = float(eps)
        self.weight = nn.Parameter(torch.ones(hidden_size))

    def forward(self, x: Tensor) -> Tensor:
        return rms_norm(x, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


class SwiGLU(nn.Module):
    """The gated MLP of Shazeer (2020): ``down_proj(silu(gate_proj(x)) * up_proj(x))``.

    Three (bias-free) matrices instead of two; Llama picks F about 8/3 C so that the parameter
    count matches a 4 C GELU MLP. Names as ``transformers``' ``LlamaMLP``.
    """

    def __init__(self, hidden_size: int, intermediate_size: int):
        super().__init__()
        positive_int("hidden_size", hidden_size)
        positive_int("intermediate_size", intermediate_size)
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=False)  # C -> F
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=False)  # C -> F
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=False)  # F -> C

    def forward(self, x: Tensor) -> Tensor:
        C = self.gate_proj.in_features
        tensor_of_shape("x", x, f"(..., hidden_size={C})", last=C)
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))  # (..., F) -> (..., C)


def repeat_kv(x: Tensor, n_rep: int) -> Tensor:
    """(B, K, S, D) -> (B, K * n_rep, S, D): each key-value head repeated ``n_rep`` times in a
    row, so query heads 0..n_rep-1 share key-value head 0 (``repeat_interleave``, not
    ``repeat``)."""
    tensor_of_shape("x", x, "(batch, kv_heads, seq, head_dim)", rank=4)
    positive_int("n_rep", n_rep)
    if n_rep == 1:
        return x
    B, K, S, D = x.shape
    return x[:, :, None].expand(B, K, n_rep, S, D).reshape(B, K * n_rep, S, D)


class GroupedQueryAttention(nn.Module):
    """Causal self-attention with RoPE and ``num_key_value_heads`` <= ``num_attention_heads``.

    ``forward(x, cos, sin, kv_cache, real_keys)`` takes the new positions' hidden states
    (B, T, C) and their RoPE angles (T, D), or (B, T, D) in a left-padded batch; with a
    ``KVCache`` it appends this layer's keys and values (``layer_idx``) and attends over every
    cached position, except the padding that ``real_keys`` (B, S) marks False.
    """

    def __init__(
        self,
        hidden_size: int,
        num_attention_heads: int,
        num_key_value_heads: int,
        head_dim: int,
        layer_idx: int = 0,
    ):
        super().__init__()
        for name, value in (
            ("hidden_size", hidden_size),
            ("head_dim", head_dim),
            ("num_attention_heads", num_attention_heads),
            ("num_key_value_heads", num_key_value_heads),
        ):
            positive_int(name, value)
        if num_attention_heads % num_key_value_heads:
            raise ValueError(
                f"num_attention_heads={num_attention_heads} is not divisible by "
                f"num_key_value_heads={num_key_value_heads}"
            )
        self.num_heads, self.num_kv_heads = num_attention_heads, num_key_value_heads
        self.head_dim, self.layer_idx = head_dim, layer_idx
        self.q_proj = nn.Linear(hidden_size, num_attention_heads * head_dim, bias=False)
        self.k_proj = nn.Linear(hidden_size, num_key_value_heads * head_dim, bias=False)
        self.v_proj = nn.Linear(hidden_size, num_key_value_heads * head_dim, bias=False)
        self.o_proj = nn.Linear(num_attention_heads * head_dim, hidden_size, bias=False)

    def forward(
        self,
        x: Tensor,
        cos: Tensor,
        sin: Tensor,
        kv_cache: KVCache | None = None,
        real_keys: Tensor | None = None,
    ) -> Tensor:
        C = self.q_proj.in_features
        tensor_of_shape("x", x, f"(batch, seq, hidden_size={C})", rank=3, last=C)
        if cos.shape != sin.shape or cos.shape[-2:] != (x.shape[1], self.head_dim):
            raise ValueError(
                f"expected cos and sin of shape (..., seq, head_dim) = "
                f"(..., {x.shape[1]}, {self.head_dim})"
                f", got {tuple(cos.shape)} and {tuple(sin.shape)}"
            )
        q = split_heads(self.q_proj(x), self.num_heads)  # (B, T, H*D) -> (B, H, T, D)
        k = split_heads(self.k_proj(x), self.num_kv_heads)  # (B, T, K*D) -> (B, K, T, D)
        v = split_heads(self.v_proj(x), self.num_kv_heads)
        cos, sin = cos.unsqueeze(-3), sin.unsqueeze(-3)  # (..., 1, T, D): the same for all heads
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin  # RoPE
        if kv_cache is not None:
            k, v = kv_cache.update(self.layer_idx, k, v)  # (B, K, S, D), S = cached + T
        # enable_gqa gives each group of H / K query heads its key-value head, as repeat_kv
        # does, without copying the keys and values.
        y = cached_causal_attention(q, k, v, real_keys, enable_gqa=True)  # (B, H, T, D)
        return self.o_proj(merge_heads(y))  # (B, T, H*D) -> (B, T, C)

    def extra_repr(self) -> str:
        return (
            f"num_heads={self.num_heads}, num_kv_heads={self.num_kv_heads}, "
            f"head_dim={self.head_dim}, layer_idx={self.layer_idx}"
        )


class LlamaBlock(nn.Module):
    """A pre-norm decoder block: ``x + attn(norm(x))``, then ``x + mlp(norm(x))``."""

    def __init__(self, config: LlamaConfig, layer_idx: int):
        super().__init__()
        c = config
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.self_attn = GroupedQueryAttention(
            c.hidden_size, c.num_attention_heads, c.num_key_value_heads, c.head_dim, layer_idx
        )
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.mlp = SwiGLU(c.hidden_size, c.intermediate_size)

    def forward(
        self,
        x: Tensor,
        cos: Tensor,
        sin: Tensor,
        kv_cache: KVCache | None = None,
        real_keys: Tensor | None = None,
    ) -> Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, kv_cache, real_keys)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaForCausalLM(nn.Module):
    """The decoder plus its output layer: ``forward(input_ids, kv_cache=None, ...)`` -> logits
    (B, T, V), with GPT's arguments. Pass a ``KVCache`` (``new_kv_cache()``) to generate one
    token at a time."""

    def __init__(self, config: LlamaConfig):
        super().__init__()
        if not isinstance(config, LlamaConfig):
            raise ValueError(f"expected a LlamaConfig, got {type(config).__name__}")
        self.config = c = config
        self.model = nn.ModuleDict(
            dict(
                embed_tokens=nn.Embedding(c.vocab_size, c.hidden_size),  # (V, C)
                rotary_emb=RotaryEmbedding(c.head_dim, c.rope_theta),  # no weights: angles
                layers=nn.ModuleList(LlamaBlock(c, i) for i in range(c.num_hidden_layers)),
                norm=RMSNorm(c.hidden_size, c.rms_norm_eps),
            )
        )
        self.lm_head = nn.Linear(c.hidden_size, c.vocab_size, bias=False)
        if c.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight  # one (V, C) matrix, used twice

    @property
    def num_layers(self) -> int:
        """Decoder blocks, to size a ``KVCache`` (the protocol of ``llmcourse.generation``)."""
        return self.config.num_hidden_layers

    def new_kv_cache(self) -> KVCache:
        return KVCache(self.num_layers)

    def forward(
        self,
        input_ids: Tensor,
        kv_cache: KVCache | None = None,
        logits_to_keep: int = 0,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
    ) -> Tensor:
        """Logits (B, T, V); with ``logits_to_keep=n > 0`` only the last n positions' (B, n, V).
        The arguments are GPT's (``llmcourse.gpt.GPT.forward``), left-padded batches included."""
        c = self.config
        positions, real_keys = decoder_inputs(
            input_ids, c.vocab_size, kv_cache, c.num_hidden_layers, logits_to_keep,
            attention_mask=attention_mask, position_ids=position_ids,
        )  # fmt: skip
        x = self.model.embed_tokens(input_ids)  # (B, T, C): no position added...
        cos, sin = (t.to(x.dtype) for t in self.model.rotary_emb(positions))  # ...but rotated
        for layer in self.model.layers:
            x = layer(x, cos, sin, kv_cache, real_keys)
        x = self.model.norm(x[:, -logits_to_keep:])  # (B, T or n, C); -0: keep all
        return self.lm_head(x)  # (B, T or n, C) -> (B, T or n, V)

    @classmethod
    def from_pretrained(cls, folder) -> LlamaForCausalLM:
        """Build from a Hugging Face folder (config.json + model.safetensors), weights copied."""
        from safetensors.torch import load_file

        folder = Path(folder)
        model = cls(LlamaConfig.from_hf(folder / "config.json"))
        load_llama_state_dict(model, load_file(str(folder / "model.safetensors")))
        return model.eval()


def load_llama_state_dict(model: LlamaForCausalLM, state_dict: dict[str, Tensor]) -> None:
    """Copy a Hugging Face Llama state dict into ``model``, key by key, checking every shape.

    Every parameter of ``model`` must be in ``state_dict`` (except a tied ``lm_head.weight``,
    which checkpoints leave out) and no checkpoint tensor may be left unused.
    """
    tied = {"lm_head.weight"} if model.config.tie_word_embeddings else set()
    copy_weights(model, {k: v for k, v in state_dict.items() if k not in tied}, optional=tied)
