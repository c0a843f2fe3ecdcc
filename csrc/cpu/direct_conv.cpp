// Direct convolution drivers: data layout, weight packing, tiling and threads around the micro-kernels, for
// float32 and (with float32 sums) bfloat16: T is the element type, float or kernels::bf16. Conv2d and Conv3d run
// on the same code: a problem has three spatial axes (depth, height, width), and a Conv2d is one of depth 1.
//
// Data is channels-last and zero-padded once ([N, D+2p, H+2p, W+2p, C]), so a tile never checks borders.
//   forward:      out[pixel, k]  = bias[k] + sum_taps sum_c x_pad[pixel's window + tap, c] * w[tap, c, k]
//   grad input:   the same kernel over grad_output, once per stride phase (input pixels with equal
//                 coordinates mod stride see the same taps), with w transposed to [tap, k, c];
//   grad weight:  dw[tap, c, k] = sum_pixels x_pad[pixel's window + tap, c] * grad_out[pixel, k], summed
//                 over chunks of pixels in a fixed order.
// Every output element is written by one tile in one thread, so results are the same on every run.
// float32 layers that other algorithms serve better go to them (the entry points at the end): 3x3 stride-1 layers
// of moderate width to Winograd F(2x2, 3x3) (winograd_conv.h), outputs of at most 4 channels to the narrow
// convolution (narrow_conv.h); grad input of a stride-1 layer is a forward convolution, so it goes there too.
// bfloat16 takes reductions in pairs (direct_conv_kernels.h): forward and grad input pad an odd reduction
// (channel count) to even with a zero channel; grad weight pairs up neighbouring output pixels instead.
#include "direct_conv.h"

#include <cstdlib>
#include <string>

#include "conv_layout.h"
#include "depthwise_conv.h"
#include "narrow_conv.h"
#include "pointwise_conv.h"
#include "winograd_conv.h"

