// MaxPool2d and AvgPool2d on the GPU, with the window rules of the CPU kernel (csrc/cpu/pool2d.cpp) and
// of PyTorch: the flat h * W + w index per plane, NaN wins a max, ceil_mode, count_include_pad and
// divisor_override. Tensors are contiguous NCHW, seen as `planes` = N * C planes of H x W.
// Forward: one thread per output element. Backward: one thread per input element gathering from the
// outputs whose windows can hold it (no atomics), so results are the same on every run. The per-element
// functions are __host__ __device__ so that tests/cuda/family_index_test.cu checks them on the CPU.
// Plain CUDA: no torch headers.
#pragma once
#include <cmath>

#include "common.cuh"

namespace cnnext::cuda {

constexpr int kPoolThreads = 256;

template <typename Index>
struct Pool2dGeometry {
  Index planes, h, w;  // input
  Index ho, wo;        // output
  Index kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;

  template <typename Other>
  Pool2dGeometry<Other> as() const {
    return {Other(planes),   Other(h),        Other(w),        Other(ho),       Other(wo),
            Other(kernel_h), Other(kernel_w), Other(stride_h), Other(stride_w), Other(pad_h),
            Other(pad_w),    Other(dil_h),    Other(dil_w)};
  }
};

// The input positions [begin, end) (stepping by dil) of max-pool window `o` along one axis, begin moved
// into the input: the same window, and so the same reported index, as PyTorch's.
template <typename Index>
struct Span {
  Index begin, end;
};

template <typename Index>
__host__ __device__ inline Span<Index> max_window(Index o, Index stride, Index pad, Index kernel, Index dil,
                                                  Index size) {
  Index begin = o * stride - pad;
  const Index reach = begin + (kernel - 1) * dil + 1;
  const Index end = reach < size ? reach : size;
  while (begin < 0) begin += dil;
  return {begin, end};
}

// The outputs [first, last) along one axis whose (undilated span of) window can cover input position i.
template <typename Index>
__host__ __device__ inline Span<Index> covering_outputs(Index i, Index stride, Index pad, Index span, Index out_size) {
  const Index first = i + pad < span ? Index(0) : (i + pad - span) / stride + 1;
  const Index last = (i + pad) / stride + 1;
  return {first, last < out_size ? last : out_size};
}

// Output element i of max pooling ([planes, Ho, Wo]): its value, and its index h * W + w within the plane.
template <typename T, typename Index>
__host__ __device__ inline acc_t<T> max_pool2d_value(const Pool2dGeometry<Index>& g, const T* x, Index i,
                                                     Index& best_index) {
  const Index ow = i % g.wo, oh = i / g.wo % g.ho, plane = i / (g.wo * g.ho);
  const Span<Index> rows = max_window(oh, g.stride_h, g.pad_h, g.kernel_h, g.dil_h, g.h);
  const Span<Index> cols = max_window(ow, g.stride_w, g.pad_w, g.kernel_w, g.dil_w, g.w);
  const T* xp = x + int64_t(plane) * g.h * g.w;
  best_index = rows.begin * g.w + cols.begin;
  acc_t<T> best = -acc_t<T>(INFINITY);
  for (Index ih = rows.begin; ih < rows.end; ih += g.dil_h) {
    for (Index iw = cols.begin; iw < cols.end; iw += g.dil_w) {
      const Index index = ih * g.w + iw;
      const acc_t<T> value = to_acc<acc_t<T>>(xp[index]);
      if (value > best || isnan(value)) {
        best = value;
        best_index = index;
      }
    }
  }
  return best;
}

// Input element i of max pooling's grad_input ([planes, H, W]): the sum of dy over the outputs of its
// plane whose (non-empty) window chose it.
template <typename T, typename Index>
__host__ __device__ inline acc_t<T> max_pool2d_grad(const Pool2dGeometry<Index>& g, const T* dy,
                                                    const int64_t* indices, Index i) {
  const Index iw = i % g.w, ih = i / g.w % g.h, plane = i / (g.w * g.h);
  const Index here = ih * g.w + iw;
  const int64_t plane_out = int64_t(plane) * g.ho * g.wo;
  const Span<Index> out_rows = covering_outputs(ih, g.stride_h, g.pad_h, (g.kernel_h - 1) * g.dil_h + 1, g.ho);
  const Span<Index> out_cols = covering_outputs(iw, g.stride_w, g.pad_w, (g.kernel_w - 1) * g.dil_w + 1, g.wo);
  acc_t<T> sum = 0;
  for (Index oh = out_rows.begin; oh < out_rows.end; ++oh) {
    const Span<Index> rows = max_window(oh, g.stride_h, g.pad_h, g.kernel_h, g.dil_h, g.h);
    if (rows.begin >= rows.end) continue;  // an empty window's -inf took no input value
    for (Index ow = out_cols.begin; ow < out_cols.end; ++ow) {
      const Span<Index> cols = max_window(ow, g.stride_w, g.pad_w, g.kernel_w, g.dil_w, g.w);
      if (cols.begin >= cols.end) continue;
      const int64_t o = plane_out + int64_t(oh) * g.wo + ow;
      if (indices[o] == here) sum += to_acc<acc_t<T>>(dy[o]);
    }
  }
  return sum;
}

// An average-pooling window: the part inside the input, and what its sum is divided by.
template <typename Index>
struct AvgWindow {
  Index h0, h1, w0, w1, divisor;
};

// divisor_override == 0 means none (0 itself is refused before any kernel runs).
template <typename Index>
__host__ __device__ inline AvgWindow<Index> avg_window(const Pool2dGeometry<Index>& g, Index oh, Index ow,
                                                       bool count_include_pad, Index divisor_override) {
  Index h0 = oh * g.stride_h - g.pad_h, w0 = ow * g.stride_w - g.pad_w;
  Index h1 = h0 + g.kernel_h < g.h + g.pad_h ? h0 + g.kernel_h : g.h + g.pad_h;
  Index w1 = w0 + g.kernel_w < g.w + g.pad_w ? w0 + g.kernel_w : g.w + g.pad_w;
  const Index padded_count = (h1 - h0) * (w1 - w0);  // the window clipped to the padded input
  h0 = h0 > 0 ? h0 : Index(0);
  w0 = w0 > 0 ? w0 : Index(0);
  h1 = h1 < g.h ? h1 : g.h;
  w1 = w1 < g.w ? w1 : g.w;
  const Index divisor = divisor_override != 0 ? divisor_override
                        : count_include_pad   ? padded_count
                                              : (h1 - h0) * (w1 - w0);
  return {h0, h1, w0, w1, divisor};
}

// Output element i of average pooling.
template <typename T, typename Index>
__host__ __device__ inline acc_t<T> avg_pool2d_value(const Pool2dGeometry<Index>& g, const T* x, Index i,
                                                     bool count_include_pad, Index divisor_override) {
  const Index ow = i % g.wo, oh = i / g.wo % g.ho, plane = i / (g.wo * g.ho);
  const AvgWindow<Index> win = avg_window(g, oh, ow, count_include_pad, divisor_override);
  if (win.h0 >= win.h1 || win.w0 >= win.w1) return acc_t<T>(0);  // a ceil_mode window entirely in the padding
  const T* xp = x + int64_t(plane) * g.h * g.w;
  acc_t<T> sum = 0;
  for (Index ih = win.h0; ih < win.h1; ++ih) {
    for (Index iw = win.w0; iw < win.w1; ++iw) sum += to_acc<acc_t<T>>(xp[ih * g.w + iw]);
  }
  return sum / acc_t<T>(win.divisor);
}

// Input element i of average pooling's grad_input: its share of every output window that holds it.
template <typename T, typename Index>
__host__ __device__ inline acc_t<T> avg_pool2d_grad(const Pool2dGeometry<Index>& g, const T* dy, Index i,
                                                    bool count_include_pad, Index divisor_override) {
  const Index iw = i % g.w, ih = i / g.w % g.h, plane = i / (g.w * g.h);
  const T* dyp = dy + int64_t(plane) * g.ho * g.wo;
  const Span<Index> out_rows = covering_outputs(ih, g.stride_h, g.pad_h, g.kernel_h, g.ho);
  const Span<Index> out_cols = covering_outputs(iw, g.stride_w, g.pad_w, g.kernel_w, g.wo);
  acc_t<T> sum = 0;
  for (Index oh = out_rows.begin; oh < out_rows.end; ++oh) {
    for (Index ow = out_cols.begin; ow < out_cols.end; ++ow) {
      const AvgWindow<Index> win = avg_window(g, oh, ow, count_include_pad, divisor_override);
      sum += to_acc<acc_t<T>>(dyp[oh * g.wo + ow]) / acc_t<T>(win.divisor);
    }
  }
  return sum;
}

// One thread per output element (forward) or input element (backward), grid-stride.
template <typename T, typename Index>
__global__ void __launch_bounds__(kPoolThreads)
    max_pool2d_kernel(const Pool2dGeometry<Index> g, const T* __restrict__ x, T* __restrict__ y,
                      int64_t* __restrict__ indices) {
  const int64_t total = int64_t(g.planes) * g.ho * g.wo;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += step) {
    Index index = 0;
    y[i] = from_acc<T>(max_pool2d_value(g, x, Index(i), index));
    indices[i] = index;
  }
}

