// Register-blocked SIMD micro-kernels of the direct convolution (float32 on AVX-512, bfloat16 on AVX-512 BF16
// in direct_conv_kernels_bf16.cpp).
//
// Both kernels keep a tile of `rows` x (16 * nvec) floats in zmm registers and stream the reduction
// through it, one broadcast scalar times nvec weight/gradient vectors per step (Zhang, Franchetti, Low,
// ICML 2018). They know nothing of convolutions: the caller describes every row by a pointer (or offset)
// and every tap by an offset, so that forward, grad-input (any stride, by phases) and grad-weight all
// run on them. This header is plain C++ (no ATen): direct_conv_kernels.cpp is compiled for AVX-512
// only function by function, and must not instantiate library inline code with those instructions.
#pragma once
#include <cstdint>

namespace cnnext::cpu::kernels {

using bf16 = uint16_t;           // the bits of a bfloat16
constexpr int kLanes = 16;       // float32 accumulators per zmm register
constexpr int kMaxVectors = 4;   // at most 64 output channels per tile
constexpr int kMaxRows = 12;     // rows per tile for 1 or 2 vectors

// Rows per tile for a tile `nvec` vectors wide: about 24 accumulators, so that FMA latency is hidden.
constexpr int rows_per_tile(int nvec) { return nvec >= 4 ? 6 : nvec == 3 ? 8 : 12; }

// c_rows[i][v*16 + l] = init + sum over taps t, reduction index j of
//     a_rows[i][a_tap[t] + j] * b[b_tap[t] + j * ldb + v*16 + l]
// init is the tile's current value when accumulate is set, else bias[v*16 + l] (bias may be null: 0).
// Only the first `rows` rows and, in the last vector, the lanes of `last_mask` are stored; b must hold
// whole vectors (padded with zeros). Sums are float32 whatever T is.
// bfloat16 (T = bf16) takes the reduction in pairs (vdpbf16ps): `reduction` is even, a pair (j, j+1) of a row
// is read as one 32-bit value, and b is packed as pairs: b[b_tap[t] + (j/2) * 2*ldb + (v*16 + l) * 2 + j%2].
template <typename T>
struct TapTileOf {
  const T* a_rows[kMaxRows];
  T* c_rows[kMaxRows];
  int rows, nvec;
  uint16_t last_mask;
  const int64_t* a_tap;
  const int64_t* b_tap;
  int64_t taps, reduction;
  const T* b;
  int64_t ldb;
  const float* bias;
  bool accumulate;
  bool depthwise;  // a is read as vectors too: a_rows[i][a_tap[t] + v*16 + l] * b[b_tap[t] + v*16 + l] (no pairs)
};
using TapTile = TapTileOf<float>;

// dw[i * ldw + v*16 + l] (+)= sum over pixels p of x[pix_off[p] + row_off[i]] * g[p * ldg + v*16 + l]
// Adds to dw when accumulate is true, overwrites it otherwise; only `rows` rows and last_mask lanes.
// dw is float32. For bfloat16, T = uint32_t: every x and g element is a pair of bfloat16 values of two
// pixels (low half the first), and `pixels` counts pairs.
template <typename T>
struct PixelSumTileOf {
  const T* x;
  const int64_t* pix_off;
  int64_t row_off[kMaxRows];
  int64_t pixels;
  const T* g;
  int64_t ldg;
  float* dw;
  int64_t ldw;
  int rows, nvec;
  uint16_t last_mask;
  bool accumulate;
  bool depthwise;  // x is read as vectors too: x[pix_off[p] + row_off[i] + v*16 + l] * g[...]
};
using PixelSumTile = PixelSumTileOf<float>;

// dst[j * ld_dst + i] = src[i * ld_src + j] for i < rows, j < cols (8x8 register transposes).
void transpose_avx512(const float* src, int64_t ld_src, float* dst, int64_t ld_dst, int64_t rows, int64_t cols);
void transpose_avx512(const bf16* src, int64_t ld_src, bf16* dst, int64_t ld_dst, int64_t rows, int64_t cols);

// Winograd F(2x2, 3x3) transforms (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016),
// over `channels` values per position, in vectors of 16 (the last one masked). Positions (i, j) of a patch lie at
// i * row + j * pixel.
//   input:  v[xi * ldv + c] = (B^T d B)[xi] for the 4x4 patch d of channel c at x, xi = 4 * i + j;
//   output: y at (i, j) = (A^T m A)[i][j] + bias (bias may be null) for the 16 values m[xi * ldm + c], stored
//           for i < rows, j < cols (the 2x2 tile clipped to the output).
void winograd_input_avx512(const float* x, int64_t row, int64_t pixel, float* v, int64_t ldv, int64_t channels);
//   weight: u[xi * ldu + k] = (G g G^T)[xi] for the 3x3 filter g of lane k < lanes, g[j] = w[k * lane + tap[j]]
//           (j = 3 * r + q: the strides and any flip live in `tap`), and zeros for k in [lanes, width). The gather
//           indices are 32-bit: 16 * lane must fit.
void winograd_weight_avx512(const float* w, int64_t lane, const int64_t tap[9], float* u, int64_t ldu, int64_t lanes,
                            int64_t width);
void winograd_output_avx512(const float* m, int64_t ldm, const float* bias, float* y, int64_t row, int64_t pixel,
                            int rows, int cols, int64_t channels);
// Depthwise rows of one NCHW plane: out[i * ldo + x] = bias + sum over r < kernel_h, q < kernel_w of
// w[r * kernel_w + q] * x[(i + r * dil_h) * ldx + q * dil_w + x], for rows i < rows (at most kDepthwiseRows) and
// x < width. x is a zero-padded plane that is read whole vectors at a time: up to 64 values past a row's last tap,
// and kDepthwiseRows rows from the first whatever `rows` is (the plane needs that slack after it).
constexpr int kDepthwiseRows = 6;
void depthwise_rows_avx512(const float* x, int64_t ldx, const float* w, int kernel_h, int kernel_w, int64_t dil_h,
                           int64_t dil_w, float bias, float* out, int64_t ldo, int rows, int64_t width);
// Grad weight runs F(3x3, 2x2): a 2x2 grad_output tile g is the filter of the 4x4 input patch. Its transform, with
// the signs of row and column 3 flipped so that the input patches can use winograd_input_avx512's B (F(3x3, 2x2)'s
// B differs from F(2x2, 3x3)'s only in the sign of its last row): u[xi * ldu + k] = (S G' g G'^T S)[xi].
void winograd_grad_output_avx512(const float* g, int64_t row, int64_t pixel, float* u, int64_t ldu,
                                 int64_t channels);

bool cpu_has_avx512();
void tap_tile_avx512(const TapTile& t);
// tap_tile of exactly t.rows rows (1 to kMaxNarrowRows) and t.nvec vectors (1 to kMaxNarrowVectors), not
// depthwise: the narrow-output convolution, whose rows are output channels and whose vectors run along an output
// row (the weights are the broadcast operand a, the data the vector operand b; b's vectors are read whole).
constexpr int kMaxNarrowRows = 4;
constexpr int kMaxNarrowVectors = 6;
void narrow_tile_avx512(const TapTile& t);
void pixel_sum_tile_avx512(const PixelSumTile& t);

// AVX-512 BF16 (vdpbf16ps), direct_conv_kernels_bf16.cpp.
bool cpu_has_avx512_bf16();
void tap_tile_avx512(const TapTileOf<bf16>& t);
void pixel_sum_tile_avx512(const PixelSumTileOf<uint32_t>& t);
// out[i] = lo[i] | hi[i] << 16 (hi null: zeros): the bfloat16 pairs of TapTileOf<bf16>'s b and of
// PixelSumTileOf<uint32_t>.
void interleave_bf16(const bf16* lo, const bf16* hi, uint32_t* out, int64_t count);

}  // namespace cnnext::cpu::kernels
