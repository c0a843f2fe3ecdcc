// Winograd F(2x2, 3x3) convolutions on the CPU (winograd_conv.h).
#include "winograd_conv.h"

#include <limits>

#include "conv_layout.h"

namespace cnnext::cpu {
namespace {

constexpr int64_t kWinogradChunkTiles = 96;

// Floats between consecutive reduction rows of the transformed weight: a row's 16 transformed positions side by side
// (16 x kBlockLanes) and one vector more, so that the rows do not lie a multiple of 4 KB apart (rows read at such a
// stride all fall in the same cache sets).
constexpr int64_t kWeightRow = 16 * kBlockLanes + kLanes;

// U = G g G^T for every reduction row (depth tap t, input channel c; t = 0 alone for a Conv2d) and output channel,
// packed [output blocks][T * C][16][kBlockLanes] (row stride kWeightRow, zero lanes past K): position xi's matrix is
// tap_tile's b at u + xi * kBlockLanes with ldb = kWeightRow, and each row's transform is written as one run. (The
// first layout, 16 matrices a multiple of 4 KB apart, needed a staging buffer and a copy: a fifth of a 512-channel
// layer's time.) The weight is read through its own strides, as given ([K, C, (T,) 3, 3]) or flipped along its
// kernel axes and transposed (grad input's), so that neither needs a copy.
Scratch<float> winograd_weight(const at::Tensor& weight, int64_t c, int64_t k, WinogradWeight use) {
  if (std::max(weight.stride(0), weight.stride(1)) * kLanes > std::numeric_limits<int32_t>::max()) {
    return winograd_weight(weight.contiguous(), c, k, use);  // a view of a huge tensor: its strides overflow a gather
  }
  const bool flip = use == WinogradWeight::flipped_transposed;
  const int64_t dims = weight.dim(), taps = dims == 5 ? weight.size(2) : 1;
  const int64_t lane = weight.stride(flip ? 1 : 0), channel = weight.stride(flip ? 0 : 1);
  const int64_t tap_stride = dims == 5 ? weight.stride(2) : 0;
  int64_t filter[9];  // offsets of the 3x3 values, in the order G g G^T reads them
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t q = 0; q < 3; ++q)
      filter[3 * r + q] = (flip ? 2 - r : r) * weight.stride(dims - 2) + (flip ? 2 - q : q) * weight.stride(dims - 1);
  const float* g = weight.data_ptr<float>();
  const int64_t rows = taps * c, blocks = ceil_div(k, kBlockLanes);
  Scratch<float> u(blocks * rows * kWeightRow);
  for_range(worth_threads(blocks * rows * kWeightRow), blocks * rows, [&](int64_t begin, int64_t end) {
    for (int64_t block_row = begin; block_row < end; ++block_row) {
      const int64_t block = block_row / rows, row = block_row % rows, tap = row / c, ci = row % c;
      const int64_t first = (flip ? taps - 1 - tap : tap) * tap_stride + ci * channel + block * kBlockLanes * lane;
      kernels::winograd_weight_avx512(g + first, lane, filter, u.get() + block_row * kWeightRow, kBlockLanes,
                                      std::min(kBlockLanes, k - block * kBlockLanes), kBlockLanes);
    }
  });
  return u;
}

// The first output positions of an axis's tiles. A tile covers positions o and o + dil (its input patch reads
// o + {0, 1, 2, 3} * dil), so with dilation the positions of each phase o % dil pair up among themselves: a dilated
// convolution is dil^2 independent undilated ones on the phases' sub-grids.
std::vector<int64_t> tile_starts(int64_t out, int64_t dil) {
  std::vector<int64_t> starts;
  for (int64_t phase = 0; phase < std::min(dil, out); ++phase) {
    for (int64_t o = phase; o < out; o += 2 * dil) starts.push_back(o);
  }
  return starts;
}

// The 2x2 output tiles of a layer and the padded input they read: tile t is image t / per_image; its output depth,
// rows and columns come from corner(t). The input is padded so that every tile's 4x4 patches lie inside it. A
// Conv3d of depth kernel T is, for each output depth od, a Conv2d over T * C input channels: the slices read by the
// depth taps (od + t * dil) stacked, so every tile has T patches, one per depth tap, and its reduction rows are the
// (t, c) pairs.
struct Tiles {
  std::vector<int64_t> row_starts, col_starts;
  int64_t depth_taps, dil_d, dil_h, dil_w, plane, per_image;
  Padding pad;
  std::array<int64_t, 3> padded;

