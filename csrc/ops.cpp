// Every op schema of cnnext, in one place. Kernels register per dispatch key in cpu/ and cuda/;
// autograd (conv_autograd.cpp, pool_autograd.cpp) for the Autograd key; fake (meta) kernels from Python in
// cnnext/ops.py.
// The Python module itself (cnnext._C, whose import loads this library): python_calls.cpp.
#include <torch/library.h>

TORCH_LIBRARY(cnnext, m) {
  m.def(
      "conv2d(Tensor input, Tensor weight, Tensor? bias, int[2] stride, int[2] padding, "
      "int[2] dilation, int groups) -> Tensor");
  // Gradients not asked for in output_mask come back as empty tensors (size 0).
  m.def(
      "conv2d_backward(Tensor grad_output, Tensor input, Tensor weight, int[2] stride, "
      "int[2] padding, int[2] dilation, int groups, bool[3] output_mask) -> (Tensor, Tensor, Tensor)");

  m.def(
      "conv3d(Tensor input, Tensor weight, Tensor? bias, int[3] stride, int[3] padding, "
      "int[3] dilation, int groups) -> Tensor");
  m.def(
      "conv3d_backward(Tensor grad_output, Tensor input, Tensor weight, int[3] stride, "
      "int[3] padding, int[3] dilation, int groups, bool[3] output_mask) -> (Tensor, Tensor, Tensor)");
  // Pooling: indices are int64 positions h * W + w within each (image, channel) plane, as in PyTorch.
  m.def(
      "max_pool2d(Tensor input, int[2] kernel_size, int[2] stride, int[2] padding, int[2] dilation, "
      "bool ceil_mode) -> (Tensor, Tensor)");
  m.def(
      "max_pool2d_backward(Tensor grad_output, Tensor input, Tensor indices, int[2] kernel_size, "
      "int[2] stride, int[2] padding, int[2] dilation, bool ceil_mode) -> Tensor");
  m.def(
      "avg_pool2d(Tensor input, int[2] kernel_size, int[2] stride, int[2] padding, bool ceil_mode, "
      "bool count_include_pad, int? divisor_override) -> Tensor");
  m.def(
      "avg_pool2d_backward(Tensor grad_output, Tensor input, int[2] kernel_size, int[2] stride, "
      "int[2] padding, bool ceil_mode, bool count_include_pad, int? divisor_override) -> Tensor");
}
