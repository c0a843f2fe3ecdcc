// Checks, on the CPU, the index math of the CUDA Conv2d kernels (csrc/cuda/kernels/): it runs the very
// __host__ __device__ functions the kernels call (operand fetches, stores, tile/thread/split mapping,
// im2col/col2im) in a sequential emulation of the kernels' tiling and compares the result with a plain
// loop convolution. It cannot find races or synchronisation bugs: those need a GPU (tests/test_cuda.py).
//
// Built and run by tests/test_cuda_compile.py. Reads one convolution per line from stdin:
//   n c h w k r s stride_h stride_w pad_h pad_w dil_h dil_w groups
// and prints "ok" or "FAIL ..." per line (and for the self-contained checks first); exits 1 on any failure.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "../../csrc/cuda/kernels/conv2d_im2col.cuh"
#include "../../csrc/cuda/kernels/conv2d_implicit_gemm.cuh"
#include "../../csrc/cuda/kernels/conv2d_path.cuh"

using namespace cnnext::cuda;

namespace {

int failures = 0;

void expect(bool ok, const std::string& what) {
  if (!ok) {
    ++failures;
    std::printf("FAIL %s\n", what.c_str());
  }
}

std::vector<double> random_values(int64_t count, uint64_t seed) {
  std::vector<double> values(count);
  for (auto& v : values) {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    v = double(seed >> 11) / double(1ULL << 53) * 2.0 - 1.0;
  }
  return values;
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double worst = a.size() == b.size() ? 0.0 : INFINITY;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    const double diff = std::fabs(a[i] - b[i]);
    worst = std::isnan(diff) ? INFINITY : std::fmax(worst, diff);  // an unwritten (NaN) result fails
  }
  return worst;
}

struct Tensors {
  std::vector<double> x, w, bias, dy;               // inputs
  std::vector<double> y, dx, dw;                    // reference results
};

// The textbook loops, with their own index arithmetic (x [N,H,W,C], y/dy [N,Ho,Wo,K], w [K,R,S,Cg]).
Tensors reference(const Conv2dGeometry<int64_t>& g) {
  Tensors t;
  const int64_t cg = g.c / g.groups, kg = g.k / g.groups;
  t.x = random_values(g.n * g.h * g.w * g.c, 1);
  t.w = random_values(g.k * g.r * g.s * cg, 2);
  t.bias = random_values(g.k, 3);
  t.dy = random_values(g.n * g.ho * g.wo * g.k, 4);
  t.y.assign(t.dy.size(), 0.0);
  t.dx.assign(t.x.size(), 0.0);
  t.dw.assign(t.w.size(), 0.0);
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t oh = 0; oh < g.ho; ++oh)
      for (int64_t ow = 0; ow < g.wo; ++ow)
        for (int64_t k = 0; k < g.k; ++k) {
          const int64_t out = ((n * g.ho + oh) * g.wo + ow) * g.k + k;
          double sum = t.bias[k];
          for (int64_t r = 0; r < g.r; ++r)
            for (int64_t s = 0; s < g.s; ++s)
              for (int64_t c = 0; c < cg; ++c) {
                const int64_t ih = oh * g.stride_h - g.pad_h + r * g.dil_h;
                const int64_t iw = ow * g.stride_w - g.pad_w + s * g.dil_w;
                if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) continue;
                const int64_t in = ((n * g.h + ih) * g.w + iw) * g.c + (k / kg) * cg + c;
                const int64_t wi = ((k * g.r + r) * g.s + s) * cg + c;
                sum += t.x[in] * t.w[wi];
                t.dx[in] += t.dy[out] * t.w[wi];
                t.dw[wi] += t.dy[out] * t.x[in];
              }
          t.y[out] = sum;
        }
  return t;
}