  Tiles(const Shape& s, const Params& p)
      : row_starts(tile_starts(s.out[H], p.dil[H])),
        col_starts(tile_starts(s.out[W], p.dil[W])),
        depth_taps(s.kernel[D]),
        dil_d(p.dil[D]),
        dil_h(p.dil[H]),
        dil_w(p.dil[W]),
        plane(int64_t(row_starts.size() * col_starts.size())),
        per_image(s.out[D] * plane) {
    const auto after = [&](int a, int64_t last_start, int64_t span) {
      return std::max<int64_t>(0, last_start + span + 1 - s.in[a] - p.pad[a]);
    };
    pad.before = {p.pad[D], p.pad[H], p.pad[W]};
    pad.after = {after(D, s.out[D] - 1, (s.kernel[D] - 1) * p.dil[D]), after(H, max_start(row_starts), 3 * p.dil[H]),
                 after(W, max_start(col_starts), 3 * p.dil[W])};
    padded = padded_sizes(s.in, pad);
  }
  static int64_t max_start(const std::vector<int64_t>& starts) {
    return *std::max_element(starts.begin(), starts.end());
  }
  std::array<int64_t, 4> corner(int64_t tile) const {  // image, output depth, first output row, first output column
    const int64_t cols = int64_t(col_starts.size()), in_image = tile % per_image, in_plane = in_image % plane;
    return {tile / per_image, in_image / plane, row_starts[in_plane / cols], col_starts[in_plane % cols]};
  }
  // Offset of tile `tile`'s input patch for depth tap `tap` in the padded channels-last input of `channels`
  // channels.
  int64_t patch(int64_t tile, int64_t tap, int64_t channels) const {
    const auto [n, od, oh, ow] = corner(tile);
    return (((n * padded[D] + od + tap * dil_d) * padded[H] + oh) * padded[W] + ow) * channels;
  }
  // The tile's T input transforms, side by side in v's row for the tile: v[t * C + c].
  void transform_input(const float* x, int64_t tile, int64_t channels, float* v, int64_t ldv) const {
    for (int64_t tap = 0; tap < depth_taps; ++tap) {
      kernels::winograd_input_avx512(x + patch(tile, tap, channels), dil_h * padded[W] * channels,
                                     dil_w * channels, v + tap * channels, ldv, channels);
    }
  }
  int64_t images_per_step() const { return std::max<int64_t>(1, ceil_div(kWinogradChunkTiles, per_image)); }
};

}  // namespace

