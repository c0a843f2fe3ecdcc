// AVX-512 micro-kernels of direct_conv_kernels.h. Only these functions carry the avx512f target, and
// they are called only after cpu_has_avx512() said yes, so the library still loads on AVX2-only CPUs.
#include "direct_conv_kernels.h"

#include <immintrin.h>

#include <algorithm>

#define CNNEXT_AVX512 __attribute__((target("avx512f,avx512vl,fma")))

namespace cnnext::cpu::kernels {

bool cpu_has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");  // what CNNEXT_AVX512 targets
}

namespace {

template <int NV>
CNNEXT_AVX512 inline __mmask16 lane_mask(int v, uint16_t last_mask) {
  return v == NV - 1 ? __mmask16(last_mask) : __mmask16(0xFFFF);
}

template <int MI, int NV, bool Depthwise>
CNNEXT_AVX512 void tap_tile(const TapTile& t) {
  __m512 acc[MI][NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) {
    const __mmask16 mask = lane_mask<NV>(v, t.last_mask);
    const __m512 init = t.bias ? _mm512_maskz_loadu_ps(mask, t.bias + v * kLanes) : _mm512_setzero_ps();
#pragma GCC unroll 12
    for (int i = 0; i < MI; ++i) {
      acc[i][v] = t.accumulate ? _mm512_maskz_loadu_ps(mask, t.c_rows[i] + v * kLanes) : init;
    }
  }
  const float* a[MI];
  for (int tap = 0; tap < t.taps; ++tap) {
#pragma GCC unroll 12
    for (int i = 0; i < MI; ++i) a[i] = t.a_rows[i] + t.a_tap[tap];
    const float* b = t.b + t.b_tap[tap];
    if constexpr (Depthwise) {
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        const __m512 bv = _mm512_loadu_ps(b + v * kLanes);
        const __mmask16 mask = lane_mask<NV>(v, t.last_mask);
#pragma GCC unroll 12
        for (int i = 0; i < MI; ++i) {
          acc[i][v] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, a[i] + v * kLanes), bv, acc[i][v]);
        }
      }
      continue;
    }
    for (int64_t j = 0; j < t.reduction; ++j, b += t.ldb) {
      __m512 bv[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) bv[v] = _mm512_loadu_ps(b + v * kLanes);
#pragma GCC unroll 12
      for (int i = 0; i < MI; ++i) {
        const __m512 ai = _mm512_set1_ps(a[i][j]);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
      }
    }
  }
#pragma GCC unroll 12
  for (int i = 0; i < MI; ++i) {
    if (i >= t.rows) break;
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) _mm512_mask_storeu_ps(t.c_rows[i] + v * kLanes, lane_mask<NV>(v, t.last_mask), acc[i][v]);
  }
}

template <int MI, int NV, bool Depthwise>
CNNEXT_AVX512 void pixel_sum_tile(const PixelSumTile& t) {
  __m512 acc[MI][NV];
#pragma GCC unroll 12
  for (int i = 0; i < MI; ++i) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      acc[i][v] = t.accumulate && i < t.rows
                      ? _mm512_maskz_loadu_ps(lane_mask<NV>(v, t.last_mask), t.dw + i * t.ldw + v * kLanes)
                      : _mm512_setzero_ps();
    }
  }
  int64_t row_off[MI];
#pragma GCC unroll 12
  for (int i = 0; i < MI; ++i) row_off[i] = t.row_off[i];
  const float* g = t.g;
  for (int64_t p = 0; p < t.pixels; ++p, g += t.ldg) {
    const float* x = t.x + t.pix_off[p];
    __m512 gv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) gv[v] = _mm512_maskz_loadu_ps(lane_mask<NV>(v, t.last_mask), g + v * kLanes);
#pragma GCC unroll 12
    for (int i = 0; i < MI; ++i) {
      if constexpr (Depthwise) {
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) {
          const __m512 xv = _mm512_maskz_loadu_ps(lane_mask<NV>(v, t.last_mask), x + row_off[i] + v * kLanes);
          acc[i][v] = _mm512_fmadd_ps(xv, gv[v], acc[i][v]);
        }
      } else {
        const __m512 xi = _mm512_set1_ps(x[row_off[i]]);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(xi, gv[v], acc[i][v]);
      }
    }
  }
