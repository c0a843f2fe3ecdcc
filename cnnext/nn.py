"""Drop-in modules: cnnext.Conv2d is a torch.nn.Conv2d whose forward runs cnnext's kernels.

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


# The layer classes each backend builds models from. 'naive' runs the hand-written loops where it has them.
LAYERS = {
    "torch": {"Conv2d": nn.Conv2d, "MaxPool2d": nn.MaxPool2d, "AvgPool2d": nn.AvgPool2d},
    "cnnext": {"Conv2d": Conv2d, "MaxPool2d": nn.MaxPool2d, "AvgPool2d": nn.AvgPool2d},
    "naive": {"Conv2d": NaiveConv2d, "MaxPool2d": nn.MaxPool2d, "AvgPool2d": nn.AvgPool2d},
}
CONV2D_CLASSES = tuple(layers["Conv2d"] for layers in LAYERS.values())


def layer_class(name, backend):
    """The module class `name` ('Conv2d', 'MaxPool2d', 'AvgPool2d') of `backend` ('cnnext', 'torch', 'naive')."""
    if backend not in LAYERS:
        raise ValueError(f"unknown backend {backend!r}, expected one of {sorted(LAYERS)}")
    if name not in LAYERS[backend]:
        raise ValueError(f"unknown layer {name!r}, expected one of {sorted(LAYERS[backend])}")
    return LAYERS[backend][name]


def _rebuild(module, cls):
    new = cls.__new__(cls)
    new.__dict__ = module.__dict__.copy()  # shares the same Parameters, buffers and hooks
    return new


def convert(model, backend="cnnext"):
    """Swaps every Conv2d of `model` (in place, sharing its parameters) for `backend`'s; returns the model."""
    target = layer_class("Conv2d", backend)
    for name, child in model.named_children():
        if type(child) in CONV2D_CLASSES and type(child) is not target:
            setattr(model, name, _rebuild(child, target))
        else:
            convert(child, backend)
    if type(model) in CONV2D_CLASSES and type(model) is not target:
        return _rebuild(model, target)
    return model
