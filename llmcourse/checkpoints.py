"""Copying weights between our modules and reference ones, key by key, with clear errors.

Every ``from_hf`` / ``to_hf`` / ``from_torch`` in the package goes through ``copy_weights``:
it checks that the two state dicts hold the same tensors (none missing, none unused, every
shape equal) and names the first problem, instead of failing inside ``copy_`` or, worse,
broadcasting silently. Build the target in the source's dtype and device before copying
(``cls(config).to(ref.device, ref.dtype)``): ``copy_`` into a float32 model would round
float64 weights.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn

__all__ = ["copy_weights"]


def copy_weights(
    target: nn.Module,
    source: Mapping[str, Tensor],
    *,
    transposed: Iterable[str] = (),
    optional: Iterable[str] = (),
    ignored: Iterable[str] = (),
) -> None:
    """Copy ``source[key]`` into ``target``'s parameter or buffer ``key``, for every key.

    ``transposed``: key suffixes whose source tensor is stored transposed (GPT-2's Conv1D
    keeps (in, out) where ``nn.Linear`` keeps (out, in)). ``optional``: target keys the source
    may lack (a tied ``lm_head.weight`` that checkpoints leave out). ``ignored``: source keys
    that the target does not have and need not (BERT's pooler). Anything else missing, unused
    or mis-shaped raises ``ValueError`` naming the key.
    """
    ours = target.state_dict()
    transposed, optional, ignored = tuple(transposed), set(optional), set(ignored)
    expected = set(ours) - (optional - set(source))
    if missing := sorted(expected - set(source)):
        raise ValueError(
            f"the source lacks {len(missing)} tensor(s) the model needs, "
            f"e.g. {missing[:3]}: does the config match the checkpoint?"
        )
    if unused := sorted(set(source) - set(ours) - ignored):
        raise ValueError(
            f"the source has {len(unused)} tensor(s) the model does not, "
            f"e.g. {unused[:3]}: does the config match the checkpoint?"
        )
    with torch.no_grad():
        for key in sorted(expected):
            tensor = source[key]
            if transposed and key.endswith(transposed):
                tensor = tensor.t()
            if tensor.shape != ours[key].shape:
                raise ValueError(
                    f"{key}: the source's tensor has shape {tuple(tensor.shape)}, "
                    f"the model expects {tuple(ours[key].shape)}"
                )
            ours[key].copy_(tensor)
