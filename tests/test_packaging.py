"""Installing cnnext as a user does: the plain `pip install -e .` explains itself, the sdist holds every source, a
wheel built from it installs into a fresh venv beside the same torch and convolves; cnnext refuses another torch.

The wheel round trip compiles the extension (about 2 minutes on 2 cores) and is marked `slow`
(`pytest -m "not slow"` leaves it out); CI runs it.
"""
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SKIP_IN_COPY = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__", "*.so", "runs", ".hypothesis",
                                      ".pytest_cache", ".whl", ".gl")


def run(cmd, cwd, env=None, timeout=900):
    """(exit code, stdout + stderr) of `cmd`; `env` adds variables to this process's, or removes those set to None."""
    env = {**os.environ, "PYTHONNOUSERSITE": "1", "PYTHONPATH": None, **(env or {})}
    env = {name: value for name, value in env.items() if value is not None}
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return result.returncode, result.stdout + result.stderr


def fresh_venv(path, share=True):
    """A new venv with pip; with `share`, it sees this interpreter's site-packages (torch and the rest, not cnnext)
    through a .pth file: the same torch, without copying gigabytes, and nothing for pip to download."""
    venv.create(path, with_pip=True)
    python = path / "bin" / "python"
    if not share:
        return python
    site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], path)[1].strip())
    shared = path / "shared-site-packages"
    shared.mkdir()
    ours = Path(torch.__file__).resolve().parent.parent
    for entry in ours.iterdir():
        if not (entry.name.lower().startswith(("cnnext", "__editable__")) or entry.suffix == ".pth"):
            (shared / entry.name).symlink_to(entry)
    (site / "shared.pth").write_text(f"{shared}\n")
    # The venv's own setuptools (ensurepip's, older) would hide the shared one that torch's metadata asks for.
    code, out = run([python, "-m", "pip", "uninstall", "-y", "setuptools"], path)
    assert code == 0, out
    return python


def source_copy(tmp_path):
    copy = tmp_path / "src"
    shutil.copytree(ROOT, copy, ignore=SKIP_IN_COPY)
    return copy


def test_plain_pip_install_e_stops_at_once_with_one_clear_message(tmp_path):
    """pip's isolated build hides the installed torch: setup.py must say why and what to run, not crash."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md", "LICENSE", "MANIFEST.in"):
        shutil.copy(ROOT / name, src / name)
    python = fresh_venv(tmp_path / "venv")
    code, out = run([python, "-m", "pip", "install", "-e", "."], src, timeout=300)
    if "satisfies the requirement setuptools" in out:
        pytest.skip("pip could not fetch setuptools for its isolated build environment (no package index)")
    assert code != 0
    words = " ".join(out.split())  # pip indents the message
    installed = importlib.metadata.version("torch")  # the distribution's version: "2.14.1" for 2.14.1+cu130
    assert f"hides the torch {installed} installed in {tmp_path / 'venv'}" in words
    assert "python -m pip install --no-build-isolation -e ." in out
    assert "Traceback" not in out and "ModuleNotFoundError" not in out
    assert "Downloading torch" not in out and "Collecting torch" not in out


def test_setup_py_without_any_torch_says_to_install_it_first(tmp_path):
    python = fresh_venv(tmp_path / "venv", share=False)
    code, out = run([python, ROOT / "setup.py", "--version"], ROOT)
    assert code != 0 and "Traceback" not in out
    assert f"no torch is installed in {tmp_path / 'venv'}" in out
    assert "python -m pip install --no-build-isolation -e ." in out


def test_import_refuses_a_torch_other_than_the_one_built_against(tmp_path):
    probe = ("import torch; built = torch.__version__; torch.__version__ = '2.0.0'\n"
             "try:\n    import cnnext\nexcept ImportError as e:\n    print(e)\n")
    code, out = run([sys.executable, "-c", probe], ROOT)
    assert code == 0, out
    assert f"compiled against torch {torch.__version__} but is running with torch 2.0.0" in out
    assert "--no-build-isolation" in out


@pytest.mark.slow
def test_sdist_to_wheel_to_fresh_venv_round_trip(tmp_path):
    src, dist = source_copy(tmp_path), tmp_path / "dist"
    code, out = run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", dist, "."], src)
    assert code == 0, out
    (sdist,) = dist.glob("cnnext-*.tar.gz")
    with tarfile.open(sdist) as tar:
        packed = {Path(*Path(name).parts[1:]).as_posix() for name in tar.getnames()}
    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "csrc").rglob("*") if p.is_file()}
    assert sources and sources <= packed, f"missing from the sdist: {sorted(sources - packed)}"
    assert {"setup.py", "pyproject.toml", "LICENSE", "README.md", "cnnext/__init__.py"} <= packed
    assert not any(name.endswith((".so", ".o", ".pyc")) for name in packed)

    # The wheel, built from the sdist alone (not the checkout), against this torch.
    code, out = run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "--wheel-dir", dist,
                     sdist], tmp_path, env={"CNNEXT_CPU_ONLY": "1"})
    assert code == 0, out
    (wheel,) = dist.glob("cnnext-*.whl")
    with zipfile.ZipFile(wheel) as whl:
        names = whl.namelist()
    assert any(n.startswith("cnnext/_C.") and n.endswith(".so") for n in names)
    assert "cnnext/models/resnet.py" in names and not any(n.startswith(("csrc/", "tests/")) for n in names)

    python = fresh_venv(tmp_path / "venv")
    code, out = run([python, "-m", "pip", "install", "--no-index", wheel], tmp_path)  # no index: nothing to fetch
    assert code == 0, out
    smoke = (
        "import torch, torch.nn.functional as F, cnnext\n"
        "x, w, b = torch.randn(4, 8, 12, 12), torch.randn(16, 8, 3, 3), torch.randn(16)\n"
        "y = cnnext.conv2d(x, w, b, stride=2, padding=1)\n"
        "torch.testing.assert_close(y, F.conv2d(x, w, b, stride=2, padding=1), rtol=1e-4, atol=1e-4)\n"
        "print('from', cnnext.__file__)\n"
    )
    code, out = run([python, "-c", smoke], tmp_path)
    assert code == 0, out
    assert f"from {tmp_path / 'venv'}" in out
    code, out = run([python, "-m", "cnnext"], tmp_path)
    assert code == 0 and f"cnnext was built against {torch.__version__}" in out, out
