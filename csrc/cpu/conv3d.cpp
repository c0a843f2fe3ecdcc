// Conv3d on the CPU. float32 on AVX-512 CPUs runs as a sum over depth taps of Conv2d's direct kernel;
// everything else is the Conv2d recipe with a depth axis: channels-last vol2col + one GEMM per group (ATen's
// mm, i.e. MKL), working through the batch in chunks so the column buffer stays bounded.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include "../column_gemm.h"
#include "../conv_grads.h"
#include "../conv_params.h"
#include "direct_conv.h"
#include "kernel_path.h"
#include "vol2col.h"

namespace cnnext::cpu {
namespace {

constexpr const char* kOp = "conv3d";
constexpr int64_t kColumnBytes = 32 << 20;  // upper bound of one vol2col buffer (unless one volume needs more)

bool is_pointwise(const Conv3dShape& s, const Conv3dParams& p) {
  for (int i = 0; i < 3; ++i) {
    if (s.kernel[i] != 1 || p.stride[i] != 1 || p.pad[i] != 0) return false;
  }
  return true;
}

ColumnGemm gemm_plan(const Conv3dShape& s, const Conv3dParams& p, int64_t elem_size) {
  return column_gemm_plan(s.n, s.out_pixels(), p.groups, s.kernel_taps() * (s.c / p.groups), is_pointwise(s, p),
                          elem_size, kColumnBytes);
}

at::Tensor channels_last_empty(const at::Tensor& like, int64_t n, int64_t c, const std::array<int64_t, 3>& dhw) {
  return at::empty({n, c, dhw[0], dhw[1], dhw[2]}, like.options().memory_format(at::MemoryFormat::ChannelsLast3d));
}

// Fills col [n*Do*Ho*Wo, G, T*R*S*Cg] with the columns of volumes [first, first + n).
auto vol2col(const at::Tensor& x_cl, const Conv3dShape& s, const Conv3dParams& p) {
  return [&x_cl, &s, &p](at::Tensor& col, int64_t first, int64_t n) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x_cl.scalar_type(), "cnnext_vol2col", [&] {
      vol2col_ndhwc(x_cl.data_ptr<scalar_t>() + first * s.c * s.in_pixels(), col.data_ptr<scalar_t>(), n, s, p);
    });
  };
}

// ---- float32 on AVX-512: a sum over depth taps of Conv2d's direct kernel ----
//
// out[:, :, d] = sum over t of conv2d(x[:, :, d*sd - pd + t*dd], w[:, :, t]): for each depth tap t, the
// input slices that tap reads (every output depth whose slice lies inside the input) are stacked into one
// batch of images and run through the direct 2-D kernel; depths that fall in the padding add nothing.

struct DepthTap {
  at::Tensor in_depths, out_depths;  // int64 indices of the input slices read and the output slices fed
  int64_t count;
};

DepthTap depth_tap(const Conv3dShape& s, const Conv3dParams& p, int64_t t) {
  std::vector<int64_t> in_depths, out_depths;
  for (int64_t d = 0; d < s.out[0]; ++d) {
    const int64_t id = d * p.stride[0] - p.pad[0] + t * p.dil[0];
    if (id >= 0 && id < s.in[0]) {
      in_depths.push_back(id);
      out_depths.push_back(d);
    }
  }
  const auto options = at::TensorOptions().dtype(at::kLong);
  return {at::tensor(in_depths, options), at::tensor(out_depths, options), static_cast<int64_t>(in_depths.size())};
}

// The 2-D problem of one tap: `images` slices of H x W, the kernel's R x S taps.
Conv2dShape slice_shape(const Conv3dShape& s, int64_t images) {
  return {images, s.c, s.in[1], s.in[2], s.k, s.kernel[1], s.kernel[2], s.out[1], s.out[2]};
}

Conv2dParams slice_params(const Conv3dParams& p) {
  return {p.stride[1], p.stride[2], p.pad[1], p.pad[2], p.dil[1], p.dil[2], p.groups};
}

// [N, C, D, H, W] -> the slices at `depths` as a batch of images [N * depths, C, H, W].
at::Tensor slices_as_images(const at::Tensor& t, const at::Tensor& depths) {
  const auto picked = t.index_select(2, depths).transpose(1, 2);
  return picked.reshape({t.size(0) * depths.size(0), t.size(1), t.size(3), t.size(4)});
}

// Adds a batch of images [N * depths, C, H, W] into the slices at `depths` of `target` [N, C, D, H, W].
void add_images_to_slices(at::Tensor& target, const at::Tensor& depths, const at::Tensor& images) {
  const auto unstacked = images.reshape({target.size(0), depths.size(0), images.size(1), images.size(2), images.size(3)});
  target.index_add_(2, depths, unstacked.transpose(1, 2));
}

at::Tensor forward_by_depth_taps(const at::Tensor& input, const at::Tensor& weight,
                                 const std::optional<at::Tensor>& bias, const Conv3dShape& s, const Conv3dParams& p) {
  auto out = at::zeros({s.n, s.k, s.out[0], s.out[1], s.out[2]}, input.options());
  for (int64_t t = 0; t < s.kernel[0]; ++t) {
    const auto tap = depth_tap(s, p, t);
    if (tap.count == 0) continue;
    const auto images = slices_as_images(input, tap.in_depths);
    const auto out_images = direct_conv_forward(images, weight.select(2, t).contiguous(), std::nullopt,
                                                slice_shape(s, s.n * tap.count), slice_params(p));
    add_images_to_slices(out, tap.out_depths, out_images);
  }
  if (bias.has_value() && bias->defined()) out.add_(bias->view({1, s.k, 1, 1, 1}));
  return out.contiguous(input.suggest_memory_format());
}

