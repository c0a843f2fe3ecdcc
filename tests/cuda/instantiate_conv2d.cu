// Instantiates every Conv2d kernel template of csrc/cuda/kernels/ for every dtype and index type, so that
// tests/test_cuda_compile.py makes nvcc compile all of their device code (CI has nvcc but no GPU).
#include "../../csrc/cuda/kernels/conv2d_im2col.cuh"
#include "../../csrc/cuda/kernels/conv2d_implicit_gemm.cuh"
#include "../../csrc/cuda/kernels/conv2d_path.cuh"  // host code only: the path choice

namespace cnnext::cuda {

#define CNNEXT_INSTANTIATE_CONV2D(T, Index)                                                                  \
  template void launch_im2col<T, Index>(const Conv2dGeometry<Index>&, const T*, T*, cudaStream_t);           \
  template void launch_col2im<T, Index>(const Conv2dGeometry<Index>&, const T*, T*, cudaStream_t);           \
  template void launch_implicit_gemm<DefaultTile, Conv2dForwardGemm<T, Index>>(                              \
      const Conv2dForwardGemm<T, Index>&, int64_t, cudaStream_t);                                            \
  template void launch_implicit_gemm<DefaultTile, Conv2dGradInputGemm<T, Index>>(                            \
      const Conv2dGradInputGemm<T, Index>&, int64_t, cudaStream_t);                                          \
  template void launch_implicit_gemm<DefaultTile, Conv2dGradWeightGemm<T, Index>>(                           \
      const Conv2dGradWeightGemm<T, Index>&, int64_t, cudaStream_t);

#define CNNEXT_INSTANTIATE_CONV2D_DTYPE(T)                                                                   \
  CNNEXT_INSTANTIATE_CONV2D(T, int32_t)                                                                      \
  CNNEXT_INSTANTIATE_CONV2D(T, int64_t)                                                                      \
  template void launch_reduce_partial_sums<T, acc_t<T>>(const acc_t<T>*, int64_t, int64_t, T*, cudaStream_t);

CNNEXT_INSTANTIATE_CONV2D_DTYPE(float)
CNNEXT_INSTANTIATE_CONV2D_DTYPE(double)
CNNEXT_INSTANTIATE_CONV2D_DTYPE(__half)
CNNEXT_INSTANTIATE_CONV2D_DTYPE(__nv_bfloat16)

}  // namespace cnnext::cuda
