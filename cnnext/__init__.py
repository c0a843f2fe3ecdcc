"""cnnext: convolution kernels for PyTorch in readable C++ and CUDA, with a model zoo and the CNN lab.

    import cnnext
    y = cnnext.conv2d(x, w, b, stride=1, padding="same")      # like torch.nn.functional.conv2d
    layer = cnnext.Conv2d(3, 64, 3, padding=1)                 # like torch.nn.Conv2d
    model = cnnext.convert(torchvision_like_model)             # nn.Conv1d/2d/3d, MaxPool2d, AvgPool2d now run on cnnext
    cnnext.show_config()                                       # versions, kernels, CPU features (python -m cnnext)
"""
__version__ = "0.1.0"

from . import naive, ops
from .functional import avg_pool2d, conv1d, conv2d, conv3d, max_pool2d
from .nn import AvgPool2d, Conv1d, Conv2d, Conv3d, MaxPool2d, NaiveConv2d, convert, layer_class
from . import models, receptive_field
from .models.dilated import hdc_check
from .config import show_config

__all__ = ["conv1d", "conv2d", "conv3d", "max_pool2d", "avg_pool2d", "Conv1d", "Conv2d", "Conv3d", "MaxPool2d",
           "AvgPool2d", "NaiveConv2d", "convert", "layer_class", "naive", "ops", "models", "receptive_field",
           "hdc_check", "show_config"]
