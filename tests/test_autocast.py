"""cnnext under torch.autocast against PyTorch under autocast: the same casts (output and gradient dtypes),
values within the lower precision's tolerance, a torch.amp training step, and torch.compile.

Convolutions are on autocast's lower-precision list (they run in bfloat16 on the CPU, float16/bfloat16 on
CUDA); pooling is on no list and runs in its input's dtype, in PyTorch and in cnnext alike.
"""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnext

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible: CUDA autocast cannot run here")
# (device, autocast dtype): the CPU's autocast dtype is bfloat16; CUDA's float16 (default) or bfloat16.
SETTINGS = [("cpu", torch.bfloat16),
            pytest.param("cuda", torch.float16, marks=CUDA),
            pytest.param("cuda", torch.bfloat16, marks=CUDA)]
SETTING_IDS = ["cpu-bf16", "cuda-fp16", "cuda-bf16"]
# Both sides round the same casted inputs' products, summed in float32, once to the low precision; relative
# to the largest value, they differ by about one rounding of that dtype.
TOLERANCE = {torch.bfloat16: 1.6e-2, torch.float16: 2e-3}


def assert_close_scaled(got, want, dtype, what):
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype}, PyTorch gives {want.dtype}"
    scale = want.detach().abs().max().double().clamp(min=1.0)
    torch.testing.assert_close(got.double(), want.double(), rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype] * scale,
                               msg=lambda m: f"{what}: {m}")


# name, cnnext function, PyTorch function, input size, weight size (None: pooling), keyword arguments
OPS = [
    ("conv1d", cnnext.conv1d, F.conv1d, (4, 6, 19), (8, 3, 5), dict(stride=2, padding=2, groups=2)),
    ("conv2d", cnnext.conv2d, F.conv2d, (4, 16, 11, 9), (24, 16, 3, 3), dict(padding=1)),
    ("conv2d-strided-dilated", cnnext.conv2d, F.conv2d, (3, 8, 13, 13), (16, 8, 3, 3),
     dict(stride=2, padding=2, dilation=2)),
    ("conv2d-depthwise", cnnext.conv2d, F.conv2d, (2, 32, 9, 9), (32, 1, 3, 3), dict(padding=1, groups=32)),
    ("conv3d", cnnext.conv3d, F.conv3d, (2, 4, 6, 7, 8), (8, 4, 3, 3, 3), dict(padding=1)),
    ("max_pool2d", cnnext.max_pool2d, F.max_pool2d, (4, 8, 12, 12), None, dict(kernel_size=3, stride=2, padding=1)),
    ("avg_pool2d", cnnext.avg_pool2d, F.avg_pool2d, (4, 8, 12, 12), None, dict(kernel_size=3, stride=2, padding=1)),
]


def make_leaves(input_size, weight_size, device, dtype=torch.float32):
    torch.manual_seed(0)
    leaves = [torch.randn(input_size, device=device, dtype=dtype)]
    if weight_size is not None:
        leaves += [torch.randn(weight_size, device=device, dtype=dtype) * 0.3,
                   torch.randn(weight_size[0], device=device, dtype=dtype)]
    return [t.requires_grad_() for t in leaves]


@pytest.mark.parametrize("device, dtype", SETTINGS, ids=SETTING_IDS)
@pytest.mark.parametrize("name, ours, theirs, input_size, weight_size, kwargs", OPS, ids=[op[0] for op in OPS])
@pytest.mark.parametrize("input_dtype", ["float32", "low"], ids=["float32-input", "low-precision-input"])
def test_op_casts_like_pytorch(device, dtype, name, ours, theirs, input_size, weight_size, kwargs, input_dtype):
    """Output dtype and values, and every gradient's dtype and values, as PyTorch's under autocast; float32
    and already low-precision inputs (pooling then stays low, as after an autocast convolution)."""
    leaves = make_leaves(input_size, weight_size, device, dtype if input_dtype == "low" else torch.float32)
    twins = [t.detach().clone().requires_grad_() for t in leaves]
    with torch.autocast(device, dtype=dtype):
        out = ours(*leaves, **kwargs)
        ref = theirs(*twins, **kwargs)
    assert_close_scaled(out, ref, dtype, f"{name} output")
    grad_out = torch.randn_like(ref)
    grads = torch.autograd.grad(out, leaves, grad_out)
    ref_grads = torch.autograd.grad(ref, twins, grad_out)
    for which, got, want in zip(("input", "weight", "bias"), grads, ref_grads):
        assert_close_scaled(got, want, dtype, f"{name} grad {which}")


