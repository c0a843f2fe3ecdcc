// A tiled, register-blocked GEMM whose operands are never stored: a "problem" (see conv2d_implicit_gemm.cuh)
// says how to fetch each operand element, and the kernel builds the tiles on the fly in shared memory.
//
// For every group g the kernel computes
//   C_g[m, n] = sum_d A_g(m, d) * B_g(n, d)        0 <= m < rows, 0 <= n < cols, 0 <= d < depth
// and hands each result to problem.store(). A problem provides:
//   using Element, Acc;                 the tensor type and the accumulation type
//   kADepthContiguous, kBDepthContiguous  whether consecutive d of A (of B) are consecutive in memory
//   rows(), cols(), depth(), groups()
//   a(g, m, d), b(g, n, d)              the operand values (zero in the padding), as Acc
//   store(split, g, m, n, value)        the result of depth split `split` (see split_depth)
//
// Block (bx, by, bz) computes the BM x BN tile (m0, n0) = (bx*BM, (by % n_tiles)*BN) of group by / n_tiles,
// over the bz-th of gridDim.z slices of the depth ("split-K", for GEMMs with few tiles and a long depth).
// Each thread owns TM x TN results, at rows thread_row + i*(BM/TM) and columns thread_col + j*(BN/TN):
// interleaved, so a warp reads shared memory without bank conflicts and writes C in runs of BN/TN.
// The next depth tile is fetched from global memory into registers while the current one is multiplied.
#pragma once
#include "common.cuh"

