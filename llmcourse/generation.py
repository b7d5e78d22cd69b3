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

Batched prompts of different lengths are padded on the LEFT (new tokens are appended on the
right) and come with an ``attention_mask`` (B, T), 1 for a real token and 0 for padding. The
model must then accept two more keyword arguments,

    model(input_ids, kv_cache=..., attention_mask=(B, S) 0/1 over every key so far,
          position_ids=(B, T) the positions of the new tokens)

so that no real token attends to a pad and each row numbers its tokens from its first real
one, as if it had no padding (Hugging Face's convention: position = number of real tokens
before it; pads get position 1). ``HuggingFaceLM`` passes both on to a Hugging Face model.

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
from llmcourse.validation import (
    non_negative_int,
    positive_int,
    positive_number,
    probability,
    shape_of,
    token_ids,
    zeros_and_ones,
)

__all__ = [
    "apply_repetition_penalty",
    "apply_temperature",
    "top_k_filter",
    "top_p_filter",
    "process_logits",
    "generate",
    "padding_positions",
    "beam_search",
    "HuggingFaceLM",
]


def _check_logits(logits: Tensor) -> None:
    if not isinstance(logits, Tensor) or logits.dim() != 2 or not logits.dtype.is_floating_point:
        shape = shape_of(logits)
        raise ValueError(f"expected float logits of shape (batch, vocab), got {shape}")


def apply_repetition_penalty(logits: Tensor, input_ids: Tensor, penalty: float) -> Tensor:
    """Make every token already in ``input_ids`` less likely (Keskar et al., 2019).

    A seen token's logit is divided by ``penalty`` if positive and multiplied by it if
    negative, so a penalty > 1 always lowers it (CTRL divided every logit, which would raise
    negative ones). Each seen token is penalised once, however often it occurred.
    ``logits`` (B, V), ``input_ids`` (B, T) -> (B, V). ``penalty=1`` changes nothing.
    """
    _check_logits(logits)
    positive_number("repetition_penalty", penalty)
    if (
        not isinstance(input_ids, Tensor)
        or input_ids.dim() != 2
        or input_ids.shape[0] != logits.shape[0]
    ):
        shape = shape_of(input_ids)
        raise ValueError(f"expected input_ids of shape (batch={logits.shape[0]}, seq), got {shape}")
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
    positive_number("temperature", temperature)
    return logits / temperature


def top_k_filter(logits: Tensor, k: int) -> Tensor:
    """Keep the ``k`` largest logits of each row and set the rest to ``-inf``.

    Tokens tied with the k-th largest are kept too (as Hugging Face's ``TopKLogitsWarper``),
    so with ties more than k may survive; ``k`` larger than the vocabulary keeps everything.
    Softmax of the result renormalises the survivors.
    """
    _check_logits(logits)
    positive_int("top_k", k)
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
    probability("top_p", p)


def process_logits(
    logits: Tensor,
    input_ids: Tensor,
    *,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
) -> Tensor:
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


def _check_generate_args(model, input_ids, max_new_tokens, eos_token_id, use_cache, processors):
    token_ids(input_ids)
    non_negative_int("max_new_tokens", max_new_tokens)
    # Validate the processors' arguments once, up front, on a dummy row (on the CPU: only
    # the arguments are checked, nothing of it reaches the model's device).
    dummy = torch.zeros(1, 2, device="cpu"), torch.zeros(1, 1, dtype=torch.long, device="cpu")
    process_logits(*dummy, **(processors | {"do_sample": True}))
    if eos_token_id is not None:
        non_negative_int("eos_token_id", eos_token_id)
    if use_cache and not (isinstance(getattr(model, "num_layers", None), int)):
        raise ValueError(
            "use_cache=True needs a model with an int attribute num_layers "
            "(see the protocol in llmcourse.generation)"
        )


def _forward_takes(model, name: str) -> bool:
    return name in inspect.signature(model.forward).parameters


def _check_attention_mask(model, input_ids: Tensor, attention_mask) -> None:
    if not isinstance(attention_mask, Tensor) or attention_mask.shape != input_ids.shape:
        shape = shape_of(attention_mask)
        raise ValueError(
            f"attention_mask must be a tensor of the shape of input_ids, "
            f"{tuple(input_ids.shape)}, got {shape}"
        )
    zeros_and_ones("attention_mask", attention_mask)
    mask = attention_mask.long()
    if (mask[:, -1] == 0).any() or (mask.diff(dim=1) < 0).any():
        raise ValueError(
            "attention_mask must be left-padded: in each row the 0s (padding) come "
            "before the 1s, and the last token is real (tokenizer(..., "
            "padding_side='left'))"
        )
    if (mask == 0).any() and not (
        _forward_takes(model, "attention_mask") and _forward_takes(model, "position_ids")
    ):
        raise ValueError(
            f"{type(model).__name__}.forward takes no attention_mask and "
            "position_ids, so it cannot skip padding: generate each prompt alone "
            "(see the protocol in llmcourse.generation)"
        )


