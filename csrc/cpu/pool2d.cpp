// MaxPool2d and AvgPool2d on the CPU. NCHW tensors run here, one task per (image, channel) plane, so every thread
// writes its own planes and forward and backward give the same result on every run; channels-last tensors run
// on pool2d_channels_last.cpp's kernels, which give the same bits. Windows follow PyTorch exactly
// (the flat h * W + w index per plane, NaN wins a max, the ceil_mode and divisor rules), so outputs,
// gradients and returned indices match F.max_pool2d / F.avg_pool2d.
// float16/bfloat16 run through float32 (exact for max, a float accumulator for the average).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <limits>
#include <vector>

#include "conv_layout.h"
#include "pool2d_windows.h"

namespace cnnext::cpu {
namespace {

bool is_reduced_float(const at::Tensor& t) {
  return t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16;
}

// The max of one window, branch-free (on random data, a branch per comparison was mispredicted half the time):
// the first largest value in scan order, a NaN winning over numbers (the last NaN, as PyTorch's loop gives).
template <typename T>
struct WindowMax {
  T best = -std::numeric_limits<T>::infinity();
  int64_t index;

  void add(T value, int64_t at) {
    const bool take = value > best || std::isnan(value);
    best = take ? value : best;
    index = take ? at : index;
  }
};

// Output columns [begin, end) whose windows lie inside the input along W, unclipped.
Window interior_columns(const Pool2dShape& s, const Pool2dParams& p) {
  const int64_t begin = std::min(s.wo, (p.pad_w + p.stride_w - 1) / p.stride_w);
  const int64_t span = (p.kernel_w - 1) * p.dil_w + 1;
  const int64_t end = s.w + p.pad_w >= span ? std::min(s.wo, (s.w + p.pad_w - span) / p.stride_w + 1) : 0;
  return {begin, std::max(begin, end)};
}

// Plane by plane, row by row. The columns whose windows lie inside the input go across the output row at once:
// for each window position (ih, kw) in scan order, one pass over the row's outputs, which the compiler
// vectorizes (indices in int32 while they fit); the few border columns go one window at a time.
template <typename T>
void max_pool2d_planes(const T* x, T* y, int64_t* indices, const Pool2dShape& s, const Pool2dParams& p) {
  const int64_t in_plane = s.h * s.w, out_plane = s.ho * s.wo;
  const auto interior = in_plane < std::numeric_limits<int32_t>::max() ? interior_columns(s, p) : Window{0, 0};
  std::vector<Window> cols(s.wo);
  for (int64_t ow = 0; ow < s.wo; ++ow) cols[ow] = max_window(ow, p.stride_w, p.pad_w, p.kernel_w, p.dil_w, s.w);
  at::parallel_for(0, s.planes(), plane_grain(out_plane * p.kernel_h * p.kernel_w), [&](int64_t begin, int64_t end) {
    std::vector<T> best(s.wo);
    std::vector<int32_t> best_index(s.wo);
    for (int64_t plane = begin; plane < end; ++plane) {
      const T* xp = x + plane * in_plane;
      T* yp = y + plane * out_plane;
      int64_t* ip = indices + plane * out_plane;
      for (int64_t oh = 0; oh < s.ho; ++oh) {
        const auto hw = max_window(oh, p.stride_h, p.pad_h, p.kernel_h, p.dil_h, s.h);
        const auto one_window = [&](int64_t ow) {
          WindowMax<T> m{.index = hw.begin * s.w + cols[ow].begin};
          for (int64_t ih = hw.begin; ih < hw.end; ih += p.dil_h) {
            for (int64_t iw = cols[ow].begin; iw < cols[ow].end; iw += p.dil_w) m.add(xp[ih * s.w + iw], ih * s.w + iw);
          }
          yp[oh * s.wo + ow] = m.best;
          ip[oh * s.wo + ow] = m.index;
        };
        const int64_t first = interior.begin, last = interior.end, sw = p.stride_w;
        for (int64_t ow = 0; ow < first; ++ow) one_window(ow);
        for (int64_t ow = last; ow < s.wo; ++ow) one_window(ow);
        for (int64_t ow = first; ow < last; ++ow) {
          best[ow] = -std::numeric_limits<T>::infinity();
          best_index[ow] = static_cast<int32_t>(hw.begin * s.w + cols[ow].begin);
        }
        for (int64_t ih = hw.begin; ih < hw.end; ih += p.dil_h) {
          for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
            const int32_t base = static_cast<int32_t>(ih * s.w - p.pad_w + kw * p.dil_w);
            const T* row = xp + base;
            for (int64_t ow = first; ow < last; ++ow) {
              const T value = row[ow * sw];
              const bool take = value > best[ow] || value != value;
              best[ow] = take ? value : best[ow];
              best_index[ow] = take ? base + static_cast<int32_t>(ow * sw) : best_index[ow];
            }
          }
        }
        for (int64_t ow = first; ow < last; ++ow) {
          yp[oh * s.wo + ow] = best[ow];
          ip[oh * s.wo + ow] = best_index[ow];
        }
      }
    }
  });
}

// grad_input[plane][indices[o]] += grad_output[o], plane by plane (each plane is one thread's, zeroed by
// it just before, while it is in cache).
template <typename T>
void max_pool2d_backward_planes(const T* go, const int64_t* indices, T* gx, const Pool2dShape& s,
                                const Pool2dParams& p) {
  const int64_t in_plane = s.h * s.w, out_plane = s.ho * s.wo;
  const auto rows = nonempty_windows(s.ho, p.stride_h, p.pad_h, p.kernel_h, p.dil_h, s.h);
  const auto cols = nonempty_windows(s.wo, p.stride_w, p.pad_w, p.kernel_w, p.dil_w, s.w);
  at::parallel_for(0, s.planes(), plane_grain(out_plane), [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane) {
      const T* gop = go + plane * out_plane;
      const int64_t* ip = indices + plane * out_plane;
      T* gxp = gx + plane * in_plane;
      std::fill(gxp, gxp + in_plane, T(0));
      for (int64_t oh = 0; oh < s.ho; ++oh) {
        if (!rows[oh]) continue;
        for (int64_t ow = 0; ow < s.wo; ++ow) {
          if (!cols[ow]) continue;
          const int64_t o = oh * s.wo + ow;
          TORCH_CHECK(ip[o] >= 0 && ip[o] < in_plane, "max_pool2d_backward: found index ", ip[o],
                      " in indices, outside the input plane of ", s.h, " x ", s.w, " = ", in_plane, " elements");
          gxp[ip[o]] += gop[o];
        }
      }
    }
  });
}

