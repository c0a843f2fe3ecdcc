// MaxPool2d and AvgPool2d on channels-last images [N, H, W, C]: each window is read as whole pixels, C
// values side by side, so the inner loops run along the channels (the compiler vectorises them) and no
// NCHW copy is made. Forward tasks are output rows; backward tasks are (image, channel block) regions of
// grad_input, so every thread writes its own region and results do not depend on the thread count.
// Sums run in the same order as the NCHW kernels of pool2d.cpp (along W, then along H), so the two layouts
// give the same bits.
#include <ATen/Parallel.h>

#include "conv_layout.h"
#include "pool2d_windows.h"

namespace cnnext::cpu {
namespace {

// The work of one output pixel, along its channels, compiled for AVX-512, AVX2 and baseline x86-64 (the
// loader picks one for the CPU): the rest of the library is built for baseline x86-64, where these loops
// ran up to 15x slower. `image` is one image [H, W, C].
#define CNNEXT_ALONG_CHANNELS __attribute__((target_clones("avx512f", "avx2", "default")))

// The first largest value in scan order wins; a NaN wins over numbers (the last NaN, as PyTorch's loop gives).
template <typename T>
CNNEXT_ALONG_CHANNELS void max_of_window(const T* image, int64_t w, int64_t c, Window rows, int64_t dil_h,
                                         Window cols, int64_t dil_w, T* best, int64_t* best_index) {
  std::fill(best, best + c, -std::numeric_limits<T>::infinity());
  std::fill(best_index, best_index + c, rows.begin * w + cols.begin);
  for (int64_t ih = rows.begin; ih < rows.end; ih += dil_h) {
    for (int64_t iw = cols.begin; iw < cols.end; iw += dil_w) {
      const T* pixel = image + (ih * w + iw) * c;
      const int64_t at = ih * w + iw;
      for (int64_t k = 0; k < c; ++k) {
        const T value = pixel[k];
        const bool take = value > best[k] || value != value;
        best[k] = take ? value : best[k];
        best_index[k] = take ? at : best_index[k];
      }
    }
  }
}

// out = (sum over rows of (sum along the row)) / d, or 0 when d is 0 (a window with no input).
template <typename T>
CNNEXT_ALONG_CHANNELS void average_of_window(const T* image, int64_t w, int64_t c, const AxisWindow& rows,
                                             const AxisWindow& cols, int64_t d, T* row_sum, T* out) {
  std::fill(out, out + c, T(0));
  for (int64_t ih = rows.begin; ih < rows.end; ++ih) {
    std::fill(row_sum, row_sum + c, T(0));
    for (int64_t iw = cols.begin; iw < cols.end; ++iw) {
      const T* pixel = image + (ih * w + iw) * c;
      for (int64_t k = 0; k < c; ++k) row_sum[k] += pixel[k];
    }
    for (int64_t k = 0; k < c; ++k) out[k] += row_sum[k];
  }
  for (int64_t k = 0; k < c; ++k) out[k] = d == 0 ? T(0) : out[k] / static_cast<T>(d);
}

// grad_input[index[k]][k] += grad_output[k] for the `width` channels of one output pixel (c: the pixel stride of
// grad_input). False where an index lies outside the plane of `in_plane` pixels (that channel adds nothing).
template <typename T>
CNNEXT_ALONG_CHANNELS bool add_to_maxima(const T* grad_output, const int64_t* index, T* grad_input, int64_t c,
                                         int64_t width, int64_t in_plane) {
  bool inside = true;
  for (int64_t k = 0; k < width; ++k) {
    const int64_t at = index[k];
    const bool valid = at >= 0 && at < in_plane;
    inside = inside && valid;
    if (valid) grad_input[at * c + k] += grad_output[k];
  }
  return inside;
}

// For input row ih and output column ow: the shares go[oh, ow] / d(oh, ow) of the output rows `readers` that
// read row ih, summed in row_grad, then added to the `width` channels of every input pixel of the column's
// window. grad_output and grad_input point at the task's first channel; c is the pixel stride.
template <typename T>
CNNEXT_ALONG_CHANNELS void spread_column(const T* grad_output, int64_t wo, int64_t ow, Window readers,
                                         const AvgDivisors& divisor, T* row_grad, T* grad_input_row, int64_t c,
                                         int64_t width) {
  std::fill(row_grad, row_grad + width, T(0));
  for (int64_t oh = readers.begin; oh < readers.end; ++oh) {
    const T* go = grad_output + (oh * wo + ow) * c;
    const int64_t d = divisor(oh, ow);
    for (int64_t k = 0; k < width; ++k) row_grad[k] += d == 0 ? T(0) : go[k] / static_cast<T>(d);
  }
  for (int64_t iw = divisor.cols[ow].begin; iw < divisor.cols[ow].end; ++iw) {
    T* gx = grad_input_row + iw * c;
    for (int64_t k = 0; k < width; ++k) gx[k] += row_grad[k];
  }
}

// Channels per backward task: whole images when there are enough for the threads, else blocks of channels
// (multiples of 16) that give every thread work.
int64_t channel_block(const Pool2dShape& s) {
  const int64_t tasks_wanted = 2 * at::get_num_threads();
  if (s.n >= tasks_wanted) return s.c;
  return std::min(s.c, ceil_div(ceil_div(s.c, ceil_div(tasks_wanted, s.n)), 16) * 16);
}

// body(image, first channel, one past the last channel) over every (image, channel block) task.
template <typename Body>
void over_channel_blocks(const Pool2dShape& s, int64_t work_per_channel, const Body& body) {
  const int64_t block = channel_block(s), blocks = ceil_div(s.c, block);
  at::parallel_for(0, s.n * blocks, plane_grain(work_per_channel * block), [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t c0 = task % blocks * block;
      body(task / blocks, c0, std::min(s.c, c0 + block));
    }
  });
}

// For each input row ih, the output rows oh whose windows hold it: [first, last) (windows move monotonically).
std::vector<Window> output_rows_reading(const std::vector<AxisWindow>& rows, int64_t h) {
  std::vector<Window> readers(h, Window{0, 0});
  for (int64_t ih = 0; ih < h; ++ih) {
    int64_t first = 0;
    while (first < static_cast<int64_t>(rows.size()) && rows[first].end <= ih) ++first;
    int64_t last = first;
    while (last < static_cast<int64_t>(rows.size()) && rows[last].begin <= ih) ++last;
    readers[ih] = {first, last};
  }
  return readers;
}

}  // namespace

