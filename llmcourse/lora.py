"""Chapter 13: LoRA, low-rank adaptation of a frozen linear layer (Hu et al., 2021).

Fine-tuning a pretrained model changes each weight matrix by some update ``ΔW``. LoRA
freezes ``W`` and learns the update in factored form, ``ΔW = (α / r) B A``, with ``A`` of
shape (r, in) and ``B`` of shape (out, r) for a small rank r:

    y = x W^T + b + (α / r) · x A^T B^T

``B`` starts at zero, so the adapted model starts out *equal* to the pretrained one; ``A``
starts random (Kaiming-uniform, as ``nn.Linear`` and ``peft`` initialise it), otherwise the
gradient of ``B`` would be zero too. Only ``A`` and ``B`` train: r · (in + out) numbers per
matrix instead of in · out, and the optimizer keeps its state for those alone. After
training, ``B A`` can be added into ``W`` ("merged"): the model is then an ordinary one,
with no extra cost at inference.

The parameter names ``lora_A`` and ``lora_B`` and the scaling ``α / r`` are ``peft``'s
(``peft.tuners.lora.Linear``), so adapters can be copied between the two.
Letters: B batch, T positions, r rank, "in"/"out" the layer's input and output widths.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from llmcourse.validation import non_negative_int, positive_int, positive_number

__all__ = [
    "LoRALinear",
    "add_lora",
    "merge_lora",
    "count_parameters",
    "adamw_state_bytes",
    "state_dict_from_peft",
]


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank update ``(alpha / r) B A``."""

    def __init__(self, base: nn.Linear, r: int, alpha: float):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRA wraps an nn.Linear, got {type(base).__name__}")
        positive_int("rank r", r)
        if r > min(base.in_features, base.out_features):
            raise ValueError(
                f"rank r={r} exceeds the layer's size ({base.out_features} x "
                f"{base.in_features}): a low-rank update needs r <= min(out, in)"
            )
        positive_number("alpha", alpha)
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
        like = dict(dtype=base.weight.dtype, device=base.weight.device)
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, **like))  # (r, in)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, **like))  # (out, r)
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # nn.Linear's and peft's choice

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = (x @ self.lora_A.T) @ self.lora_B.T  # (..., in) -> (..., r) -> (..., out)
        return self.base(x) + self.scaling * update

    def merged(self) -> nn.Linear:
        """An ordinary ``nn.Linear`` with weight ``W + (alpha / r) B A``: the same function."""
        out = nn.Linear(
            self.base.in_features,
            self.base.out_features,
            bias=self.base.bias is not None,
            dtype=self.base.weight.dtype,
            device=self.base.weight.device,
        )
        with torch.no_grad():
            out.weight.copy_(self.base.weight + self.scaling * self.lora_B @ self.lora_A)
            if self.base.bias is not None:
                out.bias.copy_(self.base.bias)
        return out

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}"


def _linear_layers(model: nn.Module, target_names) -> list[tuple[nn.Module, str]]:
    """(parent, attribute) of every ``nn.Linear`` whose attribute name is in ``target_names``."""
    found = []
    for module in model.modules():
        for name, child in module.named_children():
            if name in target_names and isinstance(child, nn.Linear):
                found.append((module, name))
    return found


def add_lora(model: nn.Module, target_names, r: int, alpha: float) -> list[str]:
    """Freeze ``model`` and wrap each ``nn.Linear`` named in ``target_names`` in a LoRALinear.

    ``target_names`` are attribute names such as ``("q_proj", "v_proj")`` (what ``peft`` calls
    ``target_modules``). Returns the qualified names of the wrapped layers. Layers are
    wrapped in ``model.modules()`` order, so a fixed seed gives the same ``A`` matrices.
    """
    if isinstance(target_names, str) or not target_names:
        raise ValueError(
            f"target_names must be a non-empty list of layer names such as "
            f"['q_proj', 'v_proj'], got {target_names!r}"
        )
    layers = _linear_layers(model, set(target_names))
    if not layers:
        raise ValueError(f"no nn.Linear named any of {sorted(target_names)} in the model")
    for p in model.parameters():
        p.requires_grad_(False)
    for parent, name in layers:
        setattr(parent, name, LoRALinear(getattr(parent, name), r, alpha))
    qualified = {id(m): n for n, m in model.named_modules()}
    return [qualified[id(getattr(parent, name))] for parent, name in layers]


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every LoRALinear in ``model`` by its merged ``nn.Linear`` (in place)."""
    merged = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, LoRALinear):
                setattr(module, name, child.merged())
                merged += 1
    if merged == 0:
        raise ValueError("the model has no LoRA layers to merge")
    return model


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts (shared tensors, as tied embeddings, count once)."""
    unique = {id(p): p for p in model.parameters()}.values()
    return (sum(p.numel() for p in unique if p.requires_grad), sum(p.numel() for p in unique))


def adamw_state_bytes(n_trainable: int, bytes_per_value: int = 4) -> int:
    """Memory of AdamW's state: two running averages (m and v) per trainable parameter.

    Gradients take one more value per trainable parameter; this counts the optimizer alone.
    """
    non_negative_int("n_trainable", n_trainable)
    if bytes_per_value not in (2, 4, 8):
        raise ValueError(f"bytes_per_value must be 2, 4 or 8, got {bytes_per_value!r}")
    return 2 * n_trainable * bytes_per_value


def state_dict_from_peft(peft_state: dict) -> dict:
    """Rename a ``peft`` LoRA model's state dict to this module's names.

    ``peft`` wraps the model twice (``base_model.model.``), keeps the frozen layer as
    ``base_layer`` and stores each factor as a linear layer per adapter
    (``lora_A.default.weight``); here they are ``base`` and the tensors ``lora_A``, ``lora_B``.
    """
    renamed = {}
    for key, value in peft_state.items():
        if not key.startswith("base_model.model."):
            raise ValueError(f"not a peft LoRA state dict: key {key!r} lacks 'base_model.model.'")
        key = key.removeprefix("base_model.model.").replace(".base_layer.", ".base.")
        for factor in ("lora_A", "lora_B"):
            key = key.replace(f".{factor}.default.weight", f".{factor}")
        renamed[key] = value
    return renamed
