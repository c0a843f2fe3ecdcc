// Conv2d on the CPU. float32 on AVX-512 CPUs runs the direct convolution of direct_conv.cpp; everything
// else runs channels-last im2col + one GEMM per group (ATen's mm, i.e. MKL), working through the batch in
// chunks so that the column buffer stays bounded whatever the batch size.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include "../conv_params.h"
#include "direct_conv.h"
#include "im2col.h"

namespace cnnext::cpu {
namespace {

constexpr int64_t kColumnBytes = 32 << 20;  // upper bound of one im2col buffer (unless one image needs more)

int64_t images_per_chunk(const Conv2dShape& s, int64_t elem_size) {
  const int64_t per_image = std::max<int64_t>(1, s.ho * s.wo * s.c * s.r * s.s * elem_size);
  return std::clamp<int64_t>(kColumnBytes / per_image, 1, std::max<int64_t>(s.n, 1));
}

bool is_pointwise(const Conv2dShape& s, const Conv2dParams& p) {
  return s.r == 1 && s.s == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 && p.pad_w == 0;
}

// weight [K, Cg, R, S] -> [G, Kg, R*S*Cg], the order of a column row.
at::Tensor weight_matrices(const at::Tensor& weight, int64_t groups) {
  const int64_t k = weight.size(0), row = weight.size(1) * weight.size(2) * weight.size(3);
  return weight.permute({0, 2, 3, 1}).contiguous().view({groups, k / groups, row});
}

// A channels-last tensor [N, C, H, W] seen as the matrix [N*H*W, C].
at::Tensor pixel_rows(const at::Tensor& t_cl) {
  return t_cl.permute({0, 2, 3, 1}).view({t_cl.size(0) * t_cl.size(2) * t_cl.size(3), t_cl.size(1)});
}

// Columns of images [first, first + n) as [n*Ho*Wo, G, R*S*Cg]; a 1x1 stride-1 conv uses the input itself.
at::Tensor columns(const at::Tensor& x_cl, int64_t first, int64_t n, const Conv2dShape& s, const Conv2dParams& p,
                   at::Tensor& buffer) {
  if (is_pointwise(s, p)) return pixel_rows(x_cl.narrow(0, first, n)).view({n * s.ho * s.wo, p.groups, s.c / p.groups});
  auto col = buffer.narrow(0, 0, n * s.ho * s.wo);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x_cl.scalar_type(), "cnnext_im2col", [&] {
    im2col_nhwc(x_cl.data_ptr<scalar_t>() + first * s.c * s.h * s.w, col.data_ptr<scalar_t>(), n, s, p);
  });
  return col;
}

at::Tensor column_buffer(const at::Tensor& like, int64_t chunk, const Conv2dShape& s, const Conv2dParams& p) {
  return at::empty({chunk * s.ho * s.wo, p.groups, s.c / p.groups * s.r * s.s}, like.options());
}

at::Tensor conv2d_forward(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                          at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  const auto p = Conv2dParams::from(stride, padding, dilation, groups);
  const auto s = check_conv2d(input, weight, bias, p);
  auto out = at::empty({s.n, s.k, s.ho, s.wo}, input.options().memory_format(at::MemoryFormat::ChannelsLast));
  if (s.n == 0) return out.contiguous(input.suggest_memory_format());
  if (direct_conv_applies(input, s, p)) {
    return direct_conv_forward(input, weight, bias, s, p);
  }

  const auto x = input.contiguous(at::MemoryFormat::ChannelsLast);
  const auto w = weight_matrices(weight, groups);
  const auto out_rows = pixel_rows(out);
  const int64_t kg = s.k / groups, pixels = s.ho * s.wo, chunk = images_per_chunk(s, input.element_size());
  auto buffer = is_pointwise(s, p) ? at::Tensor() : column_buffer(input, chunk, s, p);
  for (int64_t first = 0; first < s.n; first += chunk) {
    const int64_t n = std::min(chunk, s.n - first);
    const auto col = columns(x, first, n, s, p, buffer);
    const auto out_chunk = out_rows.narrow(0, first * pixels, n * pixels);
    for (int64_t g = 0; g < groups; ++g) {
      auto out_g = out_chunk.narrow(1, g * kg, kg);
      if (bias.has_value() && bias->defined()) {
        at::addmm_out(out_g, bias->narrow(0, g * kg, kg), col.select(1, g), w[g].t());
      } else {
        at::mm_out(out_g, col.select(1, g), w[g].t());
      }
    }
  }
  return out.contiguous(input.suggest_memory_format());
}

at::Tensor grad_input(const at::Tensor& go_rows, const at::Tensor& input, const at::Tensor& w, const Conv2dShape& s,
                      const Conv2dParams& p) {
  auto dx = at::empty({s.n, s.c, s.h, s.w}, input.options().memory_format(at::MemoryFormat::ChannelsLast));
  const int64_t kg = s.k / p.groups, pixels = s.ho * s.wo, chunk = images_per_chunk(s, input.element_size());
  const bool pointwise = is_pointwise(s, p);
  auto dcol_buffer = pointwise ? at::Tensor() : column_buffer(input, chunk, s, p);
  const auto dx_rows = pixel_rows(dx);
  for (int64_t first = 0; first < s.n; first += chunk) {
    const int64_t n = std::min(chunk, s.n - first);
    auto dcol = pointwise ? dx_rows.narrow(0, first * pixels, n * pixels).view({n * pixels, p.groups, s.c / p.groups})
                          : dcol_buffer.narrow(0, 0, n * pixels);
    const auto go = go_rows.narrow(0, first * pixels, n * pixels);
    for (int64_t g = 0; g < p.groups; ++g) {
      auto dcol_g = dcol.select(1, g);
      at::mm_out(dcol_g, go.narrow(1, g * kg, kg), w[g]);
    }
    if (!pointwise) {
      AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "cnnext_col2im", [&] {
        col2im_nhwc(dcol.data_ptr<scalar_t>(), dx.data_ptr<scalar_t>() + first * s.c * s.h * s.w, n, s, p);
      });
    }
  }
  return dx.contiguous(input.suggest_memory_format());
}

