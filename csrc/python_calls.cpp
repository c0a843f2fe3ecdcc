// The cnnext._C module: importing it loads this library, which runs the TORCH_LIBRARY registrations (ops.cpp), and
// gives Python an unboxed call of each op for plain arguments (cnnext/functional.py's _fast_call).
//
// torch.ops.cnnext.<op>(...) boxes every argument into an IValue and matches it against the schema on each call,
// about 2.5 us, as much as a convolution of a tiny input costs; PyTorch's own functions (F.conv2d) are bound
// unboxed. These calls read the arguments straight from the Python objects and call the op through the
// dispatcher's typed handle, so autograd, autocast, the profiler and dispatch modes see the same op. Anything
// they do not take plainly raises TypeError and the checked Python path decides: arguments of other types, tensor
// subclasses (their __torch_function__), an active torch function mode.
#include <Python.h>
#include <ATen/PythonTorchFunctionTLS.h>
#include <torch/csrc/Exceptions.h>
#include <torch/csrc/autograd/python_variable.h>
#include <torch/library.h>

#include <array>
#include <optional>

namespace cnnext {
namespace {

struct LeftToCheckedPath : std::exception {};

PyTypeObject* parameter_type = nullptr;  // torch.nn.Parameter: a subclass with no __torch_function__ of its own

const at::Tensor& tensor(PyObject* obj) {
  if (!THPVariable_CheckExact(obj) && Py_TYPE(obj) != parameter_type) throw LeftToCheckedPath();
  return THPVariable_Unpack(obj);
}

std::optional<at::Tensor> optional_tensor(PyObject* obj) {
  return obj == Py_None ? std::nullopt : std::optional<at::Tensor>(tensor(obj));
}

int64_t integer(PyObject* obj) {  // an int, not a bool and not another integral type
  if (!PyLong_CheckExact(obj)) throw LeftToCheckedPath();
  int overflow = 0;
  const long long value = PyLong_AsLongLongAndOverflow(obj, &overflow);
  if (overflow != 0) throw LeftToCheckedPath();
  return value;
}

std::optional<int64_t> optional_integer(PyObject* obj) {
  return obj == Py_None ? std::nullopt : std::optional<int64_t>(integer(obj));
}

bool boolean(PyObject* obj) {
  if (!PyBool_Check(obj)) throw LeftToCheckedPath();
  return obj == Py_True;
}

// An int[N] argument: one int for every axis, or a tuple or list of N ints.
template <size_t N>
std::array<int64_t, N> integers(PyObject* obj) {
  std::array<int64_t, N> values;
  if (PyLong_CheckExact(obj)) {
    values.fill(integer(obj));
    return values;
  }
  if (!(PyTuple_Check(obj) || PyList_Check(obj)) || PySequence_Fast_GET_SIZE(obj) != Py_ssize_t(N)) {
    throw LeftToCheckedPath();
  }
  for (size_t i = 0; i < N; ++i) values[i] = integer(PySequence_Fast_GET_ITEM(obj, i));
  return values;
}

template <typename Signature>
c10::TypedOperatorHandle<Signature> typed_op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Signature>();
}

// Runs `call` (which reads the arguments) and wraps its result; LeftToCheckedPath becomes TypeError, C++ errors
// their Python types (torch's own translation).
template <typename Call>
PyObject* guarded(Py_ssize_t nargs, Py_ssize_t expected, const Call& call) {
  HANDLE_TH_ERRORS
  try {
    if (nargs != expected || at::impl::torch_function_mode_enabled()) throw LeftToCheckedPath();
    return call();
  } catch (const LeftToCheckedPath&) {
    PyErr_SetString(PyExc_TypeError, "cnnext._C: arguments left to the checked path");
    return nullptr;
  }
  END_HANDLE_TH_ERRORS
}

using ConvSignature = at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                                 at::IntArrayRef, at::IntArrayRef, at::IntArrayRef, int64_t);

