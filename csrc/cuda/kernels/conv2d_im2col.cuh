// Channels-last im2col / col2im on the GPU, the same column layout as the CPU kernel (csrc/cpu/im2col.h):
//   col [n, Ho, Wo, groups, R, S, Cg]
// so that for each group g, output[m, g*Kg:(g+1)*Kg] = col[m, g, :] @ weight_g^T is one cuBLAS GEMM
// (weight_g as [Kg, R*S*Cg]); the launcher (csrc/cuda/conv2d.cu) runs those GEMMs through ATen.
#pragma once
#include "conv2d_geometry.cuh"

namespace cnnext::cuda {

constexpr int kElementwiseThreads = 256;

// Offset in x [n, H, W, C] that column element `index` copies, or -1 where it lies in the zero padding.
template <typename Index>
__host__ __device__ inline Index im2col_source(const Conv2dGeometry<Index>& g, Index index) {
  const Index group_length = g.taps() * g.cg(), row_length = g.groups * group_length;
  const PixelIndex<Index> out = split_pixel(index / row_length, g.ho, g.wo);
  const Index group = index % row_length / group_length;
  const TapIndex<Index> tap = split_tap(index % group_length, g.s, g.cg());
  const InputPixel<Index> in = input_pixel(g, out.p, out.q, tap.r, tap.s);
  return in.inside(g) ? input_offset(g, out.n, in.ih, in.iw, group * g.cg() + tap.channel) : Index(-1);
}

// dx[index] (index into [n, H, W, C]): the sum of every column element that copied that input value.
// A gather, not a scatter with atomics, so the result is the same on every run.
template <typename T, typename Index>
__host__ __device__ inline acc_t<T> col2im_value(const Conv2dGeometry<Index>& g, const T* col, Index index) {
  const Index channel = index % g.c;
  const PixelIndex<Index> in = split_pixel(index / g.c, g.h, g.w);
  const Index group = channel / g.cg(), c = channel % g.cg();
  const Index row_length = g.groups * g.taps() * g.cg();
  acc_t<T> sum = 0;
  for (Index r = 0; r < g.r; ++r) {
    const Index ho = output_coord(in.p, r, g.pad_h, g.dil_h, g.stride_h, g.ho);
    if (ho < 0) continue;
    for (Index s = 0; s < g.s; ++s) {
      const Index wo = output_coord(in.q, s, g.pad_w, g.dil_w, g.stride_w, g.wo);
      if (wo < 0) continue;
      const Index row = (in.n * g.ho + ho) * g.wo + wo;
      sum += to_acc<acc_t<T>>(col[row * row_length + ((group * g.r + r) * g.s + s) * g.cg() + c]);
    }
  }
  return sum;
}

// x: [n, H, W, C] -> col: [n, Ho, Wo, G, R, S, Cg]; one thread per column element, grid-stride.
template <typename T, typename Index>
__global__ void __launch_bounds__(kElementwiseThreads)
    im2col_kernel(const Conv2dGeometry<Index> g, const T* __restrict__ x, T* __restrict__ col) {
  const int64_t total = int64_t(g.n) * g.ho * g.wo * g.groups * g.taps() * g.cg();
  const int64_t step = int64_t(gridDim.x) * blockDim.x;  // 64-bit so that i + step cannot overflow
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += step) {
    const Index source = im2col_source(g, Index(i));
    col[i] = source >= 0 ? x[source] : from_acc<T>(acc_t<T>(0));
  }
}

// col: [n, Ho, Wo, G, R, S, Cg] -> dx: [n, H, W, C]; one thread per input element, grid-stride.
template <typename T, typename Index>
__global__ void __launch_bounds__(kElementwiseThreads)
    col2im_kernel(const Conv2dGeometry<Index> g, const T* __restrict__ col, T* __restrict__ dx) {
  const int64_t total = int64_t(g.n) * g.h * g.w * g.c;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += step) {
    dx[i] = from_acc<T>(col2im_value(g, col, Index(i)));
  }
}

// Enough blocks for one element per thread, capped by the grid limit (the loops are grid-stride).
inline unsigned elementwise_blocks(int64_t elements) {
  const int64_t blocks = ceil_div(elements, kElementwiseThreads);
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > kMaxGridX ? kMaxGridX : blocks));
}

// `g.n` is the number of images in this chunk; x and col point at the chunk's first image.
template <typename T, typename Index>
void launch_im2col(const Conv2dGeometry<Index>& g, const T* x, T* col, cudaStream_t stream) {
  const int64_t total = int64_t(g.n) * g.ho * g.wo * g.groups * g.taps() * g.cg();
  im2col_kernel<T, Index><<<elementwise_blocks(total), kElementwiseThreads, 0, stream>>>(g, x, col);
}

template <typename T, typename Index>
void launch_col2im(const Conv2dGeometry<Index>& g, const T* col, T* dx, cudaStream_t stream) {
  const int64_t total = int64_t(g.n) * g.h * g.w * g.c;
  col2im_kernel<T, Index><<<elementwise_blocks(total), kElementwiseThreads, 0, stream>>>(g, col, dx);
}

}  // namespace cnnext::cuda