// Measured against the direct kernel (2 threads, forward): faster on every 3x3 layer tried from 16 to 512
// channels and 4x4 to 32x32 maps (64 -> 128 channels on 8x8: 0.37 against 1.10 ms; 256 on 16x16: 20 against 39;
// 512 on 4x4: 6.7 against 8.1, where the direct kernel skips the taps that read padding). Wider layers are left to
// the direct kernel: their 16 transformed weight matrices (16 T C K floats) would be 64 MB at 1024 channels.
bool winograd_applies(const Shape& s, const Params& p) {
  for (int a = 0; a < 3; ++a) {
    if (p.stride[a] != 1) return false;
  }
  const int64_t rows = s.kernel[D] * s.c;  // reduction rows: (depth tap, input channel)
  if (s.kernel[H] != 3 || s.kernel[W] != 3 || p.groups != 1 || s.c < kLanes || s.k < kLanes ||
      rows * s.k > 512 * 512 || s.out[H] < 4 || s.out[W] < 4) {
    return false;
  }
  // Winograd's 16 products per tile (and depth tap) must stay under three quarters of the direct kernel's, which
  // skips the taps that read padding: a dilation near the map's size leaves tiles half empty, a wide padding (grad
  // input of an unpadded dilated layer) gives many taps that read only zeros. Measured (2 threads): 512 channels
  // on 7x7 maps (0.71 of the products) 4.5 against 10 ms forward; the lab's HDC 64 -> 128 layer at dilation 5
  // (0.69) at parity; its grad input (1.56) 5.4 against 2.9 ms.
  int64_t winograd_products = 16 * s.out[D] * s.kernel[D], direct_products = 1;
  for (int a : {D, H, W}) {
    if (a != D) winograd_products *= int64_t(tile_starts(s.out[a], p.dil[a]).size());
    int64_t taps_inside = 0;  // (output, kernel index) pairs that read the input, not its padding
    for (int64_t r = 0; r < s.kernel[a]; ++r) {
      const int64_t offset = r * p.dil[a] - p.pad[a];  // output o reads input o + offset
      taps_inside += std::max<int64_t>(0, std::min(s.out[a], s.in[a] - offset) - std::max<int64_t>(0, -offset));
    }
    direct_products *= taps_inside;
  }
  return 4 * winograd_products <= 3 * direct_products;
}

at::Tensor winograd_forward(const at::Tensor& input, const at::Tensor& weight, WinogradWeight use, const float* bias,
                            const Shape& s, const Params& p, at::MemoryFormat format) {
  const int64_t c = s.c, k = s.k, blocks = ceil_div(k, kBlockLanes), rows = s.kernel[D] * c;
  const Tiles tiles(s, p);
  const auto u = winograd_weight(weight, c, k, use);
  auto out = at::empty(sizes_of(s.n, k, s.out, input.dim() - 2), input.options().memory_format(format));
  over_image_steps(s.n, tiles.images_per_step(), [&](int64_t first, int64_t count, bool parallel) {
    const Images images{first, count};
    const auto x = padded_channels_last<float>(input, images, tiles.pad, parallel);
    const auto y = channels_last_memory_for<float>(out, images);
    const int64_t step_tiles = count * tiles.per_image, chunks = ceil_div(step_tiles, kWinogradChunkTiles);
    for_range(parallel, chunks, [&](int64_t first_chunk, int64_t last_chunk) {
      Scratch<float> v(16 * kWinogradChunkTiles * rows), m(16 * kWinogradChunkTiles * blocks * kBlockLanes);
      const int64_t ldv = kWinogradChunkTiles * rows, ldm = kWinogradChunkTiles * blocks * kBlockLanes;
      for (int64_t chunk = first_chunk; chunk < last_chunk; ++chunk) {
        const int64_t tile0 = chunk * kWinogradChunkTiles;
        const int64_t chunk_tiles = std::min(kWinogradChunkTiles, step_tiles - tile0);
        for (int64_t i = 0; i < chunk_tiles; ++i) tiles.transform_input(x.data, tile0 + i, c, v.get() + i * rows, ldv);
        kernels::TapTile t{};
        const int64_t a_tap = 0, b_tap = 0;
        t.a_tap = &a_tap;
        t.b_tap = &b_tap;
        t.taps = 1;
        t.reduction = rows;
        t.ldb = kWeightRow;
        const int64_t nvec_total = ceil_div(k, kLanes);
        for (int64_t xi = 0; xi < 16; ++xi) {
          for (int64_t v0 = 0; v0 < nvec_total; v0 += kMaxVectors) {
            t.nvec = static_cast<int>(std::min<int64_t>(kMaxVectors, nvec_total - v0));
            t.last_mask = v0 + t.nvec == nvec_total ? last_lanes_mask(k) : uint16_t(0xFFFF);
            t.b = u.get() + (v0 / kMaxVectors) * rows * kWeightRow + xi * kBlockLanes;
            const int tile_rows = kernels::rows_per_tile(t.nvec);
            for (int64_t row = 0; row < chunk_tiles; row += tile_rows) {
              t.rows = static_cast<int>(std::min<int64_t>(tile_rows, chunk_tiles - row));
              for (int i = 0; i < tile_rows; ++i) {
                const int64_t r = row + std::min(i, t.rows - 1);
                t.a_rows[i] = v.get() + xi * ldv + r * rows;
                t.c_rows[i] = m.get() + xi * ldm + r * blocks * kBlockLanes + v0 * kLanes;
              }
              kernels::tap_tile_avx512(t);
            }
          }
        }
        for (int64_t i = 0; i < chunk_tiles; ++i) {
          const auto [n, od, oh, ow] = tiles.corner(tile0 + i);
          kernels::winograd_output_avx512(m.get() + i * blocks * kBlockLanes, ldm, bias,
                                          y.data + (((n * s.out[D] + od) * s.out[H] + oh) * s.out[W] + ow) * k,
                                          tiles.dil_h * s.out[W] * k, tiles.dil_w * k,
                                          oh + tiles.dil_h < s.out[H] ? 2 : 1, ow + tiles.dil_w < s.out[W] ? 2 : 1, k);
        }
      }
    });
    store_channels_last<float>(y, out, images, parallel);
  });
  return out;
}

