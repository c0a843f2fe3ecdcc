// Conv3d on the CPU. float32 on AVX-512 CPUs (and bfloat16 on AVX-512 BF16) runs the direct convolution of
// direct_conv.cpp, the same code as Conv2d's; everything else is the Conv2d recipe with a depth axis:
// channels-last vol2col + one GEMM per group (ATen's mm, i.e. MKL), working through the batch in chunks so the
// column buffer stays bounded.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include "../column_gemm.h"
#include "../conv_grads.h"
#include "../conv_params.h"
#include "direct_conv.h"
#include "kernel_path.h"
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
  return column_gemm_plan(s.n, s.out_pixels(), p.groups, s.kernel_taps() * (s.c / p.groups), is_pointwise(s, p),
                          elem_size, kColumnBytes);
}

at::Tensor channels_last_empty(const at::Tensor& like, int64_t n, int64_t c, const std::array<int64_t, 3>& dhw) {
  return at::empty({n, c, dhw[0], dhw[1], dhw[2]}, like.options().memory_format(at::MemoryFormat::ChannelsLast3d));
}

// Fills col [n*Do*Ho*Wo, G, T*R*S*Cg] with the columns of volumes [first, first + n).
auto vol2col(const at::Tensor& x_cl, const Conv3dShape& s, const Conv3dParams& p) {
  return [&x_cl, &s, &p](at::Tensor& col, int64_t first, int64_t n) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x_cl.scalar_type(), "cnnext_vol2col", [&] {
      vol2col_ndhwc(x_cl.data_ptr<scalar_t>() + first * s.c * s.in_pixels(), col.data_ptr<scalar_t>(), n, s, p);
    });
  };
}

at::Tensor conv3d_forward(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                          at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  const auto p = Conv3dParams::from(kOp, stride, padding, dilation, groups);
  const auto s = check_conv<3>(kOp, input, weight, bias, p);
  if (s.n > 0 && conv3d_path(input, s, p) != ConvPath::kIm2colGemm) {
    return direct_conv_forward(input, weight, bias, s, p);
  }
  auto out = channels_last_empty(input, s.n, s.k, s.out);
  if (s.n == 0) return out.contiguous(input.suggest_memory_format());
  const auto x = input.contiguous(at::MemoryFormat::ChannelsLast3d);
  forward_gemm(gemm_plan(s, p, input.element_size()), weight_matrices(weight, groups), bias, pixel_rows(x),
               pixel_rows(out), vol2col(x, s, p));
  return out.contiguous(input.suggest_memory_format());
}

at::Tensor grad_input(const at::Tensor& go_rows, const at::Tensor& input, const at::Tensor& weight,
                      const Conv3dShape& s, const Conv3dParams& p) {
  auto dx = channels_last_empty(input, s.n, s.c, s.in);
  auto col2vol = [&](const at::Tensor& dcol, int64_t first, int64_t n) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "cnnext_col2vol", [&] {
      col2vol_ndhwc(dcol.data_ptr<scalar_t>(), dx.data_ptr<scalar_t>() + first * s.c * s.in_pixels(), n, s, p);
    });
  };
  grad_input_gemm(gemm_plan(s, p, input.element_size()), go_rows, weight_matrices(weight, p.groups), pixel_rows(dx),
                  col2vol);
  return dx.contiguous(input.suggest_memory_format());
}

at::Tensor grad_weight(const at::Tensor& go_rows, const at::Tensor& input, const at::Tensor& weight,
                       const Conv3dShape& s, const Conv3dParams& p) {
  const auto x = input.contiguous(at::MemoryFormat::ChannelsLast3d);
  return grad_weight_gemm(gemm_plan(s, p, input.element_size()), go_rows, pixel_rows(x), weight, vol2col(x, s, p));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv3d_backward(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
    at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups, std::array<bool, 3> output_mask) {
  const auto p = Conv3dParams::from("conv3d_backward", stride, padding, dilation, groups);
  const auto s = check_conv<3>("conv3d_backward", input, weight, std::nullopt, p);
  check_conv_grad_output<3>("conv3d_backward", grad_output, s, input);
  auto [dx, dw, db] = conv_grads_without_kernels(grad_output, input, weight, output_mask);
  if (s.n == 0) return {dx, dw, db};
  if (conv3d_path(input, s, p) != ConvPath::kIm2colGemm) {
    if (output_mask[0]) dx = direct_conv_grad_input(grad_output, weight, s, p, input.suggest_memory_format());
    if (output_mask[1]) dw = direct_conv_grad_weight(grad_output, input, s, p);
    return {dx, dw, db};
  }
  const auto go_rows = pixel_rows(grad_output.contiguous(at::MemoryFormat::ChannelsLast3d));
  if (output_mask[0]) dx = grad_input(go_rows, input, weight, s, p);
  if (output_mask[1]) dw = grad_weight(go_rows, input, weight, s, p);
  return {dx, dw, db};
}

}  // namespace

ConvPath conv3d_path(const at::Tensor& input, const Conv3dShape& s, const Conv3dParams& p) {
  switch (direct_conv_path(input, s, p)) {
    case DirectPath::avx512_float32: return ConvPath::kDirectAvx512;
    case DirectPath::avx512_bfloat16: return ConvPath::kDirectAvx512Bf16;
    default: return ConvPath::kIm2colGemm;
  }
}

TORCH_LIBRARY_IMPL(cnnext, CPU, m) {
  m.impl("conv3d", &conv3d_forward);
  m.impl("conv3d_backward", &conv3d_backward);
}

}  // namespace cnnext::cpu
