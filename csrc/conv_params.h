// Argument checks and output-size arithmetic shared by the CPU and CUDA Conv2d kernels.
// Every check runs before any kernel and names the argument, what was expected and what came.
#pragma once
#include <ATen/ATen.h>

#include <array>
#include <vector>

namespace cnnext {

struct Conv2dParams {
  int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups;

  static Conv2dParams from(at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
                           int64_t groups) {
    TORCH_CHECK(stride.size() == 2 && padding.size() == 2 && dilation.size() == 2,
                "conv2d: stride, padding and dilation must have 2 elements each, got stride=", stride,
                ", padding=", padding, ", dilation=", dilation);
    TORCH_CHECK(stride[0] >= 1 && stride[1] >= 1, "conv2d: stride must be >= 1, but got stride=", stride);
    TORCH_CHECK(dilation[0] >= 1 && dilation[1] >= 1, "conv2d: dilation must be >= 1, but got dilation=",
                dilation);
    TORCH_CHECK(padding[0] >= 0 && padding[1] >= 0, "conv2d: padding must be >= 0, but got padding=",
                padding);
    TORCH_CHECK(groups >= 1, "conv2d: groups must be >= 1, but got groups=", groups);
    return {stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1], groups};
  }

  int64_t out_size(int64_t in, int64_t kernel, int64_t pad, int64_t dil, int64_t stride) const {
    return (in + 2 * pad - dil * (kernel - 1) - 1) / stride + 1;
  }
};

struct Conv2dShape {
  int64_t n, c, h, w;   // input
  int64_t k, r, s;      // weight: out channels, kernel height, kernel width
  int64_t ho, wo;       // output
};

inline void check_tensor(const at::Tensor& t, const char* name) {
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), "conv2d: expected ", name,
              " to have a floating-point dtype (float64, float32, float16 or bfloat16), but got ",
              t.scalar_type());
  TORCH_CHECK(t.layout() == at::kStrided, "conv2d: expected ", name, " to be a dense (strided) tensor, but got layout ",
              t.layout());
}

// Checks input, weight and bias against each other and the params; returns all sizes.
inline Conv2dShape check_conv2d(const at::Tensor& input, const at::Tensor& weight,
                                const std::optional<at::Tensor>& bias, const Conv2dParams& p) {
  TORCH_CHECK(input.dim() == 4, "conv2d: expected input to be 4-D (N, C, H, W), but got input of size ",
              input.sizes());
  TORCH_CHECK(weight.dim() == 4,
              "conv2d: expected weight to be 4-D (out_channels, in_channels/groups, kH, kW), but got weight of size ",
              weight.sizes());
  check_tensor(input, "input");
  check_tensor(weight, "weight");
  TORCH_CHECK(input.scalar_type() == weight.scalar_type(), "conv2d: expected input and weight to have the same dtype, but got input ",
              input.scalar_type(), " and weight ", weight.scalar_type());
  TORCH_CHECK(input.device() == weight.device(), "conv2d: expected input and weight on the same device, but got input on ",
              input.device(), " and weight on ", weight.device());
  Conv2dShape s{input.size(0), input.size(1), input.size(2), input.size(3),
                weight.size(0), weight.size(2), weight.size(3), 0, 0};
  TORCH_CHECK(s.k % p.groups == 0, "conv2d: groups=", p.groups,
              " must divide out_channels (weight.size(0)), but got weight of size ", weight.sizes());
  TORCH_CHECK(s.k > 0 && s.r > 0 && s.s > 0,
              "conv2d: expected weight with non-zero out_channels and kernel sizes, but got weight of size ",
              weight.sizes());
  TORCH_CHECK(s.h > 0 && s.w > 0, "conv2d: expected input with non-zero height and width, but got input of size ",
              input.sizes());
  TORCH_CHECK(s.c == weight.size(1) * p.groups, "conv2d: with groups=", p.groups, ", weight of size ",
              weight.sizes(), " expects input with ", weight.size(1) * p.groups,
              " channels (weight.size(1) * groups), but got input of size ", input.sizes());
  if (bias.has_value() && bias->defined()) {
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == s.k, "conv2d: expected bias of size [", s.k,
                "] (out_channels), but got bias of size ", bias->sizes());
    TORCH_CHECK(bias->scalar_type() == input.scalar_type(), "conv2d: expected bias to have dtype ",
                input.scalar_type(), " like input, but got ", bias->scalar_type());
    TORCH_CHECK(bias->device() == input.device(), "conv2d: expected bias on ", input.device(),
                " like input, but got bias on ", bias->device());
  }
  const int64_t eff_r = p.dil_h * (s.r - 1) + 1, eff_s = p.dil_w * (s.s - 1) + 1;
  TORCH_CHECK(s.h + 2 * p.pad_h >= eff_r && s.w + 2 * p.pad_w >= eff_s,
              "conv2d: the padded input (", s.h + 2 * p.pad_h, " x ", s.w + 2 * p.pad_w,
              ") is smaller than the dilated kernel (", eff_r, " x ", eff_s, "): input of size ", input.sizes(),
              ", weight of size ", weight.sizes(), ", padding (", p.pad_h, ", ", p.pad_w, "), dilation (", p.dil_h,
              ", ", p.dil_w, ")");
  s.ho = p.out_size(s.h, s.r, p.pad_h, p.dil_h, p.stride_h);
  s.wo = p.out_size(s.w, s.s, p.pad_w, p.dil_w, p.stride_w);
  return s;
}

