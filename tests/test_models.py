"""The model zoo: output shapes on the lab's input sizes, parameter counts worked out by formula, the conv
backend each model is built on, hdc_check, and that training steps on real vehicle images lower the loss."""
import pytest
import torch
from torch import nn

import cnnext
from cnnext.models import MODELS, build_model, count_parameters, hdc_check
from cnnext.nn import layer_class


def conv_params(in_channels, out_channels, kernel, bias=True):
    return in_channels * out_channels * kernel * kernel + (out_channels if bias else 0)


def bn_params(channels):
    return 2 * channels


def linear_params(in_features, out_features):
    return in_features * out_features + out_features


def basic_block_params(in_channels, out_channels, projection):
    count = conv_params(in_channels, out_channels, 3, False) + bn_params(out_channels)
    count += conv_params(out_channels, out_channels, 3, False) + bn_params(out_channels)
    if projection:
        count += conv_params(in_channels, out_channels, 1, False) + bn_params(out_channels)
    return count


def resnet18_params(num_classes, shortcuts=True):
    count = conv_params(3, 64, 3, False) + bn_params(64)
    channels = 64
    for width in (64, 128, 256, 512):
        count += basic_block_params(channels, width, shortcuts and channels != width)
        count += basic_block_params(width, width, False)
        channels = width
    return count + linear_params(512, num_classes)


@pytest.mark.parametrize("num_classes", [3, 10])
def test_resnet18_parameter_count_matches_the_formula(num_classes):
    model = build_model("resnet18", num_classes=num_classes)
    assert count_parameters(model) == resnet18_params(num_classes)
    if num_classes == 10:
        assert 11.1e6 < count_parameters(model) < 11.2e6  # the well-known CIFAR ResNet-18 size


def test_plain18_is_resnet18_without_shortcuts():
    model = build_model("plain18", num_classes=3)
    assert count_parameters(model) == resnet18_params(3, shortcuts=False)
    assert count_parameters(build_model("resnet18-dilated", num_classes=3)) == resnet18_params(3)


