// Small helpers shared by every cnnext CUDA kernel. Plain CUDA: no torch headers, so CI compiles these
// files with nvcc alone (tests/test_cuda_compile.py).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace cnnext::cuda {

// Accumulation type: float for float and the half types, double for double.
template <typename T> struct AccumulateType { using type = float; };
template <> struct AccumulateType<double> { using type = double; };
template <typename T> using acc_t = typename AccumulateType<T>::type;

// Explicit conversions, because torch builds with __CUDA_NO_HALF_CONVERSIONS__ (no implicit half <-> float).
template <typename Acc, typename T> __host__ __device__ inline Acc to_acc(T v) { return static_cast<Acc>(v); }
template <> __host__ __device__ inline float to_acc<float, __half>(__half v) { return __half2float(v); }
template <> __host__ __device__ inline float to_acc<float, __nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}

template <typename T, typename Acc> __host__ __device__ inline T from_acc(Acc v) { return static_cast<T>(v); }
template <> __host__ __device__ inline __half from_acc<__half, float>(float v) { return __float2half_rn(v); }
template <> __host__ __device__ inline __nv_bfloat16 from_acc<__nv_bfloat16, float>(float v) {
  return __float2bfloat16_rn(v);
}

__host__ __device__ constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The largest gridDim.y and gridDim.z CUDA allows (gridDim.x goes to 2^31 - 1).
constexpr int64_t kMaxGridYZ = 65535;
constexpr int64_t kMaxGridX = 2147483647;

}  // namespace cnnext::cuda