namespace cnnext::cpu {
namespace {

// Output pixels per step of images: enough rows for the weights loaded into cache to be reused.
constexpr int64_t kRowsPerStep = 96;
// Output pixels of one chunk of grad weight's pixel sums: what every tile reads while it is in L2.
constexpr int64_t kChunkPixels = 256;
// Rows of one task of run_tap_problem (a multiple of every rows_per_tile): the rows that reuse its weights.
constexpr int64_t kBlockRows = 48;

// What this CPU (and CNNEXT_CPU_KERNEL) allows: "gemm" forces the im2col + GEMM path, "avx512" keeps the
// direct kernel to float32 (as on AVX-512 CPUs without BF16 instructions), "direct" runs every layer on the tap
// kernel itself (no Winograd, no narrow convolution: for comparisons and tests).
struct DirectKernels {
  bool float32, bfloat16, other_algorithms;
};

DirectKernels available_direct_kernels() {
  static const DirectKernels available = [] {
    const char* env = std::getenv("CNNEXT_CPU_KERNEL");
    const std::string choice = env ? env : "";
    const bool float32 = kernels::cpu_has_avx512() && choice != "gemm";
    return DirectKernels{float32, float32 && choice != "avx512" && kernels::cpu_has_avx512_bf16(),
                         choice != "direct"};
  }();
  return available;
}

// Taps of a weight [K, Cg, (T,) R, S]: T*R*S, in the order of its memory (t, then r, then s).
int64_t kernel_taps(const at::Tensor& weight) {
  int64_t taps = 1;
  for (int64_t d = 2; d < weight.dim(); ++d) taps *= weight.size(d);
  return taps;
}

// Contiguous weight [K, Cg, taps...] with the lanes innermost: [G, reduction, taps, width]; for the forward pass
// reduction = Cg and lanes over Kg (each group's [Kg, Cg*taps] matrix transposed), transposed reduction = Kg and
// lanes over Cg (each output channel's [Cg, taps] transposed). Register transposes: ATen's permuted copy took 7 ms
// for 512x512x3x3.
template <typename T>
Scratch<T> lanes_innermost(const at::Tensor& w, int64_t groups, bool transposed) {
  const int64_t k = w.size(0), cg = w.size(1), taps = kernel_taps(w);
  Scratch<T> out(w.numel());
  if (transposed) {
    transpose_matrices(data<T>(w), out.get(), k, cg, taps);
  } else {
    transpose_matrices(data<T>(w), out.get(), groups, k / groups, cg * taps);
  }
  return out;
}

// dst[0, 64) = src[0, lanes) and zeros; in bfloat16 pairs (below) rows j and j + 1 interleaved.
template <typename T>
void store_lanes(const T* src, int64_t lanes, T* dst) {
  std::copy(src, src + lanes, dst);
  std::fill(dst + lanes, dst + kBlockLanes, T{});
}

void store_lane_pairs(const bf16* first, const bf16* second, int64_t lanes, uint32_t* dst) {
  kernels::interleave_bf16(first, second, dst, lanes);
  std::fill(dst + lanes, dst + kBlockLanes, 0u);
}

// The packed weight that the kernels for T read: weight [K, Cg, taps...] -> [G, blocks, taps, reduction, 64]: per
// group, blocks of 64 lanes (one tile's width, zero-padded) outermost so that the weights a tile streams are
// contiguous (lanes and reduction as in lanes_innermost). In bfloat16, unless depthwise (no reduction), the
// reduction is taken in pairs: [..., reduction/2, 64, 2], rows 2j and 2j+1 interleaved. Runs of lanes are copied
// in plain loops (ATen's narrow + copy_ per block cost more than a small convolution).
template <typename T>
Scratch<T> packed_weight_for(const at::Tensor& weight, int64_t groups, bool transposed, bool depthwise) {
  const int64_t kg = weight.size(0) / groups, cg = weight.size(1), taps = kernel_taps(weight);
  const int64_t width = transposed ? cg : kg, reduction = transposed ? kg : cg;
  const bool pairs = std::is_same_v<T, bf16> && !depthwise;
  TORCH_INTERNAL_ASSERT(!pairs || reduction % 2 == 0, "bfloat16 reductions are padded to pairs");
  const auto w = weight.contiguous();
  const bool lanes_already_innermost = transposed && taps == 1;  // [K, Cg] = [G, Kg, 1, Cg]
  const auto lanes_last = lanes_already_innermost ? Scratch<T>(0) : lanes_innermost<T>(w, groups, transposed);
  const T* src = lanes_already_innermost ? data<T>(w) : lanes_last.get();
  const int64_t blocks = ceil_div(width, kBlockLanes);
  const int64_t runs = groups * blocks * taps;  // run = (g * blocks + block) * taps + tap
  Scratch<T> packed(runs * reduction * kBlockLanes);
  T* dst = packed.get();
  for_range(worth_threads(runs * reduction * kBlockLanes), runs, [&](int64_t begin, int64_t end) {
    for (int64_t run = begin; run < end; ++run) {
      const int64_t g = run / (blocks * taps), block = run / taps % blocks, tap = run % taps;
      const int64_t lanes = std::min(kBlockLanes, width - block * kBlockLanes);
      const auto from = [&](int64_t j) {
        return src + ((g * reduction + j) * taps + tap) * width + block * kBlockLanes;
      };
      T* to = dst + run * reduction * kBlockLanes;
      for (int64_t j = 0; j < reduction; j += pairs ? 2 : 1) {
        if constexpr (std::is_same_v<T, bf16>) {
          if (pairs) {
            store_lane_pairs(from(j), from(j + 1), lanes, reinterpret_cast<uint32_t*>(to + j * kBlockLanes));
            continue;
          }
        }
        store_lanes(from(j), lanes, to + j * kBlockLanes);
      }
    }
  });
  return packed;
}

// grad weight as the kernels leave it, [G, taps*Cg, Kg], -> weight's layout `sizes` [G*Kg, Cg, taps...], by two
// register transposes (ATen's permuted copy took 17 ms for 512x512x3x3).
at::Tensor unpacked_grad_weight(const float* dw, int64_t groups, int64_t cg, int64_t kg, at::IntArrayRef sizes) {
  auto out = at::empty(sizes, at::kFloat);
  const int64_t taps = kernel_taps(out);
  if (taps == 1) {
    transpose_matrices(dw, out.data_ptr<float>(), groups, cg, kg);
    return out;
  }
  Scratch<float> k_first(groups * kg * taps * cg);  // [G*Kg, taps, Cg]
  transpose_matrices(dw, k_first.get(), groups, taps * cg, kg);
  transpose_matrices(k_first.get(), out.data_ptr<float>(), groups * kg, taps, cg);
  return out;
}

// One application of tap_tile over a list of rows, for every group: row i reads a + a_off[i] (+ group
// offset) and writes c + c_off[i]; b is the packed weight of packed_weight_for<T>().
template <typename T>
struct TapProblem {
  const T* a;
  T* c;
  std::vector<int64_t> a_off, c_off;
  std::vector<int64_t> a_tap, b_tap;
  int64_t reduction;
  const T* b;  // packed_weight_for<T>(): [groups][blocks][taps][reduction][kBlockLanes]
  int64_t width;
  const float* bias;
  int64_t b_block;  // floats of one (group, block) of b: taps * reduction * kBlockLanes
  int64_t groups, a_group, c_group;
  bool depthwise;
};

// Work is split into (vector block, row block) tasks, vector-block major so that a thread's consecutive
// tasks reuse the same weights; the reduction is cut into blocks whose weights (all taps) fit in L2, except in
// bfloat16: its output would round the sums between blocks, and keeping them in a float32 buffer instead was
// measured no faster (its weights take half the room).
template <typename T>
void run_tap_problem(const TapProblem<T>& pr, bool parallel) {
  constexpr int64_t kWeightBlockBytes = 160 << 10;  // weights of one reduction block: fits L2
  const int64_t rows = static_cast<int64_t>(pr.a_off.size());
  const int64_t taps = static_cast<int64_t>(pr.a_tap.size());
  const int64_t nvec_total = ceil_div(pr.width, kLanes), vector_blocks = ceil_div(nvec_total, kMaxVectors);
  const int64_t row_blocks = ceil_div(rows, kBlockRows);
  const int64_t reduction_block = std::is_same_v<T, float> ? std::max<int64_t>(
      1, kWeightBlockBytes / (std::max<int64_t>(taps, 1) * kMaxVectors * kLanes * int64_t(sizeof(float))))
                                                          : std::max<int64_t>(pr.reduction, 1);
  for_range(parallel, pr.groups * vector_blocks * row_blocks, [&](int64_t first_task, int64_t last_task) {
    kernels::TapTileOf<T> t{};
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

// Offsets, in x_pad [N, Dp, Hp, Wp, C] (`padded` = {Dp, Hp, Wp}), of the corner of the window of every output
// pixel (of every `every`-th pixel of each output row).
std::vector<int64_t> window_offsets(const Shape& s, const Params& p, const std::array<int64_t, 3>& padded,
                                    int64_t every = 1) {
  std::vector<int64_t> off;
  off.reserve(s.n * s.out[D] * s.out[H] * ceil_div(s.out[W], every));
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t od = 0; od < s.out[D]; ++od)
      for (int64_t oh = 0; oh < s.out[H]; ++oh)
        for (int64_t ow = 0; ow < s.out[W]; ow += every)
          off.push_back((((n * padded[D] + od * p.stride[D]) * padded[H] + oh * p.stride[H]) * padded[W] +
                         ow * p.stride[W]) * s.c);
  return off;
}

// Offset of tap (t, r, q) from a window's corner in x_pad, for every tap in the weight's order.
std::vector<int64_t> tap_offsets(const Shape& s, const Params& p, const std::array<int64_t, 3>& padded) {
  std::vector<int64_t> off;
  for (int64_t t = 0; t < s.kernel[D]; ++t)
    for (int64_t r = 0; r < s.kernel[H]; ++r)
      for (int64_t q = 0; q < s.kernel[W]; ++q)
        off.push_back(((t * p.dil[D] * padded[H] + r * p.dil[H]) * padded[W] + q * p.dil[W]) * s.c);
  return off;
}

// Taps that read padding add nothing. On small maps (4x4 with padding 1: 31% of the products) and in the grad
// input of unpadded dilated layers (dilation 5, 16 -> 26 px: 62%) they are much of the work, so the pixels a
// problem writes are cut into regions whose pixels all read inside the data with the same taps, and each region
// runs with only those. Along one axis a region is a Segment: consecutive coordinates with the same kernel
// indices valid.
struct Segment {
  int64_t begin, end;
  std::vector<int64_t> taps;  // kernel indices along this axis
};

struct AxisCut {
  std::vector<Segment> segments;
  bool reads_padding;  // some segment keeps kernel indices that read outside the data: it needs padding
};

std::vector<int64_t> indices(int64_t count) {
  std::vector<int64_t> all(count);
  for (int64_t i = 0; i < count; ++i) all[i] = i;
  return all;
}

// The whole axis [0, count) as one segment with every kernel index in `candidates`.
AxisCut whole_axis(int64_t count, std::vector<int64_t> candidates, bool reads_padding) {
  return {{{0, count, std::move(candidates)}}, reads_padding};
}

// [0, count) cut where the kernel indices among `candidates` for which valid(j, index) holds change; the whole
// axis with every candidate when cutting would skip less than 5% of the products along it (a few large regions
// keep the tiles full and the weights reused).
template <typename Valid>
AxisCut axis_cut(int64_t count, const std::vector<int64_t>& candidates, const Valid& valid) {
  std::vector<Segment> segments;
  std::vector<int64_t> taps;  // of coordinate j (one buffer: a small layer's call is a few microseconds)
  int64_t useful = 0;
  for (int64_t j = 0; j < count; ++j) {
    taps.clear();
    for (const int64_t t : candidates) {
      if (valid(j, t)) taps.push_back(t);
    }
    useful += static_cast<int64_t>(taps.size());
    if (!segments.empty() && segments.back().taps == taps) {
      segments.back().end = j + 1;
    } else {
      segments.push_back({j, j + 1, taps});
    }
  }
  const int64_t all = count * static_cast<int64_t>(candidates.size());
  if (useful == all) return whole_axis(count, candidates, false);
  if (useful * 20 > all * 19) return whole_axis(count, candidates, true);
  return {std::move(segments), false};
}

// The output pixels' cuts along D, H and W by the taps that read inside the input (forward's and grad weight's).
std::array<AxisCut, 3> output_cuts(const Shape& s, const Params& p) {
  std::array<AxisCut, 3> cuts;
  for (int a = 0; a < 3; ++a) {
    if (s.kernel[a] == 1 && p.pad[a] == 0) {  // every pixel reads inside (a Conv2d's depth)
      cuts[a] = whole_axis(s.out[a], {0}, false);
      continue;
    }
    cuts[a] = axis_cut(s.out[a], indices(s.kernel[a]), [&](int64_t o, int64_t r) {
      const int64_t at = o * p.stride[a] - p.pad[a] + r * p.dil[a];
      return at >= 0 && at < s.in[a];
    });
  }
  return cuts;
}

// The rows of a problem are its pixels' (depth, height) pairs, j = d * h_count + h, and the kernel indices along
// them are (t, r) pairs, t * h_kernel + r: the regions of run_regions then cover Conv3d with two axes. The cut
// along them is every depth segment's rows when H is not cut, else each depth's height segments.
AxisCut fold_depth(const AxisCut& d, AxisCut h, int64_t h_count, int64_t h_kernel) {
  const bool depth_1 = d.segments.size() == 1 && d.segments[0].end == 1 && d.segments[0].taps.size() == 1 &&
                       d.segments[0].taps[0] == 0;
  if (depth_1) return {std::move(h.segments), d.reads_padding || h.reads_padding};  // a Conv2d: the rows are H
  AxisCut rows{{}, d.reads_padding || h.reads_padding};
  const auto taps = [&](const Segment& sd, const Segment& sh) {
    std::vector<int64_t> pairs;
    for (const int64_t t : sd.taps)
      for (const int64_t r : sh.taps) pairs.push_back(t * h_kernel + r);
    return pairs;
  };
  for (const auto& sd : d.segments) {
    if (h.segments.size() == 1) {
      const auto& sh = h.segments[0];
      rows.segments.push_back({sd.begin * h_count + sh.begin, (sd.end - 1) * h_count + sh.end, taps(sd, sh)});
      continue;
    }
    for (int64_t z = sd.begin; z < sd.end; ++z)
      for (const auto& sh : h.segments) rows.segments.push_back({z * h_count + sh.begin, z * h_count + sh.end, taps(sd, sh)});
  }
  return rows;
}

// Images per step: enough for kRowsPerStep pixels and, when the axes are cut, for the smallest region to fill a
// task of kBlockRows rows, as far as the step's input (`image_bytes` per image) stays about the size of L2.
int64_t images_per_step(int64_t pixels, int64_t image_bytes, const std::vector<std::pair<AxisCut, AxisCut>>& cuts) {
  constexpr int64_t kStepBytes = 1 << 20;
  int64_t smallest = pixels;
  for (const auto& [h, w] : cuts) {
    for (const auto& sh : h.segments)
      for (const auto& sw : w.segments) smallest = std::min(smallest, (sh.end - sh.begin) * (sw.end - sw.begin));
  }
  const int64_t filled = smallest < pixels ? ceil_div(kBlockRows, smallest) : 1;
  return std::max(ceil_div(kRowsPerStep, pixels), std::min(filled, std::max<int64_t>(1, kStepBytes / image_bytes)));
}

// Fills `problem`'s taps and rows for every region of (h, w) and runs it. tap(r, q) gives the {a, b} offsets of
// kernel indices (r, q); corner(n, j, i) the offset in a of pixel (j, i) of image n's window, and out(n, j, i)
// its offset in c. Each region's taps are taken relative to its first-read one, so that no row pointer points
// before the data.
template <typename T, typename Tap, typename Corner, typename Out>
void run_regions(TapProblem<T> problem, int64_t images, const AxisCut& h, const AxisCut& w, bool parallel,
                 const Tap& tap, const Corner& corner, const Out& out) {
  for (const auto& sh : h.segments) {
    for (const auto& sw : w.segments) {
      problem.a_tap.clear();
      problem.b_tap.clear();
      for (const int64_t r : sh.taps) {
        for (const int64_t q : sw.taps) {
          const auto [a, b] = tap(r, q);
          problem.a_tap.push_back(a);
          problem.b_tap.push_back(b);
        }
      }
      const int64_t base = problem.a_tap.empty() ? 0 : *std::min_element(problem.a_tap.begin(), problem.a_tap.end());
      for (auto& a : problem.a_tap) a -= base;
      problem.a_off.clear();
      problem.c_off.clear();
      for (int64_t n = 0; n < images; ++n) {
        for (int64_t j = sh.begin; j < sh.end; ++j) {
          for (int64_t i = sw.begin; i < sw.end; ++i) {
            problem.a_off.push_back(problem.a_tap.empty() ? 0 : corner(n, j, i) + base);
            problem.c_off.push_back(out(n, j, i));
          }
        }
      }
      run_tap_problem(problem, parallel);
    }
  }
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

// How the channels split into independent problems. A depthwise conv (one input and one output channel
// per group) is a single problem whose vectors run over the channels themselves.
struct Grouping {
  int64_t groups, cg, kg;
  bool depthwise;
};

Grouping grouping_of(const Shape& s, const Params& p) {
  if (p.groups > 1 && p.groups == s.c && p.groups == s.k) return {1, 1, s.k, true};
  return {p.groups, s.c / p.groups, s.k / p.groups, false};
}

// bfloat16 reduces over channels in pairs: an odd count (with groups == 1 only, see direct_conv_path) gets one
// zero channel more, in the weight (padded along `dim`) and in the data (padded_channels_last's `channels`).
template <typename T>
int64_t reduction_channels(int64_t channels, const Grouping& gr) {
  return std::is_same_v<T, bf16> && !gr.depthwise && channels % 2 != 0 ? channels + 1 : channels;
}

// weight with `extra` zero slices appended along `dim`.
at::Tensor zero_padded(const at::Tensor& weight, int64_t dim, int64_t extra) {
  if (extra == 0) return weight;
  std::vector<int64_t> pad(2 * weight.dim(), 0);
  pad[2 * (weight.dim() - 1 - dim) + 1] = extra;
  return at::constant_pad_nd(weight, pad);
}

// bias as the kernels read it: contiguous float32 (undefined if there is none).
at::Tensor float_bias(const std::optional<at::Tensor>& bias) {
  if (!bias.has_value() || !bias->defined()) return {};
  return bias->scalar_type() == at::kFloat && bias->is_contiguous() ? *bias : bias->to(at::kFloat).contiguous();
}

template <typename T>
at::Tensor forward(const at::Tensor& full_input, const at::Tensor& full_weight, const std::optional<at::Tensor>& bias,
                   const Shape& full_shape, const Params& full_params) {
  auto [input, s, p] = subsampled_if_pointwise(full_input, full_shape, full_params);
  const int64_t channels = reduction_channels<T>(s.c, grouping_of(s, p));
  const auto weight = zero_padded(full_weight, 1, channels - s.c);
  s.c = channels;
  const auto gr = grouping_of(s, p);
  const int64_t kg = gr.kg, cg = gr.cg, kernel_w = s.kernel[W];
  const auto w = packed_weight_for<T>(weight, gr.groups, /*transposed=*/false, gr.depthwise);
  const auto b = float_bias(bias);
  auto out = at::empty(sizes_of(s.n, s.k, s.out, full_input.dim() - 2),
                       input.options().memory_format(full_input.suggest_memory_format()));
  // A narrow input (a stem) gives each tap too short a reduction to keep the tile busy. Without dilation along W,
  // the taps of a kernel row are contiguous in x_pad and in the packed weight: they run as one tap over S * C
  // (kernel index 0 along W).
  const bool merge_row_taps =
      gr.groups == 1 && !gr.depthwise && p.dil[W] == 1 && kernel_w > 1 && cg * kernel_w <= kBlockLanes;
  const int64_t tap_reduction = merge_row_taps ? kernel_w * cg : cg;
  auto cuts = output_cuts(s, p);
  if (merge_row_taps) cuts[W] = whole_axis(s.out[W], {0}, p.pad[W] > 0);  // one tap per kernel row: W is not cut
  const auto pad = symmetric_padding(p.pad, {cuts[D].reads_padding, cuts[H].reads_padding, cuts[W].reads_padding});
  const auto padded = padded_sizes(s.in, pad);
  const auto rows = fold_depth(cuts[D], std::move(cuts[H]), s.out[H], s.kernel[H]);
  const auto tap = [&](int64_t tr, int64_t q) {
    const int64_t t = tr / s.kernel[H], r = tr % s.kernel[H];
    return std::pair<int64_t, int64_t>{
        ((t * p.dil[D] * padded[H] + r * p.dil[H]) * padded[W] + q * p.dil[W]) * s.c,
        (tr * (merge_row_taps ? 1 : kernel_w) + q) * tap_reduction * kBlockLanes};
  };
  const auto corner = [&](int64_t n, int64_t j, int64_t ow) {
    const int64_t od = j / s.out[H], oh = j % s.out[H];
    const auto at = [&](int a, int64_t o) { return o * p.stride[a] - p.pad[a] + pad.before[a]; };
    return (((n * padded[D] + at(D, od)) * padded[H] + at(H, oh)) * padded[W] + at(W, ow)) * s.c;
  };
  const auto output = [&](int64_t n, int64_t j, int64_t ow) {
    return ((n * s.out[D] * s.out[H] + j) * s.out[W] + ow) * s.k;
  };

  const int64_t step = images_per_step(s.out_pixels(), s.in_pixels() * s.c * int64_t(sizeof(T)), {{rows, cuts[W]}});
  over_image_steps(s.n, step, [&](int64_t first, int64_t count, bool parallel) {
    const Images images{first, count};
    const auto x_pad = padded_channels_last<T>(input, images, pad, parallel, channels);
    const auto out_cl = channels_last_memory_for<T>(out, images);
    TapProblem<T> pr;
    pr.a = x_pad.data;
    pr.c = out_cl.data;
    pr.reduction = tap_reduction;
    pr.b = w.get();
    pr.width = kg;
    pr.bias = b.defined() ? b.data_ptr<float>() : nullptr;
    pr.groups = gr.groups;
    pr.a_group = cg;
    pr.c_group = kg;
    pr.b_block = s.kernel_taps() * cg * kBlockLanes;
    pr.depthwise = gr.depthwise;
    run_regions(std::move(pr), count, rows, cuts[W], parallel, tap, corner, output);
    store_channels_last<T>(out_cl, out, images, parallel);
  });
  return out;
}

// One stride phase of grad input: the input pixels at phase[a] + stride[a] * j along each axis a. Along an axis,
// such a pixel reads grad_output at j + (phase + pad - r * dil) / stride for the kernel indices r where that
// division is exact (its candidates).
struct Phase {
  std::array<int64_t, 3> phase;
  std::array<AxisCut, 3> cuts;  // of the phase's pixels along each axis
  AxisCut rows;                 // cuts[D] and cuts[H] folded (fold_depth)
  int64_t h_count;              // the phase's pixels along H
};

std::vector<Phase> grad_input_phases(const Shape& s, const Params& p) {
  const auto cut = [&](int a, int64_t phase) {
    std::vector<int64_t> candidates;
    for (int64_t r = 0; r < s.kernel[a]; ++r) {
      if ((((phase + p.pad[a] - r * p.dil[a]) % p.stride[a]) + p.stride[a]) % p.stride[a] == 0) candidates.push_back(r);
    }
    return axis_cut(ceil_div(s.in[a] - phase, p.stride[a]), candidates, [&](int64_t j, int64_t r) {
      const int64_t row = j + (phase + p.pad[a] - r * p.dil[a]) / p.stride[a];
      return row >= 0 && row < s.out[a];
    });
  };
  std::vector<Phase> phases;
  for (int64_t pd = 0; pd < std::min(p.stride[D], s.in[D]); ++pd) {
    for (int64_t ph = 0; ph < std::min(p.stride[H], s.in[H]); ++ph) {
      for (int64_t pw = 0; pw < std::min(p.stride[W], s.in[W]); ++pw) {
        Phase phase{{pd, ph, pw}, {cut(D, pd), cut(H, ph), cut(W, pw)}, {}, ceil_div(s.in[H] - ph, p.stride[H])};
        phase.rows = fold_depth(phase.cuts[D], phase.cuts[H], phase.h_count, s.kernel[H]);
        phases.push_back(std::move(phase));
      }
    }
  }
  return phases;
}

template <typename T>
at::Tensor grad_input(const at::Tensor& grad_output, const at::Tensor& full_weight, const Shape& shape,
                      const Params& p, at::MemoryFormat format) {
  const int64_t channels = reduction_channels<T>(shape.k, grouping_of(shape, p));  // grad_output's, padded
  const auto weight = zero_padded(full_weight, 0, channels - shape.k);
  Shape s = shape;
  s.k = channels;
  const auto gr = grouping_of(s, p);
  // Reduction over a group's output channels, vectors over its input channels (depthwise: no reduction).
  const int64_t reduction = gr.depthwise ? 1 : gr.kg, width = gr.depthwise ? s.c : gr.cg;
  const auto w = packed_weight_for<T>(weight, gr.groups, /*transposed=*/!gr.depthwise, gr.depthwise);
  auto dx = at::empty(sizes_of(s.n, s.c, s.in, grad_output.dim() - 2), grad_output.options().memory_format(format));

  const auto phases = grad_input_phases(s, p);
  Padding pad;
  std::vector<std::pair<AxisCut, AxisCut>> regions;
  for (const auto& phase : phases) regions.emplace_back(phase.rows, phase.cuts[W]);
  for (int a = 0; a < 3; ++a) {
    bool reads_padding = false;
    for (const auto& phase : phases) reads_padding = reads_padding || phase.cuts[a].reads_padding;
    if (reads_padding) {
      std::tie(pad.before[a], pad.after[a]) =
          grad_output_padding(s.in[a], s.out[a], s.kernel[a], p.stride[a], p.pad[a], p.dil[a]);
    }
  }
  const auto padded = padded_sizes(s.out, pad);

  const int64_t step = images_per_step(s.in_pixels(), s.out_pixels() * s.k * int64_t(sizeof(T)), regions);
  over_image_steps(s.n, step, [&](int64_t first, int64_t count, bool parallel) {
    const Images images{first, count};
    const auto go_pad = padded_channels_last<T>(grad_output, images, pad, parallel, channels);
    const auto dx_cl = channels_last_memory_for<T>(dx, images);
    TapProblem<T> pr;
    pr.a = go_pad.data;
    pr.c = dx_cl.data;
    pr.reduction = reduction;
    pr.b = w.get();
    pr.width = width;
    pr.bias = nullptr;
    pr.groups = gr.groups;
    pr.a_group = gr.kg;
    pr.c_group = gr.cg;
    pr.b_block = s.kernel_taps() * reduction * kBlockLanes;
    pr.depthwise = gr.depthwise;
    for (const auto& ph : phases) {
      const auto shift = [&](int a, int64_t r) { return (ph.phase[a] + p.pad[a] - r * p.dil[a]) / p.stride[a]; };
      const auto tap = [&](int64_t tr, int64_t q) {
        const int64_t t = tr / s.kernel[H], r = tr % s.kernel[H];
        return std::pair<int64_t, int64_t>{
            ((shift(D, t) * padded[H] + shift(H, r)) * padded[W] + shift(W, q)) * s.k,
            (tr * s.kernel[W] + q) * reduction * kBlockLanes};
      };
      const auto corner = [&](int64_t n, int64_t j, int64_t i) {
        const int64_t jd = j / ph.h_count, jh = j % ph.h_count;
        return (((n * padded[D] + jd + pad.before[D]) * padded[H] + jh + pad.before[H]) * padded[W] + i +
                pad.before[W]) * s.k;
      };
      const auto output = [&](int64_t n, int64_t j, int64_t i) {
        const auto at = [&](int a, int64_t k) { return ph.phase[a] + k * p.stride[a]; };
        const int64_t jd = j / ph.h_count, jh = j % ph.h_count;
        return (((n * s.in[D] + at(D, jd)) * s.in[H] + at(H, jh)) * s.in[W] + at(W, i)) * s.c;
      };
      run_regions(pr, count, ph.rows, ph.cuts[W], parallel, tap, corner, output);
    }
    store_channels_last<T>(dx_cl, dx, images, parallel);
  });
  return dx;
}

// One step of images of grad weight as the pixel-sum kernels read them: x_pad [n, Dp, Hp, Wp, C], grad_output
// [n * pixels, K] and the offset of every pixel's window in x_pad. In bfloat16 each element holds the values
// of two neighbouring pixels of an output row (PixelSumTileOf<uint32_t>): x_pad at w and at w + stride_w,
// grad_output at 2j and 2j + 1 (zero past the row's end), and the windows are those of the pairs' first pixels.
template <typename E>
struct PixelStep {
  ChannelsLastMemory<E> x, g;
  std::vector<int64_t> pix_off;
};

template <typename E>
constexpr int64_t kPixelsPerElement = std::is_same_v<E, float> ? 1 : 2;

template <typename E>
PixelStep<E> pixel_step(const at::Tensor& input, const at::Tensor& grad_output, Images images, const Shape& step,
                        const Params& p, bool parallel) {
  const auto pad = symmetric_padding(p.pad, {true, true, true});
  const auto padded = padded_sizes(step.in, pad);
  auto pix_off = window_offsets(step, p, padded, kPixelsPerElement<E>);
  if constexpr (std::is_same_v<E, float>) {
    return {padded_channels_last<float>(input, images, pad, parallel),
            padded_channels_last<float>(grad_output, images, {}, parallel), std::move(pix_off)};
  } else {
    auto pad_pairs = pad;
    pad_pairs.after[W] += p.stride[W];
    const auto x = padded_channels_last<bf16>(input, images, pad_pairs, parallel);
    const auto go = padded_channels_last<bf16>(grad_output, images, {}, parallel);
    const int64_t c = step.c, k = step.k, wp = padded[W], wo = step.out[W], pairs = ceil_div(wo, 2);
    const int64_t x_rows = step.n * padded[D] * padded[H], g_rows = step.n * step.out[D] * step.out[H];
    auto x_pairs = scratch_memory<uint32_t>(x_rows * wp * c);
    auto g_pairs = scratch_memory<uint32_t>(g_rows * pairs * k);
    for (int64_t row = 0; row < x_rows; ++row) {
      const bf16* src = x.data + row * (wp + p.stride[W]) * c;
      kernels::interleave_bf16(src, src + p.stride[W] * c, x_pairs.data + row * wp * c, wp * c);
    }
    for (int64_t row = 0; row < g_rows; ++row) {
      for (int64_t j = 0; j < pairs; ++j) {
        const bf16* first = go.data + (row * wo + 2 * j) * k;
        kernels::interleave_bf16(first, 2 * j + 1 < wo ? first + k : nullptr, g_pairs.data + (row * pairs + j) * k, k);
      }
    }
    return {std::move(x_pairs), std::move(g_pairs), std::move(pix_off)};
  }
}

// One chunk of pixel sums: the windows at pix_off[0, pixels) in x, and the grad_output rows g, ldg apart.
template <typename E>
struct PixelChunk {
  const E* x;
  const int64_t* pix_off;
  int64_t pixels;
  const E* g;
  int64_t ldg;
};

// dw rows [row_begin, row_end) of every group (+)= the pixel sums of `chunk`; row i of dw reads x at row_off[i].
// Tiles go vector-block major, so that consecutive tiles read the same grad_output columns.
template <typename E>
void sum_pixels(const PixelChunk<E>& chunk, const std::vector<int64_t>& row_off, int64_t row_begin,
                int64_t row_end, const Grouping& gr, float* dw, bool accumulate, bool parallel = false) {
  if (parallel) {  // in blocks of kBlockRows dw rows (a multiple of every tile's rows)
    for_range(true, ceil_div(row_end - row_begin, kBlockRows), [&](int64_t first, int64_t last) {
      sum_pixels(chunk, row_off, row_begin + first * kBlockRows, std::min(row_end, row_begin + last * kBlockRows), gr,
                 dw, accumulate);
    });
    return;
  }
  const int64_t rows = static_cast<int64_t>(row_off.size()), nvec_total = ceil_div(gr.kg, kLanes);
  kernels::PixelSumTileOf<E> t{};
  t.pix_off = chunk.pix_off;
  t.pixels = chunk.pixels;
  t.ldg = chunk.ldg;
  t.ldw = gr.kg;
  t.depthwise = gr.depthwise;
  t.accumulate = accumulate;
  for (int64_t g = 0; g < gr.groups; ++g) {
    for (int64_t v0 = 0; v0 < nvec_total; v0 += kMaxVectors) {
      t.nvec = static_cast<int>(std::min<int64_t>(kMaxVectors, nvec_total - v0));
      t.last_mask = v0 + t.nvec == nvec_total ? last_lanes_mask(gr.kg) : uint16_t(0xFFFF);
      const int tile_rows = kernels::rows_per_tile(t.nvec);
      for (int64_t row = row_begin; row < row_end; row += tile_rows) {
        t.rows = static_cast<int>(std::min<int64_t>(tile_rows, row_end - row));
        for (int i = 0; i < tile_rows; ++i) t.row_off[i] = row_off[row + std::min(i, t.rows - 1)];
        t.x = chunk.x + (gr.depthwise ? v0 * kLanes : g * gr.cg);
        t.g = chunk.g + g * gr.kg + v0 * kLanes;
        t.dw = dw + (g * rows + row) * gr.kg + v0 * kLanes;
        kernels::pixel_sum_tile_avx512(t);
      }
    }
  }
}

// The pixel sums of one step of images, region by region (see Segment): each region's grad_output rows are
// gathered into `g_rows` and summed only into the dw rows of its valid taps, in runs of consecutive taps (a tile
// writes consecutive dw rows). dw must start at zero: a region adds into the rows of its taps only.
void sum_pixels_by_regions(const PixelStep<float>& step, int64_t images, const Shape& s, const AxisCut& rows,
                           const AxisCut& w, const std::vector<int64_t>& row_off, const Grouping& gr, float* g_rows,
                           float* dw, bool parallel) {
  std::vector<int64_t> pix_off;
  const int64_t rows_per_image = s.out[D] * s.out[H];
  for (const auto& sr : rows.segments) {
    for (const auto& sw : w.segments) {
      pix_off.clear();
      for (int64_t n = 0; n < images; ++n) {
        for (int64_t j = sr.begin; j < sr.end; ++j) {
          for (int64_t ow = sw.begin; ow < sw.end; ++ow) {
            const int64_t pixel = (n * rows_per_image + j) * s.out[W] + ow;
            std::copy(step.g.data + pixel * s.k, step.g.data + (pixel + 1) * s.k,
                      g_rows + static_cast<int64_t>(pix_off.size()) * s.k);
            pix_off.push_back(step.pix_off[pixel]);
          }
        }
      }
      std::vector<int64_t> taps;
      for (const int64_t tr : sr.taps)
        for (const int64_t q : sw.taps) taps.push_back(tr * s.kernel[W] + q);
      const int64_t pixels = static_cast<int64_t>(pix_off.size());
      for (int64_t chunk = 0; chunk < pixels; chunk += kChunkPixels) {
        const PixelChunk<float> part{step.x.data, pix_off.data() + chunk, std::min(kChunkPixels, pixels - chunk),
                                     g_rows + chunk * s.k, s.k};
        for (size_t first = 0, last = 0; first < taps.size(); first = last) {
          for (last = first + 1; last < taps.size() && taps[last] == taps[last - 1] + 1;) ++last;
          sum_pixels(part, row_off, taps[first] * gr.cg, (taps[last - 1] + 1) * gr.cg, gr, dw, true, parallel);
        }
      }
    }
  }
}

// E: the kernels' element, float or uint32_t (bfloat16 pairs).
template <typename E>
at::Tensor grad_weight(const at::Tensor& grad_output, const at::Tensor& full_input, const Shape& full_shape,
                       const Params& full_params) {
  const auto [input, s, p] = subsampled_if_pointwise(full_input, full_shape, full_params);
  const auto gr = grouping_of(s, p);
  const int64_t taps = s.kernel_taps(), rows = taps * gr.cg;
  const auto tap_off = tap_offsets(s, p, padded_sizes(s.in, symmetric_padding(p.pad, {true, true, true})));
  std::vector<int64_t> row_off(rows);
  for (int64_t t = 0; t < taps; ++t)
    for (int64_t c = 0; c < gr.cg; ++c) row_off[t * gr.cg + c] = tap_off[t] + c;
  // float32 skips the taps that read padding, as forward does; bfloat16 sums pairs of neighbouring pixels,
  // which a region's edge would split.
  const int64_t rows_per_image = s.out[D] * s.out[H];
  auto cuts = output_cuts(s, p);
  const auto [cut_rows, cut_w] = std::is_same_v<E, float>
      ? std::pair<AxisCut, AxisCut>{fold_depth(cuts[D], std::move(cuts[H]), s.out[H], s.kernel[H]), cuts[W]}
      : std::pair<AxisCut, AxisCut>{whole_axis(rows_per_image, indices(s.kernel[D] * s.kernel[H]), true),
                                    whole_axis(s.out[W], indices(s.kernel[W]), true)};
  const bool by_regions = cut_rows.segments.size() > 1 || cut_w.segments.size() > 1;

  // The batch is cut into one slice of images per thread; each thread sums its slice into its own partial
  // dw, in steps of images converted to channels-last in its cache and chunks of pixels that every tile
  // reads while they are in L2. The partials are then added in slice order. When a layer has a chunk or two of
  // pixels and the partials would outweigh the data they sum (512 channels on 7x7 maps, batch 4-8), there is one
  // slice and the threads split its dw rows instead: each dw value is summed by one thread, in a pass or two.
  // (1024 pixels were slower that way: batch 64, 256 -> 512 channels, 8x8 -> 4x4, 6.8 -> 8.8 ms; 512 on 4x4, 13 -> 16.)
  const int64_t dw_size = gr.groups * rows * gr.kg, pixels_total = s.n * s.out_pixels();
  const bool split_rows = std::is_same_v<E, float> && !at::in_parallel_region() && at::get_num_threads() > 1 &&
                          pixels_total <= 2 * kChunkPixels && pixels_total * (s.c + s.k) < dw_size;
  const int64_t slices = split_rows ? 1 : batch_slices(s.n);
  Scratch<float> partial(slices * dw_size);  // [slices, G, rows, Kg]
  const int64_t pixels_per_image = rows_per_image * ceil_div(s.out[W], kPixelsPerElement<E>);
  const int64_t step_images = by_regions
      ? images_per_step(s.out_pixels(), s.in_pixels() * s.c * int64_t(sizeof(float)), {{cut_rows, cut_w}})
      : ceil_div(kChunkPixels, pixels_per_image);
  const auto sum_slices = [&](int64_t first_slice, int64_t last_slice) {
    Scratch<float> g_rows(by_regions ? step_images * s.out_pixels() * s.k : 0);
    for (int64_t slice = first_slice; slice < last_slice; ++slice) {
      const int64_t image_end = (slice + 1) * s.n / slices;
      float* dw = partial.get() + slice * dw_size;
      if (by_regions) std::fill(dw, dw + dw_size, 0.0f);
      bool accumulate = false;
      for (int64_t first = slice * s.n / slices; first < image_end; first += step_images) {
        const int64_t count = std::min(step_images, image_end - first);
        Shape step = s;
        step.n = count;
        const auto chunk_step =
            pixel_step<E>(input, grad_output, Images{first, count}, step, p, split_rows);
        if constexpr (std::is_same_v<E, float>) {
          if (by_regions) {
            sum_pixels_by_regions(chunk_step, count, s, cut_rows, cut_w, row_off, gr, g_rows.get(), dw, split_rows);
            continue;
          }
        }
        const int64_t pixels = static_cast<int64_t>(chunk_step.pix_off.size());
        for (int64_t chunk = 0; chunk < pixels; chunk += kChunkPixels) {
          const PixelChunk<E> part{chunk_step.x.data, chunk_step.pix_off.data() + chunk,
                                   std::min(kChunkPixels, pixels - chunk), chunk_step.g.data + chunk * s.k, s.k};
          sum_pixels(part, row_off, 0, rows, gr, dw, accumulate, split_rows);
          accumulate = true;
        }
      }
    }
  };
  if (split_rows) {
    sum_slices(0, 1);  // not inside parallel_for: its parallel region would run sum_pixels' own split serially
  } else {
    at::parallel_for(0, slices, 1, sum_slices);
  }
  for (int64_t slice = 1; slice < slices; ++slice) add_into(partial.get(), partial.get() + slice * dw_size, dw_size);
  const auto sizes = sizes_of(gr.groups * gr.kg, gr.cg, s.kernel, full_input.dim() - 2);
  return unpacked_grad_weight(partial.get(), gr.groups, gr.cg, gr.kg, sizes).to(input.scalar_type());
}

// ---- grad input as a forward convolution ----
//
// The grad input of a convolution with stride 1 is the convolution of grad_output with the weight flipped along
// its kernel axes and transposed (input and output channels swapped), padded by dil * (kernel - 1) - pad: the
// narrow and Winograd forwards then serve grad input too.

bool grad_input_is_forward(const Params& p, const Shape& s) {
  bool applies = p.groups == 1 || (p.groups == s.c && p.groups == s.k);  // dense or depthwise
  for (int a = 0; a < 3; ++a) applies = applies && p.stride[a] == 1 && p.pad[a] <= p.dil[a] * (s.kernel[a] - 1);
  return applies;
}

std::pair<Shape, Params> grad_input_problem(const Shape& s, const Params& p) {
  Params q = p;
  for (int a = 0; a < 3; ++a) q.pad[a] = p.dil[a] * (s.kernel[a] - 1) - p.pad[a];
  return {Shape{s.n, s.k, s.c, s.out, s.kernel, s.in}, q};
}

at::Tensor flipped_transposed(const at::Tensor& weight) {
  std::vector<int64_t> kernel_dims;
  for (int64_t d = 2; d < weight.dim(); ++d) kernel_dims.push_back(d);
  return weight.flip(kernel_dims).transpose(0, 1);
}

}  // namespace

DirectPath direct_conv_path(const at::Tensor& input, const Conv3dShape& s, const Conv3dParams& p) {
  if (!input.device().is_cpu()) return DirectPath::none;
  const auto gr = grouping_of(s, p);
  // Narrow groups (other than depthwise) would leave most vector lanes idle: GEMM handles them.
  if (!(gr.depthwise || gr.groups == 1 || (gr.kg >= kLanes && gr.cg >= kLanes))) return DirectPath::none;
  const auto available = available_direct_kernels();
  if (input.scalar_type() == at::kFloat && available.float32) return DirectPath::avx512_float32;
  // Channel pairs must not straddle groups (reduction_channels pads only a single group).
  const bool pairs_fit = gr.depthwise || gr.groups == 1 || (gr.cg % 2 == 0 && gr.kg % 2 == 0);
  if (input.scalar_type() == at::kBFloat16 && available.bfloat16 && pairs_fit) return DirectPath::avx512_bfloat16;
  return DirectPath::none;
}

namespace {

enum class ForwardAlgorithm { tap_kernel, pointwise, depthwise, winograd, narrow };

// The one decision of which algorithm a direct forward runs (direct_conv_forward and, by name, show_config).
ForwardAlgorithm forward_algorithm(const at::Tensor& input, const Shape& s, const Params& p) {
  if (input.scalar_type() != at::kFloat || !available_direct_kernels().other_algorithms) {
    return ForwardAlgorithm::tap_kernel;
  }
  const auto format = input.suggest_memory_format();
  if (pointwise_forward_applies(input, s, p, format)) return ForwardAlgorithm::pointwise;
  if (depthwise_forward_applies(input, s, p, format)) return ForwardAlgorithm::depthwise;
  if (winograd_applies(s, p)) return ForwardAlgorithm::winograd;
  return narrow_forward_applies(input, s, p) ? ForwardAlgorithm::narrow : ForwardAlgorithm::tap_kernel;
}

}  // namespace

std::string direct_conv_algorithm(const at::Tensor& input, const Conv3dShape& s, const Conv3dParams& p) {
  switch (forward_algorithm(input, s, p)) {
    case ForwardAlgorithm::pointwise: return "pointwise (NCHW, vectors along pixels)";
    case ForwardAlgorithm::depthwise: return "depthwise (NCHW planes, vectors along rows)";
    case ForwardAlgorithm::winograd: return "Winograd F(2x2, 3x3)";
    case ForwardAlgorithm::narrow: return "narrow (vectors along rows)";
    default: return "";
  }
}

at::Tensor direct_conv_forward(const at::Tensor& input, const at::Tensor& weight,
                               const std::optional<at::Tensor>& bias, const Conv3dShape& s, const Conv3dParams& p) {
  const auto algorithm = forward_algorithm(input, s, p);
  if (algorithm != ForwardAlgorithm::tap_kernel) {
    const auto b = float_bias(bias);
    const float* bias_data = b.defined() ? b.data_ptr<float>() : nullptr;
    const auto format = input.suggest_memory_format();
    switch (algorithm) {
      case ForwardAlgorithm::pointwise: return pointwise_forward(input, weight, bias_data, s, p);
      case ForwardAlgorithm::depthwise: return depthwise_forward(input, weight, bias_data, s, p);
      case ForwardAlgorithm::winograd:
        return winograd_forward(input, weight, WinogradWeight::as_given, bias_data, s, p, format);
      default: return narrow_forward(input, weight, bias_data, s, p, format);
    }
  }
  return input.scalar_type() == at::kBFloat16 ? forward<bf16>(input, weight, bias, s, p)
                                              : forward<float>(input, weight, bias, s, p);
}

at::Tensor direct_conv_grad_input(const at::Tensor& grad_output, const at::Tensor& weight, const Conv3dShape& s,
                                  const Conv3dParams& p, at::MemoryFormat format) {
  if (grad_output.scalar_type() == at::kFloat && available_direct_kernels().other_algorithms &&
      grad_input_is_forward(p, s)) {
    const auto [gs, gp] = grad_input_problem(s, p);
    if (depthwise_forward_applies(grad_output, gs, gp, format)) {
      return depthwise_forward(grad_output, weight.flip({2, 3}), nullptr, gs, gp);  // each channel's kernel flipped
    }
    if (pointwise_forward_applies(grad_output, gs, gp, format)) {
      return pointwise_grad_input(grad_output, weight, gs);
    }
    if (winograd_applies(gs, gp)) {
      return winograd_forward(grad_output, weight, WinogradWeight::flipped_transposed, nullptr, gs, gp, format);
    }
    if (narrow_forward_applies(grad_output, gs, gp)) {
      return narrow_forward(grad_output, flipped_transposed(weight), nullptr, gs, gp, format);
    }
  }
  return grad_output.scalar_type() == at::kBFloat16 ? grad_input<bf16>(grad_output, weight, s, p, format)
                                                    : grad_input<float>(grad_output, weight, s, p, format);
}

at::Tensor direct_conv_grad_weight(const at::Tensor& grad_output, const at::Tensor& input, const Conv3dShape& s,
                                   const Conv3dParams& p) {
  if (input.scalar_type() == at::kFloat && available_direct_kernels().other_algorithms &&
      winograd_grad_weight_applies(s, p)) {
    return winograd_grad_weight(grad_output, input, s, p);
  }
  return input.scalar_type() == at::kBFloat16 ? grad_weight<uint32_t>(grad_output, input, s, p)
                                              : grad_weight<float>(grad_output, input, s, p);
}

}  // namespace cnnext::cpu
