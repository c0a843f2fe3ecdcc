// Which of the two CUDA Conv2d paths runs a given convolution:
//   im2col         im2col/col2im kernels + cuBLAS GEMMs through ATen (an im2col buffer in global memory)
//   implicit_gemm  the fused kernels of conv2d_implicit_gemm.cuh (operand tiles built in shared memory)
// CNNEXT_CUDA_CONV_PATH=auto|im2col|implicit_gemm overrides the choice (read by csrc/cuda/conv2d.cu).
#pragma once
#include <cstring>

#include "conv2d_geometry.cuh"
#include "conv2d_implicit_gemm.cuh"

namespace cnnext::cuda {

enum class Conv2dPath { Im2col, ImplicitGemm };
enum class Conv2dPathRequest { Auto, Im2col, ImplicitGemm };
enum class Conv2dPass { Forward, GradInput, GradWeight };

// Parses the value of CNNEXT_CUDA_CONV_PATH (nullptr or "" mean auto); false for an unknown value.
inline bool parse_path_request(const char* value, Conv2dPathRequest& request) {
  if (value == nullptr || value[0] == '\0' || std::strcmp(value, "auto") == 0) {
    request = Conv2dPathRequest::Auto;
  } else if (std::strcmp(value, "im2col") == 0) {
    request = Conv2dPathRequest::Im2col;
  } else if (std::strcmp(value, "implicit_gemm") == 0) {
    request = Conv2dPathRequest::ImplicitGemm;
  } else {
    return false;
  }
  return true;
}

// A 1x1, stride-1, unpadded convolution is a plain GEMM on the channels-last input: no im2col needed.
inline bool is_pointwise(const Conv2dGeometry<int64_t>& g) {
  return g.r == 1 && g.s == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 && g.pad_w == 0;
}

// Whether the grids of the forward, grad_input and grad_weight implicit GEMMs are within CUDA's limits
// (grad_weight before any depth split; splits are capped to fit).
template <typename Tile = DefaultTile>
bool implicit_gemm_fits(const Conv2dGeometry<int64_t>& g) {
  return gemm_grid<Tile>(g.n * g.ho * g.wo, g.kg(), g.groups, 1).fits() &&
         gemm_grid<Tile>(g.n * g.h * g.w, g.cg(), g.groups, 1).fits() &&
         gemm_grid<Tile>(g.taps() * g.cg(), g.kg(), g.groups, 1).fits();
}

// auto: pointwise convolutions go to cuBLAS (their GEMM needs no im2col and cuBLAS is the faster GEMM), and
// so do shapes whose implicit-GEMM grid would not fit, and grad_input of a strided convolution (the fused
// kernel would multiply the zeros that the stride leaves in its operand: 3/4 of its work at stride 2);
// everything else runs the fused kernels. An explicit request is honoured as asked (the launcher reports
// a request for implicit_gemm that cannot fit).
inline Conv2dPath choose_conv2d_path(const Conv2dGeometry<int64_t>& g, Conv2dPathRequest request, Conv2dPass pass) {
  switch (request) {
    case Conv2dPathRequest::Im2col:
      return Conv2dPath::Im2col;
    case Conv2dPathRequest::ImplicitGemm:
      return Conv2dPath::ImplicitGemm;
    case Conv2dPathRequest::Auto:
      break;
  }
  const bool strided = g.stride_h > 1 || g.stride_w > 1;
  if (is_pointwise(g) || !implicit_gemm_fits(g) || (pass == Conv2dPass::GradInput && strided)) {
    return Conv2dPath::Im2col;
  }
  return Conv2dPath::ImplicitGemm;
}

}  // namespace cnnext::cuda