// The implicit-GEMM kernel run block by block and thread by thread on the CPU, through the same
// grid, tile, load-slot and depth-split functions; unfilled shared-memory slots stay NaN and show.
template <typename Tile, typename Problem>
void emulate_implicit_gemm(const Problem& problem, int64_t splits) {
  using Acc = typename Problem::Acc;
  using Index = typename Problem::Index;
  using ALoads = TileLoads<Tile::BM, Tile::BK, Tile::kThreads, Problem::kADepthContiguous>;
  using BLoads = TileLoads<Tile::BN, Tile::BK, Tile::kThreads, Problem::kBDepthContiguous>;
  const GemmGrid grid = gemm_grid<Tile>(problem.rows(), problem.cols(), problem.groups(), splits);
  const Index rows = problem.rows(), cols = problem.cols();
  std::vector<Acc> a_tile(Tile::BK * Tile::BM), b_tile(Tile::BK * Tile::BN), acc(Tile::BM * Tile::BN);
  for (int64_t bz = 0; bz < grid.splits; ++bz)
    for (int64_t by = 0; by < grid.n_tiles * grid.groups; ++by)
      for (int64_t bx = 0; bx < grid.m_tiles; ++bx) {
        const BlockTile<Index> tile = block_tile<Tile>(cols, Index(bx), Index(by));
        const DepthRange<Index> range = split_depth(problem.depth(), Index(splits), Index(bz), Index(Tile::BK));
        std::fill(acc.begin(), acc.end(), Acc(0));
        for (Index d0 = range.begin; d0 < range.end; d0 += Tile::BK) {
          std::fill(a_tile.begin(), a_tile.end(), Acc(NAN));
          std::fill(b_tile.begin(), b_tile.end(), Acc(NAN));
          for (int tid = 0; tid < Tile::kThreads; ++tid) {
            for (int j = 0; j < ALoads::kPerThread; ++j) {
              const auto slot = ALoads::slot(tid, j);
              const Index m = tile.m0 + slot.row, d = d0 + slot.d;
              a_tile[slot.d * Tile::BM + slot.row] = m < rows && d < range.end ? problem.a(tile.group, m, d) : Acc(0);
            }
            for (int j = 0; j < BLoads::kPerThread; ++j) {
              const auto slot = BLoads::slot(tid, j);
              const Index n = tile.n0 + slot.row, d = d0 + slot.d;
              b_tile[slot.d * Tile::BN + slot.row] = n < cols && d < range.end ? problem.b(tile.group, n, d) : Acc(0);
            }
          }
          for (int tid = 0; tid < Tile::kThreads; ++tid) {
            const int thread_row = tid / Tile::kThreadCols, thread_col = tid % Tile::kThreadCols;
            for (int d = 0; d < Tile::BK; ++d)
              for (int i = 0; i < Tile::TM; ++i)
                for (int j = 0; j < Tile::TN; ++j) {
                  const int row = thread_row + i * Tile::kThreadRows, col = thread_col + j * Tile::kThreadCols;
                  acc[row * Tile::BN + col] += a_tile[d * Tile::BM + row] * b_tile[d * Tile::BN + col];
                }
          }
        }
        for (int tid = 0; tid < Tile::kThreads; ++tid) {
          const int thread_row = tid / Tile::kThreadCols, thread_col = tid % Tile::kThreadCols;
          for (int i = 0; i < Tile::TM; ++i)
            for (int j = 0; j < Tile::TN; ++j) {
              const int row = thread_row + i * Tile::kThreadRows, col = thread_col + j * Tile::kThreadCols;
              const Index m = tile.m0 + row, n = tile.n0 + col;
              if (m < rows && n < cols) problem.store(Index(bz), tile.group, m, n, acc[row * Tile::BN + col]);
            }
        }
      }
}

// A smaller tile too, so that small shapes still cover several tiles, splits and partial tiles.
using SmallTile = TileShape<16, 8, 4, 2, 2>;

