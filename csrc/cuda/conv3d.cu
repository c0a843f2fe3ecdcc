// Conv3d on CUDA: the same ops and semantics as the CPU kernel (csrc/cpu/conv3d.cpp), registered with
// TORCH_LIBRARY_IMPL(cnnext, CUDA, m): channels-last vol2col/col2vol kernels (kernels/conv3d_vol2col.cuh)
// + one cuBLAS GEMM per group through ATen, working through the batch in chunks so the column buffer
// stays bounded. Arguments are checked by check_conv<3> (conv_params.h). Every kernel runs on the
// current stream of the input's device; grad_bias is ATen's sum (as on the CPU).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../column_gemm.h"
#include "../conv_grads.h"
#include "../conv_params.h"
#include "kernels/conv3d_vol2col.cuh"
#include "launch_helpers.h"

namespace cnnext::cuda {
namespace {

constexpr const char* kOp = "conv3d";
constexpr int64_t kColumnBytes = 256 << 20;  // upper bound of one vol2col buffer (unless one volume needs more)

Conv3dGeometry<int64_t> geometry(const Conv3dShape& s, const Conv3dParams& p, int64_t volumes) {
  return {volumes,     s.c,         s.in[0],     s.in[1],     s.in[2],     s.k,         s.kernel[0], s.kernel[1],
          s.kernel[2], s.out[0],    s.out[1],    s.out[2],    p.stride[0], p.stride[1], p.stride[2], p.pad[0],
          p.pad[1],    p.pad[2],    p.dil[0],    p.dil[1],    p.dil[2],    p.groups};
}

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
    const auto g = geometry(s, p, n);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x_cl.scalar_type(), "cnnext_vol2col_cuda", [&] {
      using T = typename CudaScalar<scalar_t>::type;
      with_index_type(needs_64bit_index(geometry(s, p, s.n), n), [&](auto index) {
        using Index = decltype(index);
        launch_vol2col(g.as<Index>(), data<T>(x_cl) + first * s.c * s.in_pixels(), data<T>(col),
                       c10::cuda::getCurrentCUDAStream());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    });
  };
}

at::Tensor conv3d_forward(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                          at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  const auto p = Conv3dParams::from(kOp, stride, padding, dilation, groups);
  const auto s = check_conv<3>(kOp, input, weight, bias, p);
  const c10::cuda::CUDAGuard device_guard(input.device());
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
    const auto chunk_g = geometry(s, p, n);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "cnnext_col2vol_cuda", [&] {
      using T = typename CudaScalar<scalar_t>::type;
      with_index_type(needs_64bit_index(geometry(s, p, s.n), n), [&](auto index) {
        using Index = decltype(index);
        launch_col2vol(chunk_g.as<Index>(), data<T>(dcol), data<T>(dx) + first * s.c * s.in_pixels(),
                       c10::cuda::getCurrentCUDAStream());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
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
  const c10::cuda::CUDAGuard device_guard(input.device());
  auto [dx, dw, db] = conv_grads_without_kernels(grad_output, input, weight, output_mask);
  if (s.n == 0) return {dx, dw, db};
  const auto go_rows = pixel_rows(grad_output.contiguous(at::MemoryFormat::ChannelsLast3d));
  if (output_mask[0]) dx = grad_input(go_rows, input, weight, s, p);
  if (output_mask[1]) dw = grad_weight(go_rows, input, weight, s, p);
  return {dx, dw, db};
}

}  // namespace

TORCH_LIBRARY_IMPL(cnnext, CUDA, m) {
  m.impl("conv3d", &conv3d_forward);
  m.impl("conv3d_backward", &conv3d_backward);
}

}  // namespace cnnext::cuda