@pytest.mark.parametrize("image_size", [32])
def test_resnet_shapes_and_dilated_last_stage(image_size):
    x = torch.randn(2, 3, image_size, image_size)
    for name, last_stage_size in (("resnet18", image_size // 8), ("resnet18-dilated", image_size // 4)):
        model = build_model(name, num_classes=3, width=0.25).eval()
        assert model(x).shape == (2, 3)
        assert model.stages(model.stem(x)).shape[-1] == last_stage_size


@pytest.mark.parametrize("num_blocks,kernel_size", [(1, 3), (3, 3), (3, 5), (2, 7)])
def test_plain_cnn_shape_and_parameters(num_blocks, kernel_size):
    model = build_model("cnn", num_classes=3, image_size=64, num_blocks=num_blocks, kernel_size=kernel_size)
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 3)
    expected, channels = 0, 3
    for block in range(num_blocks):
        width = 32 * 2 ** block
        expected += conv_params(channels, width, kernel_size, False) + bn_params(width)
        channels = width
    side = 64 // 2 ** num_blocks
    assert count_parameters(model) == expected + linear_params(channels * side * side, 3)


def test_alexnet_classic_224_matches_the_paper_layout():
    model = build_model("alexnet", num_classes=1000, image_size=224).eval()
    assert model(torch.randn(1, 3, 224, 224)).shape == (1, 1000)
    assert model.features(torch.randn(1, 3, 224, 224)).shape == (1, 256, 6, 6)
    convs = [(3, 96, 11), (96, 256, 5), (256, 384, 3), (384, 384, 3), (384, 256, 3)]
    expected = sum(conv_params(*c) for c in convs)
    expected += linear_params(256 * 6 * 6, 4096) + linear_params(4096, 4096) + linear_params(4096, 1000)
    assert count_parameters(model) == expected


@pytest.mark.parametrize("image_size", [32, 64])
def test_alexnet_small_variant_with_width(image_size):
    model = build_model("alexnet", num_classes=3, image_size=image_size, variant="small", width=0.25).eval()
    assert model(torch.randn(2, 3, image_size, image_size)).shape == (2, 3)
    assert model.features[0].out_channels == 24


def test_dilated_net_follows_the_lab_shapes():
    model = build_model("hdc", num_classes=3, image_size=32, rates=(1, 2, 5)).eval()
    x = torch.randn(2, 3, 32, 32)
    assert model.feature_sizes == [32, 30, 26, 16]
    assert model.features(x).shape[-2:] == (16, 16)
    assert model(x).shape == (2, 3)
    assert [layer[0].dilation for layer in model.features] == [(1, 1), (2, 2), (5, 5)]


def test_dilated_net_in_stages_repeats_the_rates_and_keeps_sizes():
    model = build_model("hdc", num_classes=10, image_size=32, rates=(1, 2, 5), stages=3, base_channels=8).eval()
    convs = [layer[0] for layer in model.features if isinstance(layer, torch.nn.Sequential)]
    assert [conv.dilation[0] for conv in convs] == [1, 2, 5] * 3
    assert [conv.out_channels for conv in convs] == [8] * 3 + [16] * 3 + [32] * 3
    assert model.feature_sizes == [32] + [32] * 3 + [16] * 3 + [8] * 3
    assert model.features(torch.randn(2, 3, 32, 32)).shape[-2:] == (8, 8)
    with pytest.raises(ValueError, match="stages"):
        build_model("hdc", num_classes=10, image_size=32, stages=0)


def test_dilated_net_rejects_images_too_small_for_the_rates():
    with pytest.raises(ValueError, match="too small"):
        build_model("hdc", num_classes=3, image_size=16, rates=(1, 2, 5))


def test_mlp_and_aodnet():
    mlp = build_model("mlp", num_classes=3, image_size=32, hidden=(64, 32))
    assert mlp(torch.randn(4, 3, 32, 32)).shape == (4, 3)
    assert count_parameters(mlp) == linear_params(3 * 32 * 32, 64) + linear_params(64, 32) + linear_params(32, 3)
    aod = build_model("aodnet")
    hazy = torch.rand(2, 3, 48, 40)
    assert aod(hazy).shape == hazy.shape
    convs = [(3, 3, 1), (3, 3, 3), (6, 3, 5), (6, 3, 7), (12, 3, 3)]
    assert count_parameters(aod) == sum(conv_params(*c) for c in convs)


def test_dehaze_unet_starts_as_the_identity_and_learns_a_scale_and_shift():
    model = build_model("dehaze-unet", features=4, depth=2)
    hazy = torch.rand(2, 3, 37, 50)  # sizes that do not divide by 4: the decoder upsamples to the skip's size
    assert torch.equal(model(hazy), hazy)
    widths = [4, 8, 16]
    levels = [(3, 4), (4, 8), (8, 16), (16 + 8, 8), (8 + 4, 4)]
    assert count_parameters(model) == sum(conv_params(i, o, 3) + conv_params(o, o, 3) for i, o in levels) + \
        conv_params(widths[0], 6, 1)
    with torch.no_grad():
        model.head.bias.copy_(torch.tensor([1.0, 1.0, 1.0, 0.1, 0.2, 0.3]))
    expected = 2 * hazy + torch.tensor([0.1, 0.2, 0.3])[:, None, None]
    assert torch.allclose(model(hazy), expected)


def test_l1_ssim_loss():
    from cnnext.losses import L1SSIMLoss
    loss = L1SSIMLoss(ssim_weight=0.5)
    clear = torch.rand(2, 3, 24, 24)
    assert loss(clear, clear).item() == pytest.approx(0, abs=1e-5)
    flat = clear.mean((2, 3), keepdim=True).expand_as(clear)  # same mean colour, no structure
    blurred = torch.nn.functional.avg_pool2d(clear, 3, 1, 1)
    assert loss(flat, clear) > loss(blurred, clear) > 0.5 * torch.nn.functional.l1_loss(blurred, clear)
    output = flat.clone().requires_grad_()
    loss(output, clear).backward()
    assert output.grad.abs().sum() > 0 and "ssim_weight=0.5" in repr(loss)


@pytest.mark.parametrize("backend", ["cnnext", "torch", "naive"])
def test_every_conv_comes_from_the_backend(backend):
    conv_class = layer_class("Conv2d", backend)
    for name in MODELS:
        model = build_model(name, backend=backend, num_classes=3, image_size=32, width=0.25)
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        assert all(type(m) is conv_class for m in convs), name
        assert name == "mlp" or convs


def test_cnnext_and_torch_backends_compute_the_same_model():
    torch.manual_seed(0)
    ours = build_model("resnet18", backend="cnnext", num_classes=3, width=0.25).eval()
    torch.manual_seed(0)
    theirs = build_model("resnet18", backend="torch", num_classes=3, width=0.25).eval()
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("depth", [20, 56])
def test_cifar_resnets_follow_he_et_al(depth):
    blocks = (depth - 2) // 6
    count = conv_params(3, 16, 3, False) + bn_params(16)
    channels = 16
    for width in (16, 32, 64):
        count += basic_block_params(channels, width, channels != width)
        count += (blocks - 1) * basic_block_params(width, width, False)
        channels = width
    count += linear_params(64, 10)
    residual, plain = build_model(f"resnet{depth}"), build_model(f"plain{depth}")
    assert count_parameters(residual) == count   # 0.27M and 0.85M as in the paper's table 6
    convs = [m for m in plain.modules() if isinstance(m, layer_class("Conv2d", "cnnext"))]
    assert len(convs) + 1 == depth   # weight layers: convs + the linear layer, no projections
    x = torch.randn(2, 3, 32, 32)
    assert residual(x).shape == plain(x).shape == (2, 10)
    with pytest.raises(ValueError, match="6n\\+2"):
        cnnext.models.cifar_resnet(21)


def test_residual_blocks_start_as_the_identity_where_zero_initialised():
    model = build_model("resnet20").eval()
    block = model.stages[1][1]          # identity shortcut, no projection
    x = torch.rand(2, 32, 16, 16)       # non-negative, as after a ReLU
    torch.testing.assert_close(block(x), x)
    plain = build_model("plain20")
    assert all(m.bn2.weight.abs().sum() > 0 for m in plain.modules() if hasattr(m, "bn2"))
    assert all(m.bn2.weight.abs().sum() > 0 for m in build_model("resnet18").modules() if hasattr(m, "bn2"))


def test_per_image_standardization():
    layer = cnnext.models.PerImageStandardization()
    x = torch.rand(4, 3, 8, 8) * 0.2 + torch.arange(4.0).view(4, 1, 1, 1)
    y = layer(x)
    assert torch.allclose(y.mean((1, 2, 3)), torch.zeros(4), atol=1e-5)
    assert torch.allclose(y.std((1, 2, 3), unbiased=False), torch.ones(4), atol=1e-3)
    per_channel = cnnext.models.PerImageStandardization(per_channel=True)(x)
    assert torch.allclose(per_channel.mean((2, 3)), torch.zeros(4, 3), atol=1e-5)


def test_unknown_model_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown model 'vgg'"):
        build_model("vgg")


# --------------------------------------------------------------------------------------------- hdc_check

def test_hdc_check_accepts_the_lab_rates():
    result = cnnext.hdc_check([1, 2, 5])
    assert result and result.valid and result.reasons == []
    assert result.max_distances == (1, 2, 5)  # M_3 = 5, M_2 = max(5-4, 5-6, 2) = 2 <= 3, M_1 = 1
    assert bool(hdc_check([1, 2, 3])) and bool(hdc_check([1, 1, 1]))


def test_hdc_check_explains_a_common_factor_and_holes():
    result = hdc_check([2, 4, 8])
    assert not result
    assert result.max_distances[1] == 4
    assert any("M_2 = 4 > kernel size 3" in reason for reason in result.reasons)
    assert any("common factor 2" in reason for reason in result.reasons)
    assert "breaks HDC" in str(result)


def test_hdc_check_explains_holes_without_common_factor():
    result = hdc_check([1, 2, 9])
    assert not result and len(result.reasons) == 1 and "M_2 = 5" in result.reasons[0]
    assert hdc_check([1, 2, 9], kernel_size=5)  # a larger kernel covers the gap


@pytest.mark.parametrize("rates,kernel", [([], 3), ([0, 1], 3), ([1, 2.5], 3), ([1, 2], 1)])
def test_hdc_check_rejects_bad_arguments(rates, kernel):
    with pytest.raises(ValueError, match="hdc_check"):
        hdc_check(rates, kernel)


# ----------------------------------------------------------------------------------------- on real data

def test_a_few_steps_lower_the_loss_on_real_vehicles(data_dir):
    from cnnext.data import load

    data = load("vehicles", data_dir, image_size=32, limit_per_class=20)
    images, labels = zip(*(data.train[i] for i in range(len(data.train))))
    images, labels = torch.stack(images), torch.stack(labels)
    torch.manual_seed(0)
    model = build_model("cnn", backend="cnnext", num_classes=3, image_size=32, num_blocks=2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(12):
        loss = nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses
