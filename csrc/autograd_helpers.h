// What the Autograd kernels of conv_autograd.cpp and pool_autograd.cpp share.
#pragma once
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/grad_mode.h>

namespace cnnext {

// Whether a call must record a graph node: grad mode is on and some (defined) tensor requires grad.
template <typename... Tensors>
bool any_requires_grad(const Tensors&... tensors) {
  return at::GradMode::is_enabled() && ((tensors.defined() && tensors.requires_grad()) || ...);
}

// The dispatcher's handle of op `name` ("cnnext::conv2d"), called through the dispatcher like at:: ops.
template <typename Signature>
c10::TypedOperatorHandle<Signature> typed_op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Signature>();
}

}  // namespace cnnext
