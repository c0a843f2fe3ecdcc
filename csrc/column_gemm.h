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
  int64_t group_row;   // values in one group's part of a column row: taps * C/groups
  bool pointwise;      // 1x1(x1), stride 1, no padding: the activation rows are the columns, no im2col
};

// Images whose columns fit in `budget_bytes` (at least one).
inline int64_t images_per_chunk(int64_t images, int64_t column_bytes_per_image, int64_t budget_bytes) {
  return std::clamp<int64_t>(budget_bytes / std::max<int64_t>(1, column_bytes_per_image), 1,
                             std::max<int64_t>(images, 1));
}

inline ColumnGemm column_gemm_plan(int64_t images, int64_t out_pixels, int64_t groups, int64_t group_row,
                                   bool pointwise, int64_t elem_size, int64_t budget_bytes) {
  const int64_t column_bytes = out_pixels * groups * group_row * elem_size;
  return {images, out_pixels, images_per_chunk(images, column_bytes, budget_bytes), groups, group_row, pointwise};
}

// The buffer for one chunk's columns; none for a pointwise convolution.
inline at::Tensor column_buffer(const at::Tensor& like, const ColumnGemm& plan) {
  if (plan.pointwise) return at::Tensor();
  return at::empty({plan.chunk * plan.out_pixels, plan.groups, plan.group_row}, like.options());
}

// The columns of images [first, first + n) as [n * out_pixels, G, group_row]: for a pointwise convolution the
// activation rows themselves (so writing them writes the activation), else the start of the buffer.
inline at::Tensor chunk_columns(const at::Tensor& rows, const at::Tensor& buffer, const ColumnGemm& plan,
                                int64_t first, int64_t n) {
  const int64_t count = n * plan.out_pixels;
  if (plan.pointwise) return rows.narrow(0, first * plan.out_pixels, count).view({count, plan.groups, plan.group_row});
  return buffer.narrow(0, 0, count);
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

// `im2col(col, first, n)` fills the columns of images [first, first + n); it is not called for a pointwise
// convolution, whose columns are x_rows themselves.

// out_rows[chunk] = columns[:, g] @ w[g]^T (+ bias), group by group.
template <typename Im2col>
void forward_gemm(const ColumnGemm& plan, const at::Tensor& w, const std::optional<at::Tensor>& bias,
                  const at::Tensor& x_rows, const at::Tensor& out_rows, Im2col&& im2col) {
  const int64_t kg = w.size(1);
  const auto buffer = column_buffer(x_rows, plan);
  for (int64_t first = 0; first < plan.images; first += plan.chunk) {
    const int64_t n = std::min(plan.chunk, plan.images - first);
    auto col = chunk_columns(x_rows, buffer, plan, first, n);
    if (!plan.pointwise) im2col(col, first, n);
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

// For each chunk, the column gradients grad_out[chunk, g] @ w[g] are computed and handed to
// col2im(dcol, first, n), which sums them into grad_input. A pointwise convolution's column gradients are
// written straight into dx_rows and col2im is not called.
template <typename Col2im>
void grad_input_gemm(const ColumnGemm& plan, const at::Tensor& go_rows, const at::Tensor& w,
                     const at::Tensor& dx_rows, Col2im&& col2im) {
  const int64_t kg = w.size(1);
  const auto buffer = column_buffer(dx_rows, plan);
  for (int64_t first = 0; first < plan.images; first += plan.chunk) {
    const int64_t n = std::min(plan.chunk, plan.images - first);
    auto dcol = chunk_columns(dx_rows, buffer, plan, first, n);
    const auto go = go_rows.narrow(0, first * plan.out_pixels, n * plan.out_pixels);
    for (int64_t g = 0; g < plan.groups; ++g) {
      auto dcol_g = dcol.select(1, g);
      at::mm_out(dcol_g, go.narrow(1, g * kg, kg), w[g]);
    }
    if (!plan.pointwise) col2im(dcol, first, n);
  }
}

// grad_weight = sum over chunks of grad_out[chunk, g]^T @ columns[:, g], shaped like `weight`.
template <typename Im2col>
at::Tensor grad_weight_gemm(const ColumnGemm& plan, const at::Tensor& go_rows, const at::Tensor& x_rows,
                            const at::Tensor& weight, Im2col&& im2col) {
  const int64_t kg = weight.size(0) / plan.groups;
  auto dw = at::zeros({plan.groups, kg, plan.group_row}, weight.options());
  const auto buffer = column_buffer(x_rows, plan);
  for (int64_t first = 0; first < plan.images; first += plan.chunk) {
    const int64_t n = std::min(plan.chunk, plan.images - first);
    auto col = chunk_columns(x_rows, buffer, plan, first, n);
    if (!plan.pointwise) im2col(col, first, n);
    const auto go = go_rows.narrow(0, first * plan.out_pixels, n * plan.out_pixels);
    for (int64_t g = 0; g < plan.groups; ++g) {
      dw[g].addmm_(go.narrow(1, g * kg, kg).t(), col.select(1, g));
    }
  }
  return weight_from_matrices(dw, weight);
}

}  // namespace cnnext
