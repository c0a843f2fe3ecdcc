"""setup.py's search for the CUDA toolkit, on fake toolkit trees: environment variables, nvcc behind wrapper scripts
and symlink chains, the standard install paths, and the one clear message for an incomplete toolkit."""
import importlib.util
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_setup():
    """setup.py as a module (under another name than __main__, so that it does not run setup())."""
    spec = importlib.util.spec_from_file_location("cnnext_setup", ROOT / "setup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


setup_py = load_setup()


def executable(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def fake_toolkit(root, libcudart=True, header=True, lib_dir="lib64"):
    """A toolkit folder like /usr/local/cuda-13.0 (files with the right names; nvcc is not a script)."""
    executable(root / "bin" / "nvcc", "\x7fELF not a script\n")
    if header:
        (root / "include").mkdir(parents=True)
        (root / "include" / "cuda_runtime.h").write_text("")
    (root / lib_dir).mkdir(parents=True)
    if libcudart:
        (root / lib_dir / "libcudart.so.13").write_text("")
    return root


def find(which=None, environ=None, standard_paths=()):
    return setup_py.find_cuda_toolkit(environ=environ or {}, which=lambda name: which, standard_paths=standard_paths)


def test_cuda_home_and_cuda_path_come_first(tmp_path):
    home, other = fake_toolkit(tmp_path / "home"), fake_toolkit(tmp_path / "other")
    wrapper = executable(tmp_path / "bin" / "nvcc", f'#!/bin/sh\nexec {other}/bin/nvcc "$@"\n')
    assert find(str(wrapper), {"CUDA_HOME": str(home), "CUDA_PATH": str(other)}) == (str(home), "$CUDA_HOME")
    assert find(str(wrapper), {"CUDA_PATH": str(home)}) == (str(home), "$CUDA_PATH")


@pytest.mark.parametrize("line", [
    'exec {tk}/bin/nvcc "$@"',
    'exec "{tk}/bin/nvcc" "$@"',
    "NVCC='{tk}/bin/nvcc'\nexec $NVCC \"$@\"",
    'if [ -x /nonexistent/bin/nvcc ]; then exec /nonexistent/bin/nvcc "$@"; fi\nexec {tk}/bin/nvcc "$@"',
])
def test_nvcc_wrapper_script_is_followed_to_the_toolkit(tmp_path, line):
    tk = fake_toolkit(tmp_path / "cuda-13.0")
    wrapper = executable(tmp_path / "usr" / "local" / "bin" / "nvcc", "#!/bin/sh\n" + line.format(tk=tk) + "\n")
    home, how = find(str(wrapper))
    assert home == str(tk) and str(wrapper) in how and str(tk / "bin" / "nvcc") in how
    assert setup_py.toolkit_problems(home) == []


def test_symlink_chain_and_wrapper_to_symlink(tmp_path):
    tk = fake_toolkit(tmp_path / "cuda-12.8")
    link1 = tmp_path / "links" / "nvcc"
    link1.parent.mkdir()
    link1.symlink_to(tmp_path / "cuda" / "bin" / "nvcc")  # -> cuda (a symlinked folder) -> cuda-12.8
    (tmp_path / "cuda").symlink_to(tk)
    assert find(str(link1))[0] == str(tk)
    wrapper = executable(tmp_path / "bin" / "nvcc", f'#!/bin/bash\nexec {link1} "$@"\n')
    assert find(str(wrapper))[0] == str(tk)


def test_wrapper_that_calls_itself_or_an_unknown_path_stops_at_the_wrapper(tmp_path):
    wrapper = tmp_path / "bin" / "nvcc"
    executable(wrapper, f'#!/bin/sh\nexec {wrapper} "$@"\nexec $CUDA_ROOT/bin/nvcc\n')
    home, _ = find(str(wrapper))
    assert home == str(tmp_path)
    assert "libcudart.so" in " ".join(setup_py.toolkit_problems(home))


def test_standard_paths_newest_version_first(tmp_path):
    for version in ("9.2", "12.4", "13.0"):
        fake_toolkit(tmp_path / f"cuda-{version}")
    (tmp_path / "cuda-14.0").mkdir()  # no bin/nvcc: skipped
    home, how = find(None, standard_paths=(str(tmp_path / "cuda"), str(tmp_path / "cuda-*")))
    assert home == str(tmp_path / "cuda-13.0") and "standard install path" in how
    home, how = find(None, standard_paths=(str(tmp_path / "none"),))
    assert home is None and "no nvcc on the PATH" in how


def test_toolkit_problems_name_what_is_missing(tmp_path):
    assert setup_py.toolkit_problems(str(fake_toolkit(tmp_path / "complete"))) == []
    assert setup_py.toolkit_problems(str(fake_toolkit(tmp_path / "conda", lib_dir="targets/x86_64-linux/lib"))) == []
    missing = setup_py.toolkit_problems(str(fake_toolkit(tmp_path / "broken", libcudart=False, header=False)))
    assert missing == ["include/cuda_runtime.h", "libcudart.so (in lib64/, lib/ or targets/*/lib/)"]


def fake_torch(cuda):
    return SimpleNamespace(__version__="2.14.1+cu130" if cuda else "2.13.0+cpu", version=SimpleNamespace(cuda=cuda))


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in ("CUDA_HOME", "CUDA_PATH", "FORCE_CUDA", "CNNEXT_CPU_ONLY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    return monkeypatch


def test_incomplete_toolkit_stops_with_one_clear_message(tmp_path, clean_env):
    broken = fake_toolkit(tmp_path / "cuda-13.0", libcudart=False)
    clean_env.setenv("CUDA_HOME", str(broken))
    with pytest.raises(SystemExit) as stop:
        setup_py.cuda_toolkit_or_exit(fake_torch("13.0"))
    message = str(stop.value.code)
    for part in (str(broken), "$CUDA_HOME", "libcudart.so", "Set CUDA_HOME", "CUDA 13.x", "CNNEXT_CPU_ONLY=1"):
        assert part in message
    assert "include/cuda_runtime.h" not in message


def test_complete_toolkit_is_used_and_cpu_builds_need_none(tmp_path, clean_env):
    tk = fake_toolkit(tmp_path / "cuda-13.0")
    wrapper = executable(tmp_path / "empty-path" / "nvcc", f'#!/bin/sh\nexec {tk}/bin/nvcc "$@"\n')
    assert wrapper.parent == Path(os.environ["PATH"])
    assert setup_py.cuda_toolkit_or_exit(fake_torch("13.0")) == str(tk)
    assert setup_py.cuda_toolkit_or_exit(fake_torch(None)) is None
    clean_env.setenv("CNNEXT_CPU_ONLY", "1")
    assert setup_py.cuda_toolkit_or_exit(fake_torch("13.0")) is None


def test_force_cuda_with_a_cpu_torch_or_without_toolkit_stops(tmp_path, clean_env):
    clean_env.setenv("FORCE_CUDA", "1")
    with pytest.raises(SystemExit, match="torch 2.13.0\\+cpu is a CPU build"):
        setup_py.cuda_toolkit_or_exit(fake_torch(None))
    clean_env.setattr(setup_py, "find_cuda_toolkit", lambda: (None, "nothing found"))
    with pytest.raises(SystemExit, match="FORCE_CUDA=1\\), but no CUDA toolkit was found \\(nothing found\\)"):
        setup_py.cuda_toolkit_or_exit(fake_torch("13.0"))
