// Autograd of max_pool2d and avg_pool2d, and of their backward ops (double backward), in C++ for the
// Autograd dispatch key, like conv_autograd.cpp. Each pooling backward is linear in grad_output and does not
// depend on the input's values, so its derivative is the adjoint map: a gather through the indices for max,
// average pooling again for avg.
#include <torch/autograd.h>
#include <torch/library.h>

#include "autograd_helpers.h"

namespace cnnext {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

using MaxPoolSignature = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, at::IntArrayRef, at::IntArrayRef,
                                                            at::IntArrayRef, at::IntArrayRef, bool);
using MaxPoolBackwardSignature = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, at::IntArrayRef,
                                            at::IntArrayRef, at::IntArrayRef, at::IntArrayRef, bool);
using AvgPoolSignature = at::Tensor(const at::Tensor&, at::IntArrayRef, at::IntArrayRef, at::IntArrayRef, bool, bool,
                                    std::optional<int64_t>);
using AvgPoolBackwardSignature = at::Tensor(const at::Tensor&, const at::Tensor&, at::IntArrayRef, at::IntArrayRef,
                                            at::IntArrayRef, bool, bool, std::optional<int64_t>);

const auto& max_pool2d_op() {
  static const auto op = typed_op<MaxPoolSignature>("cnnext::max_pool2d");
  return op;
}
const auto& max_pool2d_backward_op() {
  static const auto op = typed_op<MaxPoolBackwardSignature>("cnnext::max_pool2d_backward");
  return op;
}
const auto& avg_pool2d_op() {
  static const auto op = typed_op<AvgPoolSignature>("cnnext::avg_pool2d");
  return op;
}
const auto& avg_pool2d_backward_op() {
  static const auto op = typed_op<AvgPoolBackwardSignature>("cnnext::avg_pool2d_backward");
  return op;
}

struct PoolArgs {
  std::vector<int64_t> kernel_size, stride, padding, dilation;
};

void save_pool_args(AutogradContext* ctx, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                    at::IntArrayRef padding, at::IntArrayRef dilation) {
  ctx->saved_data["kernel_size"] = kernel_size.vec();
  ctx->saved_data["stride"] = stride.vec();
  ctx->saved_data["padding"] = padding.vec();
  ctx->saved_data["dilation"] = dilation.vec();
}

PoolArgs saved_pool_args(AutogradContext* ctx) {
  return {ctx->saved_data["kernel_size"].toIntVector(), ctx->saved_data["stride"].toIntVector(),
          ctx->saved_data["padding"].toIntVector(), ctx->saved_data["dilation"].toIntVector()};
}

// For each output position along one axis, whether its max-pool window holds an input position (a window
// can hold none where dilation steps over an input smaller than the dilation: it gets no gradient).
at::Tensor nonempty_max_windows(const c10::SymInt& size, const c10::SymInt& out_size, int64_t kernel, int64_t stride, int64_t padding,
                                int64_t dilation, const at::TensorOptions& options) {
  const auto starts = at::arange(out_size, options.dtype(at::kLong)) * stride - padding;
  const auto first_inside =
      at::where(starts < 0, starts + at::floor_divide(-starts + dilation - 1, dilation) * dilation, starts);
  return first_inside < at::clamp_max(starts + (kernel - 1) * dilation + 1, size);
}

class MaxPool2dFunction : public torch::autograd::Function<MaxPool2dFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& input, at::IntArrayRef kernel_size,
                               at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
                               bool ceil_mode) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto [output, indices] = max_pool2d_op().call(input, kernel_size, stride, padding, dilation, ceil_mode);
    ctx->mark_non_differentiable({indices});
    ctx->save_for_backward({input, indices});
    save_pool_args(ctx, kernel_size, stride, padding, dilation);
    ctx->saved_data["ceil_mode"] = ceil_mode;
    return {output, indices};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto a = saved_pool_args(ctx);
    auto grad_input = max_pool2d_backward_op().call(grads[0], saved[0], saved[1], a.kernel_size, a.stride,
                                                    a.padding, a.dilation, ctx->saved_data["ceil_mode"].toBool());
    return {grad_input, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

class MaxPool2dBackwardFunction : public torch::autograd::Function<MaxPool2dBackwardFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& grad_output, const at::Tensor& input,
                            const at::Tensor& indices, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                            at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto grad_input = max_pool2d_backward_op().call(grad_output, input, indices, kernel_size, stride, padding,
                                                    dilation, ceil_mode);
    ctx->save_for_backward({indices});
    save_pool_args(ctx, kernel_size, stride, padding, dilation);
    ctx->saved_data["height"] = input.sym_size(2);  // symbolic under torch.compile
    ctx->saved_data["width"] = input.sym_size(3);
    return grad_input;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list none(8);
    const auto& grad_grad_input = grads[0];
    if (!grad_grad_input.defined() || !ctx->needs_input_grad(0)) return none;
    const auto indices = ctx->get_saved_variables()[0];
    const auto a = saved_pool_args(ctx);
    const auto height = ctx->saved_data["height"].toSymInt(), width = ctx->saved_data["width"].toSymInt();
    const auto rows = nonempty_max_windows(height, indices.sym_size(2), a.kernel_size[0], a.stride[0], a.padding[0],
                                           a.dilation[0], indices.options());
    const auto cols = nonempty_max_windows(width, indices.sym_size(3), a.kernel_size[1], a.stride[1], a.padding[1],
                                           a.dilation[1], indices.options());
    const auto nonempty = rows.unsqueeze(1).logical_and(cols.unsqueeze(0));
    const auto flat = indices.flatten(2).clamp(0, height * width - 1);
    const auto picked = grad_grad_input.flatten(2).gather(2, flat).view_symint(indices.sym_sizes());
    none[0] = at::where(nonempty, picked, at::zeros_like(picked));
    return none;
  }
};

