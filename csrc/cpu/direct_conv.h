// Direct convolution on the CPU (float32, AVX-512): no im2col buffer, channels-last data, a register-blocked
// micro-kernel (direct_conv_kernels.h). conv2d.cpp uses it where direct_conv_applies() and falls back to
// im2col + GEMM elsewhere (other dtypes, CPUs without AVX-512, depthwise-like groups).
#pragma once
#include <ATen/ATen.h>

#include "../conv_params.h"

namespace cnnext::cpu {

bool direct_conv_applies(const at::Tensor& input, const Conv2dShape& s, const Conv2dParams& p);

// The output comes in input's suggested memory format, grad_input in `format`.
at::Tensor direct_conv_forward(const at::Tensor& input, const at::Tensor& weight,
                               const std::optional<at::Tensor>& bias, const Conv2dShape& s, const Conv2dParams& p);
at::Tensor direct_conv_grad_input(const at::Tensor& grad_output, const at::Tensor& weight, const Conv2dShape& s,
                                  const Conv2dParams& p, at::MemoryFormat format);
// Returns grad_weight in weight's [K, C/groups, R, S] contiguous layout.
at::Tensor direct_conv_grad_weight(const at::Tensor& grad_output, const at::Tensor& input, const Conv2dShape& s,
                                   const Conv2dParams& p);

}  // namespace cnnext::cpu
