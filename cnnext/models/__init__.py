"""The model zoo. Every model builds its conv and pooling layers through cnnext.nn.layer_class(name, backend),
so one `backend` argument ('cnnext', 'torch', 'naive') decides which kernels run.

    model = cnnext.models.build_model("resnet18", num_classes=3, backend="cnnext")
"""
import inspect

from .alexnet import AlexNet
from .cifar_resnet import cifar_resnet, plain20, plain56, resnet20, resnet56
from .cnn import PlainCNN
from .dehaze import AODNet
from .dilated import DilatedCNN, HDCResult, hdc_check
from .mlp import MLP
from .resnet import BasicBlock, ResNet, plain18, resnet18, resnet18_dilated
from .standardize import PerImageStandardization, standardized
from .unet import DehazeUNet

MODELS = {
    "cnn": PlainCNN,
    "mlp": MLP,
    "alexnet": AlexNet,
    "hdc": DilatedCNN,
    "resnet18": resnet18,
    "plain18": plain18,
    "resnet18-dilated": resnet18_dilated,
    "resnet20": resnet20,
    "resnet56": resnet56,
    "plain20": plain20,
    "plain56": plain56,
    "aodnet": AODNet,
    "dehaze-unet": DehazeUNet,
}


def build_model(name, backend="cnnext", **options):
    """MODELS[name](backend=backend, **options); options a model does not take (e.g. image_size for a
    globally pooled net) are dropped, so callers can pass one common set."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}, expected one of {sorted(MODELS)}")
    builder = MODELS[name]
    accepted = inspect.signature(builder).parameters
    return builder(backend=backend, **{key: value for key, value in options.items() if key in accepted})


def count_parameters(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["MODELS", "build_model", "count_parameters", "AlexNet", "AODNet", "BasicBlock", "DehazeUNet", "DilatedCNN",
           "HDCResult", "MLP", "PerImageStandardization", "PlainCNN", "ResNet", "cifar_resnet", "hdc_check", "plain18",
           "plain20", "plain56", "resnet18", "resnet18_dilated", "resnet20", "resnet56", "standardized"]