class AvgPool2dFunction : public torch::autograd::Function<AvgPool2dFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, at::IntArrayRef kernel_size,
                            at::IntArrayRef stride, at::IntArrayRef padding, bool ceil_mode, bool count_include_pad,
                            std::optional<int64_t> divisor_override) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto output =
        avg_pool2d_op().call(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override);
    ctx->save_for_backward({input});
    save_avg_pool_args(ctx, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override);
    return output;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto input = ctx->get_saved_variables()[0];
    const auto a = saved_pool_args(ctx);
    auto grad_input = avg_pool2d_backward_op().call(grads[0], input, a.kernel_size, a.stride, a.padding,
                                                    ctx->saved_data["ceil_mode"].toBool(),
                                                    ctx->saved_data["count_include_pad"].toBool(), divisor(ctx));
    return {grad_input, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }

  static void save_avg_pool_args(AutogradContext* ctx, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                                 at::IntArrayRef padding, bool ceil_mode, bool count_include_pad,
                                 std::optional<int64_t> divisor_override) {
    save_pool_args(ctx, kernel_size, stride, padding, {1, 1});
    ctx->saved_data["ceil_mode"] = ceil_mode;
    ctx->saved_data["count_include_pad"] = count_include_pad;
    ctx->saved_data["divisor_override"] = divisor_override;
  }

  static std::optional<int64_t> divisor(AutogradContext* ctx) {
    const auto& value = ctx->saved_data["divisor_override"];
    return value.isNone() ? std::nullopt : std::optional<int64_t>(value.toInt());
  }
};

class AvgPool2dBackwardFunction : public torch::autograd::Function<AvgPool2dBackwardFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& grad_output, const at::Tensor& input,
                            at::IntArrayRef kernel_size, at::IntArrayRef stride, at::IntArrayRef padding,
                            bool ceil_mode, bool count_include_pad, std::optional<int64_t> divisor_override) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto grad_input = avg_pool2d_backward_op().call(grad_output, input, kernel_size, stride, padding, ceil_mode,
                                                    count_include_pad, divisor_override);
    AvgPool2dFunction::save_avg_pool_args(ctx, kernel_size, stride, padding, ceil_mode, count_include_pad,
                                          divisor_override);
    return grad_input;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list none(8);
    if (!grads[0].defined() || !ctx->needs_input_grad(0)) return none;
    const auto a = saved_pool_args(ctx);
    none[0] = avg_pool2d_op().call(grads[0], a.kernel_size, a.stride, a.padding, ctx->saved_data["ceil_mode"].toBool(),
                                   ctx->saved_data["count_include_pad"].toBool(), AvgPool2dFunction::divisor(ctx));
    return none;
  }
};

std::tuple<at::Tensor, at::Tensor> max_pool2d_autograd(const at::Tensor& input, at::IntArrayRef kernel_size,
                                                       at::IntArrayRef stride, at::IntArrayRef padding,
                                                       at::IntArrayRef dilation, bool ceil_mode) {
  if (!any_requires_grad(input)) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return max_pool2d_op().call(input, kernel_size, stride, padding, dilation, ceil_mode);
  }
  const auto outputs = MaxPool2dFunction::apply(input, kernel_size, stride, padding, dilation, ceil_mode);
  return {outputs[0], outputs[1]};
}

at::Tensor max_pool2d_backward_autograd(const at::Tensor& grad_output, const at::Tensor& input,
                                        const at::Tensor& indices, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                                        at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode) {
  if (!any_requires_grad(grad_output, input)) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return max_pool2d_backward_op().call(grad_output, input, indices, kernel_size, stride, padding, dilation,
                                         ceil_mode);
  }
  return MaxPool2dBackwardFunction::apply(grad_output, input, indices, kernel_size, stride, padding, dilation,
                                          ceil_mode);
}

at::Tensor avg_pool2d_autograd(const at::Tensor& input, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                               at::IntArrayRef padding, bool ceil_mode, bool count_include_pad,
                               std::optional<int64_t> divisor_override) {
  if (!any_requires_grad(input)) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return avg_pool2d_op().call(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override);
  }
  return AvgPool2dFunction::apply(input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                                  divisor_override);
}

at::Tensor avg_pool2d_backward_autograd(const at::Tensor& grad_output, const at::Tensor& input,
                                        at::IntArrayRef kernel_size, at::IntArrayRef stride, at::IntArrayRef padding,
                                        bool ceil_mode, bool count_include_pad,
                                        std::optional<int64_t> divisor_override) {
  if (!any_requires_grad(grad_output, input)) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return avg_pool2d_backward_op().call(grad_output, input, kernel_size, stride, padding, ceil_mode,
                                         count_include_pad, divisor_override);
  }
  return AvgPool2dBackwardFunction::apply(grad_output, input, kernel_size, stride, padding, ceil_mode,
                                          count_include_pad, divisor_override);
}

}  // namespace

TORCH_LIBRARY_IMPL(cnnext, Autograd, m) {
  m.impl("max_pool2d", &max_pool2d_autograd);
  m.impl("max_pool2d_backward", &max_pool2d_backward_autograd);
  m.impl("avg_pool2d", &avg_pool2d_autograd);
  m.impl("avg_pool2d_backward", &avg_pool2d_backward_autograd);
}

}  // namespace cnnext
