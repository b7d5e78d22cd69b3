"""Checks for the exercises of chapter 12, from scratch to a real LLM.

check_rms_norm(rms_norm)          RMSNorm: x / sqrt(mean(x^2) + eps) * weight
check_swiglu(swiglu)              the SwiGLU MLP: down(silu(gate(x)) * up(x))
check_repeat_kv(repeat_kv)        grouped-query attention's head sharing
check_kv_cache_bytes(kv_bytes)    the KV cache's memory, with and without GQA
check_permute_for_rotate_half(p)  RoPE layouts: the q/k row permutation, interleaved -> halves
check_llama_param_count(count)    a Llama-style model's parameters, by formula
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from llmcourse.exercises import ExerciseError, expect, run_checks

__all__ = [
    "check_rms_norm",
    "check_swiglu",
    "check_repeat_kv",
    "check_kv_cache_bytes",
    "check_permute_for_rotate_half",
    "check_llama_param_count",
]


def _check_dtype(got) -> None:
    if isinstance(got, torch.Tensor) and got.dtype not in (torch.float32, torch.float64):
        raise ExerciseError(
            f"compute in float32 or float64, got {got.dtype}: half precision "
            "rounds too coarsely to check the formula"
        )


def _close(got, want) -> bool:
    """Equal to the float64 reference ``want`` up to float32 rounding.

    A correct answer may compute in float32 (or in float32 inside and cast back, as Hugging
    Face's RMSNorm does), so its error is about float32's epsilon (1.2e-7) times the size of
    the numbers involved: the tolerance is a multiple of that, scaled by the largest value.
    That is about 1e-5 here, far below the gaps between the right and the wrong formulas.
    Half precision is refused: its rounding (1e-3) would blur them.
    """
    if not (isinstance(got, torch.Tensor) and got.shape == want.shape):
        return False
    _check_dtype(got)
    atol = 256 * torch.finfo(torch.float32).eps * max(1.0, want.abs().max().item())
    return bool(torch.allclose(got.to(want.dtype), want, atol=atol, rtol=0))


def _reference_rms_norm(x, weight, eps):
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def check_rms_norm(rms_norm) -> None:
    """``rms_norm(x, weight, eps)``: normalize the last dimension by its root mean square."""
    gen = torch.Generator().manual_seed(12)
    x = torch.randn(2, 3, 8, generator=gen, dtype=torch.float64) + 2.0  # mean far from 0
    w = torch.randn(8, generator=gen, dtype=torch.float64)

    def shape(f):
        got = f(x, w, 1e-5)
        expect(
            isinstance(got, torch.Tensor) and tuple(got.shape) == (2, 3, 8),
            f"return a tensor of x's shape (2, 3, 8), got {getattr(got, 'shape', got)!r}",
        )

    def no_centring(f):
        got = f(x, torch.ones_like(w), 0.0)
        centred = F.layer_norm(x, (8,), eps=0.0)
        expect(
            not _close(got, centred),
            "that is layer norm: RMSNorm does not subtract the mean, it divides x itself by "
            "sqrt(mean(x^2))",
        )
        rms = got.pow(2).mean(-1).sqrt()
        expect(
            _close(rms, torch.ones_like(rms)),
            "with weight 1 and eps 0 every position should come out with root mean square 1: "
            "divide by sqrt(mean(x^2)) over the last dimension (dim=-1)",
        )

    def gain(f):
        expect(
            _close(f(x, w, 0.0), _reference_rms_norm(x, w, 0.0)),
            "after normalizing, multiply by weight (there is no bias)",
        )

    def eps_inside(f):
        tiny = x * 1e-3  # mean square about 5e-6, comparable to eps
        want = _reference_rms_norm(tiny, w, 1e-5)
        expect(
            _close(f(tiny, w, 1e-5), want),
            "for small inputs the result is off: eps goes inside the square root, "
            "sqrt(mean(x^2) + eps), not sqrt(mean(x^2)) + eps",
        )

    return run_checks("Exercise: RMSNorm", rms_norm, [shape, no_centring, gain, eps_inside])


def check_swiglu(swiglu) -> None:
    """``swiglu(x, gate_w, up_w, down_w)``: down_w applied to silu(x gate_w^T) * (x up_w^T)."""
    gen = torch.Generator().manual_seed(13)
    x = torch.randn(2, 4, 6, generator=gen, dtype=torch.float64)
    gate_w = torch.randn(10, 6, generator=gen, dtype=torch.float64)
    up_w = torch.randn(10, 6, generator=gen, dtype=torch.float64)
    down_w = torch.randn(6, 10, generator=gen, dtype=torch.float64)
    want = F.linear(F.silu(F.linear(x, gate_w)) * F.linear(x, up_w), down_w)

    def shape(f):
        layout = "weights are stored (out, in) as in nn.Linear: use x @ W.T"
        try:
            got = f(x, gate_w, up_w, down_w)
        except RuntimeError as error:
            raise ExerciseError(f"your answer raised RuntimeError ({error}); {layout}") from None
        expect(
            isinstance(got, torch.Tensor) and tuple(got.shape) == (2, 4, 6),
            f"the output has x's shape (2, 4, 6), got {getattr(got, 'shape', got)!r}; {layout}",
        )

    def which_gets_silu(f):
        got = f(x, gate_w, up_w, down_w)
        swapped = F.linear(F.silu(F.linear(x, up_w)) * F.linear(x, gate_w), down_w)
        expect(
            not _close(got, swapped),
            "gate and up are swapped: the activation goes on the gate projection, "
            "silu(x gate^T) * (x up^T)",
        )
        gelu = F.linear(F.gelu(F.linear(x, gate_w)) * F.linear(x, up_w), down_w)
        expect(not _close(got, gelu), "that is GeGLU: SwiGLU uses SiLU (x * sigmoid(x)), not GELU")
        ungated = F.linear(F.silu(F.linear(x, gate_w)), down_w)
        expect(
            not _close(got, ungated),
            "the up projection is missing: multiply silu(x gate^T) by x up^T elementwise",
        )

    def values(f):
        expect(
            _close(f(x, gate_w, up_w, down_w), want),
            "down(silu(x gate^T) * (x up^T)): check that the product is elementwise and "
            "that down_proj comes last",
        )

    return run_checks("Exercise: SwiGLU", swiglu, [shape, which_gets_silu, values])


def check_repeat_kv(repeat_kv) -> None:
    """``repeat_kv(x, n_rep)``: (B, K, S, D) -> (B, K * n_rep, S, D), each head n_rep times
    in a row."""
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)

    def shape(f):
        got = f(x, 2)
        expect(
            isinstance(got, torch.Tensor) and tuple(got.shape) == (2, 6, 4, 5),
            f"with 3 key-value heads and n_rep=2 the result has 6 heads on dim 1: shape "
            f"(2, 6, 4, 5), got {getattr(got, 'shape', got)!r}",
        )

    def order(f):
        got = f(x, 2)
        expect(
            not torch.equal(got, x.repeat(1, 2, 1, 1)),
            "the heads come out in the order 0, 1, 2, 0, 1, 2: query heads 0 and 1 must "
            "share key-value head 0, so the order is 0, 0, 1, 1, 2, 2 (repeat_interleave, "
            "not repeat)",
        )
        expect(
            torch.equal(got, x.repeat_interleave(2, dim=1)),
            "each key-value head should appear n_rep times in a row, along dim 1",
        )

    def one(f):
        expect(torch.equal(f(x, 1), x), "n_rep=1 (plain multi-head attention) changes nothing")
        expect(torch.equal(f(x, 3), x.repeat_interleave(3, dim=1)), "n_rep=3 gives 9 heads")

    return run_checks("Exercise: repeat_kv", repeat_kv, [shape, order, one])


def check_kv_cache_bytes(kv_cache_bytes) -> None:
    """``kv_cache_bytes(num_layers, num_kv_heads, head_dim, seq_len, bytes_per_value)``."""

    def smollm2(f):
        got = f(30, 3, 64, 8192, 4)
        expect(
            got != 30 * 3 * 64 * 8192 * 4,
            "count both the keys and the values: two tensors per layer",
        )
        expect(
            got != 2 * 30 * 9 * 64 * 8192 * 4,
            "that counts 9 heads; the cache holds only the num_kv_heads key-value heads",
        )
        expect(
            got == 2 * 30 * 3 * 64 * 8192 * 4,
            f"2 (keys and values) x layers x kv heads x head_dim x positions x bytes, got {got!r}",
        )

    def integer(f):
        got = f(1, 1, 1, 1, 2)
        expect(
            isinstance(got, int) and got == 4,
            f"one layer, one head of width 1, one position, 2 bytes: 4 bytes (an int), got {got!r}",
        )

    return run_checks("Exercise: KV cache memory", kv_cache_bytes, [smollm2, integer])


# ---- RoPE layouts -----------------------------------------------------------------------------
# Shapes: H heads, T positions, D head size, C model width; a projection weight is (H * D, C).


def _rope_angles(T: int, D: int, base: float, dtype):
    inv_freq = base ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)  # (D/2,)
    angles = torch.arange(T, dtype=torch.float64)[:, None] * inv_freq  # (T, D/2)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def _rope_interleaved(x, base):
    """Meta's layout: pair i is dimensions (2i, 2i + 1). x: (H, T, D)."""
    cos, sin = _rope_angles(x.shape[-2], x.shape[-1], base, x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1).flatten(-2)


def _rope_rotate_half(x, base):
    """Hugging Face's layout: pair i is dimensions (i, i + D/2). x: (H, T, D)."""
    cos, sin = _rope_angles(x.shape[-2], x.shape[-1], base, x.dtype)
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1)


