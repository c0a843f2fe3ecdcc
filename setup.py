"""Builds cnnext._C: the C++ CPU kernels always, the CUDA kernels when torch has CUDA and a CUDA toolkit is found.

The package's metadata is in pyproject.toml; this file holds only what must be code: the extension.
With a CUDA build of torch the CUDA kernels are built when a CUDA toolkit is found (CUDA_HOME, CUDA_PATH, the nvcc
on the PATH through its wrappers and symlinks, or /usr/local/cuda*); FORCE_CUDA=1 makes a missing toolkit an error
instead of a CPU-only build, and CNNEXT_CPU_ONLY=1 skips the CUDA kernels.
Build with `pip install --no-build-isolation -e .` so that the torch already installed is the one compiled against.
"""
import glob
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

NO_ISOLATION = """\
cnnext compiles C++ against the torch it will run with, and pip's isolated build environment hides
the torch {version} installed in {prefix}. Add --no-build-isolation to the command:

    python -m pip install --no-build-isolation -e .      (or `python -m pip install --no-build-isolation .`)

(pip would otherwise have to put a second, possibly different, torch into the build environment.)"""

NO_TORCH = """\
cnnext compiles C++ against the torch it will run with, and no torch is installed in {prefix}.
Install torch first (`python -m pip install -r requirements.txt` installs the tested versions), then:

    python -m pip install --no-build-isolation -e .      (or `python -m pip install --no-build-isolation .`)"""

STANDARD_TOOLKIT_PATHS = ("/usr/local/cuda", "/usr/local/cuda-*", "/opt/cuda")


def installed_torch_version():
    """The version of the torch installed in this interpreter's environment, even when pip's build isolation hides
    it from this process (a subprocess with -I sees the environment's own site-packages)."""
    probe = "import importlib.metadata as m; print(m.version('torch'))"
    result = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


def import_torch_or_exit():
    try:
        import torch
    except ImportError:
        version = installed_torch_version()
        sys.exit(NO_ISOLATION.format(version=version, prefix=sys.prefix) if version else
                 NO_TORCH.format(prefix=sys.prefix))
    return torch


# ---- the CUDA toolkit ----

def real_nvcc(path, depth=0):
    """The real nvcc behind `path`, following symlinks and small wrapper scripts that exec another nvcc."""
    path = os.path.realpath(path)
    if depth < 8 and os.path.getsize(path) < 64 * 1024:
        with open(path, "rb") as f:
            head = f.read()
        if head.startswith(b"#!"):
            for called in re.findall(rb"""(?:^|[\s'"=])(/[^\s'";|&]*/nvcc)\b""", head):
                called = os.fsdecode(called)
                if os.path.isfile(called) and os.path.realpath(called) != path:
                    return real_nvcc(called, depth + 1)
    return path


def version_key(path):
    return [int(n) for n in re.findall(r"\d+", os.path.basename(path))]


def find_cuda_toolkit(environ=os.environ, which=shutil.which, standard_paths=STANDARD_TOOLKIT_PATHS):
    """(toolkit folder or None, how it was found or what was tried)."""
    for name in ("CUDA_HOME", "CUDA_PATH"):
        if environ.get(name):
            return environ[name], f"${name}"
    nvcc = which("nvcc")
    if nvcc:
        real = real_nvcc(nvcc)
        how = f"nvcc on the PATH ({nvcc})" + (f", which runs {real}" if real != nvcc else "")
        return os.path.dirname(os.path.dirname(real)), how
    for pattern in standard_paths:
        for candidate in sorted(glob.glob(pattern), key=version_key, reverse=True):  # the newest cuda-X.Y first
            if os.path.isfile(os.path.join(candidate, "bin", "nvcc")):
                return candidate, f"the standard install path {pattern}"
    return None, f"no $CUDA_HOME or $CUDA_PATH, no nvcc on the PATH, none of {', '.join(standard_paths)}"


def toolkit_problems(home):
    """What a toolkit folder lacks for building and linking the CUDA kernels (empty when complete)."""
    lib_dirs = [os.path.join(home, "lib64"), os.path.join(home, "lib"),
                *glob.glob(os.path.join(home, "targets", "*", "lib"))]
    needed = {
        "bin/nvcc": [os.path.join(home, "bin", "nvcc")],
        "include/cuda_runtime.h": [os.path.join(home, "include", "cuda_runtime.h"),
                                   *glob.glob(os.path.join(home, "targets", "*", "include", "cuda_runtime.h"))],
        "libcudart.so (in lib64/, lib/ or targets/*/lib/)": [
            p for d in lib_dirs for p in glob.glob(os.path.join(d, "libcudart.so*"))],
    }
    return [name for name, paths in needed.items() if not any(os.path.isfile(p) for p in paths)]


