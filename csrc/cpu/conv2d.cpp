// Conv2d on the CPU. float32 on AVX-512 CPUs runs the direct convolution of direct_conv.cpp; everything
// else runs channels-last im2col + one GEMM per group (ATen's mm, i.e. MKL), working through the batch in
// chunks so that the column buffer stays bounded whatever the batch size.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include "../column_gemm.h"
#include "../conv_grads.h"
#include "../conv_params.h"
#include "direct_conv.h"
#include "im2col.h"

namespace cnnext::cpu {
namespace {

constexpr int64_t kColumnBytes = 32 << 20;  // upper bound of one im2col buffer (unless one image needs more)

bool is_pointwise(const Conv2dShape& s, const Conv2dParams& p) {
  return s.r == 1 && s.s == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 && p.pad_w == 0;
}

ColumnGemm gemm_plan(const Conv2dShape& s, const Conv2dParams& p, int64_t elem_size) {
  const int64_t column_bytes = s.ho * s.wo * s.c * s.r * s.s * elem_size;
  return {s.n, s.ho * s.wo, images_per_chunk(s.n, column_bytes, kColumnBytes), p.groups};
}

at::Tensor column_buffer(const at::Tensor& like, int64_t chunk, const Conv2dShape& s, const Conv2dParams& p) {
  return at::empty({chunk * s.ho * s.wo, p.groups, s.c / p.groups * s.r * s.s}, like.options());
}

// Columns of images [first, first + n) as [n*Ho*Wo, G, R*S*Cg]; a 1x1 stride-1 conv uses the input itself.
auto column_maker(const at::Tensor& x_cl, const Conv2dShape& s, const Conv2dParams& p, int64_t chunk) {
  auto buffer = is_pointwise(s, p) ? at::Tensor() : column_buffer(x_cl, chunk, s, p);
  return [&x_cl, &s, &p, buffer](int64_t first, int64_t n) {
    if (is_pointwise(s, p)) {
      return pixel_rows(x_cl.narrow(0, first, n)).view({n * s.ho * s.wo, p.groups, s.c / p.groups});
    }
    auto col = buffer.narrow(0, 0, n * s.ho * s.wo);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x_cl.scalar_type(), "cnnext_im2col", [&] {
      im2col_nhwc(x_cl.data_ptr<scalar_t>() + first * s.c * s.h * s.w, col.data_ptr<scalar_t>(), n, s, p);
    });
    return col;
  };
}

at::Tensor conv2d_forward(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                          at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  const auto p = Conv2dParams::from(stride, padding, dilation, groups);
  const auto s = check_conv2d(input, weight, bias, p);
  auto out = at::empty({s.n, s.k, s.ho, s.wo}, input.options().memory_format(at::MemoryFormat::ChannelsLast));
  if (s.n == 0) return out.contiguous(input.suggest_memory_format());
  if (direct_conv_applies(input, s, p)) {
    return direct_conv_forward(input, weight, bias, s, p);
  }
  const auto x = input.contiguous(at::MemoryFormat::ChannelsLast);
  const auto plan = gemm_plan(s, p, input.element_size());
  forward_gemm(plan, weight_matrices(weight, groups), bias, pixel_rows(out), column_maker(x, s, p, plan.chunk));
  return out.contiguous(input.suggest_memory_format());
}

at::Tensor grad_input(const at::Tensor& go_rows, const at::Tensor& input, const at::Tensor& weight,
                      const Conv2dShape& s, const Conv2dParams& p) {
  auto dx = at::empty({s.n, s.c, s.h, s.w}, input.options().memory_format(at::MemoryFormat::ChannelsLast));
  const auto plan = gemm_plan(s, p, input.element_size());
  const bool pointwise = is_pointwise(s, p);
  const auto dcol_buffer = pointwise ? at::Tensor() : column_buffer(input, plan.chunk, s, p);
  const auto dx_rows = pixel_rows(dx);
  auto column_grads = [&](int64_t first, int64_t n) {  // a 1x1 conv's column gradients are grad_input itself
    const int64_t rows = n * s.ho * s.wo;
    return pointwise ? dx_rows.narrow(0, first * s.ho * s.wo, rows).view({rows, p.groups, s.c / p.groups})
                     : dcol_buffer.narrow(0, 0, rows);
  };
  auto add_to_input = [&](const at::Tensor& dcol, int64_t first, int64_t n) {
    if (pointwise) return;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "cnnext_col2im", [&] {
      col2im_nhwc(dcol.data_ptr<scalar_t>(), dx.data_ptr<scalar_t>() + first * s.c * s.h * s.w, n, s, p);
    });
  };
  grad_input_gemm(plan, go_rows, weight_matrices(weight, p.groups), column_grads, add_to_input);
  return dx.contiguous(input.suggest_memory_format());
}

at::Tensor grad_weight(const at::Tensor& go_rows, const at::Tensor& input, const at::Tensor& weight,
                       const Conv2dShape& s, const Conv2dParams& p) {
  const auto x = input.contiguous(at::MemoryFormat::ChannelsLast);
  const auto plan = gemm_plan(s, p, input.element_size());
  return grad_weight_gemm(plan, go_rows, weight, column_maker(x, s, p, plan.chunk));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv2d_backward(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
    at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups, std::array<bool, 3> output_mask) {
  const auto p = Conv2dParams::from(stride, padding, dilation, groups);
  const auto s = check_conv2d(input, weight, std::nullopt, p);
  check_grad_output(grad_output, s, input);
  auto [dx, dw, db] = conv_grads_without_kernels(grad_output, input, weight, output_mask);
  if (s.n == 0) return {dx, dw, db};
  if (direct_conv_applies(input, s, p)) {
    if (output_mask[0]) dx = direct_conv_grad_input(grad_output, weight, s, p, input.suggest_memory_format());
    if (output_mask[1]) dw = direct_conv_grad_weight(grad_output, input, s, p);
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
