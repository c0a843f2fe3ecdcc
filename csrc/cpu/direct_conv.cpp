// Direct convolution drivers: data layout, weight packing, tiling and threads around the micro-kernels.
//
// Data is channels-last and zero-padded once ([N, H+2p, W+2p, C]), so a tile never checks borders.
//   forward:      out[pixel, k]  = bias[k] + sum_taps sum_c x_pad[pixel's window + tap, c] * w[tap, c, k]
//   grad input:   the same kernel over grad_output, once per stride phase (input pixels with equal
//                 (ih mod stride, iw mod stride) see the same taps), with w transposed to [tap, k, c];
//   grad weight:  dw[tap, c, k] = sum_pixels x_pad[pixel's window + tap, c] * grad_out[pixel, k], summed
//                 over chunks of pixels in a fixed order.
// Every output element is written by one tile in one thread, so results are the same on every run.
#include "direct_conv.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "direct_conv_kernels.h"

namespace cnnext::cpu {
namespace {

using kernels::kLanes;
using kernels::kMaxVectors;
constexpr int64_t kBlockLanes = kMaxVectors * kLanes;  // output lanes of one tile

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Output pixels per step of images: enough rows for the weights loaded into cache to be reused.
constexpr int64_t kRowsPerStep = 96;

bool direct_kernel_enabled() {
  static const bool enabled = [] {
    const char* choice = std::getenv("CNNEXT_CPU_KERNEL");  // "gemm" forces the im2col + GEMM path
    return kernels::cpu_has_avx512() && !(choice != nullptr && std::string(choice) == "gemm");
  }();
  return enabled;
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

// t [N, C, H, W] (any strides) -> contiguous [N, top+H+bottom, left+W+right, C] with zeros around, row by
// row with no ATen call per row. NCHW rows (unit stride along W) are transposed 8x8 in registers: ATen's
// generic strided copy is ~10x slower than a plain copy for this permutation and would cost as much as the
// convolution on small layers; channels-last rows are copied as they are.
at::Tensor padded_nhwc(const at::Tensor& t, int64_t top, int64_t bottom, int64_t left, int64_t right,
                       bool parallel = true) {
  const int64_t n = t.size(0), c = t.size(1), h = t.size(2), w = t.size(3);
  const bool rows_nhwc = t.stride(3) == c && (c == 1 || t.stride(1) == 1), rows_nchw = t.stride(3) == 1;
  const bool unpadded = top == 0 && bottom == 0 && left == 0 && right == 0;
  if (unpadded && rows_nhwc && t.stride(2) == w * c && (n == 1 || t.stride(0) == h * w * c)) {
    return t.permute({0, 2, 3, 1});
  }
  if (!rows_nhwc && !rows_nchw) return padded_nhwc(t.contiguous(), top, bottom, left, right, parallel);
  const int64_t hp = top + h + bottom, wp = left + w + right;
  auto out = at::empty({n, hp, wp, c}, t.options());
  const float* src = t.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  const int64_t sn = t.stride(0), sc = t.stride(1), sh = t.stride(2);
  for_range(parallel, n * hp, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t img = row / hp, y = row % hp - top;
      float* d = dst + row * wp * c;
      if (y < 0 || y >= h) {
        std::fill(d, d + wp * c, 0.0f);
        continue;
      }
      std::fill(d, d + left * c, 0.0f);
      std::fill(d + (left + w) * c, d + wp * c, 0.0f);
      const float* s = src + img * sn + y * sh;
      if (rows_nhwc) {
        std::copy(s, s + w * c, d + left * c);
      } else {
        kernels::transpose_avx512(s, sc, d + left * c, c, c, w);
      }
    }
  });
  return out;
}

// Images [first, first + count) of t, without a slice op when that is all of them.
at::Tensor images(const at::Tensor& t, int64_t first, int64_t count) {
  return first == 0 && count == t.size(0) ? t : t.narrow(0, first, count);
}

// An [N, H, W, C] buffer for a result that goes to dst [N, C, H, W]: dst's own memory when dst is
// channels-last, else a new buffer for store_nhwc to transpose from.
at::Tensor nhwc_buffer_for(const at::Tensor& dst) {
  const auto view = dst.permute({0, 2, 3, 1});
  return view.is_contiguous() ? view : at::empty(view.sizes(), dst.options());
}

// dst [N, C, H, W] = nhwc [N, H, W, C], unless nhwc already is dst's memory (nhwc_buffer_for).
void store_nhwc(const at::Tensor& nhwc, at::Tensor& dst, bool parallel) {
  if (nhwc.data_ptr() == dst.data_ptr()) return;
  TORCH_INTERNAL_ASSERT(dst.is_contiguous());
  const int64_t n = nhwc.size(0), pixels = nhwc.size(1) * nhwc.size(2), c = nhwc.size(3);
  const float* src = nhwc.data_ptr<float>();
  float* out = dst.data_ptr<float>();
  constexpr int64_t kPixelBlock = 256;
  const int64_t blocks = ceil_div(pixels, kPixelBlock);
  for_range(parallel, n * blocks, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t img = task / blocks, p0 = task % blocks * kPixelBlock;
      kernels::transpose_avx512(src + (img * pixels + p0) * c, c, out + img * c * pixels + p0, pixels,
                                std::min(kPixelBlock, pixels - p0), c);
    }
  });
}