namespace cnnext::cuda {

template <int BM_, int BN_, int BK_, int TM_, int TN_>
struct TileShape {
  static constexpr int BM = BM_, BN = BN_, BK = BK_, TM = TM_, TN = TN_;
  static constexpr int kThreadRows = BM / TM, kThreadCols = BN / TN;
  static constexpr int kThreads = kThreadRows * kThreadCols;
  static_assert(BM % TM == 0 && BN % TN == 0, "a tile must split evenly into per-thread blocks");
  static_assert(BM * BK % kThreads == 0 && BN * BK % kThreads == 0, "every thread loads the same count");
};

// 256 threads, 8 x 4 results each.
using DefaultTile = TileShape<128, 64, 16, 8, 4>;

// The element (row, d) of a ROWS x BK operand tile that load `j` of thread `tid` fetches. Consecutive
// threads take consecutive addresses in global memory (along d when the operand is contiguous in d, along
// the rows otherwise) so that the loads of a warp coalesce.
template <int ROWS, int BK, int THREADS, bool kDepthContiguous>
struct TileLoads {
  static constexpr int kPerThread = ROWS * BK / THREADS;
  struct Slot {
    int row, d;
  };
  __host__ __device__ static Slot slot(int tid, int j) {
    const int index = tid + j * THREADS;
    return kDepthContiguous ? Slot{index / BK, index % BK} : Slot{index % ROWS, index / ROWS};
  }
};

// The slice [begin, end) of the depth that split `split` of `splits` covers; slices are whole BK tiles.
template <typename Index>
struct DepthRange {
  Index begin, end;
};
template <typename Index>
__host__ __device__ inline DepthRange<Index> split_depth(Index depth, Index splits, Index split, Index bk) {
  // In 64 bits: split * chunk may pass the depth, and the depth may be close to 2^31.
  const int64_t chunk = ceil_div(ceil_div(depth, splits), bk) * bk;
  const int64_t begin = int64_t(split) * chunk < depth ? int64_t(split) * chunk : int64_t(depth);
  return {Index(begin), Index(begin + chunk < depth ? begin + chunk : int64_t(depth))};
}

// The group and the first row and column of the tile that block (bx, by) computes.
template <typename Index>
struct BlockTile {
  Index group, m0, n0;
};
template <typename Tile, typename Index>
__host__ __device__ inline BlockTile<Index> block_tile(Index cols, Index bx, Index by) {
  const Index n_tiles = Index(ceil_div(cols, Tile::BN));
  return {by / n_tiles, bx * Tile::BM, by % n_tiles * Tile::BN};
}

// The launch grid of one implicit GEMM.
struct GemmGrid {
  int64_t m_tiles, n_tiles, groups, splits;
  bool fits() const { return m_tiles <= kMaxGridX && n_tiles * groups <= kMaxGridYZ && splits <= kMaxGridYZ; }
  dim3 dims() const { return dim3(unsigned(m_tiles), unsigned(n_tiles * groups), unsigned(splits)); }
};

template <typename Tile>
GemmGrid gemm_grid(int64_t rows, int64_t cols, int64_t groups, int64_t splits) {
  return {ceil_div(rows, Tile::BM), ceil_div(cols, Tile::BN), groups, splits};
}

// How many depth splits to use: enough for about `target_blocks` blocks in all, while each split still
// covers at least `min_depth_per_split` of the depth and the partial results fit in `max_splits`.
inline int64_t choose_depth_splits(int64_t blocks, int64_t depth, int64_t target_blocks, int64_t min_depth_per_split,
                                   int64_t max_splits) {
  int64_t splits = ceil_div(target_blocks, blocks < 1 ? 1 : blocks);
  const int64_t by_depth = depth / min_depth_per_split;
  if (splits > by_depth) splits = by_depth;
  if (splits > max_splits) splits = max_splits;
  if (splits > kMaxGridYZ) splits = kMaxGridYZ;
  return splits < 1 ? 1 : splits;
}

template <typename Problem, typename Tile>
__global__ void __launch_bounds__(Tile::kThreads, 2) implicit_gemm_kernel(const Problem problem) {
  using Acc = typename Problem::Acc;
  using Index = typename Problem::Index;
  using ALoads = TileLoads<Tile::BM, Tile::BK, Tile::kThreads, Problem::kADepthContiguous>;
  using BLoads = TileLoads<Tile::BN, Tile::BK, Tile::kThreads, Problem::kBDepthContiguous>;
  // One padding column spreads the stores of a warp over the banks.
  __shared__ Acc a_tile[Tile::BK][Tile::BM + 1];
  __shared__ Acc b_tile[Tile::BK][Tile::BN + 1];

  const Index rows = problem.rows(), cols = problem.cols();
  const BlockTile<Index> tile = block_tile<Tile>(cols, Index(blockIdx.x), Index(blockIdx.y));
  const Index group = tile.group, m0 = tile.m0, n0 = tile.n0;
  const DepthRange<Index> range = split_depth(problem.depth(), Index(gridDim.z), Index(blockIdx.z), Index(Tile::BK));
  const int tid = threadIdx.x;
  const int thread_row = tid / Tile::kThreadCols, thread_col = tid % Tile::kThreadCols;

  Acc a_next[ALoads::kPerThread], b_next[BLoads::kPerThread];
  auto fetch = [&](Index d0) {
#pragma unroll
    for (int j = 0; j < ALoads::kPerThread; ++j) {
      const auto slot = ALoads::slot(tid, j);
      const Index m = m0 + slot.row, d = d0 + slot.d;
      a_next[j] = m < rows && d < range.end ? problem.a(group, m, d) : Acc(0);
    }
#pragma unroll
    for (int j = 0; j < BLoads::kPerThread; ++j) {
      const auto slot = BLoads::slot(tid, j);
      const Index n = n0 + slot.row, d = d0 + slot.d;
      b_next[j] = n < cols && d < range.end ? problem.b(group, n, d) : Acc(0);
    }
  };
  auto stash = [&]() {
#pragma unroll
    for (int j = 0; j < ALoads::kPerThread; ++j) {
      const auto slot = ALoads::slot(tid, j);
      a_tile[slot.d][slot.row] = a_next[j];
    }
#pragma unroll
    for (int j = 0; j < BLoads::kPerThread; ++j) {
      const auto slot = BLoads::slot(tid, j);
      b_tile[slot.d][slot.row] = b_next[j];
    }
  };

  Acc acc[Tile::TM][Tile::TN];
#pragma unroll
  for (int i = 0; i < Tile::TM; ++i) {
#pragma unroll
    for (int j = 0; j < Tile::TN; ++j) acc[i][j] = Acc(0);
  }

  fetch(range.begin);
  stash();
  __syncthreads();
  for (Index d0 = range.begin; d0 < range.end; d0 += Tile::BK) {
    const bool more = d0 + Tile::BK < range.end;
    if (more) fetch(d0 + Tile::BK);  // in flight while this tile is multiplied
#pragma unroll
    for (int d = 0; d < Tile::BK; ++d) {
      Acc a_frag[Tile::TM], b_frag[Tile::TN];
#pragma unroll
      for (int i = 0; i < Tile::TM; ++i) a_frag[i] = a_tile[d][thread_row + i * Tile::kThreadRows];
#pragma unroll
      for (int j = 0; j < Tile::TN; ++j) b_frag[j] = b_tile[d][thread_col + j * Tile::kThreadCols];
#pragma unroll
      for (int i = 0; i < Tile::TM; ++i) {
#pragma unroll
        for (int j = 0; j < Tile::TN; ++j) acc[i][j] = fma(a_frag[i], b_frag[j], acc[i][j]);
      }
    }
    __syncthreads();
    if (more) {
      stash();
      __syncthreads();
    }
  }

#pragma unroll
  for (int i = 0; i < Tile::TM; ++i) {
    const Index m = m0 + thread_row + i * Tile::kThreadRows;
#pragma unroll
    for (int j = 0; j < Tile::TN; ++j) {
      const Index n = n0 + thread_col + j * Tile::kThreadCols;
      if (m < rows && n < cols) problem.store(Index(blockIdx.z), group, m, n, acc[i][j]);
    }
  }
}

template <typename Tile = DefaultTile, typename Problem>
void launch_implicit_gemm(const Problem& problem, int64_t splits, cudaStream_t stream) {
  const GemmGrid grid = gemm_grid<Tile>(problem.rows(), problem.cols(), problem.groups(), splits);
  if (grid.m_tiles == 0 || grid.n_tiles == 0) return;  // an empty result (zero channels): nothing to launch
  implicit_gemm_kernel<Problem, Tile><<<grid.dims(), Tile::kThreads, 0, stream>>>(problem);
}

}  // namespace cnnext::cuda