inline void check_grad_output(const at::Tensor& grad_output, const Conv2dShape& s, const at::Tensor& input) {
  TORCH_CHECK(grad_output.dim() == 4 && grad_output.size(0) == s.n && grad_output.size(1) == s.k &&
                  grad_output.size(2) == s.ho && grad_output.size(3) == s.wo,
              "conv2d_backward: expected grad_output of size [", s.n, ", ", s.k, ", ", s.ho, ", ", s.wo,
              "], but got ", grad_output.sizes());
  TORCH_CHECK(grad_output.scalar_type() == input.scalar_type() && grad_output.device() == input.device(),
              "conv2d_backward: expected grad_output with dtype ", input.scalar_type(), " on ", input.device(),
              ", but got ", grad_output.scalar_type(), " on ", grad_output.device());
}

// ---------------------------------------------------------------------------------------------------
// The same checks for any number of spatial dimensions (Conv3d uses them; `op` names the caller in errors).

template <int N>
struct ConvNdParams {
  std::array<int64_t, N> stride, pad, dil;
  int64_t groups;

  static ConvNdParams from(const char* op, at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
                           int64_t groups) {
    TORCH_CHECK(stride.size() == N && padding.size() == N && dilation.size() == N, op,
                ": stride, padding and dilation must have ", N, " elements each, got stride=", stride,
                ", padding=", padding, ", dilation=", dilation);
    ConvNdParams p{};
    for (int i = 0; i < N; ++i) {
      TORCH_CHECK(stride[i] >= 1, op, ": stride must be >= 1, but got stride=", stride);
      TORCH_CHECK(dilation[i] >= 1, op, ": dilation must be >= 1, but got dilation=", dilation);
      TORCH_CHECK(padding[i] >= 0, op, ": padding must be >= 0, but got padding=", padding);
      p.stride[i] = stride[i];
      p.pad[i] = padding[i];
      p.dil[i] = dilation[i];
    }
    TORCH_CHECK(groups >= 1, op, ": groups must be >= 1, but got groups=", groups);
    p.groups = groups;
    return p;
  }
};

template <int N>
struct ConvNdShape {
  int64_t n, c, k;                  // batch, input channels, output channels
  std::array<int64_t, N> in, kernel, out;  // spatial sizes of input, weight and output

  int64_t in_pixels() const { return product(in); }
  int64_t out_pixels() const { return product(out); }
  int64_t kernel_taps() const { return product(kernel); }
  static int64_t product(const std::array<int64_t, N>& a) {
    int64_t r = 1;
    for (auto v : a) r *= v;
    return r;
  }
};

using Conv3dShape = ConvNdShape<3>;
using Conv3dParams = ConvNdParams<3>;

// A Conv2d as the Conv3d of depth 1 that it is (one kernel's code can then run both).
inline Conv3dShape as_volume(const Conv2dShape& s) {
  return {s.n, s.c, s.k, {1, s.h, s.w}, {1, s.r, s.s}, {1, s.ho, s.wo}};
}
inline Conv3dParams as_volume(const Conv2dParams& p) {
  return {{1, p.stride_h, p.stride_w}, {0, p.pad_h, p.pad_w}, {1, p.dil_h, p.dil_w}, p.groups};
}