// weight [K, Cg, R, S] -> [G, blocks, R*S, reduction, 64]: per group, blocks of 64 lanes (one tile's width,
// zero-padded) outermost so that the weights a tile streams are contiguous; for the forward pass
// reduction = Cg and lanes over Kg, transposed reduction = Kg and lanes over Cg. First the lanes are moved
// innermost by register transposes ([G, reduction, R*S, lanes]; ATen's permuted copy took 7 ms for
// 512x512x3x3), then every run of 64 lanes is copied to its place.
at::Tensor packed_weight(const at::Tensor& weight, int64_t groups, bool transposed) {
  const int64_t k = weight.size(0), cg = weight.size(1), taps = weight.size(2) * weight.size(3), kg = k / groups;
  const int64_t width = transposed ? cg : kg, reduction = transposed ? kg : cg;
  const auto w = weight.contiguous();
  at::Tensor lanes_last = w;  // [G, reduction, taps, width]
  if (!transposed) {          // per group [Kg, Cg * taps] -> [Cg * taps, Kg]
    lanes_last = at::empty_like(w);
    const int64_t per_group = kg * cg * taps;
    for_range(groups > 1, groups, [&](int64_t begin, int64_t end) {
      for (int64_t g = begin; g < end; ++g) {
        kernels::transpose_avx512(w.data_ptr<float>() + g * per_group, cg * taps,
                                  lanes_last.data_ptr<float>() + g * per_group, kg, kg, cg * taps);
      }
    });
  } else if (taps > 1) {  // per output channel [Cg, taps] -> [taps, Cg]
    lanes_last = at::empty_like(w);
    for_range(k > 1, k, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        kernels::transpose_avx512(w.data_ptr<float>() + i * cg * taps, taps,
                                  lanes_last.data_ptr<float>() + i * cg * taps, cg, cg, taps);
      }
    });
  }
  const int64_t blocks = ceil_div(width, kBlockLanes);
  auto packed = at::empty({groups, blocks, taps, reduction, kBlockLanes}, weight.options());
  const float* src = lanes_last.data_ptr<float>();
  float* dst = packed.data_ptr<float>();
  for_range(groups * blocks * taps > 1, groups * blocks * taps, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {  // task = (g * blocks + block) * taps + tap
      const int64_t g = task / (blocks * taps), block = task / taps % blocks, tap = task % taps;
      const int64_t lanes = std::min(kBlockLanes, width - block * kBlockLanes);
      for (int64_t j = 0; j < reduction; ++j) {
        const float* from = src + ((g * reduction + j) * taps + tap) * width + block * kBlockLanes;
        float* to = dst + (task * reduction + j) * kBlockLanes;
        std::copy(from, from + lanes, to);
        std::fill(to + lanes, to + kBlockLanes, 0.0f);
      }
    }
  });
  return packed;
}

