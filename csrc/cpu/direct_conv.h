// Direct convolution on the CPU (float32 on AVX-512, bfloat16 with float32 sums on AVX-512 BF16): no im2col
// buffer, channels-last data, a register-blocked micro-kernel (direct_conv_kernels.h). conv2d.cpp and conv3d.cpp
// use it where conv2d_path() / conv3d_path() (kernel_path.h) pick it, and fall back to im2col + GEMM elsewhere
// (other dtypes, CPUs without these instructions, depthwise-like groups). A Conv2d comes as_volume (depth 1).
#pragma once
#include <ATen/ATen.h>

#include <string>

#include "../conv_params.h"

namespace cnnext::cpu {

enum class DirectPath { none, avx512_float32, avx512_bfloat16 };

// The one place that decides which CPU kernel a Conv2d or Conv3d runs on: the dtype, the CPU's instructions,
// CNNEXT_CPU_KERNEL ("gemm": never direct; "avx512": no BF16 instructions; "direct": the tap kernel for every
// layer, no Winograd, narrow, pointwise or depthwise convolution) and the grouping. none: im2col + GEMM.
DirectPath direct_conv_path(const at::Tensor& input, const Conv3dShape& s, const Conv3dParams& p);

// What the direct path's forward runs for this layer: "pointwise (NCHW, vectors along pixels)", "depthwise (NCHW
// planes, vectors along rows)", "Winograd F(2x2, 3x3)", "narrow (vectors along rows)", or "" for the tap kernel
// itself (bfloat16 and CNNEXT_CPU_KERNEL=direct always take the tap kernel).
std::string direct_conv_algorithm(const at::Tensor& input, const Conv3dShape& s, const Conv3dParams& p);

// Tensors are [N, C, H, W] for a Conv2d, [N, C, D, H, W] for a Conv3d. The output comes in input's suggested
// memory format, grad_input in `format`.
at::Tensor direct_conv_forward(const at::Tensor& input, const at::Tensor& weight,
                               const std::optional<at::Tensor>& bias, const Conv3dShape& s, const Conv3dParams& p);
at::Tensor direct_conv_grad_input(const at::Tensor& grad_output, const at::Tensor& weight, const Conv3dShape& s,
                                  const Conv3dParams& p, at::MemoryFormat format);
// Returns grad_weight in weight's [K, C/groups, (T,) R, S] contiguous layout.
at::Tensor direct_conv_grad_weight(const at::Tensor& grad_output, const at::Tensor& input, const Conv3dShape& s,
                                   const Conv3dParams& p);

}  // namespace cnnext::cpu
