// 1x1 convolutions of NCHW tensors on the CPU (pointwise_conv.h).
#include "pointwise_conv.h"

#include "conv_layout.h"

namespace cnnext::cpu {
namespace {

constexpr int64_t kPixelTile = kLanes * kMaxVectors;  // pixels of one tile: the vectors of a row
constexpr int64_t kPixelsPerTask = 4 * kPixelTile;    // a task's input block [C][256] stays in L2 over all of K

// out [N, K, pixels] = w [K, C] x input [N, C, pixels] (+ bias[k])
at::Tensor pointwise_product(const at::Tensor& input, const float* wk, const float* bias, const Shape& s) {
  const int64_t c = s.c, k = s.k, pixels = s.out_pixels(), blocks = ceil_div(pixels, kPixelsPerTask);
  auto out = at::empty(sizes_of(s.n, k, s.out, input.dim() - 2), input.options());
  const float* x = input.data_ptr<float>();
  float* y = out.data_ptr<float>();
  for_range(worth_threads(s.n * pixels * k), s.n * blocks, [&](int64_t first_task, int64_t last_task) {
    kernels::TapTile t{};
    const int64_t no_offset = 0;
    t.a_tap = &no_offset;
    t.b_tap = &no_offset;
    t.taps = 1;
    t.reduction = c;
    std::vector<float> tail;  // a last tile of part vectors, copied: the kernel reads whole vectors
    const int tile_rows = kernels::rows_per_tile(kMaxVectors);
    for (int64_t task = first_task; task < last_task; ++task) {
      const int64_t n = task / blocks, block_begin = task % blocks * kPixelsPerTask;
      const int64_t block_end = std::min(pixels, block_begin + kPixelsPerTask);
      const float* image = x + n * c * pixels;
      if ((block_end - block_begin) % kLanes != 0) {
        const int64_t first = block_end - (block_end - block_begin) % kPixelTile, width = block_end - first;
        tail.assign(c * kPixelTile, 0.0f);
        for (int64_t ci = 0; ci < c; ++ci) {
          std::copy_n(image + ci * pixels + first, width, tail.data() + ci * kPixelTile);
        }
      }
      // Output channels outermost: a tile's weights (rows of [K, C]) stay in L1 over the block's pixels, the
      // block's input [C][256] in L2 over all output channels.
      for (int64_t k0 = 0; k0 < k; k0 += tile_rows) {
        t.rows = static_cast<int>(std::min<int64_t>(tile_rows, k - k0));
        for (int64_t p0 = block_begin; p0 < block_end; p0 += kPixelTile) {
          const int64_t width = std::min(kPixelTile, block_end - p0);
          t.nvec = static_cast<int>(ceil_div(width, kLanes));
          t.last_mask = last_lanes_mask(width);
          const bool copied = width % kLanes != 0;
          t.b = copied ? tail.data() : image + p0;
          t.ldb = copied ? kPixelTile : pixels;
          for (int i = 0; i < kernels::rows_per_tile(t.nvec); ++i) {  // the kernel's rows for t.nvec vectors
            const int64_t row = k0 + std::min(i, t.rows - 1);  // spare rows repeat the last one, unstored
            t.a_rows[i] = wk + row * c;
            t.c_rows[i] = y + (n * k + row) * pixels + p0;
          }
          kernels::tap_tile_avx512(t);
          for (int i = 0; bias && i < t.rows; ++i) {  // the tile is still in L1
            for (int64_t q = 0; q < width; ++q) t.c_rows[i][q] += bias[k0 + i];
          }
        }
      }
    }
  });
  return out;
}

}  // namespace

// A strided 1x1 layer reads a subsampled copy of its input. Below one tile of pixels per image (64: 7x7 maps) a
// tile is part empty and its input copied: the channels-last tap kernel was faster there (4 x 992 x 7 x 7 -> 128:
// 0.18 ms against 0.28; 8 x 256 x 8 x 8 -> 256 stays faster here, 0.14 against 0.18).
bool pointwise_forward_applies(const at::Tensor& input, const Shape& s, const Params& p, at::MemoryFormat format) {
  bool pointwise = p.groups == 1 && input.scalar_type() == at::kFloat && format == at::MemoryFormat::Contiguous &&
                   input.is_contiguous();
  for (int a = 0; a < 3; ++a) pointwise = pointwise && s.kernel[a] == 1 && p.pad[a] == 0;
  return pointwise && s.out_pixels() >= kPixelTile;
}

at::Tensor pointwise_forward(const at::Tensor& input, const at::Tensor& weight, const float* bias, const Shape& s,
                             const Params& p) {
  const auto [picked, subsampled, unused] = subsampled_if_pointwise(input, s, p);
  return pointwise_product(picked.contiguous(), weight.contiguous().data_ptr<float>(), bias, subsampled);
}

at::Tensor pointwise_grad_input(const at::Tensor& grad_output, const at::Tensor& weight, const Shape& grad_shape) {
  const int64_t k = weight.size(0), c = weight.size(1);
  Scratch<float> transposed(c * k);  // [C, K], by register transposes: ATen's transposed copy was slower
  transpose_matrices(weight.contiguous().data_ptr<float>(), transposed.get(), 1, k, c);
  return pointwise_product(grad_output, transposed.get(), nullptr, grad_shape);
}

}  // namespace cnnext::cpu