// grad weight as the kernels leave it, [G, R*S*Cg, Kg], -> weight's layout [G*Kg, Cg, R, S], by two
// register transposes (ATen's permuted copy took 17 ms for 512x512x3x3).
at::Tensor unpacked_grad_weight(const at::Tensor& dw, int64_t groups, int64_t cg, int64_t kg, int64_t r, int64_t s) {
  const int64_t taps = r * s, per_group = taps * cg * kg;
  auto k_first = at::empty({groups * kg, taps, cg}, dw.options());
  at::parallel_for(0, groups, 1, [&](int64_t begin, int64_t end) {
    for (int64_t g = begin; g < end; ++g) {
      kernels::transpose_avx512(dw.data_ptr<float>() + g * per_group, kg, k_first.data_ptr<float>() + g * per_group,
                                taps * cg, taps * cg, kg);
    }
  });
  if (taps == 1) return k_first.view({groups * kg, cg, r, s});
  auto out = at::empty({groups * kg, cg, r, s}, dw.options());
  at::parallel_for(0, groups * kg, 1, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      kernels::transpose_avx512(k_first.data_ptr<float>() + k * taps * cg, cg, out.data_ptr<float>() + k * taps * cg,
                                taps, taps, cg);
    }
  });
  return out;
}

uint16_t last_lanes_mask(int64_t width) {
  const int64_t lanes = width - (ceil_div(width, kLanes) - 1) * kLanes;
  return lanes == kLanes ? uint16_t(0xFFFF) : uint16_t((1u << lanes) - 1);
}

// One application of tap_tile over a list of rows, for every group: row i reads a + a_off[i] (+ group
// offset) and writes c + c_off[i]; b is the packed weight of packed_weight().
struct TapProblem {
  const float* a;
  float* c;
  std::vector<int64_t> a_off, c_off;
  std::vector<int64_t> a_tap, b_tap;
  int64_t reduction;
  const float* b;  // packed_weight(): [groups][blocks][taps][reduction][kBlockLanes]
  int64_t width;
  const float* bias;
  int64_t b_block;  // floats of one (group, block) of b: taps * reduction * kBlockLanes
  int64_t groups, a_group, c_group;
  bool depthwise;
};

// Work is split into (vector block, row block) tasks, vector-block major so that a thread's consecutive
// tasks reuse the same weights; the reduction is cut into blocks whose weights (all taps) fit in L2.
void run_tap_problem(const TapProblem& pr, bool parallel) {
  constexpr int64_t kBlockRows = 48;                // a multiple of every rows_per_tile
  constexpr int64_t kWeightBlockBytes = 160 << 10;  // weights of one reduction block: fits L2
  const int64_t rows = static_cast<int64_t>(pr.a_off.size());
  const int64_t taps = static_cast<int64_t>(pr.a_tap.size());
  const int64_t nvec_total = ceil_div(pr.width, kLanes), vector_blocks = ceil_div(nvec_total, kMaxVectors);
  const int64_t row_blocks = ceil_div(rows, kBlockRows);
  const int64_t reduction_block = std::max<int64_t>(
      1, kWeightBlockBytes / (std::max<int64_t>(taps, 1) * kMaxVectors * kLanes * int64_t(sizeof(float))));
  for_range(parallel, pr.groups * vector_blocks * row_blocks, [&](int64_t first_task, int64_t last_task) {
    kernels::TapTile t{};
    t.a_tap = pr.a_tap.data();
    t.b_tap = pr.b_tap.data();
    t.taps = taps;
    t.ldb = kBlockLanes;
    t.depthwise = pr.depthwise;
    for (int64_t task = first_task; task < last_task; ++task) {
      const int64_t g = task / (vector_blocks * row_blocks), v0 = (task / row_blocks) % vector_blocks * kMaxVectors;
      const int64_t row_begin = task % row_blocks * kBlockRows, row_end = std::min(rows, row_begin + kBlockRows);
      t.nvec = static_cast<int>(std::min<int64_t>(kMaxVectors, nvec_total - v0));
      t.last_mask = v0 + t.nvec == nvec_total ? last_lanes_mask(pr.width) : uint16_t(0xFFFF);
      const int tile_rows = kernels::rows_per_tile(t.nvec);
      for (int64_t j0 = 0; j0 < std::max<int64_t>(pr.reduction, 1); j0 += reduction_block) {
        t.reduction = std::min(reduction_block, pr.reduction - j0);
        t.accumulate = j0 > 0;
        t.b = pr.b + (g * vector_blocks + v0 / kMaxVectors) * pr.b_block + j0 * kBlockLanes;
        t.bias = pr.bias && j0 == 0 ? pr.bias + g * pr.width + v0 * kLanes : nullptr;
        for (int64_t row = row_begin; row < row_end; row += tile_rows) {
          t.rows = static_cast<int>(std::min<int64_t>(tile_rows, row_end - row));
          for (int i = 0; i < tile_rows; ++i) {
            const int64_t r = row + std::min(i, t.rows - 1);  // spare rows repeat the last one, unstored
            t.a_rows[i] = pr.a + g * pr.a_group + pr.a_off[r] + (pr.depthwise ? v0 * kLanes : j0);
            t.c_rows[i] = pr.c + g * pr.c_group + pr.c_off[r] + v0 * kLanes;
          }
          kernels::tap_tile_avx512(t);
        }
      }
    }
  });
}

