"""llmcourse.encoder_decoder against torch.nn.TransformerDecoderLayer with its weights copied."""

import pytest
import torch
from torch import nn

from llmcourse.encoder_decoder import CrossAttentionBlock


def torch_layer(d_model=24, nhead=4, d_ff=40, seed=0, **overrides):
    torch.manual_seed(seed)
    options = dict(dropout=0.1, activation="gelu", batch_first=True, norm_first=True)
    layer = nn.TransformerDecoderLayer(d_model, nhead, d_ff, **(options | overrides))
    with torch.no_grad():  # non-trivial norms and biases, so a swapped copy would show
        for name, p in layer.named_parameters():
            if name.startswith("norm") or name.endswith("bias"):
                p.add_(0.3 * torch.randn_like(p))
    return layer.eval()  # eval: the layer's dropout (0.1 here) is off


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_equals_torch_decoder_layer_with_source_padding(dtype):
    layer = torch_layer().to(dtype)
    ours = CrossAttentionBlock.from_torch(layer)
    x = torch.randn(3, 7, 24, dtype=dtype)
    memory = torch.randn(3, 9, 24, dtype=dtype)
    padding = torch.zeros(3, 9, dtype=torch.bool)
    padding[1, 6:] = True
    padding[2, 2:] = True
    causal = nn.Transformer.generate_square_subsequent_mask(7, dtype=dtype)
    with torch.no_grad():
        want = layer(x, memory, tgt_mask=causal, memory_key_padding_mask=padding)
        got = ours(x, memory, memory_padding=padding)
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(got, want, atol=tol, rtol=tol)
    assert next(ours.parameters()).dtype == dtype


def test_causal_in_the_target_and_reads_the_whole_source():
    ours = CrossAttentionBlock.from_torch(torch_layer())
    x, memory = torch.randn(1, 6, 24), torch.randn(1, 5, 24)
    with torch.no_grad():
        base = ours(x, memory)
        x2 = x.clone()
        x2[0, 3] += 1.0
        target_change = (ours(x2, memory) - base).abs().amax(-1)[0]
        m2 = memory.clone()
        m2[0, -1] += 1.0
        source_change = (ours(x, m2) - base).abs().amax(-1)[0]
    assert (target_change[:3] == 0).all() and (target_change[3:] > 0).all()
    assert (source_change > 0).all()  # every target position reads the last source token


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: CrossAttentionBlock.from_torch(nn.Linear(2, 2)), "expected an nn.Transformer"),
        (lambda: CrossAttentionBlock.from_torch(torch_layer(norm_first=False)), "pre-norm"),
        (lambda: CrossAttentionBlock.from_torch(torch_layer(activation="relu")), "exact GELU"),
        (lambda: CrossAttentionBlock.from_torch(torch_layer(batch_first=False)), "batch_first"),
        (
            lambda: CrossAttentionBlock(24, 4, 40)(torch.randn(2, 3, 24), torch.randn(2, 3)),
            "memory",
        ),
        (
            lambda: CrossAttentionBlock(24, 4, 40)(torch.randn(2, 3, 8), torch.randn(2, 3, 24)),
            "x of",
        ),
    ],
)
def test_bad_input_is_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()
