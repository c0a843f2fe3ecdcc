"""The CUDA build as a GPU user makes it, on a machine without a GPU: a fresh venv with a CUDA build of torch,
`pip install --no-build-isolation -e .` with no CUDA variable set (setup.py must find the toolkit itself), the
library links and imports without a GPU, every op has a CUDA kernel registered, and the CPU test suite passes there
(which also proves cnnext with a second torch beside the pinned one).

It installs a ~5.5 GB torch and compiles every .cu file, so it runs only on request:

    CNNEXT_TEST_CUDA_BUILD=1 python -m pytest -q -s tests/test_cuda_build.py

CNNEXT_CUDA_TORCH picks the torch (default 2.14.1, the CUDA 13.0 build in this project's local wheel store);
TORCH_CUDA_ARCH_LIST and MAX_JOBS pass through to the build. See docs/cuda.md.
"""
import os
import time

import pytest

from test_packaging import ROOT, fresh_venv, run, source_copy

pytestmark = pytest.mark.skipif(os.environ.get("CNNEXT_TEST_CUDA_BUILD") != "1",
                                reason="installs a CUDA torch and compiles the CUDA kernels (tens of minutes): "
                                       "set CNNEXT_TEST_CUDA_BUILD=1 to run it")

TORCH = os.environ.get("CNNEXT_CUDA_TORCH", "2.14.1")
REGISTRATION = """
import torch, cnnext
ops = sorted(name for name in torch._C._dispatch_get_all_op_names()
             if name.startswith("cnnext::") and not name.startswith("cnnext::_"))
missing = [op for op in ops if not torch._C._dispatch_has_kernel_for_dispatch_key(op, "CUDA")]
print("cuda available:", torch.cuda.is_available(), "| ops:", len(ops), "| without a CUDA kernel:", missing)
assert ops and not missing
"""


def step(name, cmd, cwd, env=None, timeout=3600):
    start = time.perf_counter()
    code, out = run(cmd, cwd, env, timeout=timeout)
    print(f"\n== {name}: {time.perf_counter() - start:.0f} s, exit code {code}\n{out[-3000:]}")
    assert code == 0, f"{name} failed:\n{out[-6000:]}"
    return out


def test_cuda_build_links_imports_registers_and_passes_the_cpu_suite(tmp_path):
    src = source_copy(tmp_path)
    python = fresh_venv(tmp_path / "venv", share=False)
    others = [line for line in (ROOT / "requirements.txt").read_text().splitlines() if not line.startswith("torch==")]
    (tmp_path / "others.txt").write_text("\n".join(others) + "\n")
    step(f"install torch=={TORCH}", [python, "-m", "pip", "install", f"torch=={TORCH}", "-r", tmp_path / "others.txt"],
         tmp_path)
    cuda = step("torch", [python, "-c", "import torch; print(torch.version.cuda)"], tmp_path).split()[-1]
    assert cuda != "None", f"torch=={TORCH} is not a CUDA build"

    no_cuda_vars = {name: None for name in ("CUDA_HOME", "CUDA_PATH", "FORCE_CUDA", "CNNEXT_CPU_ONLY")}
    step("pip install --no-build-isolation -e .", [python, "-m", "pip", "install", "--no-build-isolation", "-e", "."],
         src, env=no_cuda_vars)
    step("registration", [python, "-c", REGISTRATION], tmp_path)
    report = step("python -m cnnext", [python, "-m", "cnnext"], tmp_path)
    assert f"CUDA: CUDA {cuda}, architectures" in report
    suite = step("CPU test suite", [python, "-m", "pytest", "-q", "-x", "-m", "not slow", "tests"], src,
                 env={"CNNEXT_TEST_CUDA_BUILD": None})
    assert " passed" in suite.splitlines()[-1]
