// Instantiates every pooling kernel template of csrc/cuda/kernels/pool2d.cuh for every dtype and index
// type, so that tests/test_cuda_compile.py makes nvcc compile all of their device code.
#include "../../csrc/cuda/kernels/pool2d.cuh"

namespace cnnext::cuda {

#define CNNEXT_INSTANTIATE_POOL2D(T, Index)                                                                       \
  template void launch_max_pool2d<T, Index>(const Pool2dGeometry<Index>&, const T*, T*, int64_t*, cudaStream_t); \
  template void launch_max_pool2d_backward<T, Index>(const Pool2dGeometry<Index>&, const T*, const int64_t*, T*,  \
                                                     cudaStream_t);                                               \
  template void launch_avg_pool2d<T, Index>(const Pool2dGeometry<Index>&, const T*, T*, bool, Index,              \
                                            cudaStream_t);                                                        \
  template void launch_avg_pool2d_backward<T, Index>(const Pool2dGeometry<Index>&, const T*, T*, bool, Index,     \
                                                     cudaStream_t);

#define CNNEXT_INSTANTIATE_POOL2D_DTYPE(T) \
  CNNEXT_INSTANTIATE_POOL2D(T, int32_t)    \
  CNNEXT_INSTANTIATE_POOL2D(T, int64_t)

CNNEXT_INSTANTIATE_POOL2D_DTYPE(float)
CNNEXT_INSTANTIATE_POOL2D_DTYPE(double)
CNNEXT_INSTANTIATE_POOL2D_DTYPE(__half)
CNNEXT_INSTANTIATE_POOL2D_DTYPE(__nv_bfloat16)

}  // namespace cnnext::cuda