def _scores(x, w_q, w_k, n_heads, n_kv_heads, rope, base=10000.0):
    """Attention scores q . k of every query head, (H, T, T), with grouped key heads."""
    T, D = x.shape[0], w_q.shape[0] // n_heads
    q = rope((x @ w_q.T).view(T, n_heads, D).transpose(0, 1), base)  # (H, T, D)
    k = rope((x @ w_k.T).view(T, n_kv_heads, D).transpose(0, 1), base)  # (K, T, D)
    k = k.repeat_interleave(n_heads // n_kv_heads, dim=0)  # (H, T, D)
    return q @ k.transpose(1, 2)


def _halves_rows(n_heads: int, D: int) -> list[int]:
    """The right answer as row indices: in each head, rows 0, 2, 4, ... then 1, 3, 5, ..."""
    return [h * D + 2 * i + a for h in range(n_heads) for a in (0, 1) for i in range(D // 2)]


def _inverse_rows(n_heads: int, D: int) -> list[int]:
    """The inverse (halves -> interleaved): row 2i + a of a head is old row a * D/2 + i."""
    return [h * D + a * (D // 2) + i for h in range(n_heads) for i in range(D // 2) for a in (0, 1)]


def _diagnose(permute, n_heads: int, D: int) -> str:
    """Which rows the answer moved where, told from a weight whose row r holds r."""
    rows = n_heads * D
    probe = torch.arange(rows, dtype=torch.float64)[:, None].repeat(1, 3)
    got = permute(probe.clone(), n_heads)
    if not (isinstance(got, torch.Tensor) and got.shape == probe.shape):
        return f"return a tensor of w's shape {tuple(probe.shape)}"
    order = got[:, 0].tolist()
    if not torch.equal(got, got[:, :1].expand_as(got)) or sorted(order) != list(range(rows)):
        return (
            "move whole rows of w (each row is one output dimension of the projection), "
            "without changing or mixing their values"
        )
    if order == list(range(rows)):
        return (
            "w is unchanged: rotate-half pairs dimension i with i + D/2, so the rows that "
            "interleaved RoPE pairs, 2i and 2i + 1, must be moved to i and i + D/2"
        )
    if n_heads > 1 and order == _halves_rows(1, rows):
        return (
            "you permuted the whole matrix as if it were one head: RoPE pairs dimensions "
            "inside each head, so view w as (n_heads, D, C) and reorder each head's D rows"
        )
    if order == _inverse_rows(n_heads, D):
        return (
            "that is the inverse permutation (rotate-half -> interleaved): row i of each "
            "head must come from old row 2i, and row i + D/2 from old row 2i + 1"
        )
    return (
        "in each head of D rows, new row i (i < D/2) must be old row 2i and new row "
        "i + D/2 old row 2i + 1, so that the pair (2i, 2i + 1) becomes the pair (i, i + D/2)"
    )


def check_permute_for_rotate_half(permute) -> None:
    """``permute(w, n_heads)``: the rows of a (n_heads * D, C) query or key weight reordered
    so that rotate-half RoPE with the new weight gives the attention scores that interleaved
    RoPE gives with the old one."""
    gen = torch.Generator().manual_seed(14)

    def same_scores(f, n_heads, n_kv_heads, D, C, dtype):
        x = torch.randn(5, C, generator=gen, dtype=torch.float64).to(dtype)
        w_q = torch.randn(n_heads * D, C, generator=gen, dtype=torch.float64).to(dtype)
        w_k = torch.randn(n_kv_heads * D, C, generator=gen, dtype=torch.float64).to(dtype)
        want = _scores(x, w_q, w_k, n_heads, n_kv_heads, _rope_interleaved)
        new_q, new_k = f(w_q.clone(), n_heads), f(w_k.clone(), n_kv_heads)
        for got, w in ((new_q, w_q), (new_k, w_k)):
            expect(
                isinstance(got, torch.Tensor) and got.shape == w.shape and got.dtype == dtype,
                f"return a tensor of w's shape {tuple(w.shape)} and dtype {dtype}, got "
                f"{getattr(got, 'shape', got)!r} ({getattr(got, 'dtype', type(got).__name__)})",
            )
        got = _scores(x, new_q, new_k, n_heads, n_kv_heads, _rope_rotate_half)
        tol = (1e-4 if dtype == torch.float32 else 1e-10) * want.abs().max().item()
        if not torch.allclose(got.double(), want.double(), rtol=0, atol=tol):
            raise ExerciseError(
                f"with n_heads={n_heads} (keys: {n_kv_heads}) and head size D={D} the "
                f"scores differ: {_diagnose(f, n_heads, D)}"
            )

    def one_head(f):
        same_scores(f, 1, 1, 8, 6, torch.float64)

    def several_heads(f):
        for n_heads, n_kv_heads, D, C in ((4, 2, 16, 12), (3, 3, 8, 10), (9, 3, 64, 24)):
            same_scores(f, n_heads, n_kv_heads, D, C, torch.float64)

    def float32(f):
        same_scores(f, 4, 1, 32, 16, torch.float32)

    return run_checks("Exercise: RoPE layouts", permute, [one_head, several_heads, float32])


# ---- parameter count ----------------------------------------------------------------------


def llama_param_count(V: int, C: int, F: int, L: int, H: int, K: int, tied: bool) -> int:
    """Parameters of a bias-free Llama-style decoder: embeddings, L blocks (q and o are C x C,
    k and v K * C / H rows each; gate, up, down; two RMSNorm gains), the final norm, and an
    output layer unless tied to the embeddings."""
    kv = K * (C // H)
    block = 2 * C * C + 2 * kv * C + 3 * C * F + 2 * C
    return V * C + L * block + C + (0 if tied else V * C)


SMOLLM2 = (49152, 576, 1536, 30, 9, 3, True)  # SmolLM2-135M's configuration


def check_llama_param_count(count) -> None:
    """``llama_param_count(vocab_size, hidden_size, intermediate_size, num_layers, num_heads,
    num_kv_heads, tie_embeddings)``, compared with the formula (which tests/test_exercises_ch12
    checks against ``LlamaForCausalLM``)."""

    def smollm2(f):
        V, C, F, L, H, K, tied = SMOLLM2
        got, want = f(*SMOLLM2), llama_param_count(*SMOLLM2)
        block = llama_param_count(V, C, F, L, H, K, True) - V * C - C
        slips = {
            llama_param_count(V, C, F, L, H, H, tied): "that counts k_proj and v_proj as "
            "hidden_size x hidden_size: with grouped-query attention they have only "
            "num_kv_heads x head_dim rows (head_dim = hidden_size / num_heads)",
            want + V * C: "with tie_embeddings the output layer reuses the embedding matrix: "
            "it adds no parameters",
            want - L * C * F: "SwiGLU has three matrices (gate, up and down), not two",
            want - L * 2 * C - C: "count the RMSNorm gains: two per block and a final one, "
            "hidden_size each",
            want - C: "count the final RMSNorm after the last block",
            want - V * C: "count the token embedding table, vocab_size x hidden_size",
            block: "that is the blocks alone",
        }
        if got in slips:
            raise ExerciseError(slips[got])
        expect(got == want, f"SmolLM2-135M has {want:,} parameters, got {got!r}")

    def untied_and_grouped(f):
        for config in [(1000, 64, 176, 3, 8, 2, False), (50, 32, 96, 2, 4, 4, True)]:
            got, want = f(*config), llama_param_count(*config)
            expect(got == want, f"for the configuration {config}: {want:,}, got {got!r}")

    def integer(f):
        got = f(*SMOLLM2)
        expect(type(got) is int, f"return an int (a count), got {type(got).__name__}")

    return run_checks(
        "Exercise: a Llama's parameters", count, [smollm2, untied_and_grouped, integer]
    )
