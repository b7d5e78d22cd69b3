"""Chapter 15: the memory arithmetic of training, and a tracker that measures it.

Training keeps four kinds of tensors alive. For a model of P parameters trained with AdamW:

    weights       P values
    gradients     P values                          (one per weight)
    optimizer     2 P values (AdamW's m and v)     + P float32 master weights in mixed precision
    activations   what the forward pass saves for the backward pass: grows with batch x length

In float32 that is 4 + 4 + 8 = 16 bytes per parameter. Mixed precision (Micikevicius et al.,
2018) keeps 16-bit weights and gradients (2 + 2 bytes) but float32 master weights, m and v
(12 bytes): 16 bytes again, which is the figure ZeRO (Rajbhandari et al., 2020) starts from.
Mixed precision saves activation memory and time, not optimizer state. ZeRO's stages shard
the optimizer states (stage 1), then the gradients (2), then the weights too (3) over N
processes.

Activations of a Transformer layer in 16-bit precision take ``s b h (34 + 5 a s / h)`` bytes
(Korthikanti et al., 2022; s sequence, b batch, h width, a heads), 2 of the 34 for dropout
masks; with a fused attention kernel the ``5 a s / h`` term (the attention matrix) is not
stored. ``gpt_activation_bytes`` counts what this course's ``llmcourse.gpt.GPT`` saves, tensor by
tensor, and ``MemoryTracker`` measures it.
"""

from __future__ import annotations

import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from llmcourse.validation import positive_int

__all__ = [
    "MemoryTracker",
    "gpt_activation_bytes",
    "saved_activation_bytes",
    "state_bytes_per_param",
    "transformer_activation_bytes",
    "zero_bytes_per_gpu",
]


def state_bytes_per_param(mixed_precision: bool = False, optimizer: str = "adamw") -> dict:
    """Bytes per parameter of weights, gradients and optimizer state (no activations).

    float32: 4 + 4 + (8 for AdamW's m and v, 0 for plain SGD). Mixed precision: 16-bit weights
    and gradients, 2 + 2, and a float32 master copy of the weights kept by the optimizer, 4,
    plus float32 m and v, 8: 12 bytes of optimizer state.
    """
    if optimizer not in ("adamw", "sgd"):
        raise ValueError(f"optimizer must be 'adamw' or 'sgd', got {optimizer!r}")
    moments = 8 if optimizer == "adamw" else 0
    if mixed_precision:
        return {"weights": 2, "gradients": 2, "optimizer": 4 + moments}
    return {"weights": 4, "gradients": 4, "optimizer": moments}


def zero_bytes_per_gpu(n_params: int, n_gpus: int, stage: int) -> float:
    """Bytes of model state per GPU for mixed-precision AdamW under a ZeRO stage.

    Rajbhandari et al. (2020), figure 1: with P parameters on N GPUs, stage 0 (plain data
    parallelism) keeps 2P + 2P + 12P on every GPU; stage 1 shards the 12P optimizer state,
    2P + 2P + 12P / N; stage 2 also the gradients, 2P + 14P / N; stage 3 (FSDP's full
    sharding) also the weights, 16P / N. Activations and temporary buffers come on top.
    """
    positive_int("n_params", n_params)
    positive_int("n_gpus", n_gpus)
    if stage not in (0, 1, 2, 3):
        raise ValueError(f"stage must be 0, 1, 2 or 3, got {stage!r}")
    b = state_bytes_per_param(mixed_precision=True)
    weights, grads, optim = (
        b["weights"] * n_params,
        b["gradients"] * n_params,
        b["optimizer"] * n_params,
    )
    if stage >= 1:
        optim /= n_gpus
    if stage >= 2:
        grads /= n_gpus
    if stage >= 3:
        weights /= n_gpus
    return weights + grads + optim


def transformer_activation_bytes(
    n_layer: int, d_model: int, n_head: int, batch: int, seq_len: int, fused_attention: bool = True
) -> int:
    """Activation bytes of a Transformer in 16-bit precision (Korthikanti et al., 2022, eq. 1).

    Per layer ``seq_len * batch * d_model * (34 + 5 * n_head * seq_len / d_model)``; a fused
    ("flash") attention kernel does not store the attention matrix, dropping the second term.
    """
    for name, value in (
        ("n_layer", n_layer),
        ("d_model", d_model),
        ("n_head", n_head),
        ("batch", batch),
        ("seq_len", seq_len),
    ):
        positive_int(name, value)
    per_position = 34 * d_model + (0 if fused_attention else 5 * n_head * seq_len)
    return n_layer * seq_len * batch * per_position


def gpt_activation_bytes(config, batch: int, seq_len: int, bytes_per_value: int = 4) -> int:
    """The bytes ``llmcourse.gpt.GPT`` saves for backward on a (batch, seq_len) input, with loss.

    Per block and position: LayerNorm 1's input and output (2C), q, k, v (3C), the attention
    output (C) and its log-sum-exp per head (h), LayerNorm 2's input and output (2C), the
    feed-forward's hidden layer before and after GELU (4C + 4C), and each LayerNorm's mean and
    1 / std (4): 16C + h + 4 values. After the blocks: the final LayerNorm's input and output
    (2C) and the log-softmax over the vocabulary (V) that the loss keeps. Without dropout; a
    few values per position (token ids, targets, statistics) are left out.
    """
    positive_int("batch", batch)
    positive_int("seq_len", seq_len)
    C, h, V = config.n_embd, config.n_head, config.vocab_size
    per_position = config.n_layer * (16 * C + h + 4) + 2 * C + V
    return bytes_per_value * batch * seq_len * per_position


class MemoryTracker(TorchDispatchMode):
    """Measure the bytes of tensor storage alive, and their peak, while the context is open.

    Every tensor an operation returns is counted once (by its storage) until it is freed;
    ``track(tensors)`` adds tensors made before (the parameters). Works on any device; on a
    GPU ``torch.cuda.max_memory_allocated`` measures the same thing plus the allocator's
    rounding. Example::

        tracker = MemoryTracker().track(model.parameters())
        with tracker:
            loss = model(x).sum(); loss.backward()
        tracker.peak  # bytes
    """

    def __init__(self):
        super().__init__()
        self._live: dict[int, int] = {}
        self.current = 0  # bytes alive now
        self.peak = 0  # the largest ``current`` seen

    def track(self, tensors) -> MemoryTracker:
        for tensor in tensors:
            self._add(tensor)
        return self

    def _add(self, tensor) -> None:
        if not isinstance(tensor, torch.Tensor) or tensor.is_meta:
            return
        storage = tensor.untyped_storage()
        key, size = storage.data_ptr(), storage.nbytes()
        if size == 0 or key in self._live:
            return
        self._live[key] = size
        self.current += size
        self.peak = max(self.peak, self.current)
        weakref.finalize(storage, self._free, key)

    def _free(self, key: int) -> None:
        self.current -= self._live.pop(key, 0)

    def reset_peak(self) -> None:
        self.peak = self.current

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            self._add(tensor)
        return out


def saved_activation_bytes(loss_fn, exclude=()) -> int:
    """Bytes of the distinct tensors autograd saves for backward while ``loss_fn()`` runs.

    Tensors sharing storage with ``exclude`` (pass the parameters) are not counted.
    """
    skip = {t.untyped_storage().data_ptr() for t in exclude}
    saved: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in skip:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss_fn()
    return sum(saved.values())
