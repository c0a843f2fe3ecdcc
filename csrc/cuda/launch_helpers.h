// Host-side helpers shared by the CUDA launchers (csrc/cuda/*.cu): ATen tensors to plain-CUDA kernel
// arguments.
#pragma once
#include <ATen/ATen.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace cnnext::cuda {

// The CUDA type with the same bits as each ATen scalar type.
template <typename T> struct CudaScalar { using type = T; };
template <> struct CudaScalar<at::Half> { using type = __half; };
template <> struct CudaScalar<at::BFloat16> { using type = __nv_bfloat16; };

template <typename T>
T* data(const at::Tensor& t) {
  return static_cast<T*>(t.data_ptr());
}

// Runs f(Index{}) with Index = int32_t, or int64_t when some tensor is too large for 32-bit offsets.
template <typename F>
void with_index_type(bool wide, F&& f) {
  if (wide) {
    f(int64_t{});
  } else {
    f(int32_t{});
  }
}

}  // namespace cnnext::cuda
