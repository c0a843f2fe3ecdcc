"""cnnext: convolution kernels for PyTorch in readable C++ and CUDA, with a model zoo and the CNN lab.

    import cnnext
    y = cnnext.conv2d(x, w, b, stride=1, padding="same")      # like torch.nn.functional.conv2d
    layer = cnnext.Conv2d(3, 64, 3, padding=1)                 # like torch.nn.Conv2d
    model = cnnext.convert(torchvision_like_model)             # every nn.Conv2d now runs on cnnext
"""
from . import naive, ops
from .functional import conv2d
from .nn import Conv2d, NaiveConv2d, convert, layer_class
from . import models
from .models.dilated import hdc_check

__all__ = ["conv2d", "Conv2d", "NaiveConv2d", "convert", "layer_class", "naive", "ops", "models", "hdc_check"]