template <typename Tile, typename Index>
void check_implicit_gemm(const Conv2dGeometry<int64_t>& g64, const Tensors& t, const std::string& name) {
  const Conv2dGeometry<Index> g = g64.as<Index>();
  const double tol = 1e-9;
  std::vector<double> y(t.y.size(), NAN), dx(t.dx.size(), NAN), dw(t.dw.size(), NAN);
  emulate_implicit_gemm<Tile>(Conv2dForwardGemm<double, Index>{g, t.x.data(), t.w.data(), t.bias.data(), y.data()}, 1);
  expect(max_abs_diff(y, t.y) < tol, name + ": implicit-GEMM forward");
  emulate_implicit_gemm<Tile>(Conv2dGradInputGemm<double, Index>{g, t.dy.data(), t.w.data(), dx.data()}, 1);
  expect(max_abs_diff(dx, t.dx) < tol, name + ": implicit-GEMM grad_input");
  const int64_t depth = g64.n * g64.ho * g64.wo;
  for (int64_t splits : {int64_t(1), int64_t(3), choose_depth_splits(1, depth, 64, Tile::BK, 16)}) {
    std::vector<double> partial(splits * t.dw.size(), NAN);
    emulate_implicit_gemm<Tile>(Conv2dGradWeightGemm<double, Index>{g, t.x.data(), t.dy.data(), partial.data()},
                                splits);
    for (size_t i = 0; i < dw.size(); ++i) {  // what reduce_partial_sums_kernel does
      dw[i] = 0;
      for (int64_t split = 0; split < splits; ++split) dw[i] += partial[split * dw.size() + i];
    }
    expect(max_abs_diff(dw, t.dw) < tol, name + ": implicit-GEMM grad_weight, splits=" + std::to_string(splits));
  }
}

// The im2col path: columns from im2col_source, the per-group GEMMs as loops, grad_input through col2im_value.
template <typename Index>
void check_im2col(const Conv2dGeometry<int64_t>& g64, const Tensors& t, const std::string& name) {
  const Conv2dGeometry<Index> g = g64.as<Index>();
  const int64_t cg = g64.c / g64.groups, kg = g64.k / g64.groups, group_length = g64.r * g64.s * cg;
  const int64_t pixels = g64.n * g64.ho * g64.wo, row_length = g64.groups * group_length;
  std::vector<double> col(pixels * row_length), dcol(col.size(), 0.0), y(t.y.size()), dx(t.dx.size());
  for (int64_t i = 0; i < int64_t(col.size()); ++i) {
    const Index source = im2col_source(g, Index(i));
    col[i] = source >= 0 ? t.x[source] : 0.0;
  }
  for (int64_t m = 0; m < pixels; ++m)
    for (int64_t k = 0; k < g64.k; ++k) {
      const int64_t group = k / kg;
      double sum = t.bias[k];
      for (int64_t e = 0; e < group_length; ++e) {
        sum += col[m * row_length + group * group_length + e] * t.w[k * group_length + e];
        dcol[m * row_length + group * group_length + e] += t.dy[m * g64.k + k] * t.w[k * group_length + e];
      }
      y[m * g64.k + k] = sum;
    }
  for (int64_t i = 0; i < int64_t(dx.size()); ++i) dx[i] = col2im_value(g, dcol.data(), Index(i));
  expect(max_abs_diff(y, t.y) < 1e-9, name + ": im2col forward");
  expect(max_abs_diff(dx, t.dx) < 1e-9, name + ": col2im grad_input");
}

// The half types go through the same fetch/store code with float accumulation.
void check_half_forward(const Conv2dGeometry<int64_t>& g64, const Tensors& t, const std::string& name) {
  const auto g = g64.as<int32_t>();
  std::vector<__half> x(t.x.size()), w(t.w.size()), bias(t.bias.size()), y(t.y.size());
  for (size_t i = 0; i < x.size(); ++i) x[i] = __float2half_rn(float(t.x[i]));
  for (size_t i = 0; i < w.size(); ++i) w[i] = __float2half_rn(float(t.w[i]));
  for (size_t i = 0; i < bias.size(); ++i) bias[i] = __float2half_rn(float(t.bias[i]));
  emulate_implicit_gemm<SmallTile>(Conv2dForwardGemm<__half, int32_t>{g, x.data(), w.data(), bias.data(), y.data()}, 1);
  std::vector<double> y_double(y.size());
  for (size_t i = 0; i < y.size(); ++i) y_double[i] = __half2float(y[i]);
  const double scale = std::fmax(1.0, std::sqrt(double(g64.r * g64.s * g64.c / g64.groups)));
  expect(max_abs_diff(y_double, t.y) < 2e-2 * scale, name + ": float16 implicit-GEMM forward");
}

