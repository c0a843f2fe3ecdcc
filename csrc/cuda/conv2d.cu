// Conv2d on CUDA: the same ops and semantics as the CPU kernel (csrc/cpu/conv2d.cpp), registered with
// TORCH_LIBRARY_IMPL(cnnext, CUDA, m). Arguments are checked by conv_params.h; then each call runs one
// of two paths (kernels/conv2d_path.cuh; CNNEXT_CUDA_CONV_PATH=auto|im2col|implicit_gemm overrides):
//   im2col         channels-last im2col/col2im kernels + one cuBLAS GEMM per group through ATen, working
//                  through the batch in chunks so the column buffer stays bounded (as on the CPU)
//   implicit_gemm  fused kernels that build the im2col tiles in shared memory (kernels/implicit_gemm.cuh)
// Every kernel runs on the current stream of the input's device; grad_bias is ATen's sum (as on the CPU).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cstdlib>

#include "../column_gemm.h"
#include "../conv_grads.h"
#include "../conv_params.h"
#include "kernels/conv2d_im2col.cuh"
#include "kernels/conv2d_implicit_gemm.cuh"
#include "kernels/conv2d_path.cuh"
#include "launch_helpers.h"

namespace cnnext::cuda {
namespace {

constexpr int64_t kColumnBytes = 256 << 20;         // upper bound of one im2col buffer (unless one image needs more)
constexpr int64_t kPartialSumBytes = 256 << 20;     // upper bound of the grad_weight split-K partial sums
constexpr int64_t kMinDepthPerSplit = 256;          // output pixels per grad_weight split, at least
constexpr int64_t kBlocksPerSM = 2;                 // implicit_gemm_kernel's __launch_bounds__ occupancy

Conv2dGeometry<int64_t> geometry(const Conv2dShape& s, const Conv2dParams& p) {
  return {s.n, s.c, s.h, s.w, s.k, s.r, s.s, s.ho, s.wo, p.stride_h, p.stride_w, p.pad_h, p.pad_w,
          p.dil_h, p.dil_w, p.groups};
}

Conv2dPath choose_path(const Conv2dGeometry<int64_t>& g, Conv2dPass pass) {
  const char* value = std::getenv("CNNEXT_CUDA_CONV_PATH");
  Conv2dPathRequest request;
  TORCH_CHECK(parse_path_request(value, request),
              "conv2d: expected the environment variable CNNEXT_CUDA_CONV_PATH to be 'auto', 'im2col' or "
              "'implicit_gemm', but got '", value, "'");
  const Conv2dPath path = choose_conv2d_path(g, request, pass);
  TORCH_CHECK(path == Conv2dPath::Im2col || implicit_gemm_fits(g),
              "conv2d: CNNEXT_CUDA_CONV_PATH=implicit_gemm, but this convolution's implicit-GEMM grid exceeds "
              "CUDA's limits (groups=", g.groups, "); use 'auto' or 'im2col'");
  return path;
}

// ---- im2col path (mirrors csrc/cpu/conv2d.cpp) ----

ColumnGemm gemm_plan(const Conv2dShape& s, const Conv2dParams& p, int64_t elem_size) {
  return column_gemm_plan(s.n, s.ho * s.wo, p.groups, s.r * s.s * (s.c / p.groups), is_pointwise(geometry(s, p)),
                          elem_size, kColumnBytes);
}

// Fills col [n*Ho*Wo, G, R*S*Cg] with the columns of images [first, first + n).
auto im2col(const at::Tensor& x_cl, const Conv2dShape& s, const Conv2dParams& p) {
  return [&x_cl, g = geometry(s, p)](at::Tensor& col, int64_t first, int64_t n) {
    Conv2dGeometry<int64_t> chunk_g = g;
    chunk_g.n = n;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x_cl.scalar_type(), "cnnext_im2col_cuda", [&] {
      using T = typename CudaScalar<scalar_t>::type;
      with_index_type(needs_64bit_index(g, n), [&](auto index) {
        using Index = decltype(index);
        launch_im2col(chunk_g.as<Index>(), data<T>(x_cl) + first * g.c * g.h * g.w, data<T>(col),
                      c10::cuda::getCurrentCUDAStream());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    });
  };
}

at::Tensor forward_im2col(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                          const Conv2dShape& s, const Conv2dParams& p) {
  auto out = at::empty({s.n, s.k, s.ho, s.wo}, input.options().memory_format(at::MemoryFormat::ChannelsLast));
  const auto x = input.contiguous(at::MemoryFormat::ChannelsLast);
  forward_gemm(gemm_plan(s, p, input.element_size()), weight_matrices(weight, p.groups), bias, pixel_rows(x),
               pixel_rows(out), im2col(x, s, p));
  return out;
}

at::Tensor grad_input_im2col(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
                             const Conv2dShape& s, const Conv2dParams& p) {
  const auto g = geometry(s, p);
  const auto go_rows = pixel_rows(grad_output.contiguous(at::MemoryFormat::ChannelsLast));
  auto dx = at::empty({s.n, s.c, s.h, s.w}, input.options().memory_format(at::MemoryFormat::ChannelsLast));
  auto col2im = [&](const at::Tensor& dcol, int64_t first, int64_t n) {
    Conv2dGeometry<int64_t> chunk_g = g;
    chunk_g.n = n;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "cnnext_col2im_cuda", [&] {
      using T = typename CudaScalar<scalar_t>::type;
      with_index_type(needs_64bit_index(g, n), [&](auto index) {
        using Index = decltype(index);
        launch_col2im(chunk_g.as<Index>(), data<T>(dcol), data<T>(dx) + first * s.c * s.h * s.w,
                      c10::cuda::getCurrentCUDAStream());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    });
  };
  grad_input_gemm(gemm_plan(s, p, input.element_size()), go_rows, weight_matrices(weight, p.groups), pixel_rows(dx),
                  col2im);
  return dx;
}

at::Tensor grad_weight_im2col(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
                              const Conv2dShape& s, const Conv2dParams& p) {
  const auto go_rows = pixel_rows(grad_output.contiguous(at::MemoryFormat::ChannelsLast));
  const auto x = input.contiguous(at::MemoryFormat::ChannelsLast);
  return grad_weight_gemm(gemm_plan(s, p, input.element_size()), go_rows, pixel_rows(x), weight, im2col(x, s, p));
}

// ---- implicit-GEMM path ----

at::Tensor forward_implicit_gemm(const at::Tensor& input, const at::Tensor& weight,
                                 const std::optional<at::Tensor>& bias, const Conv2dShape& s, const Conv2dParams& p) {
  const auto g = geometry(s, p);
  auto out = at::empty({s.n, s.k, s.ho, s.wo}, input.options().memory_format(at::MemoryFormat::ChannelsLast));
  const auto x = input.contiguous(at::MemoryFormat::ChannelsLast);
  const auto w = weight.permute({0, 2, 3, 1}).contiguous();  // [K, R, S, Cg]
  const auto b = bias.has_value() && bias->defined() ? bias->contiguous() : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "cnnext_conv2d_forward_cuda", [&] {
    using T = typename CudaScalar<scalar_t>::type;
    with_index_type(needs_64bit_index(g, 0), [&](auto index) {
      using Index = decltype(index);
      const Conv2dForwardGemm<T, Index> problem{g.as<Index>(), data<T>(x), data<T>(w),
                                                b.defined() ? data<T>(b) : nullptr, data<T>(out)};
      launch_implicit_gemm(problem, 1, c10::cuda::getCurrentCUDAStream());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return out;
}

at::Tensor grad_input_implicit_gemm(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
                                    const Conv2dShape& s, const Conv2dParams& p) {
  const auto g = geometry(s, p);
  auto dx = at::empty({s.n, s.c, s.h, s.w}, input.options().memory_format(at::MemoryFormat::ChannelsLast));
  const auto dy = grad_output.contiguous(at::MemoryFormat::ChannelsLast);
  const auto w = weight.permute({0, 2, 3, 1}).contiguous();  // [K, R, S, Cg]
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "cnnext_conv2d_dgrad_cuda", [&] {
    using T = typename CudaScalar<scalar_t>::type;
    with_index_type(needs_64bit_index(g, 0), [&](auto index) {
      using Index = decltype(index);
      const Conv2dGradInputGemm<T, Index> problem{g.as<Index>(), data<T>(dy), data<T>(w), data<T>(dx)};
      launch_implicit_gemm(problem, 1, c10::cuda::getCurrentCUDAStream());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return dx;
}

int64_t multiprocessor_count(const at::Tensor& t) {
  int count = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, t.get_device()));
  return count;
}

at::Tensor grad_weight_implicit_gemm(const at::Tensor& grad_output, const at::Tensor& input,
                                     const at::Tensor& weight, const Conv2dShape& s, const Conv2dParams& p) {
  const auto g = geometry(s, p);
  const auto x = input.contiguous(at::MemoryFormat::ChannelsLast);
  const auto dy = grad_output.contiguous(at::MemoryFormat::ChannelsLast);
  const int64_t weight_elements = weight.numel();
  if (weight_elements == 0) return at::zeros_like(weight, at::MemoryFormat::Contiguous);  // zero input channels
  const auto acc_type = input.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const int64_t acc_size = input.scalar_type() == at::kDouble ? 8 : 4;

  // Few output tiles and a long depth (every output pixel): split the depth so that the GPU fills up.
  const GemmGrid unsplit = gemm_grid<DefaultTile>(g.taps() * g.cg(), g.kg(), g.groups, 1);
  const int64_t splits = choose_depth_splits(unsplit.m_tiles * unsplit.n_tiles * unsplit.groups, g.n * g.ho * g.wo,
                                             kBlocksPerSM * multiprocessor_count(input), kMinDepthPerSplit,
                                             std::max<int64_t>(1, kPartialSumBytes / (weight_elements * acc_size)));
  auto partial = at::empty({splits, weight_elements}, input.options().dtype(acc_type));
  auto dw = at::empty({s.k, s.r, s.s, s.c / p.groups}, weight.options());  // [K, R, S, Cg]
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "cnnext_conv2d_wgrad_cuda", [&] {
    using T = typename CudaScalar<scalar_t>::type;
    using Acc = acc_t<T>;
    const auto stream = c10::cuda::getCurrentCUDAStream();
    with_index_type(needs_64bit_index(g, 0), [&](auto index) {
      using Index = decltype(index);
      const Conv2dGradWeightGemm<T, Index> problem{g.as<Index>(), data<T>(x), data<T>(dy), data<Acc>(partial)};
      launch_implicit_gemm(problem, splits, stream);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
    launch_reduce_partial_sums(data<Acc>(partial), splits, weight_elements, data<T>(dw), stream);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return dw.permute({0, 3, 1, 2}).contiguous();
}

// ---- the ops ----

at::Tensor conv2d_forward(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                          at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  const auto p = Conv2dParams::from(stride, padding, dilation, groups);
  const auto s = check_conv2d(input, weight, bias, p);
  const c10::cuda::CUDAGuard device_guard(input.device());
  if (s.n == 0) {
    return at::empty({s.n, s.k, s.ho, s.wo}, input.options().memory_format(input.suggest_memory_format()));
  }
  const auto out = choose_path(geometry(s, p), Conv2dPass::Forward) == Conv2dPath::ImplicitGemm
                       ? forward_implicit_gemm(input, weight, bias, s, p)
                       : forward_im2col(input, weight, bias, s, p);
  return out.contiguous(input.suggest_memory_format());
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv2d_backward(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
    at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups, std::array<bool, 3> output_mask) {
  const auto p = Conv2dParams::from(stride, padding, dilation, groups);
  const auto s = check_conv2d(input, weight, std::nullopt, p);
  check_grad_output(grad_output, s, input);
  const c10::cuda::CUDAGuard device_guard(input.device());
  auto [dx, dw, db] = conv_grads_without_kernels(grad_output, input, weight, output_mask);
  if (s.n == 0) return {dx, dw, db};
  const auto g = geometry(s, p);
  if (output_mask[0]) {
    dx = choose_path(g, Conv2dPass::GradInput) == Conv2dPath::ImplicitGemm
             ? grad_input_implicit_gemm(grad_output, input, weight, s, p)
             : grad_input_im2col(grad_output, input, weight, s, p);
    dx = dx.contiguous(input.suggest_memory_format());
  }
  if (output_mask[1]) {
    dw = choose_path(g, Conv2dPass::GradWeight) == Conv2dPath::ImplicitGemm
             ? grad_weight_implicit_gemm(grad_output, input, weight, s, p)
             : grad_weight_im2col(grad_output, input, weight, s, p);
  }
  return {dx, dw, db};
}

}  // namespace

TORCH_LIBRARY_IMPL(cnnext, CUDA, m) {
  m.impl("conv2d", &conv2d_forward);
  m.impl("conv2d_backward", &conv2d_backward);
}

}  // namespace cnnext::cuda