// Average pooling is separable: a window is a box, its sum is a sum of row sums, and every divisor PyTorch
// uses is a product of per-axis lengths (or the override). So each plane is pooled along W into a
// [H, Wo] buffer, then along H, with contiguous inner loops the compiler vectorises.

template <typename T>
void avg_pool2d_planes(const T* x, T* y, const Pool2dShape& s, const Pool2dParams& p, const AvgDivisors& divisor) {
  const int64_t in_plane = s.h * s.w, out_plane = s.ho * s.wo;
  at::parallel_for(0, s.planes(), plane_grain(out_plane * (p.kernel_h + p.kernel_w)), [&](int64_t begin, int64_t end) {
    std::vector<T> row_sums(s.h * s.wo);  // [H, Wo]: each input row pooled along W
    for (int64_t plane = begin; plane < end; ++plane) {
      const T* xp = x + plane * in_plane;
      T* yp = y + plane * out_plane;
      for (int64_t ih = 0; ih < s.h; ++ih) {
        for (int64_t ow = 0; ow < s.wo; ++ow) {
          T sum = 0;
          for (int64_t iw = divisor.cols[ow].begin; iw < divisor.cols[ow].end; ++iw) sum += xp[ih * s.w + iw];
          row_sums[ih * s.wo + ow] = sum;
        }
      }
      for (int64_t oh = 0; oh < s.ho; ++oh) {
        T* yr = yp + oh * s.wo;
        std::fill(yr, yr + s.wo, T(0));
        for (int64_t ih = divisor.rows[oh].begin; ih < divisor.rows[oh].end; ++ih) {
          const T* rs = row_sums.data() + ih * s.wo;
          for (int64_t ow = 0; ow < s.wo; ++ow) yr[ow] += rs[ow];
        }
        for (int64_t ow = 0; ow < s.wo; ++ow) {
          const int64_t d = divisor(oh, ow);
          yr[ow] = d == 0 ? T(0) : yr[ow] / static_cast<T>(d);
        }
      }
    }
  });
}