def cuda_toolkit_or_exit(torch):
    """The toolkit folder when the CUDA kernels are to be built, else None (a CPU-only build)."""
    if os.environ.get("CNNEXT_CPU_ONLY") == "1":
        return None
    forced = os.environ.get("FORCE_CUDA") == "1"
    if not forced and torch.version.cuda is None:
        return None
    if forced and torch.version.cuda is None:
        sys.exit(f"FORCE_CUDA=1, but torch {torch.__version__} is a CPU build: the CUDA kernels need a CUDA build "
                 f"of torch. Unset FORCE_CUDA for the CPU kernels only.")
    home, how = find_cuda_toolkit()
    if home is None and not forced:
        print(f"cnnext: torch {torch.__version__} has CUDA but no CUDA toolkit was found ({how}); building the CPU "
              f"kernels only. Set CUDA_HOME to the toolkit's folder (or FORCE_CUDA=1) for the CUDA kernels.",
              file=sys.stderr)
        return None
    problems = None if home is None else toolkit_problems(home)
    if home is None or problems:
        found = (f"no CUDA toolkit was found ({how})" if home is None else
                 f"the CUDA toolkit {home!r} (from {how}) lacks {', '.join(problems)}")
        sys.exit(f"cnnext: the CUDA kernels are to be built (torch {torch.__version__}, CUDA {torch.version.cuda}"
                 f"{', FORCE_CUDA=1' if forced else ''}), but {found}. "
                 f"Set CUDA_HOME to a complete CUDA {torch.version.cuda.split('.')[0]}.x "
                 f"toolkit (the folder with bin/nvcc, include/ and lib64/), or CNNEXT_CPU_ONLY=1 for the CPU "
                 f"kernels only.")
    return home


# ---- the extension ----

def write_build_config(torch, arch_list):
    """Writes the header that records what this build is compiled against (csrc/config.cpp reports it; cnnext checks
    at import that it runs with the same torch). Rewritten only when it changes, so that ninja rebuilds nothing else."""
    header = Path("build", "generated", "cnnext_build_config.h").absolute()
    cuda = torch.version.cuda if arch_list else ""
    record = {"TORCH_VERSION": torch.__version__, "CUDA_VERSION": cuda, "CUDA_ARCHS": arch_list or ""}
    text = "#pragma once\n" + "".join(f'#define CNNEXT_BUILD_{name} "{value}"\n' for name, value in record.items())
    if not header.is_file() or header.read_text() != text:
        header.parent.mkdir(parents=True, exist_ok=True)
        header.write_text(text)
    return str(header.parent)


def extension(torch, cuda_home):
    # Imported only now: torch.utils.cpp_extension reads CUDA_HOME once, when it is first imported.
    if cuda_home:
        os.environ["CUDA_HOME"] = cuda_home
    from torch.utils.cpp_extension import CppExtension, CUDAExtension

    sources = sorted(glob.glob("csrc/*.cpp") + glob.glob("csrc/cpu/*.cpp"))
    cxx_flags = ["-O3", "-fopenmp", "-std=c++20"]
    if cuda_home is None:
        return CppExtension("cnnext._C", sources, include_dirs=[write_build_config(torch, None)],
                            extra_compile_args={"cxx": cxx_flags}, extra_link_args=["-fopenmp"])
    # Ampere and Hopper machine code, plus Hopper PTX that newer GPUs compile when the library loads.
    arch_list = os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0+PTX")
    return CUDAExtension(
        "cnnext._C",
        sources + sorted(glob.glob("csrc/cuda/*.cu")),
        include_dirs=[write_build_config(torch, arch_list)],
        # torch's own flags come first (no implicit half conversions, C++20); -lineinfo maps profiles to source.
        extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3", "--expt-relaxed-constexpr", "-std=c++20", "-lineinfo"]},
        extra_link_args=["-fopenmp"],
    )


if __name__ == "__main__":
    torch = import_torch_or_exit()
    ext = extension(torch, cuda_toolkit_or_exit(torch))
    from setuptools import setup
    from torch.utils.cpp_extension import BuildExtension

    setup(ext_modules=[ext], cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)})