// Offsets, in x_pad [N, Hp, Wp, C], of the top-left corner of every output pixel's window.
std::vector<int64_t> window_offsets(const Conv2dShape& s, const Conv2dParams& p, int64_t hp, int64_t wp) {
  std::vector<int64_t> off(s.n * s.ho * s.wo);
  int64_t m = 0;
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t ho = 0; ho < s.ho; ++ho)
      for (int64_t wo = 0; wo < s.wo; ++wo) off[m++] = ((n * hp + ho * p.stride_h) * wp + wo * p.stride_w) * s.c;
  return off;
}

// Offset of tap (r, s) from a window's corner in x_pad, for every tap in r-major order.
std::vector<int64_t> tap_offsets(const Conv2dShape& s, const Conv2dParams& p, int64_t wp) {
  std::vector<int64_t> off;
  for (int64_t r = 0; r < s.r; ++r)
    for (int64_t q = 0; q < s.s; ++q) off.push_back((r * p.dil_h * wp + q * p.dil_w) * s.c);
  return off;
}

// Zero padding of grad_output that lets every stride phase of grad_input read without bounds checks:
// input row i = phase + stride*j reads grad_output row j + (phase + pad - r*dil)/stride for the taps r
// where that division is exact. Returns {before, after}.
std::pair<int64_t, int64_t> grad_output_padding(int64_t in, int64_t out, int64_t kernel, int64_t stride,
                                                int64_t pad, int64_t dil) {
  int64_t before = 0, after = 0;
  for (int64_t phase = 0; phase < std::min(stride, in); ++phase) {
    const int64_t count = ceil_div(in - phase, stride);
    for (int64_t r = 0; r < kernel; ++r) {
      const int64_t num = phase + pad - r * dil;
      if (((num % stride) + stride) % stride != 0) continue;
      before = std::max(before, -(num / stride));
      after = std::max(after, num / stride + count - 1 - (out - 1));
    }
  }
  return {before, after};
}

// A strided 1x1 convolution without padding reads only every stride-th pixel: pick those first so that the
// layout conversion touches only them, and run the convolution with stride 1.
std::tuple<at::Tensor, Conv2dShape, Conv2dParams> subsampled_if_pointwise(const at::Tensor& input, Conv2dShape s,
                                                                          Conv2dParams p) {
  if (s.r != 1 || s.s != 1 || p.pad_h != 0 || p.pad_w != 0 || (p.stride_h == 1 && p.stride_w == 1)) {
    return {input, s, p};
  }
  const auto picked = input.slice(2, 0, (s.ho - 1) * p.stride_h + 1, p.stride_h)
                          .slice(3, 0, (s.wo - 1) * p.stride_w + 1, p.stride_w);
  s.h = s.ho;
  s.w = s.wo;
  p.stride_h = p.stride_w = 1;
  return {picked, s, p};
}