// The adjoint, in the reverse order: each output's share spread along H into a [H, Wo] buffer, then along W.
template <typename T>
void avg_pool2d_backward_planes(const T* go, T* gx, const Pool2dShape& s, const Pool2dParams& p,
                                const AvgDivisors& divisor) {
  const int64_t in_plane = s.h * s.w, out_plane = s.ho * s.wo;
  at::parallel_for(0, s.planes(), plane_grain(out_plane * (p.kernel_h + p.kernel_w)), [&](int64_t begin, int64_t end) {
    std::vector<T> row_grads(s.h * s.wo), shares(s.wo);
    for (int64_t plane = begin; plane < end; ++plane) {
      const T* gop = go + plane * out_plane;
      T* gxp = gx + plane * in_plane;
      std::fill(gxp, gxp + in_plane, T(0));
      std::fill(row_grads.begin(), row_grads.end(), T(0));
      for (int64_t oh = 0; oh < s.ho; ++oh) {
        for (int64_t ow = 0; ow < s.wo; ++ow) {
          const int64_t d = divisor(oh, ow);
          shares[ow] = d == 0 ? T(0) : gop[oh * s.wo + ow] / static_cast<T>(d);
        }
        for (int64_t ih = divisor.rows[oh].begin; ih < divisor.rows[oh].end; ++ih) {
          T* rg = row_grads.data() + ih * s.wo;
          for (int64_t ow = 0; ow < s.wo; ++ow) rg[ow] += shares[ow];
        }
      }
      for (int64_t ih = 0; ih < s.h; ++ih) {
        T* gr = gxp + ih * s.w;
        for (int64_t ow = 0; ow < s.wo; ++ow) {
          const T share = row_grads[ih * s.wo + ow];
          for (int64_t iw = divisor.cols[ow].begin; iw < divisor.cols[ow].end; ++iw) gr[iw] += share;
        }
      }
    }
  });
}

// The kernels work on float or double in the input's layout: NCHW planes, or channels-last images
// (pool2d_channels_last.cpp), so a channels-last model flows through with no copies.
at::MemoryFormat layout_of(const at::Tensor& input) {
  return input.suggest_memory_format() == at::MemoryFormat::ChannelsLast ? at::MemoryFormat::ChannelsLast
                                                                         : at::MemoryFormat::Contiguous;
}

at::Tensor for_kernels(const at::Tensor& t, at::MemoryFormat layout) {
  return (is_reduced_float(t) ? t.to(at::kFloat) : t).contiguous(layout);
}

at::Tensor like_input(const at::Tensor& result, const at::Tensor& input) {
  return result.to(input.scalar_type()).contiguous(input.suggest_memory_format());
}

// NCHW input of 16 channels or more is max-pooled through a channels-last copy made by register transposes: the
// channels-last kernel's vectors along the channels beat the planes kernel's short strided rows (3x3 stride 2:
// 32 x 48 x 32 x 32 1.53 -> 0.54 ms, 32 x 128 x 15 x 15 1.5 -> 0.25). Only for inputs up to 16 MB: a copy near
// glibc's 32 MB mmap ceiling is fresh, faulting memory on every call (64 x 128 x 32 x 32: 3.1 -> 6.3 ms; 32 x 64 x
// 112 x 112: 34 -> 65). Same values and indices either way.
bool pool_through_channels_last(const at::Tensor& x, const Pool2dShape& s) {
  constexpr int64_t kMaxCopyBytes = 16 << 20;
  return x.scalar_type() == at::kFloat && x.is_contiguous() && s.c >= kLanes &&
         x.numel() * int64_t(sizeof(float)) <= kMaxCopyBytes && kernels::cpu_has_avx512();
}

std::tuple<at::Tensor, at::Tensor> max_pool2d_forward(const at::Tensor& input, at::IntArrayRef kernel_size,
                                                      at::IntArrayRef stride, at::IntArrayRef padding,
                                                      at::IntArrayRef dilation, bool ceil_mode) {
  const auto p = Pool2dParams::from("max_pool2d", kernel_size, stride, padding, dilation, ceil_mode);
  const auto s = check_pool2d("max_pool2d", input, p);
  auto layout = layout_of(input);
  auto x = for_kernels(input, layout);
  if (s.n > 0 && layout == at::MemoryFormat::Contiguous && pool_through_channels_last(x, s)) {
    x = channels_last_copy<float>(x);
    layout = at::MemoryFormat::ChannelsLast;
  }
  auto out = at::empty({s.n, s.c, s.ho, s.wo}, x.options().memory_format(layout));
  auto indices = at::empty({s.n, s.c, s.ho, s.wo}, x.options().dtype(at::kLong).memory_format(layout));
  if (s.n > 0) {
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "cnnext_max_pool2d", [&] {
      const auto kernel = layout == at::MemoryFormat::ChannelsLast ? max_pool2d_channels_last<scalar_t>
                                                                   : max_pool2d_planes<scalar_t>;
      kernel(x.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), indices.data_ptr<int64_t>(), s, p);
    });
  }
  return {like_input(out, input), indices.contiguous(input.suggest_memory_format())};
}

