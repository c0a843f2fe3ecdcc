"""Every bad input to cnnext.conv2d gets a clear error, of PyTorch's exception type, before any kernel runs."""
import pytest
import torch

import cnnext

X, W, B = torch.randn(2, 4, 8, 8), torch.randn(6, 4, 3, 3), torch.randn(6)

BAD_CALLS = {
    "input 2-D": (lambda: cnnext.conv2d(X[0, 0], W), RuntimeError, r"3-D \(unbatched.*4-D.*got input of size \[8, 8\]"),
    "input 5-D": (lambda: cnnext.conv2d(X[None], W), RuntimeError, r"got input of size \[1, 2, 4, 8, 8\]"),
    "weight 3-D": (lambda: cnnext.conv2d(X, W[0]), RuntimeError, r"expected weight to be 4-D.*\[4, 3, 3\]"),
    "channels": (lambda: cnnext.conv2d(X, W[:, :3]), RuntimeError, r"expects input with 3 channels.*\[2, 4, 8, 8\]"),
    "groups channels": (lambda: cnnext.conv2d(X, W, groups=2), RuntimeError, r"groups=2.*expects input with 8 channels"),
    "groups out": (lambda: cnnext.conv2d(X, W[:5, :1], groups=4), RuntimeError, r"groups=4 must divide out_channels"),
    "groups zero": (lambda: cnnext.conv2d(X, W, groups=0), RuntimeError, r"groups must be >= 1, but got groups=0"),
    "stride zero": (lambda: cnnext.conv2d(X, W, stride=0), RuntimeError, r"stride must be >= 1, but got stride=\[0, 0\]"),
    "stride negative": (lambda: cnnext.conv2d(X, W, stride=(1, -2)), RuntimeError, r"stride=\[1, -2\]"),
    "dilation zero": (lambda: cnnext.conv2d(X, W, dilation=(0, 1)), RuntimeError, r"dilation must be >= 1.*\[0, 1\]"),
    "padding negative": (lambda: cnnext.conv2d(X, W, padding=-1), RuntimeError, r"padding must be >= 0.*\[-1, -1\]"),
    "kernel too large": (lambda: cnnext.conv2d(X, W, dilation=4), RuntimeError,
                         r"padded input \(8 x 8\) is smaller than the dilated kernel \(9 x 9\)"),
    "padding string": (lambda: cnnext.conv2d(X, W, padding="full"), RuntimeError, r"invalid padding string 'full'"),
    "same strided": (lambda: cnnext.conv2d(X, W, padding="same", stride=2), RuntimeError,
                     r"padding='same' is not supported for strided convolutions"),
    "dtype mismatch": (lambda: cnnext.conv2d(X.double(), W), RuntimeError, r"same dtype.*Double.*Float"),
    "bias dtype": (lambda: cnnext.conv2d(X, W, B.double()), RuntimeError, r"bias to have dtype Float.*Double"),
    "integer": (lambda: cnnext.conv2d(X.long(), W.long()), RuntimeError, r"floating-point dtype.*got Long"),
    "bias shape": (lambda: cnnext.conv2d(X, W, B[:5]), RuntimeError, r"bias of size \[6\].*got bias of size \[5\]"),
    "bias 2-D": (lambda: cnnext.conv2d(X, W, B[None]), RuntimeError, r"got bias of size \[1, 6\]"),
    "stride triple": (lambda: cnnext.conv2d(X, W, stride=(1, 1, 1)), RuntimeError,
                      r"stride to be a single int or a tuple of 2 ints, but got \(1, 1, 1\)"),
    "stride float": (lambda: cnnext.conv2d(X, W, stride=1.5), TypeError, r"stride to be an int or a tuple of 2.*1.5"),
    "input not tensor": (lambda: cnnext.conv2d([1.0], W), TypeError, r"input to be a Tensor, but got list"),
    "bias not tensor": (lambda: cnnext.conv2d(X, W, 3.0), TypeError, r"bias to be a Tensor or None, but got float"),
    "empty height": (lambda: cnnext.conv2d(X[:, :, :0], W, padding=2), RuntimeError,
                     r"non-zero height and width, but got input of size \[2, 4, 0, 8\]"),
    "no out channels": (lambda: cnnext.conv2d(X, W[:0]), RuntimeError, r"non-zero out_channels.*\[0, 4, 3, 3\]"),
    "complex weight": (lambda: cnnext.conv2d(X.cfloat(), W), RuntimeError, r"complex dtype of input.*weight torch.float32"),
    "sparse": (lambda: cnnext.conv2d(X.to_sparse(), W), RuntimeError, r"input to be a dense \(strided\) tensor"),
    "device": (lambda: cnnext.conv2d(X, W, B.to("meta")), RuntimeError, r"same device.*input on cpu.*bias on meta"),
}


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_bad_input_raises_clear_error(name):
    call, error, message = BAD_CALLS[name]
    with pytest.raises(error, match=message):
        call()


def test_direct_op_call_is_checked_too():
    with pytest.raises(RuntimeError, match=r"stride must be >= 1"):
        torch.ops.cnnext.conv2d(X, W, None, [0, 1], [0, 0], [1, 1], 1)
    with pytest.raises(RuntimeError, match=r"expected grad_output of size \[2, 6, 6, 6\]"):
        torch.ops.cnnext.conv2d_backward(torch.randn(2, 6, 5, 5), X, W, [1, 1], [0, 0], [1, 1], 1, [True] * 3)


def test_module_constructor_errors_follow_nn_conv2d():
    with pytest.raises(ValueError, match="in_channels must be divisible by groups"):
        cnnext.Conv2d(4, 6, 3, groups=3)
    with pytest.raises(ValueError, match="padding='same' is not supported for strided convolutions"):
        cnnext.Conv2d(4, 6, 3, padding="same", stride=2)
    with pytest.raises(ValueError, match="padding_mode"):
        cnnext.Conv2d(4, 6, 3, padding_mode="mirror")
