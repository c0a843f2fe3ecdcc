// Which CPU kernel an op runs for given tensors: the one decision that the kernels dispatch on and that
// cnnext.show_config() reports (through csrc/config.cpp), so the two cannot disagree.
#pragma once
#include <ATen/ATen.h>

#include "../conv_params.h"

namespace cnnext::cpu {

enum class ConvPath {
  kDirectAvx512,      // direct convolution, float32, AVX-512 (direct_conv.cpp)
  kDirectAvx512Bf16,  // the same in bfloat16 with float32 sums, AVX-512 BF16 (direct_conv_kernels_bf16.cpp)
  kIm2colGemm,        // im2col (vol2col) + one GEMM per group (column_gemm.h): every other case
};

inline const char* conv_path_name(ConvPath path) {
  switch (path) {
    case ConvPath::kDirectAvx512: return "direct AVX-512";
    case ConvPath::kDirectAvx512Bf16: return "direct AVX-512 BF16";
    case ConvPath::kIm2colGemm: return "im2col + GEMM";
  }
  return "unknown";
}

ConvPath conv2d_path(const at::Tensor& input, const Conv2dShape& s, const Conv2dParams& p);  // conv2d.cpp
ConvPath conv3d_path(const at::Tensor& input, const ConvNdShape<3>& s, const ConvNdParams<3>& p);  // conv3d.cpp

}  // namespace cnnext::cpu