// conv2d / conv3d(input, weight, bias, stride, padding, dilation, groups)
template <size_t N>
PyObject* conv(const char* name, PyObject* const* args, Py_ssize_t nargs) {
  return guarded(nargs, 7, [&] {
    static const auto op = typed_op<ConvSignature>(name);
    const auto& input = tensor(args[0]);
    const auto& weight = tensor(args[1]);
    const auto bias = optional_tensor(args[2]);
    const auto stride = integers<N>(args[3]), padding = integers<N>(args[4]), dilation = integers<N>(args[5]);
    const int64_t groups = integer(args[6]);
    at::Tensor out;
    {
      pybind11::gil_scoped_release no_gil;
      out = op.call(input, weight, bias, stride, padding, dilation, groups);
    }
    return THPVariable_Wrap(std::move(out));
  });
}

PyObject* conv2d(PyObject*, PyObject* const* args, Py_ssize_t nargs) { return conv<2>("cnnext::conv2d", args, nargs); }
PyObject* conv3d(PyObject*, PyObject* const* args, Py_ssize_t nargs) { return conv<3>("cnnext::conv3d", args, nargs); }

// max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode) -> (out, indices)
PyObject* max_pool2d(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  return guarded(nargs, 6, [&]() -> PyObject* {
    static const auto op = typed_op<std::tuple<at::Tensor, at::Tensor>(
        const at::Tensor&, at::IntArrayRef, at::IntArrayRef, at::IntArrayRef, at::IntArrayRef, bool)>(
        "cnnext::max_pool2d");
    const auto& input = tensor(args[0]);
    const auto kernel = integers<2>(args[1]), stride = integers<2>(args[2]), padding = integers<2>(args[3]),
               dilation = integers<2>(args[4]);
    const bool ceil_mode = boolean(args[5]);
    std::tuple<at::Tensor, at::Tensor> result;
    {
      pybind11::gil_scoped_release no_gil;
      result = op.call(input, kernel, stride, padding, dilation, ceil_mode);
    }
    PyObject* out = THPVariable_Wrap(std::move(std::get<0>(result)));
    PyObject* indices = THPVariable_Wrap(std::move(std::get<1>(result)));
    PyObject* pair = out && indices ? PyTuple_Pack(2, out, indices) : nullptr;
    Py_XDECREF(out);
    Py_XDECREF(indices);
    return pair;
  });
}

// avg_pool2d(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
PyObject* avg_pool2d(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  return guarded(nargs, 7, [&] {
    static const auto op = typed_op<at::Tensor(const at::Tensor&, at::IntArrayRef, at::IntArrayRef, at::IntArrayRef,
                                               bool, bool, std::optional<int64_t>)>("cnnext::avg_pool2d");
    const auto& input = tensor(args[0]);
    const auto kernel = integers<2>(args[1]), stride = integers<2>(args[2]), padding = integers<2>(args[3]);
    const bool ceil_mode = boolean(args[4]), count_include_pad = boolean(args[5]);
    const auto divisor_override = optional_integer(args[6]);
    at::Tensor out;
    {
      pybind11::gil_scoped_release no_gil;
      out = op.call(input, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override);
    }
    return THPVariable_Wrap(std::move(out));
  });
}

PyMethodDef methods[] = {
    {"conv2d", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(conv2d)), METH_FASTCALL, nullptr},
    {"conv3d", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(conv3d)), METH_FASTCALL, nullptr},
    {"max_pool2d", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(max_pool2d)), METH_FASTCALL, nullptr},
    {"avg_pool2d", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(avg_pool2d)), METH_FASTCALL, nullptr},
    {nullptr, nullptr, 0, nullptr}};

}  // namespace
}  // namespace cnnext

extern "C" {
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, cnnext::methods};
  PyObject* parameter_module = PyImport_ImportModule("torch.nn.parameter");
  if (parameter_module == nullptr) return nullptr;
  PyObject* parameter = PyObject_GetAttrString(parameter_module, "Parameter");
  Py_DECREF(parameter_module);
  if (parameter == nullptr) return nullptr;
  cnnext::parameter_type = reinterpret_cast<PyTypeObject*>(parameter);  // kept for the life of the process
  return PyModule_Create(&module_def);
}
}
