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


CONV2D_BY_BACKEND = {"torch": nn.Conv2d, "cnnext": Conv2d, "naive": NaiveConv2d}


def conv2d_class(backend):
    """The Conv2d module class of a backend: 'cnnext', 'torch' or 'naive'."""
    if backend not in CONV2D_BY_BACKEND:
        raise ValueError(f"unknown backend {backend!r}, expected one of {sorted(CONV2D_BY_BACKEND)}")
    return CONV2D_BY_BACKEND[backend]


def _rebuild(module, cls):
    new = cls.__new__(cls)
    new.__dict__ = module.__dict__.copy()  # shares the same Parameters, buffers and hooks
    return new


def convert(model, backend="cnnext"):
    """Swaps every Conv2d of `model` (in place, sharing its parameters) for `backend`'s; returns the model."""
    target = conv2d_class(backend)
    for name, child in model.named_children():
        if type(child) in CONV2D_BY_BACKEND.values() and type(child) is not target:
            setattr(model, name, _rebuild(child, target))
        else:
            convert(child, backend)
    if type(model) in CONV2D_BY_BACKEND.values() and type(model) is not target:
        return _rebuild(model, target)
    return model
