// Autograd of conv2d and conv3d, and of their backward ops (so double backward works), in C++ and registered
// for the Autograd dispatch key, as torchvision does for its ops (csrc/ops/autograd/). A call whose tensors
// need no gradient goes straight to the kernels below Autograd, so an inference call builds no graph node.
//
// Every gradient of a convolution is linear in grad_output and in one of (input, weight), so the derivatives
// of conv_backward are again conv and conv_backward calls with the roles of the tensors swapped.
#include <torch/autograd.h>
#include <torch/library.h>

#include "autograd_helpers.h"

namespace cnnext {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using Mask = std::array<bool, 3>;

using ConvSignature = at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                                 at::IntArrayRef, at::IntArrayRef, at::IntArrayRef, int64_t);
using ConvBackwardSignature = std::tuple<at::Tensor, at::Tensor, at::Tensor>(
    const at::Tensor&, const at::Tensor&, const at::Tensor&, at::IntArrayRef, at::IntArrayRef, at::IntArrayRef,
    int64_t, Mask);

// The ops of one dimensionality: "conv2d"/"conv2d_backward" or "conv3d"/"conv3d_backward".
template <int Dims>
struct ConvOps {
  static constexpr const char* name = Dims == 2 ? "cnnext::conv2d" : "cnnext::conv3d";
  static constexpr const char* backward_name = Dims == 2 ? "cnnext::conv2d_backward" : "cnnext::conv3d_backward";
  static const auto& forward() {
    static const auto op = typed_op<ConvSignature>(name);
    return op;
  }
  static const auto& backward() {
    static const auto op = typed_op<ConvBackwardSignature>(backward_name);
    return op;
  }
};

void save_conv_args(AutogradContext* ctx, at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
                    int64_t groups) {
  ctx->saved_data["stride"] = stride.vec();
  ctx->saved_data["padding"] = padding.vec();
  ctx->saved_data["dilation"] = dilation.vec();
  ctx->saved_data["groups"] = groups;
}

struct ConvArgs {
  std::vector<int64_t> stride, padding, dilation;
  int64_t groups;
};

ConvArgs saved_conv_args(AutogradContext* ctx) {
  return {ctx->saved_data["stride"].toIntVector(), ctx->saved_data["padding"].toIntVector(),
          ctx->saved_data["dilation"].toIntVector(), ctx->saved_data["groups"].toInt()};
}

template <int Dims>
class ConvFunction : public torch::autograd::Function<ConvFunction<Dims>> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, const at::Tensor& weight,
                            const std::optional<at::Tensor>& bias, at::IntArrayRef stride, at::IntArrayRef padding,
                            at::IntArrayRef dilation, int64_t groups) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto output = ConvOps<Dims>::forward().call(input, weight, bias, stride, padding, dilation, groups);
    ctx->save_for_backward({input, weight});
    save_conv_args(ctx, stride, padding, dilation, groups);
    ctx->saved_data["has_bias"] = bias.has_value() && bias->defined();
    return output;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto args = saved_conv_args(ctx);
    const Mask mask{ctx->needs_input_grad(0), ctx->needs_input_grad(1),
                    ctx->saved_data["has_bias"].toBool() && ctx->needs_input_grad(2)};
    auto [dx, dw, db] = ConvOps<Dims>::backward().call(grad_outputs[0], saved[0], saved[1], args.stride,
                                                       args.padding, args.dilation, args.groups, mask);
    return {mask[0] ? dx : at::Tensor(), mask[1] ? dw : at::Tensor(), mask[2] ? db : at::Tensor(),
            at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

template <int Dims>
class ConvBackwardFunction : public torch::autograd::Function<ConvBackwardFunction<Dims>> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& grad_output, const at::Tensor& input,
                               const at::Tensor& weight, at::IntArrayRef stride, at::IntArrayRef padding,
                               at::IntArrayRef dilation, int64_t groups, Mask output_mask) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto [dx, dw, db] = ConvOps<Dims>::backward().call(grad_output, input, weight, stride, padding, dilation, groups,
                                                       output_mask);
    ctx->save_for_backward({grad_output, input, weight});
    save_conv_args(ctx, stride, padding, dilation, groups);
    return {dx, dw, db};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& grad_output = saved[0];
    const auto& input = saved[1];
    const auto& weight = saved[2];
    const auto a = saved_conv_args(ctx);
    // Gradients that were skipped came back empty (size 0): they contribute nothing.
    const auto given = [](const at::Tensor& g) { return g.defined() && g.sym_numel() != 0; };
    const auto &ggi = grads[0], &ggw = grads[1], &ggb = grads[2];
    at::Tensor d_grad_output, d_input, d_weight;
    if (ctx->needs_input_grad(0)) {
      d_grad_output = at::zeros_like(grad_output);
      if (given(ggi)) {
        d_grad_output = d_grad_output +
                        ConvOps<Dims>::forward().call(ggi, weight, std::nullopt, a.stride, a.padding, a.dilation,
                                                      a.groups);
      }
      if (given(ggw)) {
        d_grad_output = d_grad_output +
                        ConvOps<Dims>::forward().call(input, ggw, std::nullopt, a.stride, a.padding, a.dilation,
                                                      a.groups);
      }
      if (given(ggb)) {
        std::vector<int64_t> shape(grad_output.dim(), 1);
        shape[1] = -1;
        d_grad_output = d_grad_output + ggb.view(shape);
      }
    }
    if (ctx->needs_input_grad(1) && given(ggw)) {
      d_input = std::get<0>(ConvOps<Dims>::backward().call(grad_output, input, ggw, a.stride, a.padding, a.dilation,
                                                           a.groups, {true, false, false}));
    }
    if (ctx->needs_input_grad(2) && given(ggi)) {
      d_weight = std::get<1>(ConvOps<Dims>::backward().call(grad_output, ggi, weight, a.stride, a.padding,
                                                            a.dilation, a.groups, {false, true, false}));
    }
    return {d_grad_output, d_input, d_weight, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

template <int Dims>
at::Tensor conv_autograd(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                         at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  if (!any_requires_grad(input, weight, bias.has_value() ? *bias : at::Tensor())) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return ConvOps<Dims>::forward().call(input, weight, bias, stride, padding, dilation, groups);
  }
  return ConvFunction<Dims>::apply(input, weight, bias, stride, padding, dilation, groups);
}

template <int Dims>
std::tuple<at::Tensor, at::Tensor, at::Tensor> conv_backward_autograd(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
    at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups, Mask output_mask) {
  if (!any_requires_grad(grad_output, input, weight)) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return ConvOps<Dims>::backward().call(grad_output, input, weight, stride, padding, dilation, groups, output_mask);
  }
  const auto grads = ConvBackwardFunction<Dims>::apply(grad_output, input, weight, stride, padding, dilation, groups,
                                                       output_mask);
  return {grads[0], grads[1], grads[2]};
}

}  // namespace

TORCH_LIBRARY_IMPL(cnnext, Autograd, m) {
  m.impl("conv2d", &conv_autograd<2>);
  m.impl("conv2d_backward", &conv_backward_autograd<2>);
  m.impl("conv3d", &conv_autograd<3>);
  m.impl("conv3d_backward", &conv_backward_autograd<3>);
}

}  // namespace cnnext
