// Argument checks and output-size arithmetic shared by the CPU and CUDA pooling kernels (MaxPool2d,
// AvgPool2d). Every check runs before any kernel and names the argument, what was expected and what came.
// The rules are PyTorch's, so the same calls are accepted and refused.
#pragma once
#include <ATen/ATen.h>

#include <optional>

#include "conv_params.h"

namespace cnnext {

struct Pool2dParams {
  int64_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
  bool ceil_mode;

  static Pool2dParams from(const char* op, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                           at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode) {
    TORCH_CHECK(kernel_size.size() == 2 && stride.size() == 2 && padding.size() == 2 && dilation.size() == 2, op,
                ": kernel_size, stride, padding and dilation must have 2 elements each, got kernel_size=",
                kernel_size, ", stride=", stride, ", padding=", padding, ", dilation=", dilation);
    TORCH_CHECK(kernel_size[0] > 0 && kernel_size[1] > 0, op,
                ": kernel_size must be greater than zero, but got kernel_size=", kernel_size);
    TORCH_CHECK(stride[0] > 0 && stride[1] > 0, op, ": stride must be greater than zero, but got stride=", stride);
    TORCH_CHECK(dilation[0] > 0 && dilation[1] > 0, op, ": dilation must be greater than zero, but got dilation=",
                dilation);
    TORCH_CHECK(padding[0] >= 0 && padding[1] >= 0, op, ": padding must be non-negative, but got padding=", padding);
    for (int i = 0; i < 2; ++i) {
      const int64_t effective = (kernel_size[i] - 1) * dilation[i] + 1;
      TORCH_CHECK(padding[i] <= effective / 2, op, ": padding should be at most half of the effective kernel size, ",
                  "but got padding=", padding, ", kernel_size=", kernel_size, " and dilation=", dilation);
    }
    TORCH_CHECK(padding[0] <= kernel_size[0] / 2 && padding[1] <= kernel_size[1] / 2, op,
                ": padding should be smaller than or equal to half of kernel_size, but got padding=", padding,
                " and kernel_size=", kernel_size);
    return {kernel_size[0], kernel_size[1], stride[0], stride[1], padding[0], padding[1],
            dilation[0],    dilation[1],    ceil_mode};
  }

  // PyTorch's rule: with ceil_mode the last window may overhang the input, but must start inside the
  // input or the left padding.
  int64_t out_size(int64_t in, int64_t kernel, int64_t pad, int64_t dil, int64_t stride) const {
    const int64_t span = in + 2 * pad - dil * (kernel - 1) - 1;
    int64_t out = (ceil_mode ? span + stride - 1 : span);
    out = (out < 0 ? (out - stride + 1) / stride : out / stride) + 1;  // floor division
    if (ceil_mode && (out - 1) * stride >= in + pad) --out;
    return out;
  }
};

struct Pool2dShape {
  int64_t n, c, h, w;  // input
  int64_t ho, wo;      // output
  int64_t planes() const { return n * c; }
};

inline Pool2dShape check_pool2d(const char* op, const at::Tensor& input, const Pool2dParams& p) {
  TORCH_CHECK(input.dim() == 4, op, ": expected input to be 4-D (N, C, H, W), but got input of size ",
              input.sizes());
  TORCH_CHECK(input.size(1) != 0 && input.size(2) != 0 && input.size(3) != 0, op,
              ": expected input with non-zero channels, height and width (only the batch may be 0), but got input "
              "of size ",
              input.sizes());
  check_floating_dense(op, input, "input");
  Pool2dShape s{input.size(0), input.size(1), input.size(2), input.size(3), 0, 0};
  s.ho = p.out_size(s.h, p.kernel_h, p.pad_h, p.dil_h, p.stride_h);
  s.wo = p.out_size(s.w, p.kernel_w, p.pad_w, p.dil_w, p.stride_w);
  TORCH_CHECK(s.ho >= 1 && s.wo >= 1, op, ": the output would be empty: input of size ", input.sizes(),
              " with kernel_size (", p.kernel_h, ", ", p.kernel_w, "), stride (", p.stride_h, ", ", p.stride_w,
              "), padding (", p.pad_h, ", ", p.pad_w, ") and dilation (", p.dil_h, ", ", p.dil_w,
              ") gives output size (", s.ho, ", ", s.wo, ")");
  return s;
}

inline void check_divisor(const char* op, const std::optional<int64_t>& divisor_override) {
  TORCH_CHECK(!divisor_override.has_value() || *divisor_override != 0, op,
              ": divisor_override must not be zero");
}

// A tensor the backward pass receives with the forward output's size [N, C, Ho, Wo].
inline void check_like_output(const char* op, const at::Tensor& t, const char* name, const Pool2dShape& s,
                              const at::Tensor& input) {
  TORCH_CHECK(t.sizes() == at::IntArrayRef({s.n, s.c, s.ho, s.wo}), op, ": expected ", name, " of size [", s.n,
              ", ", s.c, ", ", s.ho, ", ", s.wo, "], but got ", t.sizes());
  TORCH_CHECK(t.device() == input.device(), op, ": expected ", name, " on ", input.device(), " like input, but got ",
              t.device());
}

}  // namespace cnnext