template <typename T, typename Index>
__global__ void __launch_bounds__(kPoolThreads)
    max_pool2d_backward_kernel(const Pool2dGeometry<Index> g, const T* __restrict__ dy,
                               const int64_t* __restrict__ indices, T* __restrict__ dx) {
  const int64_t total = int64_t(g.planes) * g.h * g.w;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += step) {
    dx[i] = from_acc<T>(max_pool2d_grad(g, dy, indices, Index(i)));
  }
}

template <typename T, typename Index>
__global__ void __launch_bounds__(kPoolThreads)
    avg_pool2d_kernel(const Pool2dGeometry<Index> g, const T* __restrict__ x, T* __restrict__ y,
                      bool count_include_pad, Index divisor_override) {
  const int64_t total = int64_t(g.planes) * g.ho * g.wo;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += step) {
    y[i] = from_acc<T>(avg_pool2d_value(g, x, Index(i), count_include_pad, divisor_override));
  }
}

template <typename T, typename Index>
__global__ void __launch_bounds__(kPoolThreads)
    avg_pool2d_backward_kernel(const Pool2dGeometry<Index> g, const T* __restrict__ dy, T* __restrict__ dx,
                               bool count_include_pad, Index divisor_override) {
  const int64_t total = int64_t(g.planes) * g.h * g.w;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += step) {
    dx[i] = from_acc<T>(avg_pool2d_grad(g, dy, Index(i), count_include_pad, divisor_override));
  }
}