// How the channels split into independent problems. A depthwise conv (one input and one output channel
// per group) is a single problem whose vectors run over the channels themselves.
struct Grouping {
  int64_t groups, cg, kg;
  bool depthwise;
};

Grouping grouping_of(const Conv2dShape& s, const Conv2dParams& p) {
  if (p.groups > 1 && p.groups == s.c && p.groups == s.k) return {1, 1, s.k, true};
  return {p.groups, s.c / p.groups, s.k / p.groups, false};
}

}  // namespace

bool direct_conv_applies(const at::Tensor& input, const Conv2dShape& s, const Conv2dParams& p) {
  const auto gr = grouping_of(s, p);
  // Narrow groups (other than depthwise) would leave most vector lanes idle: GEMM handles them.
  const bool vectors_filled = gr.depthwise || gr.groups == 1 || (gr.kg >= kLanes && gr.cg >= kLanes);
  return input.scalar_type() == at::kFloat && input.device().is_cpu() && vectors_filled && direct_kernel_enabled();
}

at::Tensor direct_conv_forward(const at::Tensor& full_input, const at::Tensor& weight,
                               const std::optional<at::Tensor>& bias, const Conv2dShape& full_shape,
                               const Conv2dParams& full_params) {
  const auto [input, s, p] = subsampled_if_pointwise(full_input, full_shape, full_params);
  const auto gr = grouping_of(s, p);
  const int64_t hp = s.h + 2 * p.pad_h, wp = s.w + 2 * p.pad_w, kg = gr.kg, cg = gr.cg;
  const auto w = packed_weight(weight, gr.groups, /*transposed=*/false);
  const auto b = bias.has_value() && bias->defined() ? bias->contiguous() : at::Tensor();
  auto out = at::empty({s.n, s.k, s.ho, s.wo}, input.options().memory_format(full_input.suggest_memory_format()));
  // With one group and no dilation along W, the S taps of a kernel row read S * C consecutive input values
  // (NHWC), and the packed weight holds them in that order too: the row becomes one tap with an S * C wide
  // reduction. A 3-channel stem then runs 7 taps of 21 instead of 49 taps of 3.
  const bool fold_rows = gr.groups == 1 && !gr.depthwise && p.dil_w == 1;
  const int64_t taps = fold_rows ? s.r : s.r * s.s, reduction = fold_rows ? s.s * cg : cg;
  std::vector<int64_t> a_tap, b_tap;
  const auto tap_off = tap_offsets(s, p, wp);
  for (int64_t t = 0; t < taps; ++t) {
    a_tap.push_back(tap_off[fold_rows ? t * s.s : t]);
    b_tap.push_back(t * reduction * kBlockLanes);
  }

  over_image_steps(s.n, ceil_div(kRowsPerStep, s.ho * s.wo), [&](int64_t first, int64_t count, bool parallel) {
    const auto x_pad = padded_nhwc(images(input, first, count), p.pad_h, p.pad_h, p.pad_w, p.pad_w, parallel);
    auto out_step = images(out, first, count);
    auto out_nhwc = nhwc_buffer_for(out_step);
    Conv2dShape step = s;
    step.n = count;
    TapProblem pr;
    pr.a = x_pad.data_ptr<float>();
    pr.c = out_nhwc.data_ptr<float>();
    pr.a_off = window_offsets(step, p, hp, wp);
    pr.c_off.resize(pr.a_off.size());
    for (size_t m = 0; m < pr.c_off.size(); ++m) pr.c_off[m] = static_cast<int64_t>(m) * s.k;
    pr.a_tap = a_tap;
    pr.b_tap = b_tap;
    pr.reduction = reduction;
    pr.b = w.data_ptr<float>();
    pr.width = kg;
    pr.bias = b.defined() ? b.data_ptr<float>() : nullptr;
    pr.groups = gr.groups;
    pr.a_group = cg;
    pr.c_group = kg;
    pr.b_block = s.r * s.s * cg * kBlockLanes;
    pr.depthwise = gr.depthwise;
    run_tap_problem(pr, parallel);
    store_nhwc(out_nhwc, out_step, parallel);
  });
  return out;
}

