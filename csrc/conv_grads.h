// The part of every convolution backward (2-D and 3-D, CPU and CUDA) that needs no kernel: size-0 tensors
// in the slots that output_mask skips, grad_bias (a sum over every dimension but the channels), and the
// whole answer for an empty batch.
#pragma once
#include <ATen/ATen.h>

#include <array>
#include <tuple>
#include <vector>

namespace cnnext {

using ConvGrads = std::tuple<at::Tensor, at::Tensor, at::Tensor>;  // grad_input, grad_weight, grad_bias

inline ConvGrads conv_grads_without_kernels(const at::Tensor& grad_output, const at::Tensor& input,
                                            const at::Tensor& weight, std::array<bool, 3> output_mask) {
  const auto skipped = at::empty({0}, input.options());
  at::Tensor dx = skipped, dw = skipped, db = skipped;
  if (output_mask[2]) {
    std::vector<int64_t> dims{0};
    for (int64_t d = 2; d < grad_output.dim(); ++d) dims.push_back(d);
    db = grad_output.sum(dims);
  }
  if (input.size(0) == 0) {
    if (output_mask[0]) dx = at::empty_like(input);
    if (output_mask[1]) dw = at::zeros_like(weight, at::MemoryFormat::Contiguous);
  }
  return {dx, dw, db};
}

}  // namespace cnnext