inline void check_floating_dense(const char* op, const at::Tensor& t, const char* name) {
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), op, ": expected ", name,
              " to have a floating-point dtype (float64, float32, float16 or bfloat16), but got ", t.scalar_type());
  TORCH_CHECK(t.layout() == at::kStrided, op, ": expected ", name, " to be a dense (strided) tensor, but got layout ",
              t.layout());
}

template <int N>
ConvNdShape<N> check_conv(const char* op, const at::Tensor& input, const at::Tensor& weight,
                          const std::optional<at::Tensor>& bias, const ConvNdParams<N>& p) {
  TORCH_CHECK(input.dim() == N + 2, op, ": expected input to be ", N + 2, "-D (N, C, ", N == 3 ? "D, H, W" : "...",
              "), but got input of size ", input.sizes());
  TORCH_CHECK(weight.dim() == N + 2, op, ": expected weight to be ", N + 2,
              "-D (out_channels, in_channels/groups, kernel...), but got weight of size ", weight.sizes());
  check_floating_dense(op, input, "input");
  check_floating_dense(op, weight, "weight");
  TORCH_CHECK(input.scalar_type() == weight.scalar_type(), op,
              ": expected input and weight to have the same dtype, but got input ", input.scalar_type(),
              " and weight ", weight.scalar_type());
  TORCH_CHECK(input.device() == weight.device(), op,
              ": expected input and weight on the same device, but got input on ", input.device(), " and weight on ",
              weight.device());
  ConvNdShape<N> s{input.size(0), input.size(1), weight.size(0), {}, {}, {}};
  bool nonzero_kernel = true;
  for (int i = 0; i < N; ++i) {
    s.in[i] = input.size(2 + i);
    s.kernel[i] = weight.size(2 + i);
    nonzero_kernel = nonzero_kernel && s.kernel[i] > 0;
  }
  TORCH_CHECK(s.k % p.groups == 0, op, ": groups=", p.groups,
              " must divide out_channels (weight.size(0)), but got weight of size ", weight.sizes());
  TORCH_CHECK(s.k > 0 && nonzero_kernel, op,
              ": expected weight with non-zero out_channels and kernel sizes, but got weight of size ", weight.sizes());
  TORCH_CHECK(ConvNdShape<N>::product(s.in) > 0, op,
              ": expected input with non-zero spatial sizes, but got input of size ", input.sizes());
  TORCH_CHECK(s.c == weight.size(1) * p.groups, op, ": with groups=", p.groups, ", weight of size ", weight.sizes(),
              " expects input with ", weight.size(1) * p.groups,
              " channels (weight.size(1) * groups), but got input of size ", input.sizes());
  if (bias.has_value() && bias->defined()) {
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == s.k, op, ": expected bias of size [", s.k,
                "] (out_channels), but got bias of size ", bias->sizes());
    TORCH_CHECK(bias->scalar_type() == input.scalar_type(), op, ": expected bias to have dtype ", input.scalar_type(),
                " like input, but got ", bias->scalar_type());
    TORCH_CHECK(bias->device() == input.device(), op, ": expected bias on ", input.device(),
                " like input, but got bias on ", bias->device());
  }
  for (int i = 0; i < N; ++i) {
    const int64_t padded = s.in[i] + 2 * p.pad[i], dilated = p.dil[i] * (s.kernel[i] - 1) + 1;
    TORCH_CHECK(padded >= dilated, op, ": the padded input (size ", padded, " in spatial dimension ", i,
                ") is smaller than the dilated kernel (size ", dilated, "): input of size ", input.sizes(),
                ", weight of size ", weight.sizes(), ", padding ", at::IntArrayRef(p.pad), ", dilation ",
                at::IntArrayRef(p.dil));
    s.out[i] = (padded - dilated) / p.stride[i] + 1;
  }
  return s;
}

template <int N>
void check_conv_grad_output(const char* op, const at::Tensor& grad_output, const ConvNdShape<N>& s,
                            const at::Tensor& input) {
  std::vector<int64_t> expected{s.n, s.k};
  expected.insert(expected.end(), s.out.begin(), s.out.end());
  TORCH_CHECK(grad_output.sizes() == at::IntArrayRef(expected), op, ": expected grad_output of size ",
              at::IntArrayRef(expected), ", but got ", grad_output.sizes());
  TORCH_CHECK(grad_output.scalar_type() == input.scalar_type() && grad_output.device() == input.device(), op,
              ": expected grad_output with dtype ", input.scalar_type(), " on ", input.device(), ", but got ",
              grad_output.scalar_type(), " on ", grad_output.device());
}

}  // namespace cnnext
