"""llmcourse.lora against peft's LoRA on a tiny Llama, with the same base and adapter weights."""

import copy

import pytest
import torch
from conftest import hf_llama
from torch import nn
from torch.testing import assert_close

from llmcourse import lora

peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")


def adapted_pair(r=4, alpha=8, targets=("q_proj", "v_proj")):
    """Our LoRA model and peft's, with the same base weights and the same (non-zero) adapters."""
    base = hf_llama()
    config = peft.LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=list(targets))
    theirs = peft.get_peft_model(copy.deepcopy(base), config).eval()
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.5)  # B starts at zero; make the update visible
    ours = copy.deepcopy(base)
    lora.add_lora(ours, targets, r=r, alpha=alpha)
    ours.load_state_dict(lora.state_dict_from_peft(theirs.state_dict()), strict=True)
    return ours.eval(), theirs, base


def test_same_outputs_as_peft():
    ours, theirs, base = adapted_pair()
    ids = torch.randint(0, 97, (2, 9))
    with torch.no_grad():
        want = theirs(input_ids=ids).logits
        assert_close(ours(input_ids=ids).logits, want)
        assert not torch.allclose(base(input_ids=ids).logits, want, atol=1e-3)


def test_same_trainable_parameters_as_peft():
    ours, theirs, _ = adapted_pair(r=2, targets=("q_proj", "k_proj", "v_proj", "o_proj"))
    trainable, total = lora.count_parameters(ours)
    their_trainable = sum(p.numel() for p in theirs.parameters() if p.requires_grad)
    assert trainable == their_trainable
    # r (in + out) per matrix: q, o are 32 x 32; k, v are 32 -> 16; two layers
    assert trainable == 2 * 2 * (2 * (32 + 32) + 2 * (32 + 16))
    assert total == sum(p.numel() for p in hf_llama().parameters()) + trainable


def test_merged_equals_adapted_and_peft_merge():
    ours, theirs, _ = adapted_pair()
    ids = torch.randint(0, 97, (3, 6))
    with torch.no_grad():
        adapted = ours(input_ids=ids).logits
        merged_model = lora.merge_lora(copy.deepcopy(ours))
        assert not any(isinstance(m, lora.LoRALinear) for m in merged_model.modules())
        assert_close(merged_model(input_ids=ids).logits, adapted, atol=1e-5, rtol=1e-5)
        peft_merged = theirs.merge_and_unload()
        assert_close(
            merged_model.state_dict()["model.layers.1.self_attn.q_proj.weight"],
            peft_merged.state_dict()["model.layers.1.self_attn.q_proj.weight"],
        )


def test_starts_equal_to_base_and_only_adapters_train():
    base = nn.Linear(6, 5)
    layer = lora.LoRALinear(copy.deepcopy(base), r=2, alpha=4)
    x = torch.randn(3, 6)
    assert_close(layer(x), base(x))  # B = 0
    assert layer.scaling == 2.0
    layer(x).pow(2).sum().backward()
    assert layer.base.weight.grad is None and layer.base.bias.grad is None
    assert layer.lora_B.grad.abs().sum() > 0  # A is random, so B gets a gradient
    assert torch.all(layer.lora_A.grad == 0)  # and A none yet, since B = 0


def test_lora_equals_explicit_low_rank_update_float64():
    base = nn.Linear(7, 4, dtype=torch.float64)
    layer = lora.LoRALinear(base, r=3, alpha=1.5)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(2, 5, 7, dtype=torch.float64)
    delta = 0.5 * layer.lora_B @ layer.lora_A
    assert_close(layer(x), x @ (base.weight + delta).T + base.bias)
    assert torch.linalg.matrix_rank(delta) <= 3


def test_adamw_state_bytes():
    assert lora.adamw_state_bytes(1000) == 8000
    assert lora.adamw_state_bytes(10, bytes_per_value=2) == 40


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: lora.LoRALinear(nn.Conv1d(2, 2, 1), 1, 1), "wraps an nn.Linear"),
        (lambda: lora.LoRALinear(nn.Linear(4, 4), 0, 1), "positive int"),
        (lambda: lora.LoRALinear(nn.Linear(4, 3), 4, 1), "exceeds"),
        (lambda: lora.LoRALinear(nn.Linear(4, 4), 2, 0), "alpha"),
        (lambda: lora.add_lora(nn.Sequential(nn.Linear(2, 2)), "q_proj", 1, 1), "non-empty list"),
        (lambda: lora.add_lora(nn.Sequential(nn.Linear(2, 2)), ["q_proj"], 1, 1), "no nn.Linear"),
        (lambda: lora.merge_lora(nn.Linear(2, 2)), "no LoRA layers"),
        (lambda: lora.adamw_state_bytes(-1), "n_trainable must be an int >= 0"),
        (lambda: lora.adamw_state_bytes(5, 3), "bytes_per_value"),
        (lambda: lora.state_dict_from_peft({"model.x": 1}), "not a peft"),
    ],
)
def test_input_validation(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()