at::Tensor direct_conv_grad_input(const at::Tensor& grad_output, const at::Tensor& weight, const Conv2dShape& s,
                                  const Conv2dParams& p, at::MemoryFormat format) {
  const auto [top, bottom] = grad_output_padding(s.h, s.ho, s.r, p.stride_h, p.pad_h, p.dil_h);
  const auto [left, right] = grad_output_padding(s.w, s.wo, s.s, p.stride_w, p.pad_w, p.dil_w);
  const int64_t hgp = s.ho + top + bottom, wgp = s.wo + left + right;
  const auto gr = grouping_of(s, p);
  // Reduction over a group's output channels, vectors over its input channels (depthwise: no reduction).
  const int64_t reduction = gr.depthwise ? 1 : gr.kg, width = gr.depthwise ? s.c : gr.cg;
  const auto w = packed_weight(weight, gr.groups, /*transposed=*/!gr.depthwise);
  auto dx = at::empty({s.n, s.c, s.h, s.w}, grad_output.options().memory_format(format));

  over_image_steps(s.n, ceil_div(kRowsPerStep, s.h * s.w), [&](int64_t first, int64_t count, bool parallel) {
    const auto go_pad = padded_nhwc(images(grad_output, first, count), top, bottom, left, right, parallel);
    auto dx_step = images(dx, first, count);
    auto dx_nhwc = nhwc_buffer_for(dx_step);
    for (int64_t ph = 0; ph < std::min(p.stride_h, s.h); ++ph) {
      for (int64_t pw = 0; pw < std::min(p.stride_w, s.w); ++pw) {
        TapProblem pr;
        for (int64_t r = 0; r < s.r; ++r) {
          const int64_t num_h = ph + p.pad_h - r * p.dil_h;
          if (((num_h % p.stride_h) + p.stride_h) % p.stride_h != 0) continue;
          for (int64_t q = 0; q < s.s; ++q) {
            const int64_t num_w = pw + p.pad_w - q * p.dil_w;
            if (((num_w % p.stride_w) + p.stride_w) % p.stride_w != 0) continue;
            pr.a_tap.push_back((num_h / p.stride_h * wgp + num_w / p.stride_w) * s.k);
            pr.b_tap.push_back((r * s.s + q) * reduction * kBlockLanes);
          }
        }
        const int64_t rows_h = ceil_div(s.h - ph, p.stride_h), cols_w = ceil_div(s.w - pw, p.stride_w);
        for (int64_t n = 0; n < count; ++n) {
          for (int64_t j = 0; j < rows_h; ++j) {
            for (int64_t i = 0; i < cols_w; ++i) {
              pr.a_off.push_back(((n * hgp + j + top) * wgp + i + left) * s.k);
              pr.c_off.push_back(((n * s.h + ph + j * p.stride_h) * s.w + pw + i * p.stride_w) * s.c);
            }
          }
        }
        pr.a = go_pad.data_ptr<float>();
        pr.c = dx_nhwc.data_ptr<float>();
        pr.reduction = reduction;
        pr.b = w.data_ptr<float>();
        pr.width = width;
        pr.bias = nullptr;
        pr.groups = gr.groups;
        pr.a_group = gr.kg;
        pr.c_group = gr.cg;
        pr.b_block = s.r * s.s * reduction * kBlockLanes;
        pr.depthwise = gr.depthwise;
        run_tap_problem(pr, parallel);
      }
    }
    store_nhwc(dx_nhwc, dx_step, parallel);
  });
  return dx;
}

