// What the CPU convolution drivers share (direct_conv.cpp, narrow_conv.cpp, winograd_conv.cpp): a problem's
// sizes on three spatial axes, scratch memory, channels-last copies with their zero padding and back, the loop
// over the batch in steps of images, and register transposes of whole matrices.
#pragma once
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/CPUAllocator.h>
#include <c10/util/SmallVector.h>

#include <algorithm>
#include <array>
#include <type_traits>
#include <vector>

#include "../conv_params.h"
#include "direct_conv_kernels.h"

namespace cnnext::cpu {

using kernels::bf16;
using kernels::kLanes;
using kernels::kMaxVectors;

constexpr int64_t kBlockLanes = kMaxVectors * kLanes;  // output lanes of one tile

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// A problem's sizes along depth, height and width (a Conv2d's, as_volume: depth 1).
using Shape = Conv3dShape;
using Params = Conv3dParams;
constexpr int D = 0, H = 1, W = 2;

// A tensor's sizes [N, C, spatial...] with `dims` spatial axes (2: H, W; 3: D, H, W).
inline c10::SmallVector<int64_t, 5> sizes_of(int64_t n, int64_t c, const std::array<int64_t, 3>& spatial,
                                            int64_t dims) {
  c10::SmallVector<int64_t, 5> sizes{n, c};
  sizes.insert(sizes.end(), spatial.end() - dims, spatial.end());
  return sizes;
}

template <typename T>
T* data(const at::Tensor& t) {
  if constexpr (std::is_same_v<T, float>) {
    return t.data_ptr<float>();
  } else {
    static_assert(std::is_same_v<T, bf16>);
    return reinterpret_cast<bf16*>(t.data_ptr<at::BFloat16>());
  }
}

// Memory for n values of T, 64-byte aligned like at::empty's, without the cost of a tensor (a dispatcher call
// and a TensorImpl: on a small layer, each was a tenth of the call).
template <typename T>
class Scratch {
 public:
  explicit Scratch(int64_t n) : memory_(c10::GetCPUAllocator()->allocate(n * sizeof(T))) {}
  T* get() const { return static_cast<T*>(memory_.get()); }

 private:
  at::DataPtr memory_;
};

// Channels-last memory [N, (D,) H, W, C] that the kernels read or write: a tensor's own (kept alive by `tensor`)
// or scratch memory.
template <typename T>
struct ChannelsLastMemory {
  at::Tensor tensor;
  Scratch<T> scratch;
  T* data;
};

// t's own memory, from its `offset`-th value on.
template <typename T>
ChannelsLastMemory<T> memory_of(const at::Tensor& t, int64_t offset = 0) {
  return {t, Scratch<T>(0), data<T>(t) + offset};
}

// Images [first, first + count) of a batch tensor: the part of it one step of images reads or writes. Passed
// beside the whole tensor instead of a view of it: at::Tensor::narrow costs about 0.5 us, and a batch of 32 took
// 32 steps of two views each per call.
struct Images {
  int64_t first, count;
  static Images all(const at::Tensor& t) { return {0, t.size(0)}; }
};

template <typename T>
ChannelsLastMemory<T> scratch_memory(int64_t n) {
  Scratch<T> scratch(n);
  T* memory = scratch.get();
  return {at::Tensor(), std::move(scratch), memory};
}

// fn(begin, end) over [0, count): split among the threads when `parallel`, else all in this thread.
template <typename Fn>
void for_range(bool parallel, int64_t count, const Fn& fn) {
  if (parallel) {
    at::parallel_for(0, count, 1, fn);
  } else if (count > 0) {
    fn(0, count);
  }
}

// body(first_image, count, parallel) over the batch in steps of about `images_per_step` images. A batch
// that gives every thread two or more images is split among the threads, each converting, convolving and
// writing back its own images with no barrier in between (its data stays in its caches); a small batch
// goes in one step with the threads working inside it.
template <typename Body>
void over_image_steps(int64_t n, int64_t images_per_step, const Body& body) {
  if (n < 2 * at::get_num_threads() || at::in_parallel_region()) {
    body(0, n, true);
    return;
  }
  at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
    for (int64_t first = begin; first < end; first += images_per_step) {
      body(first, std::min(images_per_step, end - first), false);
    }
  });
}

// One row of padded_channels_last's result: `w` pixels of `c` channels from src (pixel stride sw, channel stride sc) into
// dst with `channels` values per pixel (zeros past c) and `left` / `right` zero pixels around.
template <typename T>
void store_padded_row(const T* src, int64_t sw, int64_t sc, T* dst, int64_t c, int64_t w, int64_t channels,
                      int64_t left, int64_t right) {
  std::fill(dst, dst + left * channels, T{});
  T* row = dst + left * channels;
  if ((sc == 1 || c == 1) && sw == c && channels == c) {
    std::copy(src, src + w * c, row);
  } else if (sc == 1 || c == 1) {
    for (int64_t x = 0; x < w; ++x) {
      std::copy(src + x * sw, src + x * sw + c, row + x * channels);
      std::fill(row + x * channels + c, row + (x + 1) * channels, T{});
    }
  } else {  // unit stride along W (see padded_channels_last)
    kernels::transpose_avx512(src, sc, row, channels, c, w);
    for (int64_t x = 0; channels > c && x < w; ++x) std::fill(row + x * channels + c, row + (x + 1) * channels, T{});
  }
  std::fill(row + w * channels, row + (w + right) * channels, T{});
}

