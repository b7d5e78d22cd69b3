"""Chapter 14: speculative decoding (Leviathan et al., 2023; Chen et al., 2023).

Generating n tokens with a large model costs n forward passes, one after the other, and on
a CPU or GPU each pass is limited by reading the weights rather than by arithmetic: scoring
k + 1 positions at once costs little more than scoring one. Speculative decoding exploits
that. A cheap *draft* model proposes k tokens, one at a time; the *target* model scores all
of them in one pass, and keeps the longest prefix it agrees with, plus one token of its own.

- Greedy: a drafted token is kept if it is the target's argmax at that position; at the
  first disagreement the target's own argmax replaces it. The result is exactly the target's
  greedy text, whatever the draft.
- Sampling: drafted token x (drawn from the draft's q) is kept with probability
  min(1, p(x) / q(x)); if rejected, a token is drawn from the residual max(0, p - q),
  renormalised. Each token then follows the target's p exactly (Leviathan et al., 2023,
  appendix A.1; Chen et al., 2023, theorem 1).

Both models follow ``llmcourse.generation``'s protocol and keep a ``KVCache``; after a
rejection the caches are cut back to the accepted tokens. Batch size 1.
Shapes: T positions, V vocabulary size, k drafted tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from llmcourse.kvcache import KVCache, decoder_inputs
from llmcourse.validation import non_negative_int, positive_int, token_ids

__all__ = [
    "EarlyExitDraft",
    "SpeculativeStats",
    "accept_probability",
    "crop_cache",
    "residual_distribution",
    "speculative_generate",
]


def _check_distribution(name: str, p: Tensor) -> None:
    if not isinstance(p, Tensor) or p.ndim != 1 or not p.dtype.is_floating_point:
        raise ValueError(f"expected {name} as a 1-D float tensor of probabilities, got {p!r:.60}")
    if (p < 0).any() or abs(p.sum().item() - 1) > 1e-4:
        raise ValueError(f"{name} must be non-negative and sum to 1, sums to {p.sum().item():.4g}")


def accept_probability(p: Tensor, q: Tensor, token: int) -> float:
    """min(1, p(token) / q(token)): the chance that a drafted ``token`` is kept."""
    _check_distribution("p", p)
    _check_distribution("q", q)
    if not q[token] > 0:
        raise ValueError(f"token {token} has probability 0 under the draft: it cannot be drafted")
    return min(1.0, (p[token] / q[token]).item())


def residual_distribution(p: Tensor, q: Tensor) -> Tensor:
    """max(0, p - q), renormalised: where a rejected draft token is resampled from.

    It puts mass exactly where the target wants more than the draft offered. (If p equals q
    nothing is ever rejected; p is returned then.)
    """
    _check_distribution("p", p)
    _check_distribution("q", q)
    residual = (p - q).clamp(min=0)
    total = residual.sum()
    return residual / total if total > 0 else p


def crop_cache(cache: KVCache, length: int) -> None:
    """Keep the first ``length`` positions of every layer of ``cache`` (drop rejected tokens)."""
    for i, (k, v) in enumerate(zip(cache.keys, cache.values)):
        if k is not None:
            cache.keys[i], cache.values[i] = k[:, :, :length], v[:, :, :length]


class EarlyExitDraft(nn.Module):
    """A draft made of the first ``num_layers`` blocks of a ``llmcourse.llama`` model, followed
    by its final norm and output layer: no new weights, the same vocabulary, a fraction of
    the cost (the idea of self-speculative decoding, Zhang et al., 2024)."""

    def __init__(self, base: nn.Module, num_layers: int):
        super().__init__()
        total = len(base.model.layers)
        if (
            isinstance(num_layers, bool)
            or not isinstance(num_layers, int)
            or not 1 <= num_layers <= total
        ):
            raise ValueError(f"num_layers must be an int from 1 to {total}, got {num_layers!r}")
        self.base, self.n_layers = base, num_layers

    @property
    def num_layers(self) -> int:
        return self.n_layers

    def forward(
        self, input_ids: Tensor, kv_cache: KVCache | None = None, logits_to_keep: int = 0
    ) -> Tensor:
        """The base model's forward (``LlamaForCausalLM.forward``), stopped after n_layers."""
        model, V = self.base.model, self.base.config.vocab_size
        positions, _ = decoder_inputs(input_ids, V, kv_cache, self.n_layers, logits_to_keep)
        x = model.embed_tokens(input_ids)  # (B, T) -> (B, T, C)
        cos, sin = (t.to(x.dtype) for t in model.rotary_emb(positions))
        for layer in model.layers[: self.n_layers]:
            x = layer(x, cos, sin, kv_cache)
        return self.base.lm_head(model.norm(x[:, -logits_to_keep:]))  # (B, T or n, V)