at::Tensor grad_weight(const at::Tensor& go_rows, const at::Tensor& input, const at::Tensor& weight,
                       const Conv2dShape& s, const Conv2dParams& p) {
  const int64_t kg = s.k / p.groups, pixels = s.ho * s.wo, chunk = images_per_chunk(s, input.element_size());
  auto dw = at::zeros({p.groups, kg, s.r * s.s * (s.c / p.groups)}, weight.options());
  const auto x = input.contiguous(at::MemoryFormat::ChannelsLast);
  auto buffer = is_pointwise(s, p) ? at::Tensor() : column_buffer(input, chunk, s, p);
  for (int64_t first = 0; first < s.n; first += chunk) {
    const int64_t n = std::min(chunk, s.n - first);
    const auto col = columns(x, first, n, s, p, buffer);
    const auto go = go_rows.narrow(0, first * pixels, n * pixels);
    for (int64_t g = 0; g < p.groups; ++g) {
      dw[g].addmm_(go.narrow(1, g * kg, kg).t(), col.select(1, g));
    }
  }
  // [G, Kg, R*S*Cg] -> [K, R, S, Cg] -> [K, Cg, R, S]
  return dw.view({s.k, s.r, s.s, s.c / p.groups}).permute({0, 3, 1, 2}).contiguous();
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv2d_backward(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
    at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups, std::array<bool, 3> output_mask) {
  const auto p = Conv2dParams::from(stride, padding, dilation, groups);
  const auto s = check_conv2d(input, weight, std::nullopt, p);
  check_grad_output(grad_output, s, input);
  const auto skipped = at::empty({0}, input.options());
  at::Tensor dx = skipped, dw = skipped, db = skipped;
  if (output_mask[2]) db = grad_output.sum({0, 2, 3});
  if (s.n == 0) {
    if (output_mask[0]) dx = at::empty_like(input);
    if (output_mask[1]) dw = at::zeros_like(weight, at::MemoryFormat::Contiguous);
    return {dx, dw, db};
  }
  if (direct_conv_applies(input, s, p)) {
    if (output_mask[0]) dx = direct_conv_grad_input(grad_output, weight, s, p, input.suggest_memory_format());
    if (output_mask[1]) dw = direct_conv_grad_weight(grad_output, input, s, p);
    return {dx, dw, db};
  }
  const auto go_rows = pixel_rows(grad_output.contiguous(at::MemoryFormat::ChannelsLast));
  if (output_mask[0]) dx = grad_input(go_rows, input, weight_matrices(weight, groups), s, p);
  if (output_mask[1]) dw = grad_weight(go_rows, input, weight, s, p);
  return {dx, dw, db};
}

}  // namespace

TORCH_LIBRARY_IMPL(cnnext, CPU, m) {
  m.impl("conv2d", &conv2d_forward);
  m.impl("conv2d_backward", &conv2d_backward);
}

}  // namespace cnnext::cpu
