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

#include "../conv_params.h"
#include "kernels/conv3d_vol2col.cuh"
#include "launch_helpers.h"

namespace cnnext::cuda {
namespace {

using Conv3dParams = ConvNdParams<3>;
using Conv3dShape = ConvNdShape<3>;

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

int64_t volumes_per_chunk(const Conv3dShape& s, int64_t elem_size) {
  const int64_t per_volume = std::max<int64_t>(1, s.out_pixels() * s.c * s.kernel_taps() * elem_size);
  return std::clamp<int64_t>(kColumnBytes / per_volume, 1, std::max<int64_t>(s.n, 1));
}

// weight [K, Cg, T, R, S] -> [G, Kg, T*R*S*Cg], the order of a column row.
at::Tensor weight_matrices(const at::Tensor& weight, int64_t groups) {
  const int64_t row = weight.size(1) * weight.size(2) * weight.size(3) * weight.size(4);
  return weight.permute({0, 2, 3, 4, 1}).contiguous().view({groups, weight.size(0) / groups, row});
}

// A channels-last tensor [N, C, D, H, W] seen as the matrix [N*D*H*W, C].
at::Tensor voxel_rows(const at::Tensor& t_cl) {
  return t_cl.permute({0, 2, 3, 4, 1}).view({t_cl.size(0) * t_cl.size(2) * t_cl.size(3) * t_cl.size(4), t_cl.size(1)});
}

at::Tensor column_buffer(const at::Tensor& like, int64_t chunk, const Conv3dShape& s, const Conv3dParams& p) {
  return at::empty({chunk * s.out_pixels(), p.groups, s.c / p.groups * s.kernel_taps()}, like.options());
}

at::Tensor channels_last_empty(const at::Tensor& like, int64_t n, int64_t c, const std::array<int64_t, 3>& dhw) {
  return at::empty({n, c, dhw[0], dhw[1], dhw[2]}, like.options().memory_format(at::MemoryFormat::ChannelsLast3d));
}

// Columns of volumes [first, first + n) as [n*Do*Ho*Wo, G, T*R*S*Cg]; a pointwise conv uses the input itself.
at::Tensor columns(const at::Tensor& x_cl, int64_t first, int64_t n, const Conv3dShape& s, const Conv3dParams& p,
                   at::Tensor& buffer) {
  if (is_pointwise(s, p)) {
    return voxel_rows(x_cl.narrow(0, first, n)).view({n * s.out_pixels(), p.groups, s.c / p.groups});
  }
  auto col = buffer.narrow(0, 0, n * s.out_pixels());
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
  return col;
}

at::Tensor conv3d_forward(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                          at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  const auto p = Conv3dParams::from(kOp, stride, padding, dilation, groups);
  const auto s = check_conv<3>(kOp, input, weight, bias, p);
  const c10::cuda::CUDAGuard device_guard(input.device());
  auto out = channels_last_empty(input, s.n, s.k, s.out);
  if (s.n == 0) return out.contiguous(input.suggest_memory_format());

  const auto x = input.contiguous(at::MemoryFormat::ChannelsLast3d);
  const auto w = weight_matrices(weight, groups);
  const auto out_rows = voxel_rows(out);
  const int64_t kg = s.k / groups, voxels = s.out_pixels(), chunk = volumes_per_chunk(s, input.element_size());
  auto buffer = is_pointwise(s, p) ? at::Tensor() : column_buffer(input, chunk, s, p);
  for (int64_t first = 0; first < s.n; first += chunk) {
    const int64_t n = std::min(chunk, s.n - first);
    const auto col = columns(x, first, n, s, p, buffer);
    const auto out_chunk = out_rows.narrow(0, first * voxels, n * voxels);
    for (int64_t g = 0; g < groups; ++g) {
      auto out_g = out_chunk.narrow(1, g * kg, kg);
      if (bias.has_value() && bias->defined()) {
        at::addmm_out(out_g, bias->narrow(0, g * kg, kg), col.select(1, g), w[g].t());
      } else {
        at::mm_out(out_g, col.select(1, g), w[g].t());
      }
    }
  }
  return out.contiguous(input.suggest_memory_format());
}

at::Tensor grad_input(const at::Tensor& go_rows, const at::Tensor& input, const at::Tensor& w, const Conv3dShape& s,
                      const Conv3dParams& p) {
  auto dx = channels_last_empty(input, s.n, s.c, s.in);
  const int64_t kg = s.k / p.groups, voxels = s.out_pixels(), chunk = volumes_per_chunk(s, input.element_size());
  const bool pointwise = is_pointwise(s, p);
  auto dcol_buffer = pointwise ? at::Tensor() : column_buffer(input, chunk, s, p);
  const auto dx_rows = voxel_rows(dx);
  for (int64_t first = 0; first < s.n; first += chunk) {
    const int64_t n = std::min(chunk, s.n - first);
    auto dcol = pointwise ? dx_rows.narrow(0, first * voxels, n * voxels).view({n * voxels, p.groups, s.c / p.groups})
                          : dcol_buffer.narrow(0, 0, n * voxels);
    const auto go = go_rows.narrow(0, first * voxels, n * voxels);
    for (int64_t g = 0; g < p.groups; ++g) {
      auto dcol_g = dcol.select(1, g);
      at::mm_out(dcol_g, go.narrow(1, g * kg, kg), w[g]);
    }
    if (pointwise) continue;
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
  }
  return dx.contiguous(input.suggest_memory_format());
}

at::Tensor grad_weight(const at::Tensor& go_rows, const at::Tensor& input, const at::Tensor& weight,
                       const Conv3dShape& s, const Conv3dParams& p) {
  const int64_t kg = s.k / p.groups, voxels = s.out_pixels(), chunk = volumes_per_chunk(s, input.element_size());
  const int64_t cg = s.c / p.groups;
  auto dw = at::zeros({p.groups, kg, s.kernel_taps() * cg}, weight.options());
  const auto x = input.contiguous(at::MemoryFormat::ChannelsLast3d);
  auto buffer = is_pointwise(s, p) ? at::Tensor() : column_buffer(input, chunk, s, p);
  for (int64_t first = 0; first < s.n; first += chunk) {
    const int64_t n = std::min(chunk, s.n - first);
    const auto col = columns(x, first, n, s, p, buffer);
    const auto go = go_rows.narrow(0, first * voxels, n * voxels);
    for (int64_t g = 0; g < p.groups; ++g) {
      dw[g].addmm_(go.narrow(1, g * kg, kg).t(), col.select(1, g));
    }
  }
  // [G, Kg, T*R*S*Cg] -> [K, T, R, S, Cg] -> [K, Cg, T, R, S]
  return dw.view({s.k, s.kernel[0], s.kernel[1], s.kernel[2], cg}).permute({0, 4, 1, 2, 3}).contiguous();
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv3d_backward(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
    at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups, std::array<bool, 3> output_mask) {
  const auto p = Conv3dParams::from("conv3d_backward", stride, padding, dilation, groups);
  const auto s = check_conv<3>("conv3d_backward", input, weight, std::nullopt, p);
  check_conv_grad_output<3>("conv3d_backward", grad_output, s, input);
  const c10::cuda::CUDAGuard device_guard(input.device());
  const auto skipped = at::empty({0}, input.options());
  at::Tensor dx = skipped, dw = skipped, db = skipped;
  if (output_mask[2]) db = grad_output.sum({0, 2, 3, 4});
  if (s.n == 0) {
    if (output_mask[0]) dx = at::empty_like(input);
    if (output_mask[1]) dw = at::zeros_like(weight, at::MemoryFormat::Contiguous);
    return {dx, dw, db};
  }
  const auto go_rows = voxel_rows(grad_output.contiguous(at::MemoryFormat::ChannelsLast3d));
  if (output_mask[0]) dx = grad_input(go_rows, input, weight_matrices(weight, groups), s, p);
  if (output_mask[1]) dw = grad_weight(go_rows, input, weight, s, p);
  return {dx, dw, db};
}

}  // namespace

TORCH_LIBRARY_IMPL(cnnext, CUDA, m) {
  m.impl("conv3d", &conv3d_forward);
  m.impl("conv3d_backward", &conv3d_backward);
}

}  // namespace cnnext::cuda