def padding_positions(attention_mask: Tensor) -> Tensor:
    """Position ids (B, S) of a left-padded batch: each real token's position counts the real
    tokens before it, so padding shifts nothing; pads get 1 (as Hugging Face; never used)."""
    positions = attention_mask.long().cumsum(dim=-1) - 1
    return positions.masked_fill(attention_mask == 0, 1)


@torch.no_grad()
def generate(
    model,
    input_ids: Tensor,
    max_new_tokens: int,
    *,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
    use_cache: bool = True,
    eos_token_id: int | None = None,
    generator: torch.Generator | None = None,
    attention_mask: Tensor | None = None,
) -> Tensor:
    """Extend ``input_ids`` (B, T) by up to ``max_new_tokens`` tokens; returns (B, T + n).

    Greedy (``do_sample=False``) picks the most likely token; sampling draws from the
    processed distribution with ``torch.multinomial`` (from ``generator``, which must live on
    the model's device, ``torch.Generator(device=...)``, or from PyTorch's global generator of
    that device, as Hugging Face does). Everything stays on the device of ``input_ids``. With
    ``use_cache`` the model sees the prompt once and then one token per step (see
    ``llmcourse.kvcache``); the tokens are the same either way. Rows that produced
    ``eos_token_id`` are padded with it; generation stops when every row has.
    The model runs in eval mode (no dropout) and is put back in its previous mode afterwards.

    ``attention_mask`` (B, T), 1 for real tokens and 0 for padding, lets a batch hold prompts
    of different lengths, padded on the left: the mask and each row's positions go to the model
    (see the protocol above), so each row gets the tokens it would get alone. (As in Hugging
    Face, the repetition penalty counts the pad tokens as seen.)
    """
    processors = {  # process_logits' settings, the same at every step
        "do_sample": do_sample,
        "temperature": temperature,
        "top_k": top_k,
        "top_p": top_p,
        "repetition_penalty": repetition_penalty,
    }
    _check_generate_args(model, input_ids, max_new_tokens, eos_token_id, use_cache, processors)
    if attention_mask is not None:
        _check_attention_mask(model, input_ids, attention_mask)
        if not _forward_takes(model, "attention_mask"):
            attention_mask = None  # all ones: nothing to skip
        else:
            attention_mask = attention_mask.long()
    was_training = model.training
    model.eval()
    try:
        cache = KVCache(model.num_layers) if use_cache else None
        unfinished = torch.ones(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        step_input = input_ids
        last_only = {"logits_to_keep": 1} if _forward_takes(model, "logits_to_keep") else {}
        for _ in range(max_new_tokens):
            padding = {}
            if attention_mask is not None:  # the mask over every key; the new tokens' positions
                positions = padding_positions(attention_mask)[:, -step_input.shape[1] :]
                padding = {"attention_mask": attention_mask, "position_ids": positions}
            logits = model(step_input, kv_cache=cache, **last_only, **padding)[
                :, -1
            ].float()  # (B, V)
            logits = process_logits(logits, input_ids, **processors)
            if do_sample:
                next_ids = torch.multinomial(logits.softmax(-1), 1, generator=generator)[:, 0]
            else:
                next_ids = logits.argmax(dim=-1)  # (B,)
            if eos_token_id is not None:
                next_ids = torch.where(unfinished, next_ids, eos_token_id)
                unfinished &= next_ids != eos_token_id
            input_ids = torch.cat([input_ids, next_ids[:, None]], dim=1)  # (B, T + 1)
            if attention_mask is not None:
                attention_mask = torch.cat(
                    [attention_mask, attention_mask.new_ones(attention_mask.shape[0], 1)], dim=1
                )  # the new token is real
            step_input = next_ids[:, None] if use_cache else input_ids
            if eos_token_id is not None and not unfinished.any():
                break
        return input_ids
    finally:
        model.train(was_training)


def _check_beam_args(
    input_ids, num_beams, max_new_tokens, length_penalty, eos_token_id, early_stopping
):
    token_ids(input_ids, batch=1)  # one prompt
    positive_int("num_beams", num_beams)
    non_negative_int("max_new_tokens", max_new_tokens)
    if (
        not isinstance(length_penalty, (int, float))
        or isinstance(length_penalty, bool)
        or not math.isfinite(length_penalty)
    ):
        raise ValueError(f"length_penalty must be a finite number, got {length_penalty!r}")
    if eos_token_id is not None:
        non_negative_int("eos_token_id", eos_token_id)
    if not isinstance(early_stopping, bool):
        raise ValueError(f"early_stopping must be True or False, got {early_stopping!r}")


@torch.no_grad()
def beam_search(
    model,
    input_ids: Tensor,
    num_beams: int,
    max_new_tokens: int,
    *,
    length_penalty: float = 1.0,
    eos_token_id: int | None = None,
    early_stopping: bool = False,
    return_score: bool = False,
):
    """Beam search (as Hugging Face ``generate(num_beams=..., do_sample=False)``): the one prompt
    ``input_ids`` (1, T) extended by up to ``max_new_tokens`` tokens, (1, T + n).

    Keep the ``num_beams`` best partial sequences ("beams"), scored by the sum of their tokens'
    log-probabilities. Each step extends every beam by every token, keeps the
    ``2 * num_beams`` best candidates, and:

    - a candidate among the best ``num_beams`` that ends in ``eos_token_id``, or that reaches
      ``max_new_tokens``, is *finished*: it joins the finished hypotheses with the score
      ``sum of log-probs / (new tokens) ** length_penalty`` (the eos counted), and the
      ``num_beams`` best finished ones are kept (``length_penalty`` > 0 favours longer ones);
    - the best ``num_beams`` candidates that do not end in eos are the next beams.

    It stops when ``num_beams`` hypotheses are finished and either ``early_stopping`` is True,
    or the best beam's score divided by its current length ** length_penalty cannot beat the
    worst finished one (Hugging Face's heuristic for ``early_stopping=False``), or after
    ``max_new_tokens`` steps. It returns the best finished hypothesis, and with
    ``return_score`` also its score. For clarity each step re-runs the model on every beam
    (no KV cache); ``num_beams=1`` is greedy decoding.
    """
    _check_beam_args(
        input_ids, num_beams, max_new_tokens, length_penalty, eos_token_id, early_stopping
    )
    if max_new_tokens == 0:
        return (input_ids, 0.0) if return_score else input_ids
    was_training = model.training
    model.eval()
    try:
        last_only = {"logits_to_keep": 1} if _forward_takes(model, "logits_to_keep") else {}
        beams = input_ids  # (n, L): one beam to start with
        beam_scores = torch.zeros(1, device=input_ids.device)  # (n,) sums of log-probs
        finished: list[tuple[float, Tensor]] = []  # (normalised score, sequence)
        can_improve = True
        for step in range(1, max_new_tokens + 1):
            logits = model(beams, **last_only)[:, -1].float()  # (n, V)
            scores = logits.log_softmax(dim=-1) + beam_scores[:, None]  # (n, V) every extension
            V = scores.shape[1]
            top_scores, top_index = scores.flatten().topk(min(2 * num_beams, scores.numel()))
            parent, token = top_index // V, top_index % V  # which beam, which token
            candidates = torch.cat([beams[parent], token[:, None]], dim=1)
            ends = (
                token == eos_token_id
                if eos_token_id is not None
                else torch.zeros_like(token, dtype=torch.bool)
            )
            if step == max_new_tokens:
                ends = torch.ones_like(ends)  # out of tokens: all end
            # 1. finished hypotheses: only candidates ranked among the best num_beams count
            full = len(finished) == num_beams
            if can_improve and not (full and early_stopping):
                for rank in range(num_beams):
                    if rank < len(ends) and ends[rank]:
                        finished.append(
                            (float(top_scores[rank] / step**length_penalty), candidates[rank])
                        )
                finished = sorted(finished, key=lambda h: h[0], reverse=True)[:num_beams]
            # 2. the next beams: the best candidates that did not end
            alive = (~ends).nonzero()[:num_beams, 0]
            if len(alive) == 0:
                break
            beams, beam_scores = candidates[alive], top_scores[alive]
            # 3. stop when no open beam can beat the worst finished hypothesis
            if len(finished) == num_beams:
                best_possible = float(beam_scores[0] / step**length_penalty)
                can_improve = can_improve and best_possible > finished[-1][0]
                if not can_improve or early_stopping:
                    break
        score, best = finished[0]
        return (best[None], score) if return_score else best[None]
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

    def forward(
        self,
        input_ids: Tensor,
        kv_cache: KVCache | None = None,
        logits_to_keep: int = 0,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
    ) -> Tensor:
        if kv_cache is not None:
            raise ValueError("HuggingFaceLM keeps no KVCache: call generate(..., use_cache=False)")
        return self.model(
            input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            logits_to_keep=logits_to_keep,
            use_cache=False,
        ).logits