#pragma GCC unroll 12
  for (int i = 0; i < MI; ++i) {
    if (i >= t.rows) break;
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) _mm512_mask_storeu_ps(t.dw + i * t.ldw + v * kLanes, lane_mask<NV>(v, t.last_mask), acc[i][v]);
  }
}

CNNEXT_AVX512 inline void transpose_8x8(const float* src, int64_t ld_src, float* dst, int64_t ld_dst) {
  __m256 r[8], t[8], u[8];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * ld_src);
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
#pragma GCC unroll 2
  for (int h = 0; h < 2; ++h) {  // rows 0-3 (h = 0) and 4-7 (h = 1)
    u[4 * h + 0] = _mm256_shuffle_ps(t[4 * h + 0], t[4 * h + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * h + 1] = _mm256_shuffle_ps(t[4 * h + 0], t[4 * h + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    _mm256_storeu_ps(dst + i * ld_dst, _mm256_permute2f128_ps(u[i], u[i + 4], 0x20));
    _mm256_storeu_ps(dst + (i + 4) * ld_dst, _mm256_permute2f128_ps(u[i], u[i + 4], 0x31));
  }
}

// The 16-bit 8x8 transpose: interleave pairs of rows at 16, 32 and 64 bits.
CNNEXT_AVX512 inline void transpose_8x8(const bf16* src, int64_t ld_src, bf16* dst, int64_t ld_dst) {
  __m128i r[8], a[8], b[8];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) r[i] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i * ld_src));
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    a[i] = _mm_unpacklo_epi16(r[2 * i], r[2 * i + 1]);      // columns 0-3 of rows 2i, 2i+1
    a[i + 4] = _mm_unpackhi_epi16(r[2 * i], r[2 * i + 1]);  // columns 4-7
  }
#pragma GCC unroll 2
  for (int h = 0; h < 2; ++h) {  // columns 0-3 (h = 0) and 4-7 (h = 1)
    b[4 * h + 0] = _mm_unpacklo_epi32(a[4 * h + 0], a[4 * h + 1]);  // columns 4h, 4h+1 of rows 0-3
    b[4 * h + 1] = _mm_unpackhi_epi32(a[4 * h + 0], a[4 * h + 1]);  // columns 4h+2, 4h+3 of rows 0-3
    b[4 * h + 2] = _mm_unpacklo_epi32(a[4 * h + 2], a[4 * h + 3]);  // the same of rows 4-7
    b[4 * h + 3] = _mm_unpackhi_epi32(a[4 * h + 2], a[4 * h + 3]);
  }
#pragma GCC unroll 2
  for (int h = 0; h < 2; ++h) {
#pragma GCC unroll 2
    for (int q = 0; q < 2; ++q) {
      auto* out = dst + (4 * h + 2 * q) * ld_dst;
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm_unpacklo_epi64(b[4 * h + q], b[4 * h + q + 2]));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + ld_dst), _mm_unpackhi_epi64(b[4 * h + q], b[4 * h + q + 2]));
    }
  }
}

// Whether rows `ld` values apart start (within two cache lines) at the same offset in a 4 KB page. Stores to
// such rows and the loads after them alias in the CPU's 4 KB address check and fall in the same L1 sets: the
// channels-last -> NCHW copy of a 32x32 output (rows 4 KB apart) ran 7x slower than that of a 31x33 one.
template <typename T>
bool rows_alias(int64_t ld) {
  const int64_t offset = ld * static_cast<int64_t>(sizeof(T)) % 4096;
  return offset < 128 || offset > 4096 - 128;
}

