"""cnnext.Conv2d as a drop-in torch.nn.Conv2d, and convert() for whole models."""
import pytest
import torch
from torch import nn

import cnnext


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding", [1, (2, 1), "same", "valid"])
def test_matches_nn_conv2d(padding_mode, padding):
    torch.manual_seed(0)
    reference = nn.Conv2d(4, 6, (3, 4), padding=padding, padding_mode=padding_mode, dilation=(1, 2))
    layer = cnnext.Conv2d(4, 6, (3, 4), padding=padding, padding_mode=padding_mode, dilation=(1, 2))
    layer.load_state_dict(reference.state_dict())
    x = torch.randn(2, 4, 10, 11, requires_grad=True)
    out, expected = layer(x), reference(x)
    torch.testing.assert_close(out, expected)
    out.sum().backward()
    expected.sum().backward()
    torch.testing.assert_close(layer.weight.grad, reference.weight.grad)


def test_same_parameters_and_initialisation_as_nn_conv2d():
    torch.manual_seed(3)
    reference = nn.Conv2d(3, 8, 5, stride=2, groups=1, bias=True)
    torch.manual_seed(3)
    layer = cnnext.Conv2d(3, 8, 5, stride=2, groups=1, bias=True)
    assert [name for name, _ in layer.named_parameters()] == ["weight", "bias"]
    for a, b in zip(layer.parameters(), reference.parameters()):
        assert torch.equal(a, b)
    assert isinstance(layer, nn.Conv2d)
    assert repr(layer) == repr(reference)


def test_state_dict_round_trips_both_ways():
    source = cnnext.Conv2d(2, 4, 3, groups=2, bias=False)
    plain = nn.Conv2d(2, 4, 3, groups=2, bias=False)
    plain.load_state_dict(source.state_dict())
    back = cnnext.Conv2d(2, 4, 3, groups=2, bias=False)
    back.load_state_dict(plain.state_dict())
    assert torch.equal(back.weight, source.weight)


def test_convert_swaps_every_conv_and_keeps_the_function():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Sequential(nn.Conv2d(8, 8, 3, stride=2, groups=2)), nn.Flatten(), nn.LazyLinear(2))
    x = torch.randn(2, 3, 9, 9)
    expected = model.eval()(x)
    converted = cnnext.convert(model)
    assert sum(type(m) is cnnext.Conv2d for m in converted.modules()) == 2
    assert not any(type(m) is nn.Conv2d for m in converted.modules())
    torch.testing.assert_close(converted(x), expected)
    restored = cnnext.convert(converted, "torch")
    assert sum(type(m) is nn.Conv2d for m in restored.modules()) == 2


def test_convert_rejects_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend 'tpu'"):
        cnnext.convert(nn.Conv2d(1, 1, 1), "tpu")


def test_naive_module_matches():
    torch.manual_seed(0)
    layer = cnnext.NaiveConv2d(2, 3, 3, padding=1, padding_mode="reflect")
    reference = nn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect")
    reference.load_state_dict(layer.state_dict())
    x = torch.randn(1, 2, 5, 5)
    torch.testing.assert_close(layer(x), reference(x))
