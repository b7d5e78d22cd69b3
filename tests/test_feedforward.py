"""llmcourse.feedforward against PyTorch: F.gelu, and nn.TransformerEncoderLayer's
feed-forward half."""

import copy

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from llmcourse.feedforward import FeedForward, PostNormBlock, PreNormBlock, ResidualBlock, gelu


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_matches_torch(approximate):
    x = torch.linspace(-8, 8, 1001, dtype=torch.float64)
    torch.testing.assert_close(
        gelu(x, approximate), F.gelu(x, approximate=approximate), atol=1e-12, rtol=1e-12
    )
    x32 = torch.randn(3, 5, 7)
    torch.testing.assert_close(
        gelu(x32, approximate), F.gelu(x32, approximate=approximate), atol=1e-6, rtol=1e-6
    )


def test_gelu_approximations_differ_slightly():
    x = torch.linspace(-5, 5, 1001, dtype=torch.float64)
    gap = (gelu(x) - gelu(x, "tanh")).abs().max().item()
    assert 1e-5 < gap < 1e-3


def test_gelu_rejects_bad_input():
    with pytest.raises(ValueError, match="approximate must be 'none' or 'tanh', got 'erf'"):
        gelu(torch.zeros(2), "erf")
    with pytest.raises(ValueError, match="expected x to be a torch.Tensor"):
        gelu(1.0)


def _encoder_layer(d_model, d_ff, activation, norm_first):
    """A PyTorch encoder layer whose attention half adds exactly zero."""
    layer = nn.TransformerEncoderLayer(
        d_model,
        nhead=1,
        dim_feedforward=d_ff,
        dropout=0.0,
        activation=activation,
        batch_first=True,
        norm_first=norm_first,
    )
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_(0, 0.5)
        layer.self_attn.out_proj.weight.zero_()
        layer.self_attn.out_proj.bias.zero_()
    return layer.eval()


def _feedforward_from(layer, d_model, d_ff, activation):
    ff = FeedForward(d_model, d_ff, activation)
    ff.load_state_dict({k: v for k, v in layer.state_dict().items() if k.startswith("linear")})
    return ff


@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize(
    "d_model, d_ff, x_shape",
    [
        (8, 32, (2, 5, 8)),
        (5, 7, (1, 3, 5)),
        (6, 4, (1, 1, 6)),
    ],
)
def test_feedforward_matches_encoder_layer(activation, d_model, d_ff, x_shape):
    torch.manual_seed(0)
    layer = _encoder_layer(d_model, d_ff, activation, norm_first=True)
    ff = _feedforward_from(layer, d_model, d_ff, activation).eval()
    x = torch.randn(x_shape)
    want = layer.linear2(layer.activation(layer.linear1(x)))  # its feed-forward half
    torch.testing.assert_close(ff(x), want, atol=1e-5, rtol=1e-5)


def test_feedforward_state_dict_keys():
    assert list(FeedForward(4, 16).state_dict()) == [
        "linear1.weight",
        "linear1.bias",
        "linear2.weight",
        "linear2.bias",
    ]


def test_feedforward_is_position_wise():
    torch.manual_seed(1)
    ff = FeedForward(6, 12, "gelu")
    x = torch.randn(2, 9, 6)
    perm = torch.randperm(9)
    torch.testing.assert_close(ff(x[:, perm]), ff(x)[:, perm], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(ff(x[0, 3]), ff(x)[0, 3], atol=1e-6, rtol=1e-6)


def test_feedforward_parameter_count():
    ff = FeedForward(10, 40)
    assert sum(p.numel() for p in ff.parameters()) == 2 * 10 * 40 + 40 + 10


def test_feedforward_dropout_only_in_training():
    torch.manual_seed(2)
    ff = FeedForward(8, 32, dropout=0.5)
    x = torch.randn(4, 8)
    ff.eval()
    torch.testing.assert_close(ff(x), ff(x))
    ff.train()
    assert not torch.allclose(ff(x), ff(x))


@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("d_model, d_ff, x_shape", [(8, 32, (2, 5, 8)), (5, 3, (1, 1, 5))])
def test_prenorm_block_matches_encoder_layer(activation, d_model, d_ff, x_shape):
    torch.manual_seed(3)
    layer = _encoder_layer(d_model, d_ff, activation, norm_first=True)
    block = PreNormBlock(_feedforward_from(layer, d_model, d_ff, activation), d_model).eval()
    block.norm.load_state_dict(layer.norm2.state_dict())
    x = torch.randn(x_shape)
    # norm_first=True: x + sa(norm1(x)) + ... and the attention half adds zero here.
    torch.testing.assert_close(block(x), layer(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("d_model, d_ff, x_shape", [(8, 32, (2, 5, 8)), (5, 3, (1, 1, 5))])
def test_postnorm_block_matches_encoder_layer(activation, d_model, d_ff, x_shape):
    torch.manual_seed(4)
    layer = _encoder_layer(d_model, d_ff, activation, norm_first=False)
    block = PostNormBlock(_feedforward_from(layer, d_model, d_ff, activation), d_model).eval()
    block.norm.load_state_dict(layer.norm2.state_dict())
    x = torch.randn(x_shape)
    # norm_first=False: y = norm1(x + 0), then norm2(y + ff(y)).
    torch.testing.assert_close(block(layer.norm1(x)), layer(x), atol=1e-5, rtol=1e-5)


def test_residual_block_is_identity_plus_sublayer():
    torch.manual_seed(5)
    ff = FeedForward(4, 8)
    x = torch.randn(3, 4)
    torch.testing.assert_close(ResidualBlock(ff)(x), x + ff(x))
    zero = copy.deepcopy(ff)
    with torch.no_grad():
        zero.linear2.weight.zero_()
        zero.linear2.bias.zero_()
    torch.testing.assert_close(ResidualBlock(zero)(x), x)  # a silent sublayer passes x through


def test_feedforward_rejects_bad_input():
    ff = FeedForward(8, 32)
    with pytest.raises(
        ValueError, match=r"expected x of shape \(\.\.\., d_model=8\), got \(2, 5, 7\)"
    ):
        ff(torch.randn(2, 5, 7))
    with pytest.raises(ValueError, match=r"d_model=8\), got \(\)"):
        ff(torch.tensor(1.0))
    with pytest.raises(ValueError, match="activation must be 'relu' or 'gelu', got 'swish'"):
        FeedForward(8, 32, activation="swish")
    with pytest.raises(ValueError, match="d_ff must be a positive int, got 0"):
        FeedForward(8, 0)
    with pytest.raises(ValueError, match="d_model must be a positive int"):
        FeedForward(8.0, 32)
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)"):
        FeedForward(8, 32, dropout=1.0)
    with pytest.raises(ValueError, match="trailing dimensions"):
        PreNormBlock(FeedForward(8, 32), 8)(torch.randn(2, 7))


@pytest.mark.parametrize("block_class", [PreNormBlock, PostNormBlock])
def test_block_dropout_only_in_training(block_class):
    torch.manual_seed(6)
    block = block_class(FeedForward(8, 16), 8, dropout=0.5)
    x = torch.randn(4, 8)
    block.eval()
    torch.testing.assert_close(block(x), block(x))
    block.train()
    assert not torch.allclose(block(x), block(x))
