// MaxPool2d and AvgPool2d on CUDA: the same ops and semantics as the CPU kernels (csrc/cpu/pool2d.cpp),
// registered with TORCH_LIBRARY_IMPL(cnnext, CUDA, m). Arguments are checked by pool_params.h; the kernels
// (kernels/pool2d.cuh) work on contiguous NCHW planes and accumulate half/bfloat16 in float. Results come
// back in the input's memory format. Every kernel runs on the current stream of the input's device.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../pool_params.h"
#include "kernels/pool2d.cuh"
#include "launch_helpers.h"

namespace cnnext::cuda {
namespace {

Pool2dGeometry<int64_t> geometry(const Pool2dShape& s, const Pool2dParams& p) {
  return {s.planes(), s.h,        s.w,        s.ho,     s.wo,     p.kernel_h, p.kernel_w,
          p.stride_h, p.stride_w, p.pad_h,    p.pad_w,  p.dil_h,  p.dil_w};
}

bool needs_64bit_index(const Pool2dShape& s) {
  const int64_t limit = (int64_t(1) << 31) - (int64_t(1) << 16);
  return s.planes() * s.h * s.w >= limit || s.planes() * s.ho * s.wo >= limit;
}

at::Tensor like_input(const at::Tensor& result, const at::Tensor& input) {
  return result.contiguous(input.suggest_memory_format());
}

std::tuple<at::Tensor, at::Tensor> max_pool2d_forward(const at::Tensor& input, at::IntArrayRef kernel_size,
                                                      at::IntArrayRef stride, at::IntArrayRef padding,
                                                      at::IntArrayRef dilation, bool ceil_mode) {
  const auto p = Pool2dParams::from("max_pool2d", kernel_size, stride, padding, dilation, ceil_mode);
  const auto s = check_pool2d("max_pool2d", input, p);
  const c10::cuda::CUDAGuard device_guard(input.device());
  const auto x = input.contiguous();
  auto out = at::empty({s.n, s.c, s.ho, s.wo}, x.options());
  auto indices = at::empty({s.n, s.c, s.ho, s.wo}, x.options().dtype(at::kLong));
  if (s.n > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "cnnext_max_pool2d_cuda", [&] {
      using T = typename CudaScalar<scalar_t>::type;
      with_index_type(needs_64bit_index(s), [&](auto index) {
        using Index = decltype(index);
        launch_max_pool2d(geometry(s, p).as<Index>(), data<T>(x), data<T>(out), data<int64_t>(indices),
                          c10::cuda::getCurrentCUDAStream());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    });
  }
  return {like_input(out, input), like_input(indices, input)};
}

at::Tensor max_pool2d_backward(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& indices,
                               at::IntArrayRef kernel_size, at::IntArrayRef stride, at::IntArrayRef padding,
                               at::IntArrayRef dilation, bool ceil_mode) {
  constexpr const char* op = "max_pool2d_backward";
  const auto p = Pool2dParams::from(op, kernel_size, stride, padding, dilation, ceil_mode);
  const auto s = check_pool2d(op, input, p);
  check_like_output(op, grad_output, "grad_output", s, input);
  check_like_output(op, indices, "indices", s, input);
  TORCH_CHECK(grad_output.scalar_type() == input.scalar_type(), op, ": expected grad_output with dtype ",
              input.scalar_type(), " like input, but got ", grad_output.scalar_type());
  TORCH_CHECK(indices.scalar_type() == at::kLong, op, ": expected indices with dtype int64 (Long), but got ",
              indices.scalar_type());
  const c10::cuda::CUDAGuard device_guard(input.device());
  const auto go = grad_output.contiguous();
  const auto idx = indices.contiguous();
  auto grad_input = at::empty({s.n, s.c, s.h, s.w}, go.options());
  if (s.n > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, go.scalar_type(), "cnnext_max_pool2d_bwd_cuda", [&] {
      using T = typename CudaScalar<scalar_t>::type;
      with_index_type(needs_64bit_index(s), [&](auto index) {
        using Index = decltype(index);
        launch_max_pool2d_backward(geometry(s, p).as<Index>(), data<T>(go), data<int64_t>(idx),
                                   data<T>(grad_input), c10::cuda::getCurrentCUDAStream());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    });
  }
  return like_input(grad_input, input);
}

at::Tensor avg_pool2d_forward(const at::Tensor& input, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                              at::IntArrayRef padding, bool ceil_mode, bool count_include_pad,
                              std::optional<int64_t> divisor_override) {
  const auto p = Pool2dParams::from("avg_pool2d", kernel_size, stride, padding, {1, 1}, ceil_mode);
  check_divisor("avg_pool2d", divisor_override);
  const auto s = check_pool2d("avg_pool2d", input, p);
  const c10::cuda::CUDAGuard device_guard(input.device());
  const auto x = input.contiguous();
  auto out = at::empty({s.n, s.c, s.ho, s.wo}, x.options());
  if (s.n > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "cnnext_avg_pool2d_cuda", [&] {
      using T = typename CudaScalar<scalar_t>::type;
      with_index_type(needs_64bit_index(s), [&](auto index) {
        using Index = decltype(index);
        launch_avg_pool2d(geometry(s, p).as<Index>(), data<T>(x), data<T>(out), count_include_pad,
                          Index(divisor_override.value_or(0)), c10::cuda::getCurrentCUDAStream());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    });
  }
  return like_input(out, input);
}

at::Tensor avg_pool2d_backward(const at::Tensor& grad_output, const at::Tensor& input, at::IntArrayRef kernel_size,
                               at::IntArrayRef stride, at::IntArrayRef padding, bool ceil_mode,
                               bool count_include_pad, std::optional<int64_t> divisor_override) {
  constexpr const char* op = "avg_pool2d_backward";
  const auto p = Pool2dParams::from(op, kernel_size, stride, padding, {1, 1}, ceil_mode);
  check_divisor(op, divisor_override);
  const auto s = check_pool2d(op, input, p);
  check_like_output(op, grad_output, "grad_output", s, input);
  TORCH_CHECK(grad_output.scalar_type() == input.scalar_type(), op, ": expected grad_output with dtype ",
              input.scalar_type(), " like input, but got ", grad_output.scalar_type());
  const c10::cuda::CUDAGuard device_guard(input.device());
  const auto go = grad_output.contiguous();
  auto grad_input = at::empty({s.n, s.c, s.h, s.w}, go.options());
  if (s.n > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, go.scalar_type(), "cnnext_avg_pool2d_bwd_cuda", [&] {
      using T = typename CudaScalar<scalar_t>::type;
      with_index_type(needs_64bit_index(s), [&](auto index) {
        using Index = decltype(index);
        launch_avg_pool2d_backward(geometry(s, p).as<Index>(), data<T>(go), data<T>(grad_input),
                                   count_include_pad, Index(divisor_override.value_or(0)),
                                   c10::cuda::getCurrentCUDAStream());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    });
  }
  return like_input(grad_input, input);
}

}  // namespace

TORCH_LIBRARY_IMPL(cnnext, CUDA, m) {
  m.impl("max_pool2d", &max_pool2d_forward);
  m.impl("max_pool2d_backward", &max_pool2d_backward);
  m.impl("avg_pool2d", &avg_pool2d_forward);
  m.impl("avg_pool2d_backward", &avg_pool2d_backward);
}

}  // namespace cnnext::cuda
