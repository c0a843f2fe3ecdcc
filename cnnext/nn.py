"""Drop-in modules: cnnext.Conv2d is a torch.nn.Conv2d whose forward runs cnnext's kernels (and likewise
Conv1d, Conv3d, MaxPool2d, AvgPool2d).

Subclassing nn.Conv2d keeps the constructor, parameter names and shapes, initialisation, padding_mode
and repr identical, so a state_dict moves between the two either way, and isinstance checks still hold.
"""
from torch import nn

from . import functional
from .naive import NaiveConv2d


class Conv2d(nn.Conv2d):
    """torch.nn.Conv2d on cnnext.conv2d."""

    def _conv_forward(self, input, weight, bias):
        if self.padding_mode != "zeros":
            input = nn.functional.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return functional.conv2d(input, weight, bias, self.stride, 0, self.dilation, self.groups)
        return functional.conv2d(input, weight, bias, self.stride, self.padding, self.dilation, self.groups)


class Conv1d(nn.Conv1d):
    """torch.nn.Conv1d on cnnext.conv1d."""

    def _conv_forward(self, input, weight, bias):
        if self.padding_mode != "zeros":
            input = nn.functional.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return functional.conv1d(input, weight, bias, self.stride, 0, self.dilation, self.groups)
        return functional.conv1d(input, weight, bias, self.stride, self.padding, self.dilation, self.groups)


class Conv3d(nn.Conv3d):
    """torch.nn.Conv3d on cnnext.conv3d."""

    def _conv_forward(self, input, weight, bias):
        if self.padding_mode != "zeros":
            input = nn.functional.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return functional.conv3d(input, weight, bias, self.stride, 0, self.dilation, self.groups)
        return functional.conv3d(input, weight, bias, self.stride, self.padding, self.dilation, self.groups)


class MaxPool2d(nn.MaxPool2d):
    """torch.nn.MaxPool2d on cnnext.max_pool2d."""

    def forward(self, input):
        return functional.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                                     ceil_mode=self.ceil_mode, return_indices=self.return_indices)


class AvgPool2d(nn.AvgPool2d):
    """torch.nn.AvgPool2d on cnnext.avg_pool2d."""

    def forward(self, input):
        return functional.avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                                     self.count_include_pad, self.divisor_override)


# The layer classes each backend builds models from. 'naive' runs the hand-written loops where it has them
# and PyTorch's layers elsewhere.
_TORCH_LAYERS = {"Conv1d": nn.Conv1d, "Conv2d": nn.Conv2d, "Conv3d": nn.Conv3d, "MaxPool2d": nn.MaxPool2d,
                 "AvgPool2d": nn.AvgPool2d}
LAYERS = {
    "torch": dict(_TORCH_LAYERS),
    "cnnext": {"Conv1d": Conv1d, "Conv2d": Conv2d, "Conv3d": Conv3d, "MaxPool2d": MaxPool2d, "AvgPool2d": AvgPool2d},
    "naive": {**_TORCH_LAYERS, "Conv2d": NaiveConv2d},
}
# For each layer name, every backend's class of it: what convert() recognises and swaps.
LAYER_FAMILIES = {name: tuple({layers[name] for layers in LAYERS.values()}) for name in _TORCH_LAYERS}
CONV2D_CLASSES = LAYER_FAMILIES["Conv2d"]


def layer_class(name, backend):
    """The module class `name` ('Conv1d', 'Conv2d', 'Conv3d', 'MaxPool2d', 'AvgPool2d') of `backend`
    ('cnnext', 'torch', 'naive')."""
    if backend not in LAYERS:
        raise ValueError(f"unknown backend {backend!r}, expected one of {sorted(LAYERS)}")
    if name not in LAYERS[backend]:
        raise ValueError(f"unknown layer {name!r}, expected one of {sorted(LAYERS[backend])}")
    return LAYERS[backend][name]


def _rebuild(module, cls):
    new = cls.__new__(cls)
    new.__dict__ = module.__dict__.copy()  # shares the same Parameters, buffers and hooks
    return new


def _target_class(module, backend):
    """`backend`'s class for `module` if it is a layer of another backend, else None."""
    for name, family in LAYER_FAMILIES.items():
        if type(module) in family:
            target = LAYERS[backend][name]
            return target if type(module) is not target else None
    return None


def convert(model, backend="cnnext"):
    """Swaps every Conv1d/2d/3d, MaxPool2d and AvgPool2d of `model` (in place, sharing its parameters) for
    `backend`'s; returns the model."""
    layer_class("Conv2d", backend)  # validates the backend name
    for name, child in model.named_children():
        target = _target_class(child, backend)
        if target is not None:
            setattr(model, name, _rebuild(child, target))
        else:
            convert(child, backend)
    target = _target_class(model, backend)
    return _rebuild(model, target) if target is not None else model