template <int ROWS, int BK, int THREADS, bool kDepthContiguous>
void check_tile_loads() {
  using Loads = TileLoads<ROWS, BK, THREADS, kDepthContiguous>;
  std::vector<int> hits(ROWS * BK, 0);
  for (int tid = 0; tid < THREADS; ++tid)
    for (int j = 0; j < Loads::kPerThread; ++j) {
      const auto slot = Loads::slot(tid, j);
      if (slot.row >= 0 && slot.row < ROWS && slot.d >= 0 && slot.d < BK) ++hits[slot.d * ROWS + slot.row];
    }
  bool once = true;
  for (int h : hits) once = once && h == 1;
  expect(once, "TileLoads<" + std::to_string(ROWS) + ", " + std::to_string(BK) + ", " + std::to_string(THREADS) +
                   (kDepthContiguous ? ", depth-contiguous" : ", row-contiguous") + "> loads each element once");
  // Coalescing: threads 0 and 1 fetch neighbours along the contiguous dimension.
  const auto first = Loads::slot(0, 0), second = Loads::slot(1, 0);
  expect(kDepthContiguous ? (second.d == first.d + 1 && second.row == first.row)
                          : (second.row == first.row + 1 && second.d == first.d),
         "TileLoads: neighbouring threads fetch neighbouring addresses");
}