template <typename T>
void max_pool2d_channels_last(const T* x, T* y, int64_t* indices, const Pool2dShape& s, const Pool2dParams& p) {
  const int64_t c = s.c;
  std::vector<Window> cols(s.wo);
  for (int64_t ow = 0; ow < s.wo; ++ow) cols[ow] = max_window(ow, p.stride_w, p.pad_w, p.kernel_w, p.dil_w, s.w);
  at::parallel_for(0, s.n * s.ho, plane_grain(s.wo * p.kernel_h * p.kernel_w * c), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t n = row / s.ho, oh = row % s.ho;
      const auto hw = max_window(oh, p.stride_h, p.pad_h, p.kernel_h, p.dil_h, s.h);
      for (int64_t ow = 0; ow < s.wo; ++ow) {
        max_of_window(x + n * s.h * s.w * c, s.w, c, hw, p.dil_h, cols[ow], p.dil_w, y + (row * s.wo + ow) * c,
                      indices + (row * s.wo + ow) * c);
      }
    }
  });
}

template <typename T>
void max_pool2d_backward_channels_last(const T* grad_output, const int64_t* indices, T* grad_input,
                                       const Pool2dShape& s, const Pool2dParams& p) {
  const int64_t c = s.c, in_plane = s.h * s.w;
  const auto rows = nonempty_windows(s.ho, p.stride_h, p.pad_h, p.kernel_h, p.dil_h, s.h);
  const auto cols = nonempty_windows(s.wo, p.stride_w, p.pad_w, p.kernel_w, p.dil_w, s.w);
  over_channel_blocks(s, s.ho * s.wo, [&](int64_t n, int64_t c0, int64_t c1) {
    T* gx = grad_input + n * in_plane * c;
    for (int64_t pixel = 0; pixel < in_plane; ++pixel) std::fill(gx + pixel * c + c0, gx + pixel * c + c1, T(0));
    for (int64_t oh = 0; oh < s.ho; ++oh) {
      if (!rows[oh]) continue;
      for (int64_t ow = 0; ow < s.wo; ++ow) {
        if (!cols[ow]) continue;
        const int64_t o = ((n * s.ho + oh) * s.wo + ow) * c + c0;
        if (add_to_maxima(grad_output + o, indices + o, gx + c0, c, c1 - c0, in_plane)) continue;
        for (int64_t k = 0; k < c1 - c0; ++k) {
          TORCH_CHECK(indices[o + k] >= 0 && indices[o + k] < in_plane, "max_pool2d_backward: found index ",
                      indices[o + k], " in indices, outside the input plane of ", s.h, " x ", s.w, " = ", in_plane,
                      " elements");
        }
      }
    }
  });
}

