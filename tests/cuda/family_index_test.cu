// A host program that runs the per-element functions of the Conv3d and pooling CUDA kernels
// (csrc/cuda/kernels/conv3d_vol2col.cuh, pool2d.cuh) on the CPU, in double, so that
// tests/test_cuda_family_index.py can compare their index math with PyTorch without a GPU.
//
// stdin, one case after another (sizes on the first line, then one line per tensor):
//   max    planes h w ho wo kh kw sh sw ph pw dh dw            / x / dy
//   avg    planes h w ho wo kh kw sh sw ph pw include_pad div  / x / dy      (div 0: no override)
//   conv3d n c d h w k t r s od oh ow sd sh sw pd ph pw dd dh dw groups / x [N,D,H,W,C] / w [K,T,R,S,Cg]
//          / dy [N,Do,Ho,Wo,K]
// stdout, per case: one line per result tensor (max: y, indices, dx; avg: y, dx; conv3d: y, dx), then "end".
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "../../csrc/cuda/kernels/conv3d_vol2col.cuh"
#include "../../csrc/cuda/kernels/pool2d.cuh"

using namespace cnnext::cuda;

namespace {

std::vector<double> read_values(int64_t count) {
  std::vector<double> values(static_cast<size_t>(count));
  for (auto& v : values) std::cin >> v;
  return values;
}

template <typename T>
void print_values(const std::vector<T>& values) {
  for (size_t i = 0; i < values.size(); ++i) {
    std::printf(i ? " %.17g" : "%.17g", static_cast<double>(values[i]));
  }
  std::printf("\n");
}

void run_max() {
  Pool2dGeometry<int64_t> g{};
  std::cin >> g.planes >> g.h >> g.w >> g.ho >> g.wo >> g.kernel_h >> g.kernel_w >> g.stride_h >> g.stride_w >>
      g.pad_h >> g.pad_w >> g.dil_h >> g.dil_w;
  const auto x = read_values(g.planes * g.h * g.w), dy = read_values(g.planes * g.ho * g.wo);
  std::vector<double> y(dy.size());
  std::vector<int64_t> indices(dy.size());
  for (int64_t i = 0; i < int64_t(y.size()); ++i) y[i] = max_pool2d_value(g, x.data(), i, indices[i]);
  std::vector<double> dx(x.size());
  for (int64_t i = 0; i < int64_t(dx.size()); ++i) dx[i] = max_pool2d_grad(g, dy.data(), indices.data(), i);
  print_values(y);
  print_values(indices);
  print_values(dx);
}

void run_avg() {
  Pool2dGeometry<int64_t> g{};
  int64_t include_pad = 0, divisor = 0;
  std::cin >> g.planes >> g.h >> g.w >> g.ho >> g.wo >> g.kernel_h >> g.kernel_w >> g.stride_h >> g.stride_w >>
      g.pad_h >> g.pad_w >> include_pad >> divisor;
  g.dil_h = g.dil_w = 1;
  const auto x = read_values(g.planes * g.h * g.w), dy = read_values(g.planes * g.ho * g.wo);
  std::vector<double> y(dy.size()), dx(x.size());
  for (int64_t i = 0; i < int64_t(y.size()); ++i) y[i] = avg_pool2d_value(g, x.data(), i, include_pad != 0, divisor);
  for (int64_t i = 0; i < int64_t(dx.size()); ++i) dx[i] = avg_pool2d_grad(g, dy.data(), i, include_pad != 0, divisor);
  print_values(y);
  print_values(dx);
}

// The launcher's GEMMs, as loops: y = col @ w^T per group; dcol = dy @ w per group, then col2vol.
void run_conv3d() {
  Conv3dGeometry<int64_t> g{};
  std::cin >> g.n >> g.c >> g.d >> g.h >> g.w >> g.k >> g.t >> g.r >> g.s >> g.out_d >> g.out_h >> g.out_w >>
      g.stride_d >> g.stride_h >> g.stride_w >> g.pad_d >> g.pad_h >> g.pad_w >> g.dil_d >> g.dil_h >> g.dil_w >>
      g.groups;
  const int64_t rows = g.n * g.out_d * g.out_h * g.out_w, depth = g.taps() * g.cg(), kg = g.k / g.groups;
  const auto x = read_values(g.n * g.d * g.h * g.w * g.c), w = read_values(g.k * depth), dy = read_values(rows * g.k);
  std::vector<double> col(static_cast<size_t>(rows * g.row_length()));
  for (int64_t i = 0; i < int64_t(col.size()); ++i) {
    const int64_t source = vol2col_source(g, i);
    col[i] = source >= 0 ? x[source] : 0.0;
  }
  std::vector<double> y(static_cast<size_t>(rows * g.k)), dcol(col.size());
  for (int64_t m = 0; m < rows; ++m) {
    for (int64_t group = 0; group < g.groups; ++group) {
      const double* col_row = &col[(m * g.groups + group) * depth];
      double* dcol_row = &dcol[(m * g.groups + group) * depth];
      for (int64_t kk = 0; kk < kg; ++kk) {
        const int64_t channel = group * kg + kk;
        const double* w_row = &w[channel * depth];
        double sum = 0;
        for (int64_t j = 0; j < depth; ++j) {
          sum += col_row[j] * w_row[j];
          dcol_row[j] += dy[m * g.k + channel] * w_row[j];
        }
        y[m * g.k + channel] = sum;
      }
    }
  }
  std::vector<double> dx(x.size());
  for (int64_t i = 0; i < int64_t(dx.size()); ++i) dx[i] = col2vol_value(g, dcol.data(), i);
  print_values(y);
  print_values(dx);
}

}  // namespace

int main() {
  std::string kind;
  while (std::cin >> kind) {
    if (kind == "max") {
      run_max();
    } else if (kind == "avg") {
      run_avg();
    } else if (kind == "conv3d") {
      run_conv3d();
    } else {
      std::fprintf(stderr, "unknown case kind '%s'\n", kind.c_str());
      return 2;
    }
    std::printf("end\n");
  }
  return 0;
}
