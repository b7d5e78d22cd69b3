"""Chapter 7: a decoder-only Transformer, GPT-2 (Radford et al., 2019), from the earlier chapters.

A GPT is a stack of pre-norm blocks on a residual stream, with causal self-attention so that
position t sees only positions 0..t, and a final layer norm and a linear "language-model head"
that turns each position's vector into next-token logits:

    x_0     = wte[ids] + wpe[positions]                        token + learned position
    x       = x + attn(ln_1(x))                                causal multi-head attention
    x       = x + mlp(ln_2(x))                                 GELU (tanh) feed-forward, 4 C wide
    logits  = ln_f(x) W_te^T                                   the head shares wte's weights

The parameter names are GPT-2's checkpoint keys (``transformer.wte``, ``transformer.h.N.ln_1``,
``.attn.c_attn``, ``.attn.c_proj``, ``.ln_2``, ``.mlp.c_fc``, ``.mlp.c_proj``,
``transformer.ln_f``, ``lm_head``), so ``GPT.from_hf`` is a key-by-key copy. Hugging Face stores
GPT-2's projections in ``Conv1D`` layers whose weight is (in, out); ours are ``nn.Linear``,
(out, in), so those weights are transposed on the way in and out.

Pieces from earlier chapters: ``llmcourse.multihead.split_heads``/``merge_heads`` (chapter 4),
the key-value cache ``llmcourse.kvcache.KVCache``, and ``llmcourse.norm.LayerNorm``'s parameters
(chapter 6). The arithmetic of layer norm, GELU and attention runs in PyTorch's fused kernels
(``F.layer_norm``, ``F.gelu(approximate="tanh")``, ``F.scaled_dot_product_attention``), which
chapters 3 and 6 proved equal to ``llmcourse.norm.layer_norm``, ``llmcourse.feedforward.gelu`` and
``llmcourse.attention.scaled_dot_product_attention``: the from-scratch versions make one pass
over memory per elementary operation and made the whole model about 1.6x slower than Hugging
Face's on a CPU; fused, it is as fast (``benchmarks/gpt_vs_hf.py``). Chapter 7 builds the same
model from the from-scratch pieces and checks that both agree.

Shape letters: B batch, T new positions, P cached (past) positions, S = P + T keys, C n_embd,
h n_head, d head size C / h, V vocab_size.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from torch import Tensor, nn
from torch.nn import functional as F

from llmcourse import norm
from llmcourse.checkpoints import copy_weights
from llmcourse.kvcache import KVCache, cached_causal_attention, decoder_inputs
from llmcourse.multihead import merge_heads, split_heads
from llmcourse.scaling import gpt2_param_count
from llmcourse.validation import positive_int

__all__ = [
    "GPTConfig",
    "GPT",
    "gpt_param_count",
    "CausalSelfAttention",
    "MLP",
    "Block",
    "LayerNorm",
]


@dataclass(frozen=True)
class GPTConfig:
    """The hyper-parameters of a GPT-2-style model (names as in nanoGPT; HF names in comments)."""

    vocab_size: int = 50257  # number of token ids V (HF: vocab_size)
    block_size: int = 1024  # longest sequence = rows of the position table (n_positions)
    n_layer: int = 12  # number of Transformer blocks (HF: n_layer)
    n_head: int = 12  # attention heads per block; must divide n_embd (HF: n_head)
    n_embd: int = 768  # model width C, the residual stream's size (HF: n_embd)
    layer_norm_epsilon: float = 1e-5  # eps inside every LayerNorm's square root
    bias: bool = True  # biases in the linear layers and LayerNorms (GPT-2: True)
    dropout: float = 0.0  # dropout on embeddings, attention and residuals (training only)

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            positive_int(name, getattr(self, name))
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not self.layer_norm_epsilon >= 0:
            raise ValueError(f"layer_norm_epsilon must be >= 0, got {self.layer_norm_epsilon!r}")

    # Named presets; keyword arguments override fields, e.g. GPTConfig.tiny(vocab_size=65).
    @classmethod
    def tiny(cls, **overrides) -> GPTConfig:
        """A few hundred thousand parameters at most: for tests and seconds-long CPU training."""
        return replace(
            cls(vocab_size=256, block_size=64, n_layer=2, n_head=2, n_embd=32), **overrides
        )

    @classmethod
    def gpt2(cls, **overrides) -> GPTConfig:
        """GPT-2 small, 124M parameters (Radford et al., 2019)."""
        return replace(cls(), **overrides)

    @classmethod
    def gpt2_medium(cls, **overrides) -> GPTConfig:
        """GPT-2 medium, 355M parameters."""
        return replace(cls(n_layer=24, n_head=16, n_embd=1024), **overrides)

    @classmethod
    def gpt2_large(cls, **overrides) -> GPTConfig:
        """GPT-2 large, 774M parameters."""
        return replace(cls(n_layer=36, n_head=20, n_embd=1280), **overrides)

    @classmethod
    def gpt2_xl(cls, **overrides) -> GPTConfig:
        """GPT-2 XL, 1.5B parameters."""
        return replace(cls(n_layer=48, n_head=25, n_embd=1600), **overrides)

    @classmethod
    def from_hf(cls, hf_config) -> GPTConfig:
        """The same architecture as a ``transformers.GPT2Config``."""
        if hf_config.n_inner not in (None, 4 * hf_config.n_embd):
            raise ValueError(f"only n_inner = 4 * n_embd is supported, got {hf_config.n_inner}")
        if hf_config.activation_function not in ("gelu_new", "gelu_pytorch_tanh"):
            raise ValueError(
                f"only the tanh GELU (gelu_new) is supported, got {hf_config.activation_function!r}"
            )
        if (
            hf_config.scale_attn_by_inverse_layer_idx
            or hf_config.reorder_and_upcast_attn
            or not hf_config.scale_attn_weights
        ):
            raise ValueError("only GPT-2's standard attention scaling, 1 / sqrt(d), is supported")
        return cls(
            vocab_size=hf_config.vocab_size,
            block_size=hf_config.n_positions,
            n_layer=hf_config.n_layer,
            n_head=hf_config.n_head,
            n_embd=hf_config.n_embd,
            layer_norm_epsilon=hf_config.layer_norm_epsilon,
            bias=True,
            dropout=float(hf_config.resid_pdrop),
        )


def gpt_param_count(config: GPTConfig) -> int:
    """The number of parameters of ``GPT(config)``, by formula (the head is tied to wte):
    ``llmcourse.scaling.gpt2_param_count``, the one home of the formula (12 C^2 + 13 C per
    block with biases, 12 C^2 + 2 C without)."""
    if not isinstance(config, GPTConfig):
        raise ValueError(f"expected a GPTConfig, got {type(config).__name__}")
    return gpt2_param_count(
        config.n_layer, config.n_embd, config.vocab_size, config.block_size, bias=config.bias
    )


class LayerNorm(norm.LayerNorm):
    """Chapter 6's ``LayerNorm`` (same parameters) computed by the fused ``F.layer_norm``."""

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position t attends to positions 0..t only."""

    def __init__(self, config: GPTConfig, layer_idx: int = 0):
        super().__init__()
        C = config.n_embd
        self.n_head, self.dropout, self.layer_idx = config.n_head, config.dropout, layer_idx
        self.c_attn = nn.Linear(C, 3 * C, bias=config.bias)  # q, k and v side by side
        self.c_proj = nn.Linear(C, C, bias=config.bias)  # the output projection W^O
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(
        self, x: Tensor, kv_cache: KVCache | None = None, real_keys: Tensor | None = None
    ) -> Tensor:
        """``real_keys`` (B, S) bool, False at padding keys (left-padded batches)."""
        q, k, v = self.c_attn(x).chunk(3, dim=-1)  # (B, T, 3C) -> 3 x (B, T, C)
        q, k, v = (split_heads(t, self.n_head) for t in (q, k, v))  # -> (B, h, T, d)
        if kv_cache is not None:
            k, v = kv_cache.update(self.layer_idx, k, v)  # -> (B, h, S, d), S = P + T
        dropout = self.dropout if self.training else 0.0
        y = cached_causal_attention(q, k, v, real_keys, dropout)  # (B, h, T, d)
        return self.resid_dropout(self.c_proj(merge_heads(y)))  # -> (B, T, C)


class MLP(nn.Module):
    """GPT-2's position-wise feed-forward network: C -> 4C, tanh GELU, -> C."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        C = config.n_embd
        self.c_fc = nn.Linear(C, 4 * C, bias=config.bias)
        self.c_proj = nn.Linear(4 * C, C, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        # GPT-2 uses the tanh approximation of GELU ("gelu_new"; Hendrycks & Gimpel, 2016).
        h = F.gelu(self.c_fc(x), approximate="tanh")  # (B, T, C) -> (B, T, 4C)
        return self.dropout(self.c_proj(h))  # (B, T, 4C) -> (B, T, C)


class Block(nn.Module):
    """One pre-norm Transformer block: attention, then feed-forward, each on the residual."""

    def __init__(self, config: GPTConfig, layer_idx: int = 0):
        super().__init__()
        eps, bias = config.layer_norm_epsilon, config.bias
        self.ln_1 = LayerNorm(config.n_embd, eps=eps, bias=bias)
        self.attn = CausalSelfAttention(config, layer_idx)
        self.ln_2 = LayerNorm(config.n_embd, eps=eps, bias=bias)
        self.mlp = MLP(config)

    def forward(
        self, x: Tensor, kv_cache: KVCache | None = None, real_keys: Tensor | None = None
    ) -> Tensor:
        x = x + self.attn(self.ln_1(x), kv_cache, real_keys)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """A GPT-2 language model: ``forward(input_ids (B, T), kv_cache=None) -> logits (B, T, V)``.

    With a ``KVCache`` the model reads the cached keys and values of the previous positions,
    appends the new ones, and numbers the new tokens from ``len(kv_cache)`` on (unless
    ``position_ids`` say otherwise); this is the protocol ``llmcourse.generation.generate``
    relies on (with ``num_layers``).
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise ValueError(f"expected a GPTConfig, got {type(config).__name__}")
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),  # token embeddings (V, C)
                wpe=nn.Embedding(config.block_size, config.n_embd),  # position embeddings
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList(Block(config, i) for i in range(config.n_layer)),
                ln_f=LayerNorm(config.n_embd, eps=config.layer_norm_epsilon, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied (Press & Wolf, 2017)
        self.apply(self._init_weights)
        # GPT-2 scales the residual projections by 1/sqrt(2 n_layer) so the stream's variance
        # does not grow with depth (Radford et al., 2019, section 2.3).
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    @property
    def num_layers(self) -> int:
        """The number of blocks, i.e. of layers a ``KVCache`` for this model needs."""
        return self.config.n_layer

    def forward(
        self,
        input_ids: Tensor,
        kv_cache: KVCache | None = None,
        logits_to_keep: int = 0,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
    ) -> Tensor:
        """Logits (B, T, V); with ``logits_to_keep=n > 0`` only the last n positions' (B, n, V),
        which is all generation needs (the read-out is the model's largest matrix product).

        For a left-padded batch pass both ``attention_mask`` (B, P + T), 1 for real tokens and
        0 for padding, over the cached and the new tokens, and ``position_ids`` (B, T), the new
        tokens' positions (``llmcourse.generation.padding_positions``)."""
        c = self.config
        positions, real_keys = decoder_inputs(
            input_ids, c.vocab_size, kv_cache, c.n_layer, logits_to_keep, c.block_size,
            attention_mask=attention_mask, position_ids=position_ids,
        )  # fmt: skip
        x = self.transformer.wte(input_ids) + self.transformer.wpe(positions)  # (B, T, C)
        x = self.transformer.drop(x)
        for block in self.transformer.h:
            x = block(x, kv_cache, real_keys)
        x = self.transformer.ln_f(x[:, -logits_to_keep:])  # (B, T or n, C); -0: keep all
        return self.lm_head(x)  # (B, T or n, C) -> (B, T or n, V)

    # --- Hugging Face GPT-2 checkpoints -----------------------------------------------------

    _CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")

    @classmethod
    def from_hf(cls, hf_model) -> GPT:
        """A copy of a ``transformers.GPT2LMHeadModel``'s weights, key by key."""
        from transformers import GPT2LMHeadModel

        if not isinstance(hf_model, GPT2LMHeadModel):
            raise ValueError(
                f"expected a transformers GPT2LMHeadModel, got {type(hf_model).__name__}"
            )
        ref = hf_model.lm_head.weight
        model = cls(GPTConfig.from_hf(hf_model.config)).to(ref.device, ref.dtype)
        copy_weights(model, hf_model.state_dict(), transposed=cls._CONV1D)
        return model.train(hf_model.training)

    def to_hf(self, **hf_config_overrides):
        """A ``transformers.GPT2LMHeadModel`` with this model's weights (in eval mode).

        Keyword arguments go to ``GPT2Config`` (for example ``eos_token_id``); by default the
        beginning/end-of-text id is GPT-2's 50256 when the vocabulary has it, else unset.
        """
        from transformers import GPT2Config, GPT2LMHeadModel

        c = self.config
        if not c.bias:
            raise ValueError("Hugging Face's GPT-2 always has biases: this model has bias=False")
        special = 50256 if c.vocab_size > 50256 else None
        settings = dict(
            vocab_size=c.vocab_size,
            n_positions=c.block_size,
            n_embd=c.n_embd,
            n_layer=c.n_layer,
            n_head=c.n_head,
            layer_norm_epsilon=c.layer_norm_epsilon,
            activation_function="gelu_new",
            resid_pdrop=c.dropout,
            embd_pdrop=c.dropout,
            attn_pdrop=c.dropout,
            bos_token_id=special,
            eos_token_id=special,
        )
        settings.update(hf_config_overrides)
        ref = self.lm_head.weight
        hf_model = GPT2LMHeadModel(GPT2Config(**settings)).to(ref.device, ref.dtype)
        copy_weights(hf_model, self.state_dict(), transposed=self._CONV1D)
        return hf_model.eval()

    def save_pretrained(self, folder, **hf_config_overrides) -> Path:
        """Write a Hugging Face GPT-2 checkpoint (config.json, model.safetensors) to ``folder``.

        It is written to a temporary folder next to ``folder`` and renamed into place, so an
        interrupted save leaves either the old folder or the new one, never half of one.
        """
        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            self.to_hf(**hf_config_overrides).save_pretrained(tmp)
            if folder.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old.", dir=folder.parent))
                os.replace(folder, old / "x")
                os.replace(tmp, folder)
                shutil.rmtree(old)
            else:
                os.replace(tmp, folder)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
        return folder