// Each thread's partial sums are 16 C K floats, read and written once per chunk of tiles: at 512 x 512 channels
// (16 MB) that traffic made it slower than the direct kernel's pixel sums (37 against 31 ms on 4x4 maps).
bool winograd_grad_weight_applies(const Shape& s, const Params& p) {
  return winograd_applies(s, p) && s.kernel[D] * s.c * s.k <= 256 * 256;
}

// Grad weight, F(3x3, 2x2): dw[k, c] (3x3) = sum over 2x2 grad_output tiles g_k of the correlation of the 4x4
// input patch d_c with g_k = A'^T [sum over tiles (B'^T d_c B') . (G' g_k G'^T)] A'. Per transformed position xi the
// sum over tiles is a product [C x tiles] x [tiles x K], run on pixel_sum_tile (rows: input channels, lanes:
// output channels, the tiles as its pixels); for a Conv3d the rows are the (depth tap, input channel) pairs of the
// tiles' stacked patches (Tiles). Each thread sums its slice of the batch into its own 16 x T C x K partial; the
// partials are added in a fixed order, so results repeat run to run.
at::Tensor winograd_grad_weight(const at::Tensor& grad_output, const at::Tensor& input, const Shape& s,
                                const Params& p) {
  const int64_t c = s.c, k = s.k, ldu = ceil_div(k, kLanes) * kLanes, rows = s.kernel[D] * c;
  const Tiles tiles(s, p);
  Padding go_pad;  // zero rows and columns where a tile's second position lies past the output
  const auto past_output = [&](int a, const std::vector<int64_t>& starts) {
    return std::max<int64_t>(0, Tiles::max_start(starts) + p.dil[a] + 1 - s.out[a]);
  };
  go_pad.after = {0, past_output(H, tiles.row_starts), past_output(W, tiles.col_starts)};
  const auto go_padded = padded_sizes(s.out, go_pad);
  const int64_t slices = batch_slices(s.n), sums = 16 * rows * k;  // one slice's partial: [16][T C][K]
  Scratch<float> partial(slices * sums);
  const int64_t images_per_step = tiles.images_per_step();
  at::parallel_for(0, slices, 1, [&](int64_t first_slice, int64_t last_slice) {
    Scratch<float> v(16 * kWinogradChunkTiles * rows), u(16 * kWinogradChunkTiles * ldu);
    const int64_t ldv = kWinogradChunkTiles * rows, ldu_xi = kWinogradChunkTiles * ldu;
    std::vector<int64_t> tile_offsets(kWinogradChunkTiles);
    for (int64_t i = 0; i < kWinogradChunkTiles; ++i) tile_offsets[i] = i * rows;
    for (int64_t slice = first_slice; slice < last_slice; ++slice) {
      float* sum = partial.get() + slice * sums;
      bool accumulate = false;
      for (int64_t first = slice * s.n / slices; first < (slice + 1) * s.n / slices; first += images_per_step) {
        const int64_t count = std::min(images_per_step, (slice + 1) * s.n / slices - first);
        const Images images{first, count};
        const auto x = padded_channels_last<float>(input, images, tiles.pad, false);
        const auto g = padded_channels_last<float>(grad_output, images, go_pad, false);
        const int64_t step_tiles = count * tiles.per_image;
        for (int64_t tile0 = 0; tile0 < step_tiles; tile0 += kWinogradChunkTiles) {
          const int64_t chunk_tiles = std::min(kWinogradChunkTiles, step_tiles - tile0);
          for (int64_t i = 0; i < chunk_tiles; ++i) {
            const auto [n, od, oh, ow] = tiles.corner(tile0 + i);
            tiles.transform_input(x.data, tile0 + i, c, v.get() + i * rows, ldv);
            const int64_t go_tile = (((n * s.out[D] + od) * go_padded[H] + oh) * go_padded[W] + ow) * k;
            kernels::winograd_grad_output_avx512(g.data + go_tile, tiles.dil_h * go_padded[W] * k, tiles.dil_w * k,
                                                 u.get() + i * ldu, ldu_xi, k);
          }
          kernels::PixelSumTile t{};
          t.pix_off = tile_offsets.data();
          t.pixels = chunk_tiles;
          t.ldg = ldu;
          t.ldw = k;
          t.accumulate = accumulate;
          const int64_t nvec_total = ceil_div(k, kLanes);
          for (int64_t xi = 0; xi < 16; ++xi) {
            t.x = v.get() + xi * ldv;
            for (int64_t v0 = 0; v0 < nvec_total; v0 += kMaxVectors) {
              t.nvec = static_cast<int>(std::min<int64_t>(kMaxVectors, nvec_total - v0));
              t.last_mask = v0 + t.nvec == nvec_total ? last_lanes_mask(k) : uint16_t(0xFFFF);
              t.g = u.get() + xi * ldu_xi + v0 * kLanes;
              const int tile_rows = kernels::rows_per_tile(t.nvec);
              for (int64_t row = 0; row < rows; row += tile_rows) {
                t.rows = static_cast<int>(std::min<int64_t>(tile_rows, rows - row));
                for (int i = 0; i < tile_rows; ++i) t.row_off[i] = row + std::min(i, t.rows - 1);
                t.dw = sum + (xi * rows + row) * k + v0 * kLanes;
                kernels::pixel_sum_tile_avx512(t);
              }
            }
          }
          accumulate = true;
        }
      }
    }
  });
  for (int64_t slice = 1; slice < slices; ++slice) add_into(partial.get(), partial.get() + slice * sums, sums);
  // dw[k, c, tap] = A'^T M A', A'^T = [[1, 1, 1, 0], [0, 1, -1, 0], [0, 1, 1, 1]]
  auto dw = at::empty(sizes_of(k, c, {s.kernel[D], 3, 3}, input.dim() - 2), input.options().dtype(at::kFloat));
  float* out = dw.data_ptr<float>();
  const float* m = partial.get();
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t tap = row / c, ci = row % c;
    for (int64_t ko = 0; ko < k; ++ko) {
      float t[3][4];
      for (int j = 0; j < 4; ++j) {
        const auto at = [&](int i) { return m[((4 * i + j) * rows + row) * k + ko]; };
        t[0][j] = at(0) + at(1) + at(2);
        t[1][j] = at(1) - at(2);
        t[2][j] = at(1) + at(2) + at(3);
      }
      float* w = out + ((ko * c + ci) * s.kernel[D] + tap) * 9;
      for (int r = 0; r < 3; ++r) {
        w[3 * r + 0] = t[r][0] + t[r][1] + t[r][2];
        w[3 * r + 1] = t[r][1] - t[r][2];
        w[3 * r + 2] = t[r][1] + t[r][2] + t[r][3];
      }
    }
  }
  return dw;
}

}  // namespace cnnext::cpu
