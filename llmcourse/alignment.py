"""Chapter 13: from a text predictor to an assistant, supervised fine-tuning and DPO.

**Supervised fine-tuning (SFT)** trains on conversations rendered with the model's chat
template. The model should learn to write the assistant's turns, not to predict the user's
questions, so the labels of every prompt token are set to -100 (``ignore_index`` of
``F.cross_entropy`` and of Hugging Face's models) and the loss is the mean next-token
cross-entropy over the assistant's tokens only (Ouyang et al., 2022; ``trl``'s
``assistant_only_loss``).

**Direct preference optimization (DPO)** (Rafailov et al., 2023) trains on pairs of answers
to one prompt, a chosen ``y_w`` and a rejected ``y_l``. With the policy's and a frozen
reference model's summed log-probabilities of each answer, the implicit reward of an answer
is ``β (log π(y|x) - log π_ref(y|x))`` and the loss is

    L = -log σ(β [(log π(y_w|x) - log π_ref(y_w|x)) - (log π(y_l|x) - log π_ref(y_l|x))])

Letters: B batch (sequences or pairs), T positions, V vocabulary size.
"""

from __future__ import annotations

import json

import torch
from torch.nn import functional as F

from llmcourse.validation import logits_and_targets, positive_number

__all__ = [
    "IGNORE_INDEX",
    "sft_example",
    "pad_examples",
    "sft_loss",
    "response_log_probs",
    "dpo_loss",
    "json_answer",
    "follows_format",
    "FORMAT_TRAIN",
    "FORMAT_HELD_OUT",
]

IGNORE_INDEX = -100  # the label of a position that the loss skips


def sft_example(tokenizer, messages) -> tuple[list[int], list[int]]:
    """Token ids of a conversation and its labels, the prompt's labels masked.

    ``messages`` is a chat (``[{"role": ..., "content": ...}, ...]``) whose last message is
    the assistant's answer. Everything before that answer, as the chat template renders it
    with ``add_generation_prompt=True``, gets the label ``IGNORE_INDEX``; the answer's own
    tokens (with the template's end-of-turn token) keep their ids as labels.
    """
    if not messages or not isinstance(messages, (list, tuple)):
        raise ValueError("messages must be a non-empty list of {'role', 'content'} dicts")
    if messages[-1].get("role") != "assistant":
        raise ValueError(
            f"the last message must be the assistant's answer, got role "
            f"{messages[-1].get('role')!r}"
        )
    prompt = tokenizer.apply_chat_template(
        list(messages[:-1]), add_generation_prompt=True, tokenize=True, return_dict=True
    )["input_ids"]
    full = tokenizer.apply_chat_template(list(messages), tokenize=True, return_dict=True)[
        "input_ids"
    ]
    if full[: len(prompt)] != prompt:
        raise ValueError(
            "the chat template renders the prompt differently inside the full "
            "conversation, so the prompt tokens cannot be found by position"
        )
    return full, [IGNORE_INDEX] * len(prompt) + full[len(prompt) :]