// Blocks go through the source rows a destination cache line at a time: with a long destination stride,
// lines written 8 values at a time would leave the L1 cache (its sets alias) before they are complete.
// Destination rows that alias in 4 KB pages are instead written one after the other, each in one sweep.
template <typename T>
CNNEXT_AVX512 void transpose(const T* src, int64_t ld_src, T* dst, int64_t ld_dst, int64_t rows, int64_t cols) {
  constexpr int64_t kLineRows = 64 / sizeof(T);
  const int64_t rows8 = rows / 8 * 8, cols8 = cols / 8 * 8;
  const int64_t row_block = rows_alias<T>(ld_dst) ? std::max<int64_t>(rows8, 1) : kLineRows;
  for (int64_t i0 = 0; i0 < rows8; i0 += row_block) {
    const int64_t i_end = std::min(rows8, i0 + row_block);
    for (int64_t j = 0; j < cols8; j += 8)
      for (int64_t i = i0; i < i_end; i += 8) transpose_8x8(src + i * ld_src + j, ld_src, dst + j * ld_dst + i, ld_dst);
    for (int64_t ii = i0; ii < i_end; ++ii)
      for (int64_t j = cols8; j < cols; ++j) dst[j * ld_dst + ii] = src[ii * ld_src + j];
  }
  for (int64_t i = rows8; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) dst[j * ld_dst + i] = src[i * ld_src + j];
}

// The lanes of channels [c, c + 16) that exist, of `channels`.
CNNEXT_AVX512 inline __mmask16 channel_mask(int64_t channels, int64_t c) {
  return channels - c >= kLanes ? __mmask16(0xFFFF) : __mmask16((1u << (channels - c)) - 1);
}

}  // namespace

CNNEXT_AVX512 void winograd_input_avx512(const float* x, int64_t row, int64_t pixel, float* v, int64_t ldv,
                                         int64_t channels) {
  for (int64_t c = 0; c < channels; c += kLanes) {
    const __mmask16 mask = channel_mask(channels, c);
    __m512 d[4][4], t[4][4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) d[i][j] = _mm512_maskz_loadu_ps(mask, x + i * row + j * pixel + c);
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {  // t = B^T d
      t[0][j] = _mm512_sub_ps(d[0][j], d[2][j]);
      t[1][j] = _mm512_add_ps(d[1][j], d[2][j]);
      t[2][j] = _mm512_sub_ps(d[2][j], d[1][j]);
      t[3][j] = _mm512_sub_ps(d[1][j], d[3][j]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {  // v = t B
      _mm512_mask_storeu_ps(v + (4 * i + 0) * ldv + c, mask, _mm512_sub_ps(t[i][0], t[i][2]));
      _mm512_mask_storeu_ps(v + (4 * i + 1) * ldv + c, mask, _mm512_add_ps(t[i][1], t[i][2]));
      _mm512_mask_storeu_ps(v + (4 * i + 2) * ldv + c, mask, _mm512_sub_ps(t[i][2], t[i][1]));
      _mm512_mask_storeu_ps(v + (4 * i + 3) * ldv + c, mask, _mm512_sub_ps(t[i][1], t[i][3]));
    }
  }
}

CNNEXT_AVX512 void winograd_weight_avx512(const float* w, int64_t lane, const int64_t tap[9], float* u, int64_t ldu,
                                          int64_t lanes, int64_t width) {
  // Each lane's filter is 9 values lane apart from the next lane's: gathered, 16 filters at a time.
  const __m512i index = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32(static_cast<int>(lane)));
  const __m512 half = _mm512_set1_ps(0.5f);
  for (int64_t k = 0; k < width; k += kLanes) {
    const __mmask16 mask = k < lanes ? channel_mask(lanes, k) : __mmask16(0);
    __m512 g[9], t[4][3];
#pragma GCC unroll 9
    for (int j = 0; j < 9; ++j)
      g[j] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mask, index, w + k * lane + tap[j], 4);
#pragma GCC unroll 3
    for (int j = 0; j < 3; ++j) {  // t = G g
      t[0][j] = g[j];
      t[1][j] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_add_ps(g[j], g[3 + j]), g[6 + j]));
      t[2][j] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_sub_ps(g[j], g[3 + j]), g[6 + j]));
      t[3][j] = g[6 + j];
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {  // u = t G^T
      const __m512 plus = _mm512_add_ps(_mm512_add_ps(t[i][0], t[i][1]), t[i][2]);
      const __m512 minus = _mm512_add_ps(_mm512_sub_ps(t[i][0], t[i][1]), t[i][2]);
      _mm512_storeu_ps(u + (4 * i + 0) * ldu + k, t[i][0]);
      _mm512_storeu_ps(u + (4 * i + 1) * ldu + k, _mm512_mul_ps(half, plus));
      _mm512_storeu_ps(u + (4 * i + 2) * ldu + k, _mm512_mul_ps(half, minus));
      _mm512_storeu_ps(u + (4 * i + 3) * ldu + k, t[i][2]);
    }
  }
}

