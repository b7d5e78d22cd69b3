"""Chapter 9: generating text from a language model, one token at a time.

A language model gives, for every position, logits over the vocabulary for the next token.
Generation repeats: run the model, take the last position's logits, reshape that
distribution, choose a token, append it. The reshaping steps ("logits processors") are
applied in Hugging Face ``generate``'s order, so that for the same weights and the same seed
``generate`` here returns the same tokens as ``transformers``' ``model.generate``:

    1. repetition penalty (Keskar et al., 2019, CTRL)   always, greedy or sampled
    2. temperature        logits / T                     sampling only
    3. top-k              keep the k largest logits      sampling only
    4. top-p (nucleus)    keep the smallest set of most likely tokens with mass >= p
                          (Holtzman et al., 2020)        sampling only

then greedy ``argmax`` or ``torch.multinomial(softmax(logits), 1)``.

The model protocol (``llmcourse.gpt.GPT`` and chapter 12's Llama follow it):

    model(input_ids: LongTensor (B, T), kv_cache: KVCache | None = None) -> logits (B, T, V)
    model.num_layers: int      the number of layers, to size a ``KVCache``

A model whose forward also accepts ``logits_to_keep`` (as the GPT, the Llama and Hugging
Face's models do) is asked for the last position's logits only.

With a cache, the model appends each layer's new keys and values to it and numbers the new
tokens from ``len(kv_cache)``; generation then feeds only the newest token at each step.

Hugging Face differences to know when comparing: ``transformers`` samples with ``top_k=50`` by
default; pass ``top_k=0`` there for "no top-k". It also pads the rows that have finished (met
``eos_token_id``) with ``pad_token_id``, which defaults to the end-of-sequence id, as here.
Shape letters: B batch, T sequence length, V vocabulary size.
"""

from __future__ import annotations

import inspect
import math

import torch
from torch import Tensor

from llmcourse.kvcache import KVCache

__all__ = ["apply_repetition_penalty", "apply_temperature", "top_k_filter", "top_p_filter",
           "process_logits", "generate", "HuggingFaceLM"]


def _check_logits(logits: Tensor) -> None:
    if not isinstance(logits, Tensor) or logits.dim() != 2 or not logits.dtype.is_floating_point:
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(f"expected float logits of shape (batch, vocab), got {shape}")


def apply_repetition_penalty(logits: Tensor, input_ids: Tensor, penalty: float) -> Tensor:
    """Make every token already in ``input_ids`` less likely (Keskar et al., 2019).

    A seen token's logit is divided by ``penalty`` if positive and multiplied by it if
    negative, so a penalty > 1 always lowers it (CTRL divided every logit, which would raise
    negative ones). Each seen token is penalised once, however often it occurred.
    ``logits`` (B, V), ``input_ids`` (B, T) -> (B, V). ``penalty=1`` changes nothing.
    """
    _check_logits(logits)
    if not isinstance(penalty, (int, float)) or not penalty > 0 or not math.isfinite(penalty):
        raise ValueError(f"repetition penalty must be a finite number > 0, got {penalty!r}")
    if not isinstance(input_ids, Tensor) or input_ids.dim() != 2 or \
            input_ids.shape[0] != logits.shape[0]:
        shape = (tuple(input_ids.shape) if isinstance(input_ids, Tensor)
                 else type(input_ids).__name__)
        raise ValueError(f"expected input_ids of shape (batch={logits.shape[0]}, seq), "
                         f"got {shape}")
    if input_ids.numel() and (input_ids.min() < 0 or input_ids.max() >= logits.shape[1]):
        raise ValueError(f"input_ids must lie in 0..{logits.shape[1] - 1}")
    seen = logits.gather(1, input_ids)  # (B, T): the logit of every token already there
    seen = torch.where(seen < 0, seen * penalty, seen / penalty)
    return logits.scatter(1, input_ids, seen)


def apply_temperature(logits: Tensor, temperature: float) -> Tensor:
    """Divide the logits by ``temperature``: below 1 sharpens, above 1 flattens the softmax.

    softmax(z / T): as T -> 0 it tends to the argmax (greedy); as T -> inf to uniform.
    """
    _check_logits(logits)
    if not isinstance(temperature, (int, float)) or not temperature > 0 \
            or not math.isfinite(temperature):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    return logits / temperature


def top_k_filter(logits: Tensor, k: int) -> Tensor:
    """Keep the ``k`` largest logits of each row and set the rest to ``-inf``.

    Tokens tied with the k-th largest are kept too (as Hugging Face's ``TopKLogitsWarper``),
    so with ties more than k may survive; ``k`` larger than the vocabulary keeps everything.
    Softmax of the result renormalises the survivors.
    """
    _check_logits(logits)
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"top_k must be a positive int, got {k!r}")
    kth = logits.topk(min(k, logits.shape[-1]), dim=-1).values[:, -1:]  # (B, 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: Tensor, p: float) -> Tensor:
    """Nucleus filtering (Holtzman et al., 2020): keep the smallest set of most likely tokens
    whose probabilities sum to at least ``p``; set the others to ``-inf``.

    The token whose probability carries the sum across ``p`` is kept, and the most likely
    token always is. Computed as Hugging Face's ``TopPLogitsWarper`` does, so the same tokens
    survive: sort ascending, drop the tokens whose cumulative probability from the bottom is
    at most ``1 - p``.
    """
    _check_logits(logits)
    _check_top_p(p)
    sorted_logits, order = logits.sort(dim=-1, descending=False)  # (B, V), least likely first
    tail_mass = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    drop = tail_mass <= 1 - p
    drop[:, -1] = False  # the most likely token always stays
    drop = drop.scatter(1, order, drop)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def _check_top_p(p) -> None:
    if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0 < p <= 1:
        raise ValueError(f"top_p must be a number in (0, 1], got {p!r}")