@pytest.mark.parametrize("device, dtype", SETTINGS, ids=SETTING_IDS)
def test_float64_is_not_cast(device, dtype):
    x, w, b = make_leaves((2, 4, 7, 7), (6, 4, 3, 3), device, torch.float64)
    with torch.autocast(device, dtype=dtype):
        assert cnnext.conv2d(x, w, b).dtype == F.conv2d(x, w, b).dtype == torch.float64


def test_autocast_disabled_inside_keeps_float32():
    x, w, b = make_leaves((2, 4, 7, 7), (6, 4, 3, 3), "cpu")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with torch.autocast("cpu", enabled=False):
            assert cnnext.conv2d(x, w, b).dtype == torch.float32
        assert cnnext.conv2d(x, w, b).dtype == torch.bfloat16


def small_cnn(layers):
    """conv-bn-relu-maxpool, conv-relu-avgpool, linear: every cnnext op a CNN uses."""
    return nn.Sequential(
        layers.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), layers.MaxPool2d(2),
        layers.Conv2d(16, 32, 3, padding=1), nn.ReLU(), layers.AvgPool2d(2),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 10))


@pytest.mark.parametrize("device, dtype", SETTINGS, ids=SETTING_IDS)
def test_amp_training_step_matches_torch_nn(device, dtype):
    """One SGD step under torch.autocast (with a GradScaler for float16) on a small CNN of cnnext modules and
    on the same network of torch.nn modules with the same weights: same loss, same float32 gradients."""
    torch.manual_seed(0)
    reference = small_cnn(nn).to(device)
    ours = copy.deepcopy(reference)
    ours = cnnext.convert(ours)
    assert isinstance(ours[0], cnnext.Conv2d) and isinstance(ours[3], cnnext.MaxPool2d)
    images = torch.randn(8, 3, 16, 16, device=device)
    labels = torch.randint(0, 10, (8,), device=device)
    losses, grads = [], []
    for model in (ours, reference):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        scaler = torch.amp.GradScaler(device, enabled=dtype == torch.float16)
        with torch.autocast(device, dtype=dtype):
            logits = model(images)
            loss = F.cross_entropy(logits, labels)
        assert logits.dtype == dtype
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        grads.append([p.grad.clone() for p in model.parameters()])
        scaler.step(optimizer)
        scaler.update()
        losses.append(loss.detach())
    torch.testing.assert_close(losses[0], losses[1], rtol=TOLERANCE[dtype], atol=0)
    for (name, param), got, want in zip(ours.named_parameters(), *grads):
        assert got.dtype == param.dtype == torch.float32, f"grad of {name}: {got.dtype}"
        assert_close_scaled(got, want, dtype, f"grad of {name}")
    for (name, got), want in zip(ours.named_parameters(), reference.parameters()):
        assert_close_scaled(got.detach(), want.detach(), dtype, f"{name} after the step")


def test_torch_compile_under_autocast():
    x, w, b = make_leaves((2, 8, 9, 9), (16, 8, 3, 3), "cpu")

    def block(x, w, b):
        return cnnext.max_pool2d(F.relu(cnnext.conv2d(x, w, b, padding=1)), 2)

    compiled = torch.compile(block, backend="aot_eager", fullgraph=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = compiled(x, w, b)
        ref = block(x, w, b)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, ref)
    grads = torch.autograd.grad(out.float().sum(), (x, w, b))
    ref_grads = torch.autograd.grad(ref.float().sum(), (x, w, b))
    for got, want in zip(grads, ref_grads):
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, want)


def test_opcheck_under_autocast():
    x, w, b = make_leaves((2, 8, 9, 9), (16, 8, 3, 3), "cpu")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        torch.library.opcheck(torch.ops.cnnext.conv2d.default, (x, w, b, [1, 1], [1, 1], [1, 1], 1))