template <typename T>
void avg_pool2d_channels_last(const T* x, T* y, const Pool2dShape& s, const Pool2dParams& p,
                              const AvgDivisors& divisor) {
  const int64_t c = s.c;
  at::parallel_for(0, s.n * s.ho, plane_grain(s.wo * p.kernel_h * p.kernel_w * c), [&](int64_t begin, int64_t end) {
    std::vector<T> row_sum(c);
    for (int64_t row = begin; row < end; ++row) {
      const int64_t n = row / s.ho, oh = row % s.ho;
      for (int64_t ow = 0; ow < s.wo; ++ow) {
        average_of_window(x + n * s.h * s.w * c, s.w, c, divisor.rows[oh], divisor.cols[ow], divisor(oh, ow),
                          row_sum.data(), y + (row * s.wo + ow) * c);
      }
    }
  });
}

template <typename T>
void avg_pool2d_backward_channels_last(const T* grad_output, T* grad_input, const Pool2dShape& s,
                                       const Pool2dParams& p, const AvgDivisors& divisor) {
  const int64_t c = s.c;
  const auto readers = output_rows_reading(divisor.rows, s.h);
  over_channel_blocks(s, s.ho * s.wo * (p.kernel_h + p.kernel_w), [&](int64_t n, int64_t c0, int64_t c1) {
    std::vector<T> row_grad(c1 - c0);  // one (ih, ow): the shares of the outputs in column ow that read row ih
    for (int64_t ih = 0; ih < s.h; ++ih) {
      T* gx_row = grad_input + (n * s.h + ih) * s.w * c;
      for (int64_t iw = 0; iw < s.w; ++iw) std::fill(gx_row + iw * c + c0, gx_row + iw * c + c1, T(0));
      for (int64_t ow = 0; ow < s.wo; ++ow) {
        spread_column(grad_output + n * s.ho * s.wo * c + c0, s.wo, ow, readers[ih], divisor, row_grad.data(),
                      gx_row + c0, c, c1 - c0);
      }
    }
  });
}

#define CNNEXT_INSTANTIATE_POOL_CHANNELS_LAST(T)                                                                  \
  template void max_pool2d_channels_last<T>(const T*, T*, int64_t*, const Pool2dShape&, const Pool2dParams&);     \
  template void max_pool2d_backward_channels_last<T>(const T*, const int64_t*, T*, const Pool2dShape&,            \
                                                     const Pool2dParams&);                                        \
  template void avg_pool2d_channels_last<T>(const T*, T*, const Pool2dShape&, const Pool2dParams&,                \
                                            const AvgDivisors&);                                                  \
  template void avg_pool2d_backward_channels_last<T>(const T*, T*, const Pool2dShape&, const Pool2dParams&,       \
                                                     const AvgDivisors&);
CNNEXT_INSTANTIATE_POOL_CHANNELS_LAST(float)
CNNEXT_INSTANTIATE_POOL_CHANNELS_LAST(double)

}  // namespace cnnext::cpu
