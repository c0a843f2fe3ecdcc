// bfloat16 micro-kernels of direct_conv_kernels.h on AVX-512 BF16: the float32 kernels' register tiles, with
// float32 accumulators fed by vdpbf16ps (acc[l] += a[2l] * b[2l] + a[2l+1] * b[2l+1]), so every step takes
// two reduction indices at once. Only these functions carry the avx512bf16 target, and they are called only
// after cpu_has_avx512_bf16() said yes.
#include <immintrin.h>

#include <cstring>

#include "direct_conv_kernels.h"

#define CNNEXT_AVX512_BF16 __attribute__((target("avx512f,avx512vl,avx512bw,avx512bf16,fma")))

namespace cnnext::cpu::kernels {

bool cpu_has_avx512_bf16() {
  __builtin_cpu_init();
  return cpu_has_avx512() && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512bf16");
}

namespace {

template <int NV>
CNNEXT_AVX512_BF16 inline __mmask16 lane_mask(int v, uint16_t last_mask) {
  return v == NV - 1 ? __mmask16(last_mask) : __mmask16(0xFFFF);
}

// 16 bfloat16 values (masked lanes 0) as float32.
CNNEXT_AVX512_BF16 inline __m512 load_bf16(__mmask16 mask, const bf16* p) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, p)), 16));
}

CNNEXT_AVX512_BF16 inline void store_bf16(bf16* p, __mmask16 mask, __m512 v) {
  _mm256_mask_storeu_epi16(p, mask, reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(v)));
}

CNNEXT_AVX512_BF16 inline __m512 dot_pairs(__m512 acc, __m512i a, __m512i b) {
  return _mm512_dpbf16_ps(acc, reinterpret_cast<__m512bh>(a), reinterpret_cast<__m512bh>(b));
}

// The pair of bfloat16 values at p, p+1 in every lane.
CNNEXT_AVX512_BF16 inline __m512i broadcast_pair(const bf16* p) {
  int32_t pair;
  std::memcpy(&pair, p, sizeof(pair));
  return _mm512_set1_epi32(pair);
}

template <int MI, int NV, bool Depthwise>
CNNEXT_AVX512_BF16 void tap_tile(const TapTileOf<bf16>& t) {
  __m512 acc[MI][NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) {
    const __mmask16 mask = lane_mask<NV>(v, t.last_mask);
    const __m512 init = t.bias ? _mm512_maskz_loadu_ps(mask, t.bias + v * kLanes) : _mm512_setzero_ps();
#pragma GCC unroll 12
    for (int i = 0; i < MI; ++i) acc[i][v] = t.accumulate ? load_bf16(mask, t.c_rows[i] + v * kLanes) : init;
  }
  const bf16* a[MI];
  for (int tap = 0; tap < t.taps; ++tap) {
#pragma GCC unroll 12
    for (int i = 0; i < MI; ++i) a[i] = t.a_rows[i] + t.a_tap[tap];
    const bf16* b = t.b + t.b_tap[tap];
    if constexpr (Depthwise) {  // no reduction to pair up: float32 multiply-adds of converted vectors
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        const __mmask16 mask = lane_mask<NV>(v, t.last_mask);
        const __m512 bv = load_bf16(mask, b + v * kLanes);
#pragma GCC unroll 12
        for (int i = 0; i < MI; ++i) acc[i][v] = _mm512_fmadd_ps(load_bf16(mask, a[i] + v * kLanes), bv, acc[i][v]);
      }
      continue;
    }
    for (int64_t j = 0; j < t.reduction; j += 2, b += 2 * t.ldb) {
      __m512i bv[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) bv[v] = _mm512_loadu_si512(b + 2 * v * kLanes);
#pragma GCC unroll 12
      for (int i = 0; i < MI; ++i) {
        const __m512i ai = broadcast_pair(a[i] + j);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[i][v] = dot_pairs(acc[i][v], ai, bv[v]);
      }
    }
  }
#pragma GCC unroll 12
  for (int i = 0; i < MI; ++i) {
    if (i >= t.rows) break;
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) store_bf16(t.c_rows[i] + v * kLanes, lane_mask<NV>(v, t.last_mask), acc[i][v]);
  }
}

template <int MI, int NV, bool Depthwise>
CNNEXT_AVX512_BF16 void pixel_sum_tile(const PixelSumTileOf<uint32_t>& t) {
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
  const uint32_t* g = t.g;
  for (int64_t p = 0; p < t.pixels; ++p, g += t.ldg) {
    const uint32_t* x = t.x + t.pix_off[p];
    __m512i gv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) gv[v] = _mm512_maskz_loadu_epi32(lane_mask<NV>(v, t.last_mask), g + v * kLanes);
#pragma GCC unroll 12
    for (int i = 0; i < MI; ++i) {
      if constexpr (Depthwise) {
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) {
          const __m512i xv = _mm512_maskz_loadu_epi32(lane_mask<NV>(v, t.last_mask), x + row_off[i] + v * kLanes);
          acc[i][v] = dot_pairs(acc[i][v], xv, gv[v]);
        }
      } else {
        const __m512i xi = _mm512_set1_epi32(static_cast<int32_t>(x[row_off[i]]));
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[i][v] = dot_pairs(acc[i][v], xi, gv[v]);
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

template <bool Depthwise>
CNNEXT_AVX512_BF16 void tap_tile_for(const TapTileOf<bf16>& t) {
  switch (t.nvec) {
    case 4: return tap_tile<rows_per_tile(4), 4, Depthwise>(t);
    case 3: return tap_tile<rows_per_tile(3), 3, Depthwise>(t);
    case 2: return tap_tile<rows_per_tile(2), 2, Depthwise>(t);
    default: return tap_tile<rows_per_tile(1), 1, Depthwise>(t);
  }
}

template <bool Depthwise>
CNNEXT_AVX512_BF16 void pixel_sum_tile_for(const PixelSumTileOf<uint32_t>& t) {
  switch (t.nvec) {
    case 4: return pixel_sum_tile<rows_per_tile(4), 4, Depthwise>(t);
    case 3: return pixel_sum_tile<rows_per_tile(3), 3, Depthwise>(t);
    case 2: return pixel_sum_tile<rows_per_tile(2), 2, Depthwise>(t);
    default: return pixel_sum_tile<rows_per_tile(1), 1, Depthwise>(t);
  }
}

}  // namespace

CNNEXT_AVX512_BF16 void tap_tile_avx512(const TapTileOf<bf16>& t) {
  return t.depthwise ? tap_tile_for<true>(t) : tap_tile_for<false>(t);
}

CNNEXT_AVX512_BF16 void pixel_sum_tile_avx512(const PixelSumTileOf<uint32_t>& t) {
  return t.depthwise ? pixel_sum_tile_for<true>(t) : pixel_sum_tile_for<false>(t);
}

CNNEXT_AVX512_BF16 void interleave_bf16(const bf16* lo, const bf16* hi, uint32_t* out, int64_t count) {
  int64_t i = 0;
  for (; i + kLanes <= count; i += kLanes) {
    const __m512i low = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(lo + i)));
    const __m512i high = hi ? _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(hi + i)))
                            : _mm512_setzero_si512();
    _mm512_storeu_si512(out + i, _mm512_or_si512(low, _mm512_slli_epi32(high, 16)));
  }
  for (; i < count; ++i) out[i] = uint32_t(lo[i]) | (hi ? uint32_t(hi[i]) << 16 : 0u);
}

}  // namespace cnnext::cpu::kernels