@dataclass
class SpeculativeStats:
    """What happened during one ``speculative_generate`` call."""

    drafted: int = 0  # tokens the draft proposed
    accepted: int = 0  # of those, tokens the target kept
    target_passes: int = 0  # forward passes of the target (the prompt's included)

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.drafted if self.drafted else 0.0


def _next_logits(model, cache: KVCache, ids: Tensor, n: int) -> Tensor:
    """Feed the tokens of ``ids`` that ``cache`` lacks; logits of the last ``n`` positions."""
    return model(ids[:, len(cache) :], kv_cache=cache, logits_to_keep=n)[0].float()  # (n, V)


def _check_args(input_ids, max_new_tokens, k):
    token_ids(input_ids, batch=1)  # one sequence
    non_negative_int("max_new_tokens", max_new_tokens)
    positive_int("k", k)


@torch.no_grad()
def speculative_generate(
    target,
    draft,
    input_ids: Tensor,
    max_new_tokens: int,
    k: int = 4,
    *,
    do_sample: bool = False,
    generator: torch.Generator | None = None,
    eos_token_id: int | None = None,
) -> tuple[Tensor, SpeculativeStats]:
    """Extend ``input_ids`` (1, T) by ``max_new_tokens`` tokens of ``target`` (fewer if
    ``eos_token_id`` comes first), ``k`` drafted tokens per target pass.

    Greedy by default: the same tokens as ``llmcourse.generation.generate(target, ...)``.
    With ``do_sample=True``, tokens are distributed as the target's softmax (no temperature
    or filtering), with randomness from ``generator`` (a ``torch.Generator`` on the models'
    device). Returns (ids, statistics). Everything runs on the device of ``input_ids`` and
    the models; the accepted tokens pass through Python ints, which the loop needs anyway.
    """
    _check_args(input_ids, max_new_tokens, k)
    target_cache, draft_cache = KVCache(target.num_layers), KVCache(draft.num_layers)
    stats = SpeculativeStats()
    ids, end = input_ids, input_ids.shape[1] + max_new_tokens

    def choose(probs: Tensor) -> Tensor:  # (V,) -> (1,)
        return (
            torch.multinomial(probs, 1, generator=generator) if do_sample else probs.argmax()[None]
        )

    while ids.shape[1] < end:
        n_draft = min(k, end - ids.shape[1] - 1)  # the target adds one token of its own
        drafted, q = ids, []
        for _ in range(n_draft):  # the draft proposes, one token at a time
            q.append(_next_logits(draft, draft_cache, drafted, 1)[0].softmax(-1))  # (V,)
            drafted = torch.cat([drafted, choose(q[-1])[None]], dim=1)
        # The target scores the last known token and every drafted one in one pass.
        p = _next_logits(target, target_cache, drafted, n_draft + 1).softmax(-1)  # (k+1, V)
        stats.target_passes += 1
        new = drafted[0, ids.shape[1] :].tolist()
        kept = []
        for i, token in enumerate(new):
            if do_sample:
                u = torch.rand((), generator=generator, device=p.device).item()
                ok = u < accept_probability(p[i], q[i], token)
            else:
                ok = token == p[i].argmax().item()
            if not ok:
                correction = choose(residual_distribution(p[i], q[i]) if do_sample else p[i])
                kept.append(correction.item())
                break
            kept.append(token)
        else:  # every drafted token kept: the target's next token comes for free
            kept.append(choose(p[n_draft]).item())
        stats.drafted += n_draft
        stats.accepted += len(kept) - 1
        if eos_token_id is not None and eos_token_id in kept:
            kept = kept[: kept.index(eos_token_id) + 1]
            end = ids.shape[1] + len(kept)
        ids = torch.cat([ids, torch.tensor([kept], dtype=ids.dtype, device=ids.device)], dim=1)
        crop_cache(target_cache, ids.shape[1] - 1)  # everything but the newest token
        crop_cache(draft_cache, min(len(draft_cache), ids.shape[1] - 1))
    return ids, stats
