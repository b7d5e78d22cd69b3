"""llmcourse.alignment: the SFT prompt mask and loss, sequence log-probabilities, the DPO loss."""

import math

import pytest
import torch
from torch.testing import assert_close

from llmcourse import alignment as al


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from llmcourse.offline import smollm2_path

    return AutoTokenizer.from_pretrained(smollm2_path())


def chat(question, answer):
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def test_sft_example_masks_exactly_the_prompt(tokenizer):
    ids, labels = al.sft_example(tokenizer, chat("Who wrote Hamlet?", '{"answer": "Shakespeare"}'))
    prompt = tokenizer.apply_chat_template(
        chat("Who wrote Hamlet?", "")[:1], add_generation_prompt=True, tokenize=False
    )
    n_prompt = len(tokenizer(prompt)["input_ids"])
    assert labels[:n_prompt] == [al.IGNORE_INDEX] * n_prompt
    assert labels[n_prompt:] == ids[n_prompt:]
    answer = tokenizer.decode([i for i, label in zip(ids, labels) if label != al.IGNORE_INDEX])
    assert answer.startswith('{"answer": "Shakespeare"}<|im_end|>')


def test_sft_loss_equals_hand_computation_and_transformers_loss():
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 11, dtype=torch.float64)
    labels = torch.tensor([[-100, -100, -100, 4, 7, 1], [-100, -100, 2, 3, -100, -100]])
    terms = [
        -torch.log_softmax(logits[b, t - 1], -1)[labels[b, t]]
        for b in range(2)
        for t in range(6)
        if labels[b, t] != -100
    ]
    assert_close(al.sft_loss(logits, labels), torch.stack(terms).mean())
    from transformers.loss.loss_utils import ForCausalLMLoss

    want = ForCausalLMLoss(logits, labels, vocab_size=11)  # transformers upcasts to float32
    assert_close(al.sft_loss(logits.float(), labels), want)


def test_response_log_probs_sums_the_answer_tokens():
    torch.manual_seed(1)
    logits = torch.randn(2, 5, 7)
    labels = torch.tensor([[-100, -100, 3, 5, 0], [-100, 6, 6, -100, -100]])
    want = torch.stack(
        [
            sum(
                torch.log_softmax(logits[b, t - 1], -1)[labels[b, t]]
                for t in range(5)
                if labels[b, t] != -100
            )
            for b in range(2)
        ]
    )
    assert_close(al.response_log_probs(logits, labels), want)
    n_answer = (labels[:, 1:] != -100).sum()
    assert_close(
        -al.response_log_probs(logits, labels).sum() / n_answer, al.sft_loss(logits, labels)
    )


def test_pad_examples():
    ids, labels, mask = al.pad_examples([([1, 2, 3], [-100, 2, 3]), ([4], [4])], pad_id=0)
    assert ids.tolist() == [[1, 2, 3], [4, 0, 0]]
    assert labels.tolist() == [[-100, 2, 3], [4, -100, -100]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def test_dpo_loss_equals_bradley_terry_and_its_gradient():
    torch.manual_seed(2)
    pc, pr, rc, rr = (torch.randn(5, dtype=torch.float64) * 3 for _ in range(4))
    pc.requires_grad_(True)
    pr.requires_grad_(True)
    beta = 0.3
    losses, chosen_r, rejected_r = al.dpo_loss(pc, pr, rc, rr, beta)
    # the paper's form: the Bradley-Terry probability that the chosen answer wins
    win = torch.exp(beta * (pc - rc)) / (torch.exp(beta * (pc - rc)) + torch.exp(beta * (pr - rr)))
    assert_close(losses, -torch.log(win))
    assert_close(chosen_r - rejected_r, beta * ((pc - rc) - (pr - rr)).detach())
    losses.sum().backward()
    weight = torch.sigmoid(-(chosen_r - rejected_r))  # large when the pair is ranked wrongly
    assert_close(pc.grad, -beta * weight)
    assert_close(pr.grad, beta * weight)
    assert torch.autograd.gradcheck(
        lambda a, b: al.dpo_loss(a, b, rc, rr, beta)[0],
        (pc.detach().requires_grad_(), pr.detach().requires_grad_()),
    )


def test_dpo_loss_is_log_2_when_policy_equals_reference():
    logps = torch.tensor([-3.0, -10.0])
    losses, chosen_r, rejected_r = al.dpo_loss(logps, logps.flip(0), logps, logps.flip(0))
    assert_close(losses, torch.full((2,), math.log(2)))
    assert torch.all(chosen_r == 0) and torch.all(rejected_r == 0)


def test_follows_format():
    assert al.follows_format('{"answer": "Paris"}') and al.follows_format(al.json_answer("8"))
    assert al.follows_format('  {"answer": "Mars"}\n')
    for bad in [
        "The capital is Paris.",
        '{"answer": "Paris"',
        '{"reply": "Paris"}',
        '{"answer": ""}',
        '{"answer": 8}',
        '{"answer": "a", "b": 1}',
        '["Paris"]',
    ]:
        assert not al.follows_format(bad), bad


def test_task_splits_do_not_overlap():
    train = {q for q, _, _ in al.FORMAT_TRAIN}
    assert not train & {q for q, _, _ in al.FORMAT_HELD_OUT}
    assert len(train) == len(al.FORMAT_TRAIN)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: al.sft_loss(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long)), "batch, seq"),
        (lambda: al.sft_loss(torch.zeros(1, 3, 4), torch.zeros(1, 2, dtype=torch.long)), "labels"),
        (lambda: al.sft_loss(torch.zeros(1, 3, 4), torch.full((1, 3), -100)), "every label"),
        (
            lambda: al.dpo_loss(torch.zeros(2), torch.zeros(3), torch.zeros(2), torch.zeros(2)),
            "one shape",
        ),
        (lambda: al.dpo_loss(*[torch.zeros(2)] * 4, beta=0), "beta"),
        (lambda: al.dpo_loss([0.0], [0.0], [0.0], [0.0]), "tensors"),
        (lambda: al.pad_examples([], 0), "empty"),
        (lambda: al.pad_examples([([1, 2], [1])], 0), "labels"),
        (lambda: al.sft_example(None, [{"role": "user", "content": "hi"}]), "assistant"),
        (lambda: al.sft_example(None, []), "non-empty"),
    ],
)
def test_input_validation(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()