// Zeros before and after the data along each spatial axis (D, H, W).
struct Padding {
  std::array<int64_t, 3> before{}, after{};
};

// Padding of `pad[a]` on both sides of the axes a for which `padded[a]` holds.
inline Padding symmetric_padding(const std::array<int64_t, 3>& pad, const std::array<bool, 3>& padded) {
  Padding out;
  for (int a = 0; a < 3; ++a) out.before[a] = out.after[a] = padded[a] ? pad[a] : 0;
  return out;
}

// Images `images` of t [N, C, (D,) H, W] (any strides) -> [count, (D + pad,) H + pad, W + pad, channels] with
// zeros around (and in the channels past C), row by row in plain loops: on small layers the per-call cost of the
// ATen ops (narrow + zero_ per border, a strided copy_) was more than the convolution. NCHW rows (unit stride
// along W) are transposed 8x8 in registers, 10x faster than ATen's strided copy for this permutation. A t that
// already is that memory (channels-last, no padding) is used as it is.
template <typename T>
ChannelsLastMemory<T> padded_channels_last(const at::Tensor& t, Images images, const Padding& pad,
                                           bool parallel = true, int64_t channels = 0) {
  const bool volume = t.dim() == 5;
  const int64_t n = images.count, c = t.size(1), d = volume ? t.size(2) : 1, h = t.size(-2), w = t.size(-1);
  channels = std::max(channels, c);
  const int64_t sn = t.stride(0), sc = t.stride(1), sd = volume ? t.stride(2) : 0, sh = t.stride(-2),
                sw = t.stride(-1);
  const bool channels_inner = sc == 1 || c == 1;
  if (!channels_inner && sw != 1 && w != 1) {  // e.g. a strided 1x1 layer's subsampled input: copy these images
    const auto copy = t.narrow(0, images.first, images.count).contiguous();
    return padded_channels_last<T>(copy, Images::all(copy), pad, parallel, channels);
  }
  bool unpadded = channels == c;
  for (int a = 0; a < 3; ++a) unpadded = unpadded && pad.before[a] == 0 && pad.after[a] == 0;
  const bool dense = channels_inner && (w == 1 || sw == c) && (h == 1 || sh == w * c) &&
                     (d == 1 || sd == h * w * c) && (n == 1 || sn == d * h * w * c);
  if (unpadded && dense) return memory_of<T>(t, images.first * sn);
  const int64_t dp = pad.before[D] + d + pad.after[D], hp = pad.before[H] + h + pad.after[H],
                wp = pad.before[W] + w + pad.after[W];
  auto out = scratch_memory<T>(n * dp * hp * wp * channels);
  const T* src = data<T>(t) + images.first * sn;
  T* dst = out.data;
  for_range(parallel, n * dp * hp, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t img = row / (dp * hp), z = row / hp % dp - pad.before[D], y = row % hp - pad.before[H];
      T* to = dst + row * wp * channels;
      if (z < 0 || z >= d || y < 0 || y >= h) {
        std::fill(to, to + wp * channels, T{});
      } else {
        store_padded_row(src + img * sn + z * sd + y * sh, sw, sc, to, c, w, channels, pad.before[W], pad.after[W]);
      }
    }
  });
  return out;
}

// The channels-last memory of images `images` of a result that goes to dst [N, C, (D,) H, W]: dst's own when dst
// is channels-last, else scratch memory for store_channels_last to transpose from.
template <typename T>
ChannelsLastMemory<T> channels_last_memory_for(const at::Tensor& dst, Images images) {
  const auto format = dst.dim() == 5 ? at::MemoryFormat::ChannelsLast3d : at::MemoryFormat::ChannelsLast;
  const int64_t image_size = dst.numel() / std::max<int64_t>(dst.size(0), 1);
  return dst.is_contiguous(format) ? memory_of<T>(dst, images.first * image_size)
                                   : scratch_memory<T>(images.count * image_size);
}

