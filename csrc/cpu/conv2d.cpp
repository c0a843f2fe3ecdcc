// Conv2d on the CPU. float32 on AVX-512 CPUs (and bfloat16 on AVX-512 BF16) runs the direct convolution of
// direct_conv.cpp; everything else runs channels-last im2col + one GEMM per group (ATen's mm, i.e. MKL), working
// through the batch in chunks so that the column buffer stays bounded whatever the batch size.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include "../column_gemm.h"
#include "../conv_grads.h"
#include "../conv_params.h"
#include "direct_conv.h"
#include "im2col.h"
#include "kernel_path.h"

namespace cnnext::cpu {

// A Conv2d runs where the Conv3d of depth 1 that it is would run.
ConvPath conv2d_path(const at::Tensor& input, const Conv2dShape& s, const Conv2dParams& p) {
  return conv3d_path(input, as_volume(s), as_volume(p));
}

namespace {

constexpr int64_t kColumnBytes = 32 << 20;  // upper bound of one im2col buffer (unless one image needs more)

bool is_pointwise(const Conv2dShape& s, const Conv2dParams& p) {
  return s.r == 1 && s.s == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 && p.pad_w == 0;
}

ColumnGemm gemm_plan(const Conv2dShape& s, const Conv2dParams& p, int64_t elem_size) {
  return column_gemm_plan(s.n, s.ho * s.wo, p.groups, s.r * s.s * (s.c / p.groups), is_pointwise(s, p), elem_size,
                          kColumnBytes);
}

// Fills col [n*Ho*Wo, G, R*S*Cg] with the columns of images [first, first + n).
auto im2col(const at::Tensor& x_cl, const Conv2dShape& s, const Conv2dParams& p) {
  return [&x_cl, &s, &p](at::Tensor& col, int64_t first, int64_t n) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x_cl.scalar_type(), "cnnext_im2col", [&] {
      im2col_nhwc(x_cl.data_ptr<scalar_t>() + first * s.c * s.h * s.w, col.data_ptr<scalar_t>(), n, s, p);
    });
  };
}

at::Tensor conv2d_forward(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                          at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  const auto p = Conv2dParams::from(stride, padding, dilation, groups);
  const auto s = check_conv2d(input, weight, bias, p);
  if (s.n > 0 && conv2d_path(input, s, p) != ConvPath::kIm2colGemm) {
    return direct_conv_forward(input, weight, bias, as_volume(s), as_volume(p));
  }
  auto out = at::empty({s.n, s.k, s.ho, s.wo}, input.options().memory_format(at::MemoryFormat::ChannelsLast));
  if (s.n == 0) return out.contiguous(input.suggest_memory_format());
  const auto x = input.contiguous(at::MemoryFormat::ChannelsLast);
  forward_gemm(gemm_plan(s, p, input.element_size()), weight_matrices(weight, groups), bias, pixel_rows(x),
               pixel_rows(out), im2col(x, s, p));
  return out.contiguous(input.suggest_memory_format());
}

at::Tensor grad_input(const at::Tensor& go_rows, const at::Tensor& input, const at::Tensor& weight,
                      const Conv2dShape& s, const Conv2dParams& p) {
  auto dx = at::empty({s.n, s.c, s.h, s.w}, input.options().memory_format(at::MemoryFormat::ChannelsLast));
  auto col2im = [&](const at::Tensor& dcol, int64_t first, int64_t n) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "cnnext_col2im", [&] {
      col2im_nhwc(dcol.data_ptr<scalar_t>(), dx.data_ptr<scalar_t>() + first * s.c * s.h * s.w, n, s, p);
    });
  };
  grad_input_gemm(gemm_plan(s, p, input.element_size()), go_rows, weight_matrices(weight, p.groups), pixel_rows(dx),
                  col2im);
  return dx.contiguous(input.suggest_memory_format());
}

at::Tensor grad_weight(const at::Tensor& go_rows, const at::Tensor& input, const at::Tensor& weight,
                       const Conv2dShape& s, const Conv2dParams& p) {
  const auto x = input.contiguous(at::MemoryFormat::ChannelsLast);
  return grad_weight_gemm(gemm_plan(s, p, input.element_size()), go_rows, pixel_rows(x), weight, im2col(x, s, p));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv2d_backward(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
    at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups, std::array<bool, 3> output_mask) {
  const auto p = Conv2dParams::from(stride, padding, dilation, groups);
  const auto s = check_conv2d(input, weight, std::nullopt, p);
  check_grad_output(grad_output, s, input);
  auto [dx, dw, db] = conv_grads_without_kernels(grad_output, input, weight, output_mask);
  if (s.n == 0) return {dx, dw, db};
  if (conv2d_path(input, s, p) != ConvPath::kIm2colGemm) {
    const auto volume_shape = as_volume(s);
    const auto volume_params = as_volume(p);
    if (output_mask[0]) {
      dx = direct_conv_grad_input(grad_output, weight, volume_shape, volume_params, input.suggest_memory_format());
    }
    if (output_mask[1]) dw = direct_conv_grad_weight(grad_output, input, volume_shape, volume_params);
    return {dx, dw, db};
  }
  const auto go_rows = pixel_rows(grad_output.contiguous(at::MemoryFormat::ChannelsLast));
  if (output_mask[0]) dx = grad_input(go_rows, input, weight, s, p);
  if (output_mask[1]) dw = grad_weight(go_rows, input, weight, s, p);
  return {dx, dw, db};
}

}  // namespace

TORCH_LIBRARY_IMPL(cnnext, CPU, m) {
  m.impl("conv2d", &conv2d_forward);
  m.impl("conv2d_backward", &conv2d_backward);
}

}  // namespace cnnext::cpu