CNNEXT_AVX512 void winograd_output_avx512(const float* m, int64_t ldm, const float* bias, float* y, int64_t row,
                                          int64_t pixel, int rows, int cols, int64_t channels) {
  for (int64_t c = 0; c < channels; c += kLanes) {
    const __mmask16 mask = channel_mask(channels, c);
    __m512 s[2][4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {  // s = A^T m
      const __m512 m0 = _mm512_maskz_loadu_ps(mask, m + (0 + j) * ldm + c);
      const __m512 m1 = _mm512_maskz_loadu_ps(mask, m + (4 + j) * ldm + c);
      const __m512 m2 = _mm512_maskz_loadu_ps(mask, m + (8 + j) * ldm + c);
      const __m512 m3 = _mm512_maskz_loadu_ps(mask, m + (12 + j) * ldm + c);
      s[0][j] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
      s[1][j] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
    }
    const __m512 b = bias ? _mm512_maskz_loadu_ps(mask, bias + c) : _mm512_setzero_ps();
    for (int i = 0; i < rows; ++i) {  // y = s A
      const __m512 y0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s[i][0], s[i][1]), s[i][2]), b);
      _mm512_mask_storeu_ps(y + i * row + c, mask, y0);
      if (cols > 1) {
        const __m512 y1 = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(s[i][1], s[i][2]), s[i][3]), b);
        _mm512_mask_storeu_ps(y + i * row + pixel + c, mask, y1);
      }
    }
  }
}

// The first `rows` rows of a depthwise tile, pixels [x0, width) of each.
template <int ROWS, int NV>
CNNEXT_AVX512 inline void store_depthwise_rows(const __m512 (&acc)[ROWS][NV], float* out, int64_t ldo, int rows,
                                               int64_t x0, int64_t width) {
  for (int i = 0; i < rows; ++i) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      const int64_t left = width - x0 - v * kLanes;
      if (left <= 0) break;
      const __mmask16 mask = left >= kLanes ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
      _mm512_mask_storeu_ps(out + i * ldo + x0 + v * kLanes, mask, acc[i][v]);
    }
  }
}

// ROWS output rows x NV vectors of accumulators over the pixels [x0, x0 + 16 NV); each tap's weight is broadcast
// once for the tile and meets ROWS * NV input vectors.
template <int ROWS, int NV>
CNNEXT_AVX512 void depthwise_tile(const float* x, int64_t ldx, const float* w, int kernel_h, int kernel_w,
                                  int64_t dil_h, int64_t dil_w, float bias, float* out, int64_t ldo, int rows,
                                  int64_t x0, int64_t width) {
  __m512 acc[ROWS][NV];
#pragma GCC unroll 8
  for (int i = 0; i < ROWS; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_set1_ps(bias);
  for (int r = 0; r < kernel_h; ++r) {
    for (int q = 0; q < kernel_w; ++q) {
      const __m512 wv = _mm512_set1_ps(w[r * kernel_w + q]);
      const float* in = x + r * dil_h * ldx + q * dil_w + x0;
#pragma GCC unroll 8
      for (int i = 0; i < ROWS; ++i) {
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) {
          acc[i][v] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(in + i * ldx + v * kLanes), acc[i][v]);
        }
      }
    }
  }
  store_depthwise_rows<ROWS, NV>(acc, out, ldo, rows, x0, width);
}