def pad_examples(examples, pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-pad ``[(ids, labels), ...]`` to ``(input_ids, labels, attention_mask)``, each (B, T).

    Padding gets the label ``IGNORE_INDEX`` and attention mask 0.
    """
    if not examples:
        raise ValueError("examples is empty")
    length = max(len(ids) for ids, _ in examples)
    input_ids = torch.full((len(examples), length), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), length), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), length), dtype=torch.long)
    for row, (ids, labs) in enumerate(examples):
        if len(ids) != len(labs):
            raise ValueError(f"example {row}: {len(ids)} ids but {len(labs)} labels")
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(ids)] = torch.tensor(labs)
        mask[row, : len(ids)] = 1
    return input_ids, labels, mask


def sft_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over the positions whose label is not IGNORE_INDEX.

    The logits at position t predict the token at t + 1, so logits and labels are shifted
    against each other by one, as in chapter 8.
    """
    logits_and_targets(logits, labels, "labels")
    targets = labels[:, 1:]  # (B, T - 1): the token each position must predict
    if (targets == IGNORE_INDEX).all():
        raise ValueError("every label is masked: there is no assistant token to learn")
    return F.cross_entropy(
        logits[:, :-1].flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX
    )


def response_log_probs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Summed log-probability of each sequence's unmasked tokens: (B, T, V), (B, T) -> (B,)."""
    logits_and_targets(logits, labels, "labels")
    targets = labels[:, 1:]
    keep = targets != IGNORE_INDEX
    log_probs = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # (B, T - 1, V)
    picked = log_probs.gather(-1, targets.clamp(min=0)[..., None])[..., 0]  # (B, T - 1)
    return (picked * keep).sum(dim=-1)


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float = 0.1,
):
    """The DPO loss of each pair, and the implicit rewards of the chosen and rejected answers.

    Inputs are summed log-probabilities, shape (B,). Returns ``(losses, chosen_rewards,
    rejected_rewards)``, each (B,); the training loss is ``losses.mean()``.
    """
    tensors = (policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    if not all(isinstance(t, torch.Tensor) for t in tensors):
        raise TypeError("the four log-probabilities must be tensors")
    if len({t.shape for t in tensors}) != 1 or policy_chosen.dim() != 1:
        raise ValueError(
            f"expected four log-probability tensors of one shape (B,), got "
            f"{[tuple(t.shape) for t in tensors]}"
        )
    positive_number("beta", beta)
    chosen_rewards = beta * (policy_chosen - ref_chosen)
    rejected_rewards = beta * (policy_rejected - ref_rejected)
    losses = -F.logsigmoid(chosen_rewards - rejected_rewards)
    return losses, chosen_rewards.detach(), rejected_rewards.detach()


# The behaviour chapter 13 teaches: answer in strict JSON, {"answer": "..."}, nothing else.
# Each row: a question, its short answer, and the answer as a plain sentence (the rejected
# answer of a preference pair). Held-out questions are never trained on.
FORMAT_TRAIN = [
    ("What is the capital of France?", "Paris", "The capital of France is Paris."),
    ("How many legs does a spider have?", "8", "A spider has eight legs."),
    ("What colour is the sky on a clear day?", "blue", "On a clear day the sky is blue."),
    ("Who wrote Hamlet?", "William Shakespeare", "Hamlet was written by William Shakespeare."),
    ("What is 7 times 6?", "42", "Seven times six is 42."),
    ("Which planet is known as the Red Planet?", "Mars", "Mars is known as the Red Planet."),
    ("What do bees make?", "honey", "Bees make honey."),
    (
        "What is the largest ocean on Earth?",
        "the Pacific Ocean",
        "The largest ocean on Earth is the Pacific.",
    ),
    ("How many days are in a week?", "7", "There are seven days in a week."),
    (
        "What is the freezing point of water in Celsius?",
        "0 degrees",
        "Water freezes at 0 degrees Celsius.",
    ),
    ("What language is spoken in Spain?", "Spanish", "People in Spain speak Spanish."),
    ("What is the opposite of hot?", "cold", "The opposite of hot is cold."),
    (
        "Which animal is known as the king of the jungle?",
        "the lion",
        "The lion is known as the king of the jungle.",
    ),
    ("How many continents are there?", "7", "There are seven continents."),
    (
        "What gas do plants absorb from the air?",
        "carbon dioxide",
        "Plants absorb carbon dioxide from the air.",
    ),
    ("What is the capital of Japan?", "Tokyo", "The capital of Japan is Tokyo."),
    ("How many hours are in a day?", "24", "A day has twenty-four hours."),
    ("What is the chemical symbol for gold?", "Au", "The chemical symbol for gold is Au."),
    (
        "Who painted the Mona Lisa?",
        "Leonardo da Vinci",
        "The Mona Lisa was painted by Leonardo da Vinci.",
    ),
    ("What is the tallest animal?", "the giraffe", "The giraffe is the tallest animal."),
    ("What is 15 minus 9?", "6", "Fifteen minus nine is six."),
    ("Which season comes after winter?", "spring", "Spring comes after winter."),
    ("What is the capital of Italy?", "Rome", "The capital of Italy is Rome."),
    ("What do you call a baby cat?", "a kitten", "A baby cat is called a kitten."),
]
FORMAT_HELD_OUT = [
    ("What is the capital of Germany?", "Berlin", "The capital of Germany is Berlin."),
    ("How many wheels does a bicycle have?", "2", "A bicycle has two wheels."),
    ("What colour is grass?", "green", "Grass is green."),
    (
        "Who wrote Romeo and Juliet?",
        "William Shakespeare",
        "Romeo and Juliet was written by William Shakespeare.",
    ),
    ("What is 9 plus 10?", "19", "Nine plus ten is nineteen."),
    ("Which planet is closest to the Sun?", "Mercury", "Mercury is closest to the Sun."),
    ("What do cows drink?", "water", "Cows drink water."),
    (
        "What is the largest planet in the solar system?",
        "Jupiter",
        "The largest planet in the solar system is Jupiter.",
    ),
    ("How many months are in a year?", "12", "There are twelve months in a year."),
    (
        "What is the boiling point of water in Celsius?",
        "100 degrees",
        "Water boils at 100 degrees Celsius.",
    ),
    ("What language is spoken in Brazil?", "Portuguese", "People in Brazil speak Portuguese."),
    ("What is the opposite of up?", "down", "The opposite of up is down."),
]


def json_answer(answer: str) -> str:
    """The answer in the taught format: ``{"answer": "..."}``."""
    return json.dumps({"answer": answer})


def follows_format(text: str) -> bool:
    """True if ``text`` is exactly one JSON object with one key, "answer", holding a string."""
    try:
        parsed = json.loads(text.strip())
    except json.JSONDecodeError:
        return False
    return (
        isinstance(parsed, dict)
        and list(parsed) == ["answer"]
        and isinstance(parsed["answer"], str)
        and parsed["answer"].strip() != ""
    )
