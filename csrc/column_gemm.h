// The GEMM half of every im2col (vol2col) convolution, shared by Conv2d and Conv3d on the CPU and on CUDA:
// only the kernels that build the columns and add them back (im2col, col2im) differ per device and dimension.
//
// Tensors are used channels-last, so an activation [N, C, *spatial] is the matrix [N * pixels, C]. The columns
// of n images are [n * out_pixels, G, taps * C/G] and the weights [G, K/G, taps * C/G] (taps outer, channels
// inner), so one GEMM per group gives output rows directly. The batch is worked through in chunks of
// `ColumnGemm::chunk` images, which bounds the column buffer whatever the batch size.
#pragma once
#include <ATen/ATen.h>

#include <algorithm>
#include <vector>

namespace cnnext {

struct ColumnGemm {
  int64_t images;      // batch size N
  int64_t out_pixels;  // output pixels (voxels) per image
  int64_t chunk;       // images per column buffer
  int64_t groups;
};

// Images whose columns fit in `budget_bytes` (at least one).
inline int64_t images_per_chunk(int64_t images, int64_t column_bytes_per_image, int64_t budget_bytes) {
  return std::clamp<int64_t>(budget_bytes / std::max<int64_t>(1, column_bytes_per_image), 1,
                             std::max<int64_t>(images, 1));
}

// [N, C, *spatial] -> [N, *spatial, C]: the order of a channels-last tensor's memory.
inline std::vector<int64_t> channels_last_order(int64_t dim) {
  std::vector<int64_t> order{0};
  for (int64_t d = 2; d < dim; ++d) order.push_back(d);
  order.push_back(1);
  return order;
}

// A channels-last tensor [N, C, *spatial] seen as the matrix [N * pixels, C] (a view, no copy).
inline at::Tensor pixel_rows(const at::Tensor& t_cl) {
  const int64_t channels = t_cl.size(1);
  int64_t rows = t_cl.size(0);
  for (int64_t d = 2; d < t_cl.dim(); ++d) rows *= t_cl.size(d);
  return t_cl.permute(channels_last_order(t_cl.dim())).view({rows, channels});
}

// weight [K, C/G, *kernel] -> [G, K/G, taps * C/G], the order of a column row.
inline at::Tensor weight_matrices(const at::Tensor& weight, int64_t groups) {
  const int64_t k = weight.size(0);
  return weight.permute(channels_last_order(weight.dim())).contiguous().view({groups, k / groups, weight.numel() / k});
}

// The inverse of weight_matrices: [G, K/G, taps * C/G] -> a contiguous tensor shaped like `weight`.
inline at::Tensor weight_from_matrices(const at::Tensor& matrices, const at::Tensor& weight) {
  std::vector<int64_t> kernel_first{weight.size(0)}, order{0, weight.dim() - 1};
  for (int64_t d = 2; d < weight.dim(); ++d) {
    kernel_first.push_back(weight.size(d));
    order.push_back(d - 1);
  }
  kernel_first.push_back(weight.size(1));
  return matrices.reshape(kernel_first).permute(order).contiguous();
}

// out_rows[chunk] = columns(first, n)[:, g] @ w[g]^T (+ bias), group by group.
template <typename Columns>
void forward_gemm(const ColumnGemm& plan, const at::Tensor& w, const std::optional<at::Tensor>& bias,
                  const at::Tensor& out_rows, Columns&& columns) {
  const int64_t kg = w.size(1);
  for (int64_t first = 0; first < plan.images; first += plan.chunk) {
    const int64_t n = std::min(plan.chunk, plan.images - first);
    const auto col = columns(first, n);
    const auto out = out_rows.narrow(0, first * plan.out_pixels, n * plan.out_pixels);
    for (int64_t g = 0; g < plan.groups; ++g) {
      auto out_g = out.narrow(1, g * kg, kg);
      if (bias.has_value() && bias->defined()) {
        at::addmm_out(out_g, bias->narrow(0, g * kg, kg), col.select(1, g), w[g].t());
      } else {
        at::mm_out(out_g, col.select(1, g), w[g].t());
      }
    }
  }
}

// For each chunk, the column gradients grad_out[chunk, g] @ w[g] are written into column_grads(first, n) and
// then handed to add_to_input(dcol, first, n), the col2im that sums them into grad_input.
template <typename ColumnGrads, typename AddToInput>
void grad_input_gemm(const ColumnGemm& plan, const at::Tensor& go_rows, const at::Tensor& w,
                     ColumnGrads&& column_grads, AddToInput&& add_to_input) {
  const int64_t kg = w.size(1);
  for (int64_t first = 0; first < plan.images; first += plan.chunk) {
    const int64_t n = std::min(plan.chunk, plan.images - first);
    auto dcol = column_grads(first, n);
    const auto go = go_rows.narrow(0, first * plan.out_pixels, n * plan.out_pixels);
    for (int64_t g = 0; g < plan.groups; ++g) {
      auto dcol_g = dcol.select(1, g);
      at::mm_out(dcol_g, go.narrow(1, g * kg, kg), w[g]);
    }
    add_to_input(dcol, first, n);
  }
}

// grad_weight = sum over chunks of grad_out[chunk, g]^T @ columns(first, n)[:, g], shaped like `weight`.
template <typename Columns>
at::Tensor grad_weight_gemm(const ColumnGemm& plan, const at::Tensor& go_rows, const at::Tensor& weight,
                            Columns&& columns) {
  const int64_t kg = weight.size(0) / plan.groups;
  auto dw = at::zeros({plan.groups, kg, weight.numel() / weight.size(0)}, weight.options());
  for (int64_t first = 0; first < plan.images; first += plan.chunk) {
    const int64_t n = std::min(plan.chunk, plan.images - first);
    const auto col = columns(first, n);
    const auto go = go_rows.narrow(0, first * plan.out_pixels, n * plan.out_pixels);
    for (int64_t g = 0; g < plan.groups; ++g) {
      dw[g].addmm_(go.narrow(1, g * kg, kg).t(), col.select(1, g));
    }
  }
  return weight_from_matrices(dw, weight);
}

}  // namespace cnnext
