// Channels-last vol2col / col2vol on the GPU for Conv3d, the same column layout as the CPU kernel
// (csrc/cpu/vol2col.h):
//   x, dx [N, D, H, W, C]      col [n, Do, Ho, Wo, groups, T, R, S, Cg]
// so that for each group g, output[m, g*Kg:(g+1)*Kg] = col[m, g, :] @ weight_g^T is one cuBLAS GEMM
// (weight_g as [Kg, T*R*S*Cg]); the launcher (csrc/cuda/conv3d.cu) runs those GEMMs through ATen.
// Plain CUDA: no torch headers.
#pragma once
#include "common.cuh"
#include "conv2d_geometry.cuh"  // output_coord
#include "conv2d_im2col.cuh"    // kElementwiseThreads, elementwise_blocks

namespace cnnext::cuda {

template <typename Index>
struct Conv3dGeometry {
  Index n, c, d, h, w;           // input
  Index k, t, r, s;              // weight: out channels, kernel depth, height, width
  Index out_d, out_h, out_w;     // output
  Index stride_d, stride_h, stride_w, pad_d, pad_h, pad_w, dil_d, dil_h, dil_w, groups;

  __host__ __device__ Index cg() const { return c / groups; }
  __host__ __device__ Index taps() const { return t * r * s; }
  __host__ __device__ Index row_length() const { return groups * taps() * cg(); }  // one output voxel's column row

  template <typename Other>
  Conv3dGeometry<Other> as() const {
    return {Other(n),        Other(c),        Other(d),        Other(h),        Other(w),        Other(k),
            Other(t),        Other(r),        Other(s),        Other(out_d),    Other(out_h),    Other(out_w),
            Other(stride_d), Other(stride_h), Other(stride_w), Other(pad_d),    Other(pad_h),    Other(pad_w),
            Other(dil_d),    Other(dil_h),    Other(dil_w),    Other(groups)};
  }
};

// True when the input, output, weight or a column buffer of `column_volumes` volumes is too large for
// 32-bit offsets (with a margin, as needs_64bit_index does for Conv2d).
inline bool needs_64bit_index(const Conv3dGeometry<int64_t>& g, int64_t column_volumes) {
  const int64_t limit = (int64_t(1) << 31) - (int64_t(1) << 16);
  const int64_t out_voxels = g.out_d * g.out_h * g.out_w;
  const int64_t largest[] = {g.n * g.c * g.d * g.h * g.w, g.n * g.k * out_voxels, g.k * g.cg() * g.taps(),
                             column_volumes * out_voxels * g.row_length()};
  for (int64_t size : largest) {
    if (size >= limit) return true;
  }
  return false;
}

// Offset in x [n, D, H, W, C] that column element `index` copies, or -1 where it lies in the zero padding.
template <typename Index>
__host__ __device__ inline Index vol2col_source(const Conv3dGeometry<Index>& g, Index index) {
  const Index group_length = g.taps() * g.cg(), row_length = g.row_length();
  Index voxel = index / row_length;
  const Index ow = voxel % g.out_w;
  voxel /= g.out_w;
  const Index oh = voxel % g.out_h;
  voxel /= g.out_h;
  const Index od = voxel % g.out_d, n = voxel / g.out_d;
  const Index group = index % row_length / group_length;
  const Index within = index % group_length, channel = within % g.cg(), tap = within / g.cg();
  const Index ts = tap % g.s, tr = tap / g.s % g.r, tt = tap / (g.s * g.r);
  const Index id = od * g.stride_d - g.pad_d + tt * g.dil_d;
  const Index ih = oh * g.stride_h - g.pad_h + tr * g.dil_h;
  const Index iw = ow * g.stride_w - g.pad_w + ts * g.dil_w;
  if (id < 0 || id >= g.d || ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) return Index(-1);
  return (((n * g.d + id) * g.h + ih) * g.w + iw) * g.c + group * g.cg() + channel;
}

// dx[index] (index into [n, D, H, W, C]): the sum of every column element that copied that input value.
// A gather, not a scatter with atomics, so the result is the same on every run.
template <typename T, typename Index>
__host__ __device__ inline acc_t<T> col2vol_value(const Conv3dGeometry<Index>& g, const T* col, Index index) {
  const Index channel = index % g.c;
  Index voxel = index / g.c;
  const Index iw = voxel % g.w;
  voxel /= g.w;
  const Index ih = voxel % g.h;
  voxel /= g.h;
  const Index id = voxel % g.d, n = voxel / g.d;
  const Index group = channel / g.cg(), c = channel % g.cg();
  acc_t<T> sum = 0;
  for (Index tt = 0; tt < g.t; ++tt) {
    const Index od = output_coord(id, tt, g.pad_d, g.dil_d, g.stride_d, g.out_d);
    if (od < 0) continue;
    for (Index tr = 0; tr < g.r; ++tr) {
      const Index oh = output_coord(ih, tr, g.pad_h, g.dil_h, g.stride_h, g.out_h);
      if (oh < 0) continue;
      for (Index ts = 0; ts < g.s; ++ts) {
        const Index ow = output_coord(iw, ts, g.pad_w, g.dil_w, g.stride_w, g.out_w);
        if (ow < 0) continue;
        const Index row = ((n * g.out_d + od) * g.out_h + oh) * g.out_w + ow;
        const Index tap = (tt * g.r + tr) * g.s + ts;
        sum += to_acc<acc_t<T>>(col[row * g.row_length() + (group * g.taps() + tap) * g.cg() + c]);
      }
    }
  }
  return sum;
}

// x: [n, D, H, W, C] -> col; one thread per column element, grid-stride.
template <typename T, typename Index>
__global__ void __launch_bounds__(kElementwiseThreads)
    vol2col_kernel(const Conv3dGeometry<Index> g, const T* __restrict__ x, T* __restrict__ col) {
  const int64_t total = int64_t(g.n) * g.out_d * g.out_h * g.out_w * g.row_length();
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += step) {
    const Index source = vol2col_source(g, Index(i));
    col[i] = source >= 0 ? x[source] : from_acc<T>(acc_t<T>(0));
  }
}

// col -> dx: [n, D, H, W, C]; one thread per input element, grid-stride.
template <typename T, typename Index>
__global__ void __launch_bounds__(kElementwiseThreads)
    col2vol_kernel(const Conv3dGeometry<Index> g, const T* __restrict__ col, T* __restrict__ dx) {
  const int64_t total = int64_t(g.n) * g.d * g.h * g.w * g.c;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += step) {
    dx[i] = from_acc<T>(col2vol_value(g, col, Index(i)));
  }
}

// `g.n` is the number of volumes in this chunk; x, col and dx point at the chunk's first volume.
template <typename T, typename Index>
void launch_vol2col(const Conv3dGeometry<Index>& g, const T* x, T* col, cudaStream_t stream) {
  const int64_t total = int64_t(g.n) * g.out_d * g.out_h * g.out_w * g.row_length();
  vol2col_kernel<T, Index><<<elementwise_blocks(total), kElementwiseThreads, 0, stream>>>(g, x, col);
}

template <typename T, typename Index>
void launch_col2vol(const Conv3dGeometry<Index>& g, const T* col, T* dx, cudaStream_t stream) {
  const int64_t total = int64_t(g.n) * g.d * g.h * g.w * g.c;
  col2vol_kernel<T, Index><<<elementwise_blocks(total), kElementwiseThreads, 0, stream>>>(g, col, dx);
}

}  // namespace cnnext::cuda
