// Depthwise convolutions of NCHW tensors on the CPU (depthwise_conv.h).
#include "depthwise_conv.h"

#include "conv_layout.h"

namespace cnnext::cpu {

bool depthwise_forward_applies(const at::Tensor& input, const Shape& s, const Params& p, at::MemoryFormat format) {
  bool depthwise = p.groups > 1 && p.groups == s.c && p.groups == s.k && input.scalar_type() == at::kFloat &&
                   format == at::MemoryFormat::Contiguous && input.dim() == 4 && input.is_contiguous();
  for (int a = 0; a < 3; ++a) depthwise = depthwise && p.stride[a] == 1;
  return depthwise && s.out[W] >= kLanes;
}

at::Tensor depthwise_forward(const at::Tensor& input, const at::Tensor& weight, const float* bias, const Shape& s,
                             const Params& p) {
  const int64_t planes = s.n * s.c, in_h = s.in[H], in_w = s.in[W], out_h = s.out[H], out_w = s.out[W];
  const int64_t padded_h = in_h + 2 * p.pad[H], padded_w = in_w + 2 * p.pad[W], taps = s.kernel[H] * s.kernel[W];
  const auto w = weight.contiguous();
  const float* x = input.data_ptr<float>();
  const float* wk = w.data_ptr<float>();
  auto out = at::empty({s.n, s.k, out_h, out_w}, input.options());
  float* y = out.data_ptr<float>();
  for_range(worth_threads(planes * out_h * out_w * taps), planes, [&](int64_t begin, int64_t end) {
    // Zero borders written once: each plane overwrites only the interior. Slack for the kernel's whole vectors
    // and whole tiles of rows (depthwise_rows_avx512).
    std::vector<float> padded((padded_h + kernels::kDepthwiseRows) * padded_w + 4 * kLanes, 0.0f);
    for (int64_t plane = begin; plane < end; ++plane) {
      const int64_t c = plane % s.c;
      for (int64_t row = 0; row < in_h; ++row) {
        std::copy_n(x + (plane * in_h + row) * in_w, in_w, padded.data() + (row + p.pad[H]) * padded_w + p.pad[W]);
      }
      for (int64_t oh = 0; oh < out_h; oh += kernels::kDepthwiseRows) {
        kernels::depthwise_rows_avx512(padded.data() + oh * padded_w, padded_w, wk + c * taps,
                                       static_cast<int>(s.kernel[H]), static_cast<int>(s.kernel[W]), p.dil[H],
                                       p.dil[W], bias ? bias[c] : 0.0f, y + (plane * out_h + oh) * out_w, out_w,
                                       static_cast<int>(std::min<int64_t>(kernels::kDepthwiseRows, out_h - oh)),
                                       out_w);
      }
    }
  });
  return out;
}

}  // namespace cnnext::cpu
