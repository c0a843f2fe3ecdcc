// Channels-last (NHWC) im2col / col2im for Conv2d.
//
// Column layout, for a chunk of `n` images: [n, Ho, Wo, groups, R, S, Cg] (Cg = C / groups).
// Row m = (image, ho, wo) of the column matrix holds every input value that output pixel sees, so
//   output[m, g*Kg:(g+1)*Kg] = col[m, g, :] @ weight_g^T      (weight_g as [Kg, R*S*Cg])
// is one GEMM per group with no transposes, and each (r, s) tap copies Cg contiguous floats.
#pragma once
#include <ATen/Parallel.h>
#include <cstring>

#include "../conv_params.h"

namespace cnnext::cpu {

// x: [n, H, W, C] (one chunk of images), col: [n, Ho, Wo, G, R, S, Cg].
template <typename T>
void im2col_nhwc(const T* x, T* col, int64_t n, const Conv2dShape& s, const Conv2dParams& p) {
  const int64_t cg = s.c / p.groups;
  at::parallel_for(0, n * s.ho, 1, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t img = row / s.ho, ho = row % s.ho;
      const T* x_img = x + img * s.h * s.w * s.c;
      T* out = col + row * s.wo * s.c * s.r * s.s;
      for (int64_t wo = 0; wo < s.wo; ++wo) {
        for (int64_t g = 0; g < p.groups; ++g) {
          for (int64_t r = 0; r < s.r; ++r) {
            const int64_t ih = ho * p.stride_h - p.pad_h + r * p.dil_h;
            for (int64_t q = 0; q < s.s; ++q, out += cg) {
              const int64_t iw = wo * p.stride_w - p.pad_w + q * p.dil_w;
              if (ih < 0 || ih >= s.h || iw < 0 || iw >= s.w) {
                std::memset(out, 0, cg * sizeof(T));
              } else {
                std::memcpy(out, x_img + (ih * s.w + iw) * s.c + g * cg, cg * sizeof(T));
              }
            }
          }
        }
      }
    }
  });
}

// The adjoint of im2col_nhwc: dx[n, H, W, C] = sum of every col entry that copied from that pixel.
// Written as a gather over input pixels (not a scatter over columns) so that threads never write the
// same memory and the sum order, hence the result, is the same on every run.
template <typename T>
void col2im_nhwc(const T* col, T* dx, int64_t n, const Conv2dShape& s, const Conv2dParams& p) {
  const int64_t cg = s.c / p.groups;
  const int64_t col_pixel = p.groups * s.r * s.s * cg;  // one output pixel's column row
  at::parallel_for(0, n * s.h, 1, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t img = row / s.h, ih = row % s.h;
      const T* col_img = col + img * s.ho * s.wo * col_pixel;
      T* out = dx + row * s.w * s.c;
      std::fill(out, out + s.w * s.c, T(0));
      for (int64_t r = 0; r < s.r; ++r) {
        const int64_t ho_num = ih + p.pad_h - r * p.dil_h;
        if (ho_num < 0 || ho_num % p.stride_h != 0 || ho_num / p.stride_h >= s.ho) continue;
        const int64_t ho = ho_num / p.stride_h;
        for (int64_t iw = 0; iw < s.w; ++iw) {
          for (int64_t q = 0; q < s.s; ++q) {
            const int64_t wo_num = iw + p.pad_w - q * p.dil_w;
            if (wo_num < 0 || wo_num % p.stride_w != 0 || wo_num / p.stride_w >= s.wo) continue;
            const int64_t wo = wo_num / p.stride_w;
            const T* src = col_img + (ho * s.wo + wo) * col_pixel + (r * s.s + q) * cg;
            T* dst = out + iw * s.c;
            for (int64_t g = 0; g < p.groups; ++g) {
              const T* src_g = src + g * s.r * s.s * cg;
              T* dst_g = dst + g * cg;
              for (int64_t c = 0; c < cg; ++c) dst_g[c] += src_g[c];
            }
          }
        }
      }
    }
  });
}

}  // namespace cnnext::cpu
