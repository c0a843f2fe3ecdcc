// Pooling windows as PyTorch defines them, shared by the CPU pooling kernels of both layouts (pool2d.cpp on
// NCHW planes, pool2d_channels_last.cpp on NHWC images): which input positions a window covers, which
// index a max reports, and what an average divides by.
#pragma once
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <vector>

#include "../pool_params.h"

namespace cnnext::cpu {

// Enough work per task (planes, or output rows) that a task is worth starting a thread for.
inline int64_t plane_grain(int64_t work_per_plane) {
  return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, work_per_plane));
}

// One window along one axis: the first input position, one past the last, stepping by `dil`,
// with the start moved into the input (PyTorch's convention for which index a window reports).
struct Window {
  int64_t begin, end;
};

inline Window max_window(int64_t o, int64_t stride, int64_t pad, int64_t kernel, int64_t dil, int64_t size) {
  int64_t begin = o * stride - pad;
  const int64_t end = std::min(begin + (kernel - 1) * dil + 1, size);
  while (begin < 0) begin += dil;
  return {begin, end};
}

// Whether each output position along one axis has a window holding at least one input position. A window
// can be empty only where dilation steps over an input smaller than the dilation: PyTorch then outputs
// -inf with an index outside that window, which must receive no gradient.
inline std::vector<char> nonempty_windows(int64_t out_size, int64_t stride, int64_t pad, int64_t kernel, int64_t dil,
                                          int64_t size) {
  std::vector<char> nonempty(out_size);
  for (int64_t o = 0; o < out_size; ++o) {
    const auto win = max_window(o, stride, pad, kernel, dil, size);
    nonempty[o] = win.begin < win.end;
  }
  return nonempty;
}

// One axis of an average-pooling window: the part inside the input [begin, end), and its length when
// clipped to the padded input instead (what count_include_pad counts).
struct AxisWindow {
  int64_t begin, end, padded_length;
  int64_t length() const { return end - begin; }
};

inline std::vector<AxisWindow> avg_axis(int64_t out_size, int64_t stride, int64_t pad, int64_t kernel,
                                        int64_t size) {
  std::vector<AxisWindow> windows(out_size);
  for (int64_t o = 0; o < out_size; ++o) {
    const int64_t start = o * stride - pad, stop = std::min(start + kernel, size + pad);
    windows[o] = {std::max<int64_t>(start, 0), std::min(stop, size), stop - start};
  }
  return windows;
}

struct AvgDivisors {
  std::vector<AxisWindow> rows, cols;
  bool count_include_pad;
  std::optional<int64_t> divisor_override;

  // 0 for a ceil_mode window entirely in the padding: it holds no input and its output is 0.
  int64_t operator()(int64_t oh, int64_t ow) const {
    if (rows[oh].length() <= 0 || cols[ow].length() <= 0) return 0;
    if (divisor_override.has_value()) return *divisor_override;
    return count_include_pad ? rows[oh].padded_length * cols[ow].padded_length : rows[oh].length() * cols[ow].length();
  }
};

inline AvgDivisors avg_divisors(const Pool2dShape& s, const Pool2dParams& p, bool count_include_pad,
                                const std::optional<int64_t>& divisor_override) {
  return {avg_axis(s.ho, p.stride_h, p.pad_h, p.kernel_h, s.h), avg_axis(s.wo, p.stride_w, p.pad_w, p.kernel_w, s.w),
          count_include_pad, divisor_override};
}

// The kernels on channels-last images [N, H, W, C] (pool2d_channels_last.cpp), for T = float or double. They sum
// in the same order as the NCHW kernels, so both layouts give the same bits.
template <typename T>
void max_pool2d_channels_last(const T* x, T* y, int64_t* indices, const Pool2dShape& s, const Pool2dParams& p);
template <typename T>
void max_pool2d_backward_channels_last(const T* grad_output, const int64_t* indices, T* grad_input,
                                       const Pool2dShape& s, const Pool2dParams& p);
template <typename T>
void avg_pool2d_channels_last(const T* x, T* y, const Pool2dShape& s, const Pool2dParams& p,
                              const AvgDivisors& divisor);
template <typename T>
void avg_pool2d_backward_channels_last(const T* grad_output, T* grad_input, const Pool2dShape& s,
                                       const Pool2dParams& p, const AvgDivisors& divisor);

}  // namespace cnnext::cpu
