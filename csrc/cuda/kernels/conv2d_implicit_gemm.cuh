// Conv2d forward, grad_input (dgrad) and grad_weight (wgrad) as implicit GEMMs (implicit_gemm.cuh): each
// struct below says which GEMM a convolution direction is and how to fetch its operands straight from the
// channels-last tensors, so no im2col buffer is ever written to global memory. The a()/b()/store() index
// math is __host__ __device__ and checked on the CPU by tests/cuda/conv2d_index_test.cu.
//
// Layouts: x, dx [N, H, W, C]; y, dy [N, Ho, Wo, K]; w, dw [K, R, S, Cg] (see conv2d_geometry.cuh).
#pragma once
#include "conv2d_geometry.cuh"
#include "implicit_gemm.cuh"

namespace cnnext::cuda {

// Forward, per group g:  y[m, g*Kg + n] = sum_d A(m, d) * w[g*Kg + n, d] (+ bias)
//   m: output pixel (n, ho, wo);  n: output channel in the group;  d: tap (r, s, c), c fastest,
//   A(m, d) = x[n, ho*stride - pad + r*dil, wo*stride - pad + s*dil, g*Cg + c], zero in the padding.
template <typename T, typename IndexT>
struct Conv2dForwardGemm {
  using Element = T;
  using Acc = acc_t<T>;
  using Index = IndexT;
  static constexpr bool kADepthContiguous = true;  // consecutive c of one pixel
  static constexpr bool kBDepthContiguous = true;  // w rows are [R, S, Cg]

  Conv2dGeometry<Index> g;
  const T* x;
  const T* w;
  const T* bias;  // nullptr without bias
  T* y;

  __host__ __device__ Index rows() const { return g.n * g.ho * g.wo; }
  __host__ __device__ Index cols() const { return g.kg(); }
  __host__ __device__ Index depth() const { return g.taps() * g.cg(); }
  __host__ __device__ Index groups() const { return g.groups; }

  __host__ __device__ Acc a(Index group, Index m, Index d) const {
    const PixelIndex<Index> out = split_pixel(m, g.ho, g.wo);
    const TapIndex<Index> tap = split_tap(d, g.s, g.cg());
    const InputPixel<Index> in = input_pixel(g, out.p, out.q, tap.r, tap.s);
    if (!in.inside(g)) return Acc(0);
    return to_acc<Acc>(x[input_offset(g, out.n, in.ih, in.iw, group * g.cg() + tap.channel)]);
  }
  __host__ __device__ Acc b(Index group, Index n, Index d) const {
    return to_acc<Acc>(w[(group * g.kg() + n) * depth() + d]);
  }
  __host__ __device__ void store(Index /*split*/, Index group, Index m, Index n, Acc value) const {
    const Index k = group * g.kg() + n;
    if (bias != nullptr) value += to_acc<Acc>(bias[k]);
    y[m * g.k + k] = from_acc<T>(value);
  }
};

// grad_input, per group g:  dx[m, g*Cg + n] = sum_d A(m, d) * w[g*Kg + k, r, s, n]
//   m: input pixel (n, h, w);  n: input channel in the group;  d: (r, s, k), k fastest,
//   A(m, d) = dy[n, ho, wo, g*Kg + k] for the output pixel (ho, wo) whose tap (r, s) reads (h, w), else 0.
template <typename T, typename IndexT>
struct Conv2dGradInputGemm {
  using Element = T;
  using Acc = acc_t<T>;
  using Index = IndexT;
  static constexpr bool kADepthContiguous = true;   // consecutive k of one dy pixel
  static constexpr bool kBDepthContiguous = false;  // consecutive n (= c) of one weight tap

  Conv2dGeometry<Index> g;
  const T* dy;
  const T* w;
  T* dx;

  __host__ __device__ Index rows() const { return g.n * g.h * g.w; }
  __host__ __device__ Index cols() const { return g.cg(); }
  __host__ __device__ Index depth() const { return g.taps() * g.kg(); }
  __host__ __device__ Index groups() const { return g.groups; }

