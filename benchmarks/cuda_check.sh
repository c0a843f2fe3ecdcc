#!/usr/bin/env bash
# On a GPU machine: build cnnext's CUDA kernels (unless a built library is already in cnnext/), print the
# machine, run every CUDA test, then time the kernels against cuDNN. Logs and results go to $OUT (default
# runs/cuda).
#   bash benchmarks/cuda_check.sh build      # build + show_config
#   bash benchmarks/cuda_check.sh test       # the CUDA tests (and the autocast / config tests on the GPU)
#   bash benchmarks/cuda_check.sh bench      # benchmarks/conv_speed.py --device cuda, every family, float32 and bf16
#   bash benchmarks/cuda_check.sh suite      # the whole test suite (the CPU kernels on this machine's CPU too)
# A compiler that links libstdc++ statically gives the library a second copy of it, and error messages built
# in it crash; name one that links it as a shared library (CXX=/usr/bin/g++ CC=/usr/bin/gcc) if so.
set -uo pipefail
OUT=${OUT:-runs/cuda}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}

machine() {
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  $PY -c "import torch, platform; print('python', platform.python_version(), 'torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version(), torch.cuda.get_device_name())"
  nvcc --version | tail -2; nproc
}

for step in "$@"; do
  case $step in
    build)
      machine 2>&1 | tee "$OUT/machine.txt"
      if ! ls cnnext/_C*.so >/dev/null 2>&1; then
        TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} MAX_JOBS=${MAX_JOBS:-$(nproc)} FORCE_CUDA=1 \
          $PY setup.py build_ext --inplace > "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
      fi
      $PY -m cnnext 2>&1 | tee "$OUT/show_config.txt" ;;
    test)
      $PY -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_cuda_family.py tests/test_cuda_family_index.py \
        tests/test_autocast.py tests/test_config.py -rs 2>&1 | tee "$OUT/tests.log" | tail -25 ;;
    bench)
      for dtype in float32 bfloat16; do
        $PY benchmarks/conv_speed.py --device cuda --dtype $dtype --no-naive --json "$OUT/cuda_$dtype.json" \
          --plot "$OUT/cuda_$dtype.png" > "$OUT/bench_$dtype.log" 2>&1; grep resnet18_ "$OUT/bench_$dtype.log"
      done ;;
    suite)  # in parallel where pytest-xdist is installed
      workers=(); $PY -c "import xdist" 2>/dev/null && workers=(-n "${WORKERS:-8}")
      $PY -m pytest -q -p no:cacheprovider "${workers[@]}" tests/ 2>&1 | tee "$OUT/suite.log" | tail -15 ;;
    *) echo "unknown step $step (build, test, bench, suite)"; exit 2 ;;
  esac
done