void check_mapping_helpers() {
  check_tile_loads<DefaultTile::BM, DefaultTile::BK, DefaultTile::kThreads, true>();
  check_tile_loads<DefaultTile::BM, DefaultTile::BK, DefaultTile::kThreads, false>();
  check_tile_loads<DefaultTile::BN, DefaultTile::BK, DefaultTile::kThreads, true>();
  check_tile_loads<DefaultTile::BN, DefaultTile::BK, DefaultTile::kThreads, false>();

  for (int64_t depth : {1, 15, 16, 17, 100, 1000, 131072})
    for (int64_t splits : {1, 2, 3, 7, 64}) {
      int64_t next = 0;
      bool ok = true;
      for (int64_t split = 0; split < splits; ++split) {
        const auto range = split_depth<int64_t>(depth, splits, split, 16);
        ok = ok && range.begin == next && range.end >= range.begin && (range.begin % 16 == 0 || range.begin == depth);
        next = range.end;
      }
      expect(ok && next == depth, "split_depth(" + std::to_string(depth) + ", " + std::to_string(splits) +
                                      ") covers the depth in order, in whole tiles");
    }

  expect(choose_depth_splits(9, 131072, 264, 256, 64) == 30, "choose_depth_splits: 9 blocks -> 30 splits");
  expect(choose_depth_splits(288, 2048, 264, 256, 64) == 1, "choose_depth_splits: enough blocks -> 1 split");
  expect(choose_depth_splits(1, 300, 264, 256, 64) == 1, "choose_depth_splits: short depth -> 1 split");
  expect(choose_depth_splits(1, 1 << 20, 264, 256, 8) == 8, "choose_depth_splits: capped by max_splits");

  const auto grid = gemm_grid<DefaultTile>(1000, 70, 3, 5);
  expect(grid.m_tiles == 8 && grid.n_tiles == 2 && grid.fits(), "gemm_grid: 1000 x 70 in 128 x 64 tiles");
  expect(!gemm_grid<DefaultTile>(10, 64, 70000, 1).fits(), "gemm_grid: 70000 groups do not fit gridDim.y");
  const auto tile = block_tile<DefaultTile, int64_t>(70, 3, 5);  // n_tiles = 2: by = 5 -> group 2, n-tile 1
  expect(tile.group == 2 && tile.m0 == 3 * 128 && tile.n0 == 64, "block_tile decodes (group, m0, n0)");

  Conv2dPathRequest request = Conv2dPathRequest::Im2col;
  expect(parse_path_request(nullptr, request) && request == Conv2dPathRequest::Auto, "path: unset means auto");
  expect(parse_path_request("implicit_gemm", request) && request == Conv2dPathRequest::ImplicitGemm,
         "path: implicit_gemm");
  expect(parse_path_request("im2col", request) && request == Conv2dPathRequest::Im2col, "path: im2col");
  expect(!parse_path_request("cudnn", request), "path: unknown value refused");
  const Conv2dGeometry<int64_t> conv3x3{128, 64, 32, 32, 64, 3, 3, 32, 32, 1, 1, 1, 1, 1, 1, 1};
  const Conv2dGeometry<int64_t> conv1x1{128, 64, 32, 32, 128, 1, 1, 32, 32, 1, 1, 0, 0, 1, 1, 1};
  const Conv2dGeometry<int64_t> depthwise_huge{1, 70000, 8, 8, 70000, 3, 3, 8, 8, 1, 1, 1, 1, 1, 1, 70000};
  Conv2dGeometry<int64_t> strided = conv3x3;
  strided.stride_h = strided.stride_w = 2;
  strided.ho = strided.wo = 16;
  for (Conv2dPass pass : {Conv2dPass::Forward, Conv2dPass::GradInput, Conv2dPass::GradWeight}) {
    const std::string name = " (pass " + std::to_string(int(pass)) + ")";
    expect(choose_conv2d_path(conv3x3, Conv2dPathRequest::Auto, pass) == Conv2dPath::ImplicitGemm,
           "auto: 3x3 -> implicit" + name);
    expect(choose_conv2d_path(conv1x1, Conv2dPathRequest::Auto, pass) == Conv2dPath::Im2col,
           "auto: 1x1 -> cuBLAS" + name);
    expect(choose_conv2d_path(depthwise_huge, Conv2dPathRequest::Auto, pass) == Conv2dPath::Im2col,
           "auto: grid too large -> im2col" + name);
    expect(choose_conv2d_path(strided, Conv2dPathRequest::Auto, pass) ==
               (pass == Conv2dPass::GradInput ? Conv2dPath::Im2col : Conv2dPath::ImplicitGemm),
           "auto: strided -> im2col for grad_input only" + name);
    expect(choose_conv2d_path(conv1x1, Conv2dPathRequest::ImplicitGemm, pass) == Conv2dPath::ImplicitGemm,
           "request implicit_gemm honoured" + name);
    expect(choose_conv2d_path(conv3x3, Conv2dPathRequest::Im2col, pass) == Conv2dPath::Im2col,
           "request im2col honoured" + name);
  }

  expect(!needs_64bit_index(conv3x3, 128), "32-bit index for a ResNet layer at batch 128");
  const Conv2dGeometry<int64_t> big{1 << 16, 64, 32, 32, 64, 3, 3, 32, 32, 1, 1, 1, 1, 1, 1, 1};
  expect(needs_64bit_index(big, 1), "64-bit index past 2^31 elements");
  expect(needs_64bit_index(conv3x3, 4096), "64-bit index for a large im2col chunk");
}

}  // namespace

int main() {
  check_mapping_helpers();
  std::printf("%s mapping helpers\n", failures == 0 ? "ok" : "FAIL");
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    Conv2dGeometry<int64_t> g{};
    if (!(in >> g.n >> g.c >> g.h >> g.w >> g.k >> g.r >> g.s >> g.stride_h >> g.stride_w >> g.pad_h >> g.pad_w >>
          g.dil_h >> g.dil_w >> g.groups))
      continue;
    g.ho = (g.h + 2 * g.pad_h - g.dil_h * (g.r - 1) - 1) / g.stride_h + 1;
    g.wo = (g.w + 2 * g.pad_w - g.dil_w * (g.s - 1) - 1) / g.stride_w + 1;
    const int before = failures;
    const Tensors t = reference(g);
    check_implicit_gemm<DefaultTile, int32_t>(g, t, line + " [int32, default tile]");
    check_implicit_gemm<SmallTile, int64_t>(g, t, line + " [int64, small tile]");
    check_im2col<int32_t>(g, t, line + " [int32]");
    check_im2col<int64_t>(g, t, line + " [int64]");
    check_half_forward(g, t, line);
    std::printf("%s %s\n", failures == before ? "ok" : "FAIL", line.c_str());
  }
  return failures == 0 ? 0 : 1;
}