  __host__ __device__ Acc a(Index group, Index m, Index d) const {
    const PixelIndex<Index> in = split_pixel(m, g.h, g.w);
    const TapIndex<Index> tap = split_tap(d, g.s, g.kg());
    const Index ho = output_coord(in.p, tap.r, g.pad_h, g.dil_h, g.stride_h, g.ho);
    const Index wo = output_coord(in.q, tap.s, g.pad_w, g.dil_w, g.stride_w, g.wo);
    if (ho < 0 || wo < 0) return Acc(0);
    return to_acc<Acc>(dy[output_offset(g, in.n, ho, wo, group * g.kg() + tap.channel)]);
  }
  __host__ __device__ Acc b(Index group, Index n, Index d) const {
    const TapIndex<Index> tap = split_tap(d, g.s, g.kg());
    return to_acc<Acc>(w[weight_offset(g, group * g.kg() + tap.channel, tap.r, tap.s, n)]);
  }
  __host__ __device__ void store(Index /*split*/, Index group, Index m, Index n, Acc value) const {
    dx[m * g.c + group * g.cg() + n] = from_acc<T>(value);
  }
};

// grad_weight, per group g:  dw[g*Kg + n, t] = sum_d A(t, d) * dy[d, g*Kg + n]
//   t: weight tap (r, s, c), c fastest (a row of dw);  n: output channel in the group;
//   d: output pixel (n, ho, wo), the long dimension, split across blocks;  A(t, d) = the forward's A(d, t).
// Each depth split writes its partial sums (in Acc) to its own slice of `partial` [splits, K, R*S*Cg];
// reduce_partial_sums_kernel adds the slices in order, so the result does not depend on scheduling.
template <typename T, typename IndexT>
struct Conv2dGradWeightGemm {
  using Element = T;
  using Acc = acc_t<T>;
  using Index = IndexT;
  static constexpr bool kADepthContiguous = false;  // consecutive c of one input pixel
  static constexpr bool kBDepthContiguous = false;  // consecutive k of one dy pixel

  Conv2dGeometry<Index> g;
  const T* x;
  const T* dy;
  Acc* partial;

  __host__ __device__ Index rows() const { return g.taps() * g.cg(); }
  __host__ __device__ Index cols() const { return g.kg(); }
  __host__ __device__ Index depth() const { return g.n * g.ho * g.wo; }
  __host__ __device__ Index groups() const { return g.groups; }

  __host__ __device__ Acc a(Index group, Index t, Index d) const {
    const PixelIndex<Index> out = split_pixel(d, g.ho, g.wo);
    const TapIndex<Index> tap = split_tap(t, g.s, g.cg());
    const InputPixel<Index> in = input_pixel(g, out.p, out.q, tap.r, tap.s);
    if (!in.inside(g)) return Acc(0);
    return to_acc<Acc>(x[input_offset(g, out.n, in.ih, in.iw, group * g.cg() + tap.channel)]);
  }
  __host__ __device__ Acc b(Index group, Index n, Index d) const {
    return to_acc<Acc>(dy[d * g.k + group * g.kg() + n]);
  }
  // 64-bit offset: the partial sums of all splits together may pass 2^31 elements.
  __host__ __device__ void store(Index split, Index group, Index t, Index n, Acc value) const {
    const int64_t weight_elements = int64_t(g.k) * rows();
    partial[split * weight_elements + (int64_t(group) * g.kg() + n) * rows() + t] = value;
  }
};

// dw[i] = sum over splits of partial[split, i], in split order.
template <typename T, typename Acc>
__global__ void reduce_partial_sums_kernel(const Acc* __restrict__ partial, int64_t splits, int64_t elements,
                                           T* __restrict__ out) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < elements; i += step) {
    Acc sum = 0;
    for (int64_t split = 0; split < splits; ++split) sum += partial[split * elements + i];
    out[i] = from_acc<T>(sum);
  }
}

template <typename T, typename Acc>
void launch_reduce_partial_sums(const Acc* partial, int64_t splits, int64_t elements, T* out, cudaStream_t stream) {
  constexpr int kThreads = 256;
  const int64_t blocks = ceil_div(elements, kThreads);
  reduce_partial_sums_kernel<T, Acc>
      <<<unsigned(blocks < kMaxGridX ? blocks : kMaxGridX), kThreads, 0, stream>>>(partial, splits, elements, out);
}

}  // namespace cnnext::cuda