at::Tensor max_pool2d_backward(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& indices,
                               at::IntArrayRef kernel_size, at::IntArrayRef stride, at::IntArrayRef padding,
                               at::IntArrayRef dilation, bool ceil_mode) {
  constexpr const char* op = "max_pool2d_backward";
  const auto p = Pool2dParams::from(op, kernel_size, stride, padding, dilation, ceil_mode);
  const auto s = check_pool2d(op, input, p);
  check_like_output(op, grad_output, "grad_output", s, input);
  check_like_output(op, indices, "indices", s, input);
  TORCH_CHECK(grad_output.scalar_type() == input.scalar_type(), op, ": expected grad_output with dtype ",
              input.scalar_type(), " like input, but got ", grad_output.scalar_type());
  TORCH_CHECK(indices.scalar_type() == at::kLong, op, ": expected indices with dtype int64 (Long), but got ",
              indices.scalar_type());
  const auto layout = layout_of(input);
  const auto go = for_kernels(grad_output, layout);
  auto grad_input = at::empty({s.n, s.c, s.h, s.w}, go.options().memory_format(layout));
  if (s.n > 0) {
    const auto idx = indices.contiguous(layout);
    AT_DISPATCH_FLOATING_TYPES(go.scalar_type(), "cnnext_max_pool2d_backward", [&] {
      const auto kernel = layout == at::MemoryFormat::ChannelsLast ? max_pool2d_backward_channels_last<scalar_t>
                                                                   : max_pool2d_backward_planes<scalar_t>;
      kernel(go.data_ptr<scalar_t>(), idx.data_ptr<int64_t>(), grad_input.data_ptr<scalar_t>(), s, p);
    });
  }
  return like_input(grad_input, input);
}

at::Tensor avg_pool2d_forward(const at::Tensor& input, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                              at::IntArrayRef padding, bool ceil_mode, bool count_include_pad,
                              std::optional<int64_t> divisor_override) {
  const auto p = Pool2dParams::from("avg_pool2d", kernel_size, stride, padding, {1, 1}, ceil_mode);
  check_divisor("avg_pool2d", divisor_override);
  const auto s = check_pool2d("avg_pool2d", input, p);
  const auto layout = layout_of(input);
  const auto x = for_kernels(input, layout);
  auto out = at::empty({s.n, s.c, s.ho, s.wo}, x.options().memory_format(layout));
  if (s.n > 0) {
    const auto divisor = avg_divisors(s, p, count_include_pad, divisor_override);
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "cnnext_avg_pool2d", [&] {
      const auto kernel = layout == at::MemoryFormat::ChannelsLast ? avg_pool2d_channels_last<scalar_t>
                                                                   : avg_pool2d_planes<scalar_t>;
      kernel(x.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), s, p, divisor);
    });
  }
  return like_input(out, input);
}

at::Tensor avg_pool2d_backward(const at::Tensor& grad_output, const at::Tensor& input, at::IntArrayRef kernel_size,
                               at::IntArrayRef stride, at::IntArrayRef padding, bool ceil_mode,
                               bool count_include_pad, std::optional<int64_t> divisor_override) {
  constexpr const char* op = "avg_pool2d_backward";
  const auto p = Pool2dParams::from(op, kernel_size, stride, padding, {1, 1}, ceil_mode);
  check_divisor(op, divisor_override);
  const auto s = check_pool2d(op, input, p);
  check_like_output(op, grad_output, "grad_output", s, input);
  TORCH_CHECK(grad_output.scalar_type() == input.scalar_type(), op, ": expected grad_output with dtype ",
              input.scalar_type(), " like input, but got ", grad_output.scalar_type());
  const auto layout = layout_of(input);
  const auto go = for_kernels(grad_output, layout);
  auto grad_input = at::empty({s.n, s.c, s.h, s.w}, go.options().memory_format(layout));
  if (s.n > 0) {
    const auto divisor = avg_divisors(s, p, count_include_pad, divisor_override);
    AT_DISPATCH_FLOATING_TYPES(go.scalar_type(), "cnnext_avg_pool2d_backward", [&] {
      const auto kernel = layout == at::MemoryFormat::ChannelsLast ? avg_pool2d_backward_channels_last<scalar_t>
                                                                   : avg_pool2d_backward_planes<scalar_t>;
      kernel(go.data_ptr<scalar_t>(), grad_input.data_ptr<scalar_t>(), s, p, divisor);
    });
  }
  return like_input(grad_input, input);
}

}  // namespace

TORCH_LIBRARY_IMPL(cnnext, CPU, m) {
  m.impl("max_pool2d", &max_pool2d_forward);
  m.impl("max_pool2d_backward", &max_pool2d_backward);
  m.impl("avg_pool2d", &avg_pool2d_forward);
  m.impl("avg_pool2d_backward", &avg_pool2d_backward);
}

}  // namespace cnnext::cpu