// Images `images` of dst [N, C, (D,) H, W] = cl [count, (D,) H, W, C], unless cl already is dst's memory
// (channels_last_memory_for).
template <typename T>
void store_channels_last(const ChannelsLastMemory<T>& cl, at::Tensor& dst, Images images, bool parallel) {
  const int64_t c = dst.size(1), pixels = dst.numel() / (std::max<int64_t>(dst.size(0), 1) * c);
  T* out = data<T>(dst) + images.first * c * pixels;
  if (cl.data == out) return;
  TORCH_INTERNAL_ASSERT(dst.is_contiguous());
  const T* src = cl.data;
  constexpr int64_t kPixelBlock = 256;
  const int64_t blocks = ceil_div(pixels, kPixelBlock);
  for_range(parallel, images.count * blocks, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t img = task / blocks, p0 = task % blocks * kPixelBlock;
      kernels::transpose_avx512(src + (img * pixels + p0) * c, c, out + img * c * pixels + p0, pixels,
                                std::min(kPixelBlock, pixels - p0), c);
    }
  });
}

// t [N, C, (D,) H, W] contiguous -> the same values channels-last, by register transposes (ATen's copy for this
// permutation was 10x slower on few channels).
template <typename T>
at::Tensor channels_last_copy(const at::Tensor& t) {
  TORCH_INTERNAL_ASSERT(t.is_contiguous());
  const auto format = t.dim() == 5 ? at::MemoryFormat::ChannelsLast3d : at::MemoryFormat::ChannelsLast;
  auto out = at::empty(t.sizes(), t.options().memory_format(format));
  const int64_t n = t.size(0), c = t.size(1), pixels = n * c == 0 ? 0 : t.numel() / (n * c);
  const T* src = data<T>(t);
  T* dst = data<T>(out);
  constexpr int64_t kPixelBlock = 256;
  const int64_t blocks = ceil_div(pixels, kPixelBlock);
  for_range(true, n * blocks, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t img = task / blocks, p0 = task % blocks * kPixelBlock;
      kernels::transpose_avx512(src + img * c * pixels + p0, pixels, dst + (img * pixels + p0) * c, c, c,
                                std::min(kPixelBlock, pixels - p0));
    }
  });
  return out;
}

// Whether work over `elements` values is worth waking the other threads for.
inline bool worth_threads(int64_t elements) { return elements >= at::internal::GRAIN_SIZE; }

// sum[i] += part[i] for i < n.
inline void add_into(float* sum, const float* part, int64_t n) {
  constexpr int64_t kChunk = 4096;
  for_range(worth_threads(n), ceil_div(n, kChunk), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin * kChunk; i < std::min(n, end * kChunk); ++i) sum[i] += part[i];
  });
}

// Slices of a batch of n images for sums that each thread makes into its own partial (one per thread, none
// empty): slice i holds images [i * n / slices, (i + 1) * n / slices).
inline int64_t batch_slices(int64_t n) {
  return at::in_parallel_region() ? 1 : std::clamp<int64_t>(at::get_num_threads(), 1, n);
}

// dst[m] = src[m] transposed for `count` contiguous [rows, cols] matrices; the threads split them into bands of
// rows (a single weight matrix is most of the work of packing it).
template <typename T>
void transpose_matrices(const T* src, T* dst, int64_t count, int64_t rows, int64_t cols) {
  constexpr int64_t kBandRows = 64;
  const int64_t bands = ceil_div(rows, kBandRows);
  for_range(worth_threads(count * rows * cols), count * bands, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t m = task / bands, r0 = task % bands * kBandRows;
      kernels::transpose_avx512(src + (m * rows + r0) * cols, cols, dst + m * rows * cols + r0, rows,
                                std::min(kBandRows, rows - r0), cols);
    }
  });
}

inline uint16_t last_lanes_mask(int64_t width) {
  const int64_t lanes = width - (ceil_div(width, kLanes) - 1) * kLanes;
  return lanes == kLanes ? uint16_t(0xFFFF) : uint16_t((1u << lanes) - 1);
}

// A strided 1x1 convolution without padding reads only every stride-th pixel: pick those first so that the
// layout conversion touches only them, and run the convolution with stride 1.
inline std::tuple<at::Tensor, Shape, Params> subsampled_if_pointwise(const at::Tensor& input, Shape s, Params p) {
  bool strided = false;
  for (int a = 0; a < 3; ++a) {
    if (s.kernel[a] != 1 || p.pad[a] != 0) return {input, s, p};
    strided = strided || p.stride[a] > 1;
  }
  if (!strided) return {input, s, p};
  auto picked = input;
  const int64_t first_axis = 5 - input.dim();  // a Conv2d's input has no D
  for (int a = first_axis; a < 3; ++a) {
    picked = picked.slice(2 + a - first_axis, 0, (s.out[a] - 1) * p.stride[a] + 1, p.stride[a]);
    s.in[a] = s.out[a];
    p.stride[a] = 1;
  }
  return {picked, s, p};
}

// Sizes of the data once padded.
inline std::array<int64_t, 3> padded_sizes(const std::array<int64_t, 3>& in, const Padding& pad) {
  return {pad.before[D] + in[D] + pad.after[D], pad.before[H] + in[H] + pad.after[H],
          pad.before[W] + in[W] + pad.after[W]};
}

}  // namespace cnnext::cpu