at::Tensor grad_input_by_depth_taps(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
                                    const Conv3dShape& s, const Conv3dParams& p) {
  auto dx = at::zeros({s.n, s.c, s.in[0], s.in[1], s.in[2]}, input.options());
  for (int64_t t = 0; t < s.kernel[0]; ++t) {
    const auto tap = depth_tap(s, p, t);
    if (tap.count == 0) continue;
    const auto grad_images = slices_as_images(grad_output, tap.out_depths);
    const auto dx_images = direct_conv_grad_input(grad_images, weight.select(2, t).contiguous(),
                                                  slice_shape(s, s.n * tap.count), slice_params(p),
                                                  at::MemoryFormat::Contiguous);
    add_images_to_slices(dx, tap.in_depths, dx_images);
  }
  return dx.contiguous(input.suggest_memory_format());
}

at::Tensor grad_weight_by_depth_taps(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
                                     const Conv3dShape& s, const Conv3dParams& p) {
  auto dw = at::zeros_like(weight, at::MemoryFormat::Contiguous);
  for (int64_t t = 0; t < s.kernel[0]; ++t) {
    const auto tap = depth_tap(s, p, t);
    if (tap.count == 0) continue;
    dw.select(2, t).copy_(direct_conv_grad_weight(slices_as_images(grad_output, tap.out_depths),
                                                  slices_as_images(input, tap.in_depths),
                                                  slice_shape(s, s.n * tap.count), slice_params(p)));
  }
  return dw;
}

at::Tensor conv3d_forward(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                          at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  const auto p = Conv3dParams::from(kOp, stride, padding, dilation, groups);
  const auto s = check_conv<3>(kOp, input, weight, bias, p);
  auto out = channels_last_empty(input, s.n, s.k, s.out);
  if (s.n == 0) return out.contiguous(input.suggest_memory_format());
  if (conv3d_path(input, s, p) == ConvPath::kDirectAvx512) return forward_by_depth_taps(input, weight, bias, s, p);
  const auto x = input.contiguous(at::MemoryFormat::ChannelsLast3d);
  forward_gemm(gemm_plan(s, p, input.element_size()), weight_matrices(weight, groups), bias, pixel_rows(x),
               pixel_rows(out), vol2col(x, s, p));
  return out.contiguous(input.suggest_memory_format());
}

at::Tensor grad_input(const at::Tensor& go_rows, const at::Tensor& input, const at::Tensor& weight,
                      const Conv3dShape& s, const Conv3dParams& p) {
  auto dx = channels_last_empty(input, s.n, s.c, s.in);
  auto col2vol = [&](const at::Tensor& dcol, int64_t first, int64_t n) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "cnnext_col2vol", [&] {
      col2vol_ndhwc(dcol.data_ptr<scalar_t>(), dx.data_ptr<scalar_t>() + first * s.c * s.in_pixels(), n, s, p);
    });
  };
  grad_input_gemm(gemm_plan(s, p, input.element_size()), go_rows, weight_matrices(weight, p.groups), pixel_rows(dx),
                  col2vol);
  return dx.contiguous(input.suggest_memory_format());
}

at::Tensor grad_weight(const at::Tensor& go_rows, const at::Tensor& input, const at::Tensor& weight,
                       const Conv3dShape& s, const Conv3dParams& p) {
  const auto x = input.contiguous(at::MemoryFormat::ChannelsLast3d);
  return grad_weight_gemm(gemm_plan(s, p, input.element_size()), go_rows, pixel_rows(x), weight, vol2col(x, s, p));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv3d_backward(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
    at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups, std::array<bool, 3> output_mask) {
  const auto p = Conv3dParams::from("conv3d_backward", stride, padding, dilation, groups);
  const auto s = check_conv<3>("conv3d_backward", input, weight, std::nullopt, p);
  check_conv_grad_output<3>("conv3d_backward", grad_output, s, input);
  auto [dx, dw, db] = conv_grads_without_kernels(grad_output, input, weight, output_mask);
  if (s.n == 0) return {dx, dw, db};
  if (conv3d_path(input, s, p) == ConvPath::kDirectAvx512) {
    if (output_mask[0]) dx = grad_input_by_depth_taps(grad_output, input, weight, s, p);
    if (output_mask[1]) dw = grad_weight_by_depth_taps(grad_output, input, weight, s, p);
    return {dx, dw, db};
  }
  const auto go_rows = pixel_rows(grad_output.contiguous(at::MemoryFormat::ChannelsLast3d));
  if (output_mask[0]) dx = grad_input(go_rows, input, weight, s, p);
  if (output_mask[1]) dw = grad_weight(go_rows, input, weight, s, p);
  return {dx, dw, db};
}

}  // namespace

// float32 on AVX-512 runs as a sum over depth taps of the direct 2-D kernel, wherever that kernel applies.
ConvPath conv3d_path(const at::Tensor& input, const Conv3dShape& s, const Conv3dParams& p) {
  // float32 only: the sum over depth taps runs in the output's dtype.
  return direct_conv_path(input, slice_shape(s, s.n), slice_params(p)) == DirectPath::avx512_float32
             ? ConvPath::kDirectAvx512
             : ConvPath::kIm2colGemm;
}

TORCH_LIBRARY_IMPL(cnnext, CPU, m) {
  m.impl("conv3d", &conv3d_forward);
  m.impl("conv3d_backward", &conv3d_backward);
}

}  // namespace cnnext::cpu
