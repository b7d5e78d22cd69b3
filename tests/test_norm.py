"""llmcourse.norm against torch.nn.LayerNorm, with random weights copied across."""

import pytest
import torch
from torch import nn

from llmcourse.norm import LayerNorm, layer_norm


def _random_reference(shape, **kwargs):
    ref = nn.LayerNorm(shape, **kwargs)
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_()
    return ref


@pytest.mark.parametrize(
    "shape, x_shape",
    [
        (8, (2, 5, 8)),  # (B, T, C)
        (7, (1, 1, 7)),  # batch size 1, one position, odd width
        (5, (5,)),  # a single vector
        ((3, 4), (2, 6, 3, 4)),  # normalize over the last two dims
        ((2, 3, 5), (4, 2, 3, 5)),
    ],
)
def test_matches_nn_layernorm(shape, x_shape):
    torch.manual_seed(0)
    ref = _random_reference(shape)
    ours = LayerNorm(shape)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(x_shape) * 3 + 2
    torch.testing.assert_close(ours(x), ref(x), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"eps": 1e-2},
        {"elementwise_affine": False},
        {"bias": False},
        {"eps": 0.0},
    ],
)
def test_options_match(kwargs):
    torch.manual_seed(1)
    ref = _random_reference(6, **kwargs)
    ours = LayerNorm(6, **kwargs)
    assert set(ours.state_dict()) == set(ref.state_dict())
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(3, 4, 6)
    torch.testing.assert_close(ours(x), ref(x), atol=1e-6, rtol=1e-6)


def test_state_dict_keys_and_init():
    ours, ref = LayerNorm(4), nn.LayerNorm(4)
    assert list(ours.state_dict()) == list(ref.state_dict()) == ["weight", "bias"]
    torch.testing.assert_close(ours.weight, ref.weight)
    torch.testing.assert_close(ours.bias, ref.bias)


def test_gradients_match():
    torch.manual_seed(2)
    ref = _random_reference(5)
    ours = LayerNorm(5)
    ours.load_state_dict(ref.state_dict())
    x1 = torch.randn(2, 3, 5, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    g = torch.randn(2, 3, 5)
    (ours(x1) * g).sum().backward()
    (ref(x2) * g).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad, atol=1e-5, rtol=1e-5)


def test_output_has_mean_zero_variance_one():
    x = torch.randn(4, 9, 16) * 5 - 3
    y = LayerNorm(16, eps=0.0)(x)
    torch.testing.assert_close(y.mean(-1), torch.zeros(4, 9), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(-1, unbiased=False), torch.ones(4, 9), atol=1e-5, rtol=0)


def test_function_matches_functional():
    torch.manual_seed(3)
    x, w, b = torch.randn(3, 7), torch.randn(7), torch.randn(7)
    torch.testing.assert_close(
        layer_norm(x, w, b, 1e-5),
        nn.functional.layer_norm(x, (7,), w, b, 1e-5),
        atol=1e-6,
        rtol=1e-6,
    )
    torch.testing.assert_close(
        layer_norm(x), nn.functional.layer_norm(x, (7,)), atol=1e-6, rtol=1e-6
    )


def test_differs_from_annotated_transformer_version():
    """Unbiased std with eps outside the root is a different function: check it is caught."""
    x = torch.randn(8, 16)
    annotated = (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + 1e-6)
    assert not torch.allclose(annotated, layer_norm(x), atol=1e-3)


def test_rejects_wrong_trailing_dims():
    with pytest.raises(
        ValueError, match=r"trailing dimensions are normalized_shape=\(8,\).*\(2, 5, 7\)"
    ):
        LayerNorm(8)(torch.randn(2, 5, 7))
    with pytest.raises(ValueError, match=r"normalized_shape=\(3, 4\).*\(2, 4, 3\)"):
        LayerNorm((3, 4))(torch.randn(2, 4, 3))
    with pytest.raises(ValueError, match=r"normalized_shape=\(2, 3, 4\).*\(3, 4\)"):
        LayerNorm((2, 3, 4))(torch.randn(3, 4))


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="normalized_shape must be a positive int"):
        LayerNorm(0)
    with pytest.raises(ValueError, match="normalized_shape must be a positive int"):
        LayerNorm(())
    with pytest.raises(ValueError, match="eps must be a finite number >= 0"):
        LayerNorm(4, eps=-1.0)
    with pytest.raises(ValueError, match="expected x to be a torch.Tensor"):
        layer_norm([1.0, 2.0])
    with pytest.raises(ValueError, match=r"expected weight of shape \(4,\), got \(3,\)"):
        layer_norm(torch.randn(2, 4), torch.ones(3), normalized_shape=4)
    with pytest.raises(ValueError, match=r"expected bias of shape \(4,\), got \(5,\)"):
        layer_norm(torch.randn(2, 4), torch.ones(4), torch.zeros(5))


def test_repr_matches_pytorch():
    assert repr(LayerNorm(6)) == repr(nn.LayerNorm(6))
    assert repr(LayerNorm((2, 3), eps=1e-6, elementwise_affine=False)) == repr(
        nn.LayerNorm((2, 3), eps=1e-6, elementwise_affine=False)
    )


def test_double_precision_and_no_nan_on_constant_input():
    x = torch.randn(3, 10, dtype=torch.float64)
    ref = nn.LayerNorm(10, dtype=torch.float64)
    torch.testing.assert_close(LayerNorm(10).double()(x), ref(x), atol=1e-12, rtol=1e-12)
    constant = torch.full((2, 10), 7.0)
    torch.testing.assert_close(LayerNorm(10)(constant), torch.zeros(2, 10))  # eps keeps it finite