at::Tensor direct_conv_grad_weight(const at::Tensor& grad_output, const at::Tensor& full_input,
                                   const Conv2dShape& full_shape, const Conv2dParams& full_params) {
  const auto [input, s, p] = subsampled_if_pointwise(full_input, full_shape, full_params);
  const auto gr = grouping_of(s, p);
  const int64_t hp = s.h + 2 * p.pad_h, wp = s.w + 2 * p.pad_w, kg = gr.kg, cg = gr.cg;
  const int64_t taps = s.r * s.s, rows = taps * cg;
  const auto tap_off = tap_offsets(s, p, wp);
  std::vector<int64_t> row_off(rows);
  for (int64_t t = 0; t < taps; ++t)
    for (int64_t c = 0; c < cg; ++c) row_off[t * cg + c] = tap_off[t] + c;

  // Tiles of dw, vector-block major so that consecutive tiles read the same grad_output columns.
  struct Task { int64_t g, v0, row; };
  std::vector<Task> tasks;
  const int64_t nvec_total = ceil_div(kg, kLanes);
  for (int64_t g = 0; g < gr.groups; ++g)
    for (int64_t v0 = 0; v0 < nvec_total; v0 += kMaxVectors)
      for (int64_t row = 0; row < rows; row += kernels::rows_per_tile(std::min<int64_t>(kMaxVectors, nvec_total - v0)))
        tasks.push_back({g, v0, row});

  // The batch is cut into one slice of images per thread; each thread sums its slice into its own partial
  // dw, in steps of images converted to channels-last in its cache and chunks of pixels that every tile
  // reads while they are in L2. The partials are then added in slice order.
  constexpr int64_t kChunkPixels = 256;
  const int64_t slices = at::in_parallel_region() ? 1 : std::clamp<int64_t>(at::get_num_threads(), 1, s.n);
  auto partial = at::empty({slices, gr.groups, rows, kg}, input.options());
  const int64_t images_per_step = ceil_div(kChunkPixels, s.ho * s.wo);
  at::parallel_for(0, slices, 1, [&](int64_t first_slice, int64_t last_slice) {
    for (int64_t slice = first_slice; slice < last_slice; ++slice) {
      const int64_t image_end = (slice + 1) * s.n / slices;
      float* dw = partial[slice].data_ptr<float>();
      bool accumulate = false;
      for (int64_t first = slice * s.n / slices; first < image_end; first += images_per_step) {
        const int64_t count = std::min(images_per_step, image_end - first);
        const auto x_pad = padded_nhwc(images(input, first, count), p.pad_h, p.pad_h, p.pad_w, p.pad_w, false);
        const auto go = padded_nhwc(images(grad_output, first, count), 0, 0, 0, 0, false);  // [pixels, K]
        Conv2dShape step = s;
        step.n = count;
        const auto pix_off = window_offsets(step, p, hp, wp);
        const int64_t pixels = static_cast<int64_t>(pix_off.size());
        kernels::PixelSumTile t{};
        t.ldg = s.k;
        t.ldw = kg;
        t.depthwise = gr.depthwise;
        for (int64_t chunk = 0; chunk < pixels; chunk += kChunkPixels) {
          t.pix_off = pix_off.data() + chunk;
          t.pixels = std::min(kChunkPixels, pixels - chunk);
          t.accumulate = accumulate;
          for (const auto& [g, v0, row] : tasks) {
            t.nvec = static_cast<int>(std::min<int64_t>(kMaxVectors, nvec_total - v0));
            t.last_mask = v0 + t.nvec == nvec_total ? last_lanes_mask(kg) : uint16_t(0xFFFF);
            const int tile_rows = kernels::rows_per_tile(t.nvec);
            t.rows = static_cast<int>(std::min<int64_t>(tile_rows, rows - row));
            for (int i = 0; i < tile_rows; ++i) t.row_off[i] = row_off[row + std::min(i, t.rows - 1)];
            t.x = x_pad.data_ptr<float>() + (gr.depthwise ? v0 * kLanes : g * cg);
            t.g = go.data_ptr<float>() + chunk * s.k + g * kg + v0 * kLanes;
            t.dw = dw + (g * rows + row) * kg + v0 * kLanes;
            kernels::pixel_sum_tile_avx512(t);
          }
          accumulate = true;
        }
      }
    }
  });
  auto dw = partial[0];
  for (int64_t slice = 1; slice < slices; ++slice) dw.add_(partial[slice]);
  return unpacked_grad_weight(dw, gr.groups, cg, kg, s.r, s.s);
}

}  // namespace cnnext::cpu