def process_logits(logits: Tensor, input_ids: Tensor, *, do_sample: bool = False,
                   temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                   repetition_penalty: float = 1.0) -> Tensor:
    """All the processors, in Hugging Face's order: (B, V) next-token logits -> (B, V)."""
    if repetition_penalty != 1.0:
        logits = apply_repetition_penalty(logits, input_ids, repetition_penalty)
    if do_sample:
        if temperature != 1.0:
            logits = apply_temperature(logits, temperature)
        if top_k is not None:
            logits = top_k_filter(logits, top_k)
        if top_p is not None:
            _check_top_p(top_p)
            if top_p < 1.0:  # p = 1 keeps every token: skip the sort, as Hugging Face does
                logits = top_p_filter(logits, top_p)
    return logits


def _check_generate_args(model, input_ids, max_new_tokens, temperature, top_k, top_p,
                         repetition_penalty, eos_token_id, use_cache):
    if not isinstance(input_ids, Tensor) or input_ids.dim() != 2 or 0 in input_ids.shape \
            or input_ids.dtype.is_floating_point or input_ids.dtype == torch.bool:
        shape = (f"{input_ids.dtype} {tuple(input_ids.shape)}" if isinstance(input_ids, Tensor)
                 else type(input_ids).__name__)
        raise ValueError(f"expected integer input_ids of shape (batch, seq) with batch >= 1 "
                         f"and seq >= 1, got {shape}")
    if (not isinstance(max_new_tokens, int) or isinstance(max_new_tokens, bool)
            or max_new_tokens < 0):
        raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    # Validate the processors' arguments once, up front, on a dummy row.
    process_logits(torch.zeros(1, 2), torch.zeros(1, 1, dtype=torch.long), do_sample=True,
                   temperature=temperature, top_k=top_k, top_p=top_p,
                   repetition_penalty=repetition_penalty)
    if eos_token_id is not None and (not isinstance(eos_token_id, int)
                                     or isinstance(eos_token_id, bool) or eos_token_id < 0):
        raise ValueError(f"eos_token_id must be a non-negative int or None, got {eos_token_id!r}")
    if use_cache and not (isinstance(getattr(model, "num_layers", None), int)):
        raise ValueError("use_cache=True needs a model with an int attribute num_layers "
                         "(see the protocol in llmcourse.generation)")


@torch.no_grad()
def generate(model, input_ids: Tensor, max_new_tokens: int, *, do_sample: bool = False,
             temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
             repetition_penalty: float = 1.0, use_cache: bool = True,
             eos_token_id: int | None = None, generator: torch.Generator | None = None) -> Tensor:
    """Extend ``input_ids`` (B, T) by up to ``max_new_tokens`` tokens; returns (B, T + n).

    Greedy (``do_sample=False``) picks the most likely token; sampling draws from the
    processed distribution with ``torch.multinomial`` (from ``generator``, or PyTorch's global
    generator, as Hugging Face does). With ``use_cache`` the model sees the prompt once and then
    one token per step (see ``llmcourse.kvcache``); the tokens are the same either way. Rows that
    produced ``eos_token_id`` are padded with it; generation stops when every row has.
    The model runs in eval mode (no dropout) and is put back in its previous mode afterwards.
    """
    _check_generate_args(model, input_ids, max_new_tokens, temperature, top_k, top_p,
                         repetition_penalty, eos_token_id, use_cache)
    was_training = model.training
    model.eval()
    try:
        cache = KVCache(model.num_layers) if use_cache else None
        unfinished = torch.ones(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        step_input = input_ids
        last_only = ({"logits_to_keep": 1}
                     if "logits_to_keep" in inspect.signature(model.forward).parameters else {})
        for _ in range(max_new_tokens):
            logits = model(step_input, kv_cache=cache, **last_only)[:, -1].float()  # (B, V)
            logits = process_logits(logits, input_ids, do_sample=do_sample,
                                    temperature=temperature, top_k=top_k, top_p=top_p,
                                    repetition_penalty=repetition_penalty)
            if do_sample:
                next_ids = torch.multinomial(logits.softmax(-1), 1, generator=generator)[:, 0]
            else:
                next_ids = logits.argmax(dim=-1)  # (B,)
            if eos_token_id is not None:
                next_ids = torch.where(unfinished, next_ids, eos_token_id)
                unfinished &= next_ids != eos_token_id
            input_ids = torch.cat([input_ids, next_ids[:, None]], dim=1)  # (B, T + 1)
            step_input = next_ids[:, None] if use_cache else input_ids
            if eos_token_id is not None and not unfinished.any():
                break
        return input_ids
    finally:
        model.train(was_training)


class HuggingFaceLM(torch.nn.Module):
    """A Hugging Face causal LM seen through this module's protocol, so that ``generate`` runs
    it: ``HuggingFaceLM(hf_model)(input_ids) -> logits (B, T, V)``. It keeps no cache (call
    ``generate(..., use_cache=False)``): each step re-runs the whole sequence."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.train(model.training)  # a new Module is in training mode: take the model's mode

    def forward(self, input_ids: Tensor, kv_cache: KVCache | None = None,
                logits_to_keep: int = 0) -> Tensor:
        if kv_cache is not None:
            raise ValueError("HuggingFaceLM keeps no KVCache: call generate(..., use_cache=False)")
        return self.model(input_ids, logits_to_keep=logits_to_keep).logits
