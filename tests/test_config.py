"""`python -m cnnext` / cnnext.show_config(): the report, and the kernel choice it reads from the library itself."""
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import cnnext
from cnnext import config

ROOT = Path(__file__).resolve().parent.parent
FEATURES = dict(torch.ops.cnnext._cpu_features())
AVX512 = FEATURES["avx512f"] and FEATURES["avx512vl"]


def test_report_names_versions_build_features_threads_and_paths():
    out = io.StringIO()
    cnnext.show_config(file=out)
    text = out.getvalue()
    assert text == config.report() + "\n"
    assert text.startswith(f"cnnext {cnnext.__version__} (")
    assert f"torch: {torch.__version__} (cnnext was built against {torch.__version__})" in text
    assert f"threads: {torch.get_num_threads()} " in text
    present = [name for name, found in FEATURES.items() if found]
    assert f"features found at run time: {' '.join(present) or 'none'}" in text
    for op in ("conv2d", "conv3d"):
        line = next(line for line in text.splitlines() if line.strip().startswith(f"{op}:"))
        assert all(f"{str(dtype).removeprefix('torch.')}: " in line for dtype in config.DTYPES)
    if torch.version.cuda is None:
        assert "CUDA: not built" in text


@pytest.mark.skipif(not AVX512, reason="this CPU has no AVX-512: the direct kernel is never chosen")
def test_kernel_path_is_the_kernels_own_choice():
    assert config.kernel_path("conv2d", torch.float32) == "direct AVX-512: Winograd F(2x2, 3x3)"
    assert config.kernel_path("conv3d", torch.float32) == "direct AVX-512: Winograd F(2x2, 3x3)"
    narrow = torch.ops.cnnext._kernel_path("conv2d", torch.empty(1, 32, 16, 16), torch.empty(3, 32, 3, 3), [1, 1],
                                           [1, 1], [1, 1], 1)
    assert narrow == "direct AVX-512: narrow (vectors along rows)"
    pointwise = torch.ops.cnnext._kernel_path("conv2d", torch.empty(2, 32, 16, 16), torch.empty(8, 32, 1, 1), [1, 1],
                                              [0, 0], [1, 1], 1)
    assert pointwise == "direct AVX-512: pointwise (NCHW, vectors along pixels)"
    seven_by_seven = torch.ops.cnnext._kernel_path("conv2d", torch.empty(2, 32, 7, 7), torch.empty(8, 32, 1, 1),
                                                   [1, 1], [0, 0], [1, 1], 1)  # under one 64-pixel tile
    assert seven_by_seven == "direct AVX-512"
    channels_last = torch.empty(2, 32, 16, 16).contiguous(memory_format=torch.channels_last)
    assert torch.ops.cnnext._kernel_path("conv2d", channels_last, torch.empty(16, 32, 1, 1), [1, 1], [0, 0], [1, 1],
                                         1) == "direct AVX-512"
    narrow_1x1 = torch.ops.cnnext._kernel_path("conv2d", channels_last, torch.empty(8, 32, 1, 1), [1, 1], [0, 0],
                                               [1, 1], 1)  # planes gathered from channels-last memory: slower
    assert narrow_1x1 == "direct AVX-512"
    x, w = torch.empty(1, 32, 16, 16), torch.empty(32, 32, 3, 3)
    dilated = torch.ops.cnnext._kernel_path("conv2d", x, w, [1, 1], [2, 2], [2, 2], 1)
    assert dilated == "direct AVX-512: Winograd F(2x2, 3x3)"
    near_the_map = torch.ops.cnnext._kernel_path("conv2d", x, w, [1, 1], [0, 0], [5, 5], 1)  # 6x6: tiles half empty
    assert near_the_map == "direct AVX-512"
    x, w = torch.empty(1, 32, 8, 8), torch.empty(32, 8, 3, 3)  # groups of 8 channels: too narrow for the vectors
    assert torch.ops.cnnext._kernel_path("conv2d", x, w, [1, 1], [1, 1], [1, 1], 4) == "im2col + GEMM"
    depthwise = torch.ops.cnnext._kernel_path("conv2d", x, torch.empty(32, 1, 3, 3), [1, 1], [1, 1], [1, 1], 32)
    assert depthwise == "direct AVX-512"
    planes = torch.ops.cnnext._kernel_path("conv2d", torch.empty(1, 32, 16, 16), torch.empty(32, 1, 3, 3), [1, 1],
                                           [1, 1], [1, 1], 32)
    assert planes == "direct AVX-512: depthwise (NCHW planes, vectors along rows)"


def test_float64_takes_gemm_and_bad_arguments_are_named():
    assert config.kernel_path("conv2d", torch.float64) == "im2col + GEMM"
    x, w = torch.empty(1, 4, 8, 8), torch.empty(4, 4, 3, 3)
    with pytest.raises(RuntimeError, match="op must be 'conv2d' or 'conv3d', got 'conv4d'"):
        torch.ops.cnnext._kernel_path("conv4d", x, w, [1, 1], [0, 0], [1, 1], 1)
    with pytest.raises(RuntimeError, match="expects input with 8 channels"):
        torch.ops.cnnext._kernel_path("conv2d", x, torch.empty(4, 4, 3, 3), [1, 1], [0, 0], [1, 1], 2)


def run_module(**env):
    env = {**os.environ, **env}
    return subprocess.run([sys.executable, "-m", "cnnext"], cwd=ROOT, env=env, capture_output=True, text=True)


def test_python_m_cnnext_with_forced_gemm_and_a_data_dir(tmp_path):
    result = run_module(CNNEXT_CPU_KERNEL="gemm", CNNEXT_DATA=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "CNNEXT_CPU_KERNEL=gemm" in result.stdout and "direct AVX-512" not in result.stdout
    assert f"Data directory: {tmp_path} (from $CNNEXT_DATA)" in result.stdout
    result = run_module(CNNEXT_DATA=str(tmp_path / "missing"))
    assert result.returncode == 0 and "Data directory: error: data directory" in result.stdout
