// Instantiates every Conv3d kernel template of csrc/cuda/kernels/conv3d_vol2col.cuh for every dtype and
// index type, so that tests/test_cuda_compile.py makes nvcc compile all of their device code.
#include "../../csrc/cuda/kernels/conv3d_vol2col.cuh"

namespace cnnext::cuda {

#define CNNEXT_INSTANTIATE_CONV3D(T, Index)                                                          \
  template void launch_vol2col<T, Index>(const Conv3dGeometry<Index>&, const T*, T*, cudaStream_t); \
  template void launch_col2vol<T, Index>(const Conv3dGeometry<Index>&, const T*, T*, cudaStream_t);

#define CNNEXT_INSTANTIATE_CONV3D_DTYPE(T) \
  CNNEXT_INSTANTIATE_CONV3D(T, int32_t)    \
  CNNEXT_INSTANTIATE_CONV3D(T, int64_t)

CNNEXT_INSTANTIATE_CONV3D_DTYPE(float)
CNNEXT_INSTANTIATE_CONV3D_DTYPE(double)
CNNEXT_INSTANTIATE_CONV3D_DTYPE(__half)
CNNEXT_INSTANTIATE_CONV3D_DTYPE(__nv_bfloat16)

}  // namespace cnnext::cuda