inline unsigned pool_blocks(int64_t elements) {
  const int64_t blocks = ceil_div(elements, kPoolThreads);
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > kMaxGridX ? kMaxGridX : blocks));
}

template <typename T, typename Index>
void launch_max_pool2d(const Pool2dGeometry<Index>& g, const T* x, T* y, int64_t* indices, cudaStream_t stream) {
  max_pool2d_kernel<T, Index><<<pool_blocks(int64_t(g.planes) * g.ho * g.wo), kPoolThreads, 0, stream>>>(
      g, x, y, indices);
}

template <typename T, typename Index>
void launch_max_pool2d_backward(const Pool2dGeometry<Index>& g, const T* dy, const int64_t* indices, T* dx,
                                cudaStream_t stream) {
  max_pool2d_backward_kernel<T, Index><<<pool_blocks(int64_t(g.planes) * g.h * g.w), kPoolThreads, 0, stream>>>(
      g, dy, indices, dx);
}

template <typename T, typename Index>
void launch_avg_pool2d(const Pool2dGeometry<Index>& g, const T* x, T* y, bool count_include_pad,
                       Index divisor_override, cudaStream_t stream) {
  avg_pool2d_kernel<T, Index><<<pool_blocks(int64_t(g.planes) * g.ho * g.wo), kPoolThreads, 0, stream>>>(
      g, x, y, count_include_pad, divisor_override);
}

template <typename T, typename Index>
void launch_avg_pool2d_backward(const Pool2dGeometry<Index>& g, const T* dy, T* dx, bool count_include_pad,
                                Index divisor_override, cudaStream_t stream) {
  avg_pool2d_backward_kernel<T, Index><<<pool_blocks(int64_t(g.planes) * g.h * g.w), kPoolThreads, 0, stream>>>(
      g, dy, dx, count_include_pad, divisor_override);
}

}  // namespace cnnext::cuda
