// Autocast (torch.autocast) for cnnext's ops, cast exactly as PyTorch casts the matching aten ops.
//
// aten::conv1d/conv2d/conv3d are on autocast's lower-precision list on the CPU and on CUDA: every floating
// input (not float64) is cast to the autocast dtype (bfloat16 on the CPU, float16 or bfloat16 on CUDA) and the
// op runs there. cnnext's convolutions do the same, with ATen's own wrapper (at::autocast::WrapFunction), so
// casts are cached for weights and the casts are recorded by autograd before the op (gradients come back in
// the leaves' dtypes). aten::max_pool2d and avg_pool2d are on no list: they fall through and run in their
// input's dtype, and so do cnnext's pooling ops and every backward op (autocast's default fallthrough).
#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

namespace cnnext {
namespace {

// The op as the dispatcher calls it: the autocast wrapper redispatches here with autocast excluded.
at::Tensor conv2d(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                  at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  static const auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("cnnext::conv2d", "").typed<decltype(conv2d)>();
  return op.call(input, weight, bias, stride, padding, dilation, groups);
}

at::Tensor conv3d(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                  at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  static const auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("cnnext::conv3d", "").typed<decltype(conv3d)>();
  return op.call(input, weight, bias, stride, padding, dilation, groups);
}

template <c10::DeviceType device, auto& op>
constexpr auto lower_precision = &at::autocast::WrapFunction<at::autocast::CastPolicy::lower_precision_fp, device,
                                                             std::remove_reference_t<decltype(op)>,
                                                             std::remove_reference_t<decltype(op)>, &op>::type::call;

}  // namespace

// conv1d runs as conv2d (cnnext/functional.py), so it is cast with it.
TORCH_LIBRARY_IMPL(cnnext, AutocastCPU, m) {
  m.impl("conv2d", lower_precision<c10::DeviceType::CPU, conv2d>);
  m.impl("conv3d", lower_precision<c10::DeviceType::CPU, conv3d>);
}

TORCH_LIBRARY_IMPL(cnnext, AutocastCUDA, m) {
  m.impl("conv2d", lower_precision<c10::DeviceType::CUDA, conv2d>);
  m.impl("conv3d", lower_precision<c10::DeviceType::CUDA, conv3d>);
}

}  // namespace cnnext
