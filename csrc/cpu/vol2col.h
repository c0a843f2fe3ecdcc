// Channels-last (NDHWC) vol2col / col2vol for Conv3d: im2col.h with a depth axis.
//
// Column layout, for a chunk of `n` volumes: [n, Do, Ho, Wo, groups, T, R, S, Cg] (Cg = C / groups).
// Row m = (volume, do, ho, wo) holds every input value that output voxel sees, so
//   output[m, g*Kg:(g+1)*Kg] = col[m, g, :] @ weight_g^T      (weight_g as [Kg, T*R*S*Cg])
// is one GEMM per group, and each (t, r, s) tap copies Cg contiguous values.
#pragma once
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>

#include "../conv_params.h"

namespace cnnext::cpu {

// Rows per parallel task, so that a task copies enough values to be worth a thread.
inline int64_t row_grain(int64_t values_per_row) {
  return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, values_per_row));
}

// One output voxel's column row when groups == 1 and the width dilation is 1: for each kernel row (t, r)
// the S taps read x[id, ih, iw0 : iw0 + S, :], one run of S*C values (zeros where it leaves the input).
// Returns the end of the row written.
template <typename T>
T* copy_kernel_rows(const T* x_img, T* out, int64_t od, int64_t oh, int64_t ow, const Conv3dShape& s,
                    const Conv3dParams& p) {
  const auto [D, H, W] = s.in;
  const auto [KT, KR, KS] = s.kernel;
  const int64_t iw0 = ow * p.stride[2] - p.pad[2];
  const int64_t q0 = std::clamp<int64_t>(-iw0, 0, KS), q1 = std::clamp<int64_t>(W - iw0, q0, KS);
  for (int64_t t = 0; t < KT; ++t) {
    const int64_t id = od * p.stride[0] - p.pad[0] + t * p.dil[0];
    for (int64_t r = 0; r < KR; ++r, out += KS * s.c) {
      const int64_t ih = oh * p.stride[1] - p.pad[1] + r * p.dil[1];
      if (id < 0 || id >= D || ih < 0 || ih >= H) {
        std::memset(out, 0, KS * s.c * sizeof(T));
        continue;
      }
      std::memset(out, 0, q0 * s.c * sizeof(T));
      std::memcpy(out + q0 * s.c, x_img + ((id * H + ih) * W + iw0 + q0) * s.c, (q1 - q0) * s.c * sizeof(T));
      std::memset(out + q1 * s.c, 0, (KS - q1) * s.c * sizeof(T));
    }
  }
  return out;
}

// x: [n, D, H, W, C] (one chunk of volumes), col: [n, Do, Ho, Wo, G, T, R, S, Cg].
template <typename T>
void vol2col_ndhwc(const T* x, T* col, int64_t n, const Conv3dShape& s, const Conv3dParams& p) {
  const auto [D, H, W] = s.in;
  const auto [Do, Ho, Wo] = s.out;
  const auto [KT, KR, KS] = s.kernel;
  const int64_t cg = s.c / p.groups;
  // One task per output row (volume, do, ho): Wo column rows of G*T*R*S*Cg values each.
  at::parallel_for(0, n * Do * Ho, row_grain(Wo * s.c * KT * KR * KS), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t img = row / (Do * Ho), od = row / Ho % Do, oh = row % Ho;
      const T* x_img = x + img * D * H * W * s.c;
      T* out = col + row * Wo * s.c * KT * KR * KS;
      for (int64_t ow = 0; ow < Wo; ++ow) {
        if (p.groups == 1 && p.dil[2] == 1) {  // the S taps of a kernel row are S*C contiguous input values
          out = copy_kernel_rows(x_img, out, od, oh, ow, s, p);
          continue;
        }
        for (int64_t g = 0; g < p.groups; ++g) {
          for (int64_t t = 0; t < KT; ++t) {
            const int64_t id = od * p.stride[0] - p.pad[0] + t * p.dil[0];
            for (int64_t r = 0; r < KR; ++r) {
              const int64_t ih = oh * p.stride[1] - p.pad[1] + r * p.dil[1];
              for (int64_t q = 0; q < KS; ++q, out += cg) {
                const int64_t iw = ow * p.stride[2] - p.pad[2] + q * p.dil[2];
                if (id < 0 || id >= D || ih < 0 || ih >= H || iw < 0 || iw >= W) {
                  std::memset(out, 0, cg * sizeof(T));
                } else {
                  std::memcpy(out, x_img + ((id * H + ih) * W + iw) * s.c + g * cg, cg * sizeof(T));
                }
              }
            }
          }
        }
      }
    }
  });
}

// Output position o along one axis that tap k of the kernel reads input position i from, or -1.
inline int64_t source_output(int64_t i, int64_t k, int64_t stride, int64_t pad, int64_t dil, int64_t out_size) {
  const int64_t num = i + pad - k * dil;
  if (num < 0 || num % stride != 0 || num / stride >= out_size) return -1;
  return num / stride;
}

// The adjoint of vol2col_ndhwc: dx[n, D, H, W, C] = sum of every col entry copied from that voxel.
// A gather over input voxels (not a scatter over columns): threads never write the same memory, and the
// summation order, hence the result, is the same on every run.
template <typename T>
void col2vol_ndhwc(const T* col, T* dx, int64_t n, const Conv3dShape& s, const Conv3dParams& p) {
  const auto [D, H, W] = s.in;
  const auto [Do, Ho, Wo] = s.out;
  const auto [KT, KR, KS] = s.kernel;
  const int64_t cg = s.c / p.groups;
  const int64_t col_voxel = p.groups * KT * KR * KS * cg;  // one output voxel's column row
  at::parallel_for(0, n * D * H, row_grain(W * s.c * KT * KR * KS), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t img = row / (D * H), id = row / H % D, ih = row % H;
      const T* col_img = col + img * Do * Ho * Wo * col_voxel;
      T* out = dx + row * W * s.c;
      std::fill(out, out + W * s.c, T(0));
      for (int64_t t = 0; t < KT; ++t) {
        const int64_t od = source_output(id, t, p.stride[0], p.pad[0], p.dil[0], Do);
        if (od < 0) continue;
        for (int64_t r = 0; r < KR; ++r) {
          const int64_t oh = source_output(ih, r, p.stride[1], p.pad[1], p.dil[1], Ho);
          if (oh < 0) continue;
          for (int64_t iw = 0; iw < W; ++iw) {
            for (int64_t q = 0; q < KS; ++q) {
              const int64_t ow = source_output(iw, q, p.stride[2], p.pad[2], p.dil[2], Wo);
              if (ow < 0) continue;
              const T* src = col_img + ((od * Ho + oh) * Wo + ow) * col_voxel + ((t * KR + r) * KS + q) * cg;
              T* dst = out + iw * s.c;
              for (int64_t g = 0; g < p.groups; ++g) {
                const T* src_g = src + g * KT * KR * KS * cg;
                T* dst_g = dst + g * cg;
                for (int64_t c = 0; c < cg; ++c) dst_g[c] += src_g[c];
              }
            }
          }
        }
      }
    }
  });
}

}  // namespace cnnext::cpu
