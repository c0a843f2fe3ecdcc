// Conv3d on the CPU: the Conv2d recipe with a depth axis. Channels-last vol2col + one GEMM per group
// (ATen's mm, i.e. MKL), working through the batch in chunks so the column buffer stays bounded.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include "../column_gemm.h"
#include "../conv_grads.h"
#include "../conv_params.h"
#include "vol2col.h"

namespace cnnext::cpu {
namespace {

constexpr const char* kOp = "conv3d";
constexpr int64_t kColumnBytes = 32 << 20;  // upper bound of one vol2col buffer (unless one volume needs more)

bool is_pointwise(const Conv3dShape& s, const Conv3dParams& p) {
  for (int i = 0; i < 3; ++i) {
    if (s.kernel[i] != 1 || p.stride[i] != 1 || p.pad[i] != 0) return false;
  }
  return true;
}

ColumnGemm gemm_plan(const Conv3dShape& s, const Conv3dParams& p, int64_t elem_size) {
  const int64_t column_bytes = s.out_pixels() * s.c * s.kernel_taps() * elem_size;
  return {s.n, s.out_pixels(), images_per_chunk(s.n, column_bytes, kColumnBytes), p.groups};
}

at::Tensor channels_last_empty(const at::Tensor& like, int64_t n, int64_t c, const std::array<int64_t, 3>& dhw) {
  return at::empty({n, c, dhw[0], dhw[1], dhw[2]}, like.options().memory_format(at::MemoryFormat::ChannelsLast3d));
}

at::Tensor column_buffer(const at::Tensor& like, int64_t chunk, const Conv3dShape& s, const Conv3dParams& p) {
  return at::empty({chunk * s.out_pixels(), p.groups, s.c / p.groups * s.kernel_taps()}, like.options());
}

// Columns of volumes [first, first + n) as [n*Do*Ho*Wo, G, T*R*S*Cg]; a 1x1x1 stride-1 conv uses the input.
auto column_maker(const at::Tensor& x_cl, const Conv3dShape& s, const Conv3dParams& p, int64_t chunk) {
  auto buffer = is_pointwise(s, p) ? at::Tensor() : column_buffer(x_cl, chunk, s, p);
  return [&x_cl, &s, &p, buffer](int64_t first, int64_t n) {
    if (is_pointwise(s, p)) {
      return pixel_rows(x_cl.narrow(0, first, n)).view({n * s.out_pixels(), p.groups, s.c / p.groups});
    }
    auto col = buffer.narrow(0, 0, n * s.out_pixels());
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x_cl.scalar_type(), "cnnext_vol2col", [&] {
      vol2col_ndhwc(x_cl.data_ptr<scalar_t>() + first * s.c * s.in_pixels(), col.data_ptr<scalar_t>(), n, s, p);
    });
    return col;
  };
}

at::Tensor conv3d_forward(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                          at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  const auto p = Conv3dParams::from(kOp, stride, padding, dilation, groups);
  const auto s = check_conv<3>(kOp, input, weight, bias, p);
  auto out = channels_last_empty(input, s.n, s.k, s.out);
  if (s.n == 0) return out.contiguous(input.suggest_memory_format());
  const auto x = input.contiguous(at::MemoryFormat::ChannelsLast3d);
  const auto plan = gemm_plan(s, p, input.element_size());
  forward_gemm(plan, weight_matrices(weight, groups), bias, pixel_rows(out), column_maker(x, s, p, plan.chunk));
  return out.contiguous(input.suggest_memory_format());
}

at::Tensor grad_input(const at::Tensor& go_rows, const at::Tensor& input, const at::Tensor& weight,
                      const Conv3dShape& s, const Conv3dParams& p) {
  auto dx = channels_last_empty(input, s.n, s.c, s.in);
  const auto plan = gemm_plan(s, p, input.element_size());
  const bool pointwise = is_pointwise(s, p);
  const auto dcol_buffer = pointwise ? at::Tensor() : column_buffer(input, plan.chunk, s, p);
  const auto dx_rows = pixel_rows(dx);
  auto column_grads = [&](int64_t first, int64_t n) {  // a 1x1x1 conv's column gradients are grad_input itself
    const int64_t rows = n * s.out_pixels();
    return pointwise ? dx_rows.narrow(0, first * s.out_pixels(), rows).view({rows, p.groups, s.c / p.groups})
                     : dcol_buffer.narrow(0, 0, rows);
  };
  auto add_to_input = [&](const at::Tensor& dcol, int64_t first, int64_t n) {
    if (pointwise) return;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "cnnext_col2vol", [&] {
      col2vol_ndhwc(dcol.data_ptr<scalar_t>(), dx.data_ptr<scalar_t>() + first * s.c * s.in_pixels(), n, s, p);
    });
  };
  grad_input_gemm(plan, go_rows, weight_matrices(weight, p.groups), column_grads, add_to_input);
  return dx.contiguous(input.suggest_memory_format());
}

at::Tensor grad_weight(const at::Tensor& go_rows, const at::Tensor& input, const at::Tensor& weight,
                       const Conv3dShape& s, const Conv3dParams& p) {
  const auto x = input.contiguous(at::MemoryFormat::ChannelsLast3d);
  const auto plan = gemm_plan(s, p, input.element_size());
  return grad_weight_gemm(plan, go_rows, weight, column_maker(x, s, p, plan.chunk));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv3d_backward(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
    at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups, std::array<bool, 3> output_mask) {
  const auto p = Conv3dParams::from("conv3d_backward", stride, padding, dilation, groups);
  const auto s = check_conv<3>("conv3d_backward", input, weight, std::nullopt, p);
  check_conv_grad_output<3>("conv3d_backward", grad_output, s, input);
  auto [dx, dw, db] = conv_grads_without_kernels(grad_output, input, weight, output_mask);
  if (s.n == 0) return {dx, dw, db};
  const auto go_rows = pixel_rows(grad_output.contiguous(at::MemoryFormat::ChannelsLast3d));
  if (output_mask[0]) dx = grad_input(go_rows, input, weight, s, p);
  if (output_mask[1]) dw = grad_weight(go_rows, input, weight, s, p);
  return {dx, dw, db};
}

}  // namespace

TORCH_LIBRARY_IMPL(cnnext, CPU, m) {
  m.impl("conv3d", &conv3d_forward);
  m.impl("conv3d_backward", &conv3d_backward);
}

}  // namespace cnnext::cpu
