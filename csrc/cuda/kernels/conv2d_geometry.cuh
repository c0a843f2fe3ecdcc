// Conv2d shapes and the index math every CUDA Conv2d kernel uses, as __host__ __device__ functions so
// that tests/cuda/conv2d_index_test.cu can check them on the CPU against a plain loop convolution.
//
// Layouts (all channels-last, like the CPU kernel in csrc/cpu/):
//   input x, grad_input dx     [N, H, W, C]
//   output y, grad_output dy   [N, Ho, Wo, K]
//   weight w, grad_weight dw   [K, R, S, Cg]      (Cg = C / groups, Kg = K / groups)
// Index is int32_t when every tensor involved has fewer than 2^31 elements (32-bit division and
// multiplication are several times cheaper on the GPU) and int64_t otherwise; see needs_64bit_index().
#pragma once
#include "common.cuh"

namespace cnnext::cuda {

template <typename Index>
struct Conv2dGeometry {
  Index n, c, h, w;  // input
  Index k, r, s;     // weight: out channels, kernel height, kernel width
  Index ho, wo;      // output
  Index stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups;

  __host__ __device__ Index cg() const { return c / groups; }
  __host__ __device__ Index kg() const { return k / groups; }
  __host__ __device__ Index taps() const { return r * s; }

  template <typename Other>
  Conv2dGeometry<Other> as() const {
    return {Other(n), Other(c), Other(h), Other(w), Other(k), Other(r), Other(s), Other(ho), Other(wo),
            Other(stride_h), Other(stride_w), Other(pad_h), Other(pad_w), Other(dil_h), Other(dil_w), Other(groups)};
  }
};

// True when some tensor of the convolution (input, output, weight, or an im2col buffer of `column_images`
// images) is too large for 32-bit offsets; the margin leaves room for indices of a tile past the end.
inline bool needs_64bit_index(const Conv2dGeometry<int64_t>& g, int64_t column_images) {
  const int64_t limit = (int64_t(1) << 31) - (int64_t(1) << 16);
  const int64_t largest[] = {g.n * g.c * g.h * g.w, g.n * g.k * g.ho * g.wo, g.k * g.cg() * g.taps(),
                             column_images * g.ho * g.wo * g.c * g.taps()};
  for (int64_t size : largest) {
    if (size >= limit) return true;
  }
  return false;
}

// The input pixel (ih, iw) that kernel tap (r, s) of output pixel (ho, wo) reads; may lie in the padding.
template <typename Index>
struct InputPixel {
  Index ih, iw;
  __host__ __device__ bool inside(const Conv2dGeometry<Index>& g) const {
    return ih >= 0 && ih < g.h && iw >= 0 && iw < g.w;
  }
};

template <typename Index>
__host__ __device__ inline InputPixel<Index> input_pixel(const Conv2dGeometry<Index>& g, Index ho, Index wo, Index r,
                                                         Index s) {
  return {ho * g.stride_h - g.pad_h + r * g.dil_h, wo * g.stride_w - g.pad_w + s * g.dil_w};
}

// The inverse: the output coordinate whose tap `tap` reads input coordinate `in` along one dimension,
// or -1 when no output pixel does (the stride skips it or it falls outside [0, out_size)).
template <typename Index>
__host__ __device__ inline Index output_coord(Index in, Index tap, Index pad, Index dil, Index stride, Index out_size) {
  const Index numerator = in + pad - tap * dil;
  if (numerator < 0 || numerator % stride != 0) return -1;
  const Index out = numerator / stride;
  return out < out_size ? out : -1;
}

// Offset of x[n, ih, iw, channel] and of y/dy[n, ho, wo, channel].
template <typename Index>
__host__ __device__ inline Index input_offset(const Conv2dGeometry<Index>& g, Index n, Index ih, Index iw,
                                              Index channel) {
  return ((n * g.h + ih) * g.w + iw) * g.c + channel;
}
template <typename Index>
__host__ __device__ inline Index output_offset(const Conv2dGeometry<Index>& g, Index n, Index ho, Index wo,
                                               Index channel) {
  return ((n * g.ho + ho) * g.wo + wo) * g.k + channel;
}
// Offset of w[k, r, s, c] (c within the group).
template <typename Index>
__host__ __device__ inline Index weight_offset(const Conv2dGeometry<Index>& g, Index k, Index r, Index s, Index c) {
  return ((k * g.r + r) * g.s + s) * g.cg() + c;
}

// A flat pixel index of an [N, P, Q] grid split into (image, row, column).
template <typename Index>
struct PixelIndex {
  Index n, p, q;
};
template <typename Index>
__host__ __device__ inline PixelIndex<Index> split_pixel(Index pixel, Index rows, Index cols) {
  const Index per_image = rows * cols, within = pixel % per_image;
  return {pixel / per_image, within / cols, within % cols};
}

// A flat (r, s, channel) index, channel fastest, split into its parts.
template <typename Index>
struct TapIndex {
  Index r, s, channel;
};
template <typename Index>
__host__ __device__ inline TapIndex<Index> split_tap(Index index, Index s, Index channels) {
  const Index tap = index / channels;
  return {tap / s, tap % s, index % channels};
}

}  // namespace cnnext::cuda
