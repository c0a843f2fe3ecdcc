// Winograd F(2x2, 3x3) convolutions on the CPU (Lavin and Gray, 2016) for 3x3 stride-1 Conv2d layers of moderate
// width (and a Conv3d of depth 1 with a 1x3x3 kernel). Each 2x2 block of output pixels (a tile) comes from a 4x4 input patch: transformed (B^T d B), the patch's
// 16 values per channel meet the 16 transformed weights (G g G^T) in 16 independent products over the input
// channels, and the 16 results give the 2x2 outputs (A^T m A): 16 multiply-adds per tile and channel pair where
// the direct convolution does 36. The 16 products are tap_tile GEMMs (rows: tiles, reduction: input channels,
// lanes: output channels); tiles go in chunks whose transformed inputs and products stay in L2. Grad input is the
// forward convolution of grad_output with the flipped, transposed weight (direct_conv.cpp); grad weight runs
// F(3x3, 2x2), below. float32.
#pragma once
#include <ATen/ATen.h>

#include "../conv_params.h"

namespace cnnext::cpu {

bool winograd_applies(const Conv3dShape& s, const Conv3dParams& p);
// How winograd_forward reads its weight: as given, or flipped along the kernel axes with input and output channels
// swapped (grad input's weight), read in place through the weight's strides.
enum class WinogradWeight { as_given, flipped_transposed };
// out = conv(input, weight) + bias (bias may be null) in `format`; input and weight float32.
at::Tensor winograd_forward(const at::Tensor& input, const at::Tensor& weight, WinogradWeight use, const float* bias,
                            const Conv3dShape& s, const Conv3dParams& p, at::MemoryFormat format);

// grad weight [K, C, (1,) 3, 3] float32 of the same layers, by F(3x3, 2x2), up to 256 x 256 channels.
bool winograd_grad_weight_applies(const Conv3dShape& s, const Conv3dParams& p);
at::Tensor winograd_grad_weight(const at::Tensor& grad_output, const at::Tensor& input, const Conv3dShape& s,
                                const Conv3dParams& p);

}  // namespace cnnext::cpu
