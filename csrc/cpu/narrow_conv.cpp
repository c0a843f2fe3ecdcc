// Narrow convolutions on the CPU (narrow_conv.h).
#include "narrow_conv.h"

#include "conv_layout.h"

namespace cnnext::cpu {
namespace {

using kernels::kMaxNarrowRows;
using kernels::kMaxNarrowVectors;
constexpr int64_t kNarrowPiece = kLanes * kMaxNarrowVectors;  // pixels of one tile
// Output channels a narrow convolution takes, in tiles of up to kMaxNarrowRows (each reads the same input
// piece again, from cache). Below 16, the tap kernel's vectors over output channels would leave lanes idle.
constexpr int64_t kMaxNarrowChannels = 12;

// t [N, C, (D,) H, W] (any strides: a channels-last t is read in place) -> [N * C, Dp, Hp, Wp] zero-padded, with
// `slack` values after it (whole vectors may read past the last row).
Scratch<float> padded_planes(const at::Tensor& t, const Padding& pad, int64_t slack) {
  const bool volume = t.dim() == 5;
  const int64_t c = t.size(1), planes = t.size(0) * c, d = volume ? t.size(2) : 1, h = t.size(-2), w = t.size(-1);
  const int64_t sn = t.stride(0), sc = t.stride(1), sd = volume ? t.stride(2) : 0, sh = t.stride(-2),
                sw = t.stride(-1);
  const std::array<int64_t, 3> in{d, h, w};
  const auto padded = padded_sizes(in, pad);
  Scratch<float> out(planes * padded[D] * padded[H] * padded[W] + slack);
  const float* src = t.data_ptr<float>();
  float* dst = out.get();
  const int64_t rows = planes * padded[D] * padded[H];
  for_range(worth_threads(rows * padded[W]), rows, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t plane = row / (padded[D] * padded[H]);
      const int64_t z = row / padded[H] % padded[D] - pad.before[D], y = row % padded[H] - pad.before[H];
      float* to = dst + row * padded[W];
      std::fill(to, to + padded[W], 0.0f);
      if (z < 0 || z >= d || y < 0 || y >= h) continue;
      const float* from = src + plane / c * sn + plane % c * sc + z * sd + y * sh;
      if (sw == 1) {
        std::copy_n(from, w, to + pad.before[W]);
      } else {
        for (int64_t x = 0; x < w; ++x) to[pad.before[W] + x] = from[x * sw];
      }
    }
  });
  std::fill(dst + rows * padded[W], dst + rows * padded[W] + slack, 0.0f);
  return out;
}

}  // namespace

// A 1x1 layer of many channels in channels-last memory stays on the tap kernel: gathering its planes from that
// memory cost more than the kernel's idle lanes (16 x 32 x 32 x 32 -> 4: 0.18 ms against 0.10).
bool narrow_forward_applies(const at::Tensor& input, const Shape& s, const Params& p) {
  const bool gathered_pointwise = !input.is_contiguous() && s.kernel_taps() == 1 && s.c > kLanes;
  return p.groups == 1 && s.k <= kMaxNarrowChannels && p.stride[W] == 1 && s.out[W] >= kLanes / 2 &&
         !gathered_pointwise;
}

// out = conv(input, weight) + bias (bias may be null) in `format`, input and weight float32.
at::Tensor narrow_forward(const at::Tensor& input, const at::Tensor& weight, const float* bias, const Shape& s,
                          const Params& p, at::MemoryFormat format) {
  const auto pad = symmetric_padding(p.pad, {true, true, true});
  const auto padded = padded_sizes(s.in, pad);
  const int64_t plane = padded[D] * padded[H] * padded[W], taps = s.kernel_taps();
  const auto x = padded_planes(input, pad, kNarrowPiece);
  Scratch<float> w(s.k * taps * s.c);  // [K, taps, C]: a row's weights for one tap, over the input channels
  transpose_matrices(weight.contiguous().data_ptr<float>(), w.get(), s.k, s.c, taps);
  std::vector<int64_t> a_tap, b_tap;
  for (int64_t t = 0; t < s.kernel[D]; ++t)
    for (int64_t r = 0; r < s.kernel[H]; ++r)
      for (int64_t q = 0; q < s.kernel[W]; ++q) {
        a_tap.push_back(static_cast<int64_t>(a_tap.size()) * s.c);
        b_tap.push_back((t * p.dil[D] * padded[H] + r * p.dil[H]) * padded[W] + q * p.dil[W]);
      }
  auto out = at::empty(sizes_of(s.n, s.k, s.out, input.dim() - 2), input.options().dtype(at::kFloat));
  float* y = out.data_ptr<float>();
  const int64_t pieces = ceil_div(s.out[W], kNarrowPiece), rows = s.n * s.out[D] * s.out[H];
  for_range(true, rows * pieces, [&](int64_t begin, int64_t end) {
    kernels::TapTile t{};
    t.a_tap = a_tap.data();
    t.b_tap = b_tap.data();
    t.taps = taps;
    t.reduction = s.c;
    t.ldb = plane;
    t.accumulate = bias != nullptr;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t row = task / pieces, ow = task % pieces * kNarrowPiece, n = row / (s.out[D] * s.out[H]);
      const int64_t od = row / s.out[H] % s.out[D], oh = row % s.out[H], length = std::min(kNarrowPiece, s.out[W] - ow);
      t.nvec = static_cast<int>(ceil_div(length, kLanes));
      t.last_mask = last_lanes_mask(length);
      t.b = x.get() + n * s.c * plane + (od * p.stride[D] * padded[H] + oh * p.stride[H]) * padded[W] + ow;
      for (int64_t k0 = 0; k0 < s.k; k0 += kMaxNarrowRows) {
        t.rows = static_cast<int>(std::min<int64_t>(kMaxNarrowRows, s.k - k0));
        for (int64_t i = 0; i < t.rows; ++i) {
          const int64_t k = k0 + i;
          t.a_rows[i] = w.get() + k * taps * s.c;
          t.c_rows[i] = y + (((n * s.k + k) * s.out[D] + od) * s.out[H] + oh) * s.out[W] + ow;
          if (bias) std::fill_n(t.c_rows[i], length, bias[k]);
        }
        kernels::narrow_tile_avx512(t);
      }
    }
  });
  return format == at::MemoryFormat::Contiguous ? out : channels_last_copy<float>(out);
}

}  // namespace cnnext::cpu