// K x K kernel, dilation 1: each input vector is loaded once and meets every output row that reads it (up to K),
// so a tile of ROWS rows loads (ROWS + K - 1) * K * NV vectors for ROWS * K * K * NV multiply-adds.
template <int K, int ROWS, int NV>
CNNEXT_AVX512 void depthwise_reuse_tile(const float* x, int64_t ldx, const float* w, float bias, float* out,
                                        int64_t ldo, int rows, int64_t x0, int64_t width) {
  __m512 acc[ROWS][NV];
#pragma GCC unroll 8
  for (int i = 0; i < ROWS; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_set1_ps(bias);
#pragma GCC unroll 16
  for (int y = 0; y < ROWS + K - 1; ++y) {
#pragma GCC unroll 7
    for (int q = 0; q < K; ++q) {
      __m512 in[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) in[v] = _mm512_loadu_ps(x + y * ldx + q + x0 + v * kLanes);
#pragma GCC unroll 7
      for (int r = 0; r < K; ++r) {
        const int i = y - r;
        if (i < 0 || i >= ROWS) continue;
        const __m512 wv = _mm512_set1_ps(w[r * K + q]);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(wv, in[v], acc[i][v]);
      }
    }
  }
  store_depthwise_rows<ROWS, NV>(acc, out, ldo, rows, x0, width);
}

template <int K>
CNNEXT_AVX512 void depthwise_reuse_rows(const float* x, int64_t ldx, const float* w, float bias, float* out,
                                        int64_t ldo, int rows, int64_t width) {
  int64_t x0 = 0;
  for (; x0 + 2 * kLanes < width; x0 += 4 * kLanes) {
    depthwise_reuse_tile<K, 6, 4>(x, ldx, w, bias, out, ldo, rows, x0, width);
  }
  if (x0 + kLanes < width) {
    depthwise_reuse_tile<K, 6, 2>(x, ldx, w, bias, out, ldo, rows, x0, width);
  } else if (x0 < width) {
    depthwise_reuse_tile<K, 6, 1>(x, ldx, w, bias, out, ldo, rows, x0, width);
  }
}

// Rows beyond `rows` are computed from rows the buffer holds and not stored (the caller passes rows <=
// kDepthwiseRows and a plane with kDepthwiseRows - 1 spare rows of slack).
CNNEXT_AVX512 void depthwise_rows_avx512(const float* x, int64_t ldx, const float* w, int kernel_h, int kernel_w,
                                         int64_t dil_h, int64_t dil_w, float bias, float* out, int64_t ldo, int rows,
                                         int64_t width) {
  static_assert(kDepthwiseRows == 6);
  if (dil_h == 1 && dil_w == 1 && kernel_h == kernel_w) {
    switch (kernel_h) {
      case 3: return depthwise_reuse_rows<3>(x, ldx, w, bias, out, ldo, rows, width);
      case 5: return depthwise_reuse_rows<5>(x, ldx, w, bias, out, ldo, rows, width);
      case 7: return depthwise_reuse_rows<7>(x, ldx, w, bias, out, ldo, rows, width);
      default: break;
    }
  }
  int64_t x0 = 0;
  for (; x0 + 2 * kLanes < width; x0 += 4 * kLanes) {  // 3 or 4 vectors
    depthwise_tile<6, 4>(x, ldx, w, kernel_h, kernel_w, dil_h, dil_w, bias, out, ldo, rows, x0, width);
  }
  if (x0 + kLanes < width) {
    depthwise_tile<6, 2>(x, ldx, w, kernel_h, kernel_w, dil_h, dil_w, bias, out, ldo, rows, x0, width);
  } else if (x0 < width) {
    depthwise_tile<6, 1>(x, ldx, w, kernel_h, kernel_w, dil_h, dil_w, bias, out, ldo, rows, x0, width);
  }
}

CNNEXT_AVX512 void winograd_grad_output_avx512(const float* g, int64_t row, int64_t pixel, float* u, int64_t ldu,
                                               int64_t channels) {
  const __m512 half = _mm512_set1_ps(0.5f);
  for (int64_t c = 0; c < channels; c += kLanes) {
    const __mmask16 mask = channel_mask(channels, c);
    __m512 d[2][2], t[4][2];
#pragma GCC unroll 2
    for (int i = 0; i < 2; ++i)
#pragma GCC unroll 2
      for (int j = 0; j < 2; ++j) d[i][j] = _mm512_maskz_loadu_ps(mask, g + i * row + j * pixel + c);
#pragma GCC unroll 2
    for (int j = 0; j < 2; ++j) {  // t = S G' g, G' = [[1, 0], [1/2, 1/2], [1/2, -1/2], [0, 1]], S = diag(1, 1, 1, -1)
      t[0][j] = d[0][j];
      t[1][j] = _mm512_mul_ps(half, _mm512_add_ps(d[0][j], d[1][j]));
      t[2][j] = _mm512_mul_ps(half, _mm512_sub_ps(d[0][j], d[1][j]));
      t[3][j] = _mm512_sub_ps(_mm512_setzero_ps(), d[1][j]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {  // u = t G'^T S
      _mm512_mask_storeu_ps(u + (4 * i + 0) * ldu + c, mask, t[i][0]);
      _mm512_mask_storeu_ps(u + (4 * i + 1) * ldu + c, mask, _mm512_mul_ps(half, _mm512_add_ps(t[i][0], t[i][1])));
      _mm512_mask_storeu_ps(u + (4 * i + 2) * ldu + c, mask, _mm512_mul_ps(half, _mm512_sub_ps(t[i][0], t[i][1])));
      _mm512_mask_storeu_ps(u + (4 * i + 3) * ldu + c, mask, _mm512_sub_ps(_mm512_setzero_ps(), t[i][1]));
    }
  }
}

CNNEXT_AVX512 void transpose_avx512(const float* src, int64_t ld_src, float* dst, int64_t ld_dst, int64_t rows,
                                    int64_t cols) {
  transpose(src, ld_src, dst, ld_dst, rows, cols);
}

CNNEXT_AVX512 void transpose_avx512(const bf16* src, int64_t ld_src, bf16* dst, int64_t ld_dst, int64_t rows,
                                    int64_t cols) {
  transpose(src, ld_src, dst, ld_dst, rows, cols);
}

template <bool Depthwise>
CNNEXT_AVX512 void tap_tile_for(const TapTile& t) {
  switch (t.nvec) {
    case 4: return tap_tile<rows_per_tile(4), 4, Depthwise>(t);
    case 3: return tap_tile<rows_per_tile(3), 3, Depthwise>(t);
    case 2: return tap_tile<rows_per_tile(2), 2, Depthwise>(t);
    default: return tap_tile<rows_per_tile(1), 1, Depthwise>(t);
  }
}

template <bool Depthwise>
CNNEXT_AVX512 void pixel_sum_tile_for(const PixelSumTile& t) {
  switch (t.nvec) {
    case 4: return pixel_sum_tile<rows_per_tile(4), 4, Depthwise>(t);
    case 3: return pixel_sum_tile<rows_per_tile(3), 3, Depthwise>(t);
    case 2: return pixel_sum_tile<rows_per_tile(2), 2, Depthwise>(t);
    default: return pixel_sum_tile<rows_per_tile(1), 1, Depthwise>(t);
  }
}

CNNEXT_AVX512 void tap_tile_avx512(const TapTile& t) {
  return t.depthwise ? tap_tile_for<true>(t) : tap_tile_for<false>(t);
}

template <int MI>
CNNEXT_AVX512 void narrow_tile_for(const TapTile& t) {
  static_assert(kMaxNarrowVectors == 6);
  switch (t.nvec) {
    case 6: return tap_tile<MI, 6, false>(t);
    case 5: return tap_tile<MI, 5, false>(t);
    case 4: return tap_tile<MI, 4, false>(t);
    case 3: return tap_tile<MI, 3, false>(t);
    case 2: return tap_tile<MI, 2, false>(t);
    default: return tap_tile<MI, 1, false>(t);
  }
}

CNNEXT_AVX512 void narrow_tile_avx512(const TapTile& t) {
  static_assert(kMaxNarrowRows == 4);
  switch (t.rows) {
    case 4: return narrow_tile_for<4>(t);
    case 3: return narrow_tile_for<3>(t);
    case 2: return narrow_tile_for<2>(t);
    default: return narrow_tile_for<1>(t);
  }
}

CNNEXT_AVX512 void pixel_sum_tile_avx512(const PixelSumTile& t) {
  return t.depthwise ? pixel_sum_tile_for<true>(t) : pixel_sum_tile_for<false>(t);
}

}  // namespace cnnext::cpu::kernels
