"""Loads the compiled kernels (cnnext._C) and checks that they were built against the torch running now: a compiled
PyTorch extension works only with the torch it was compiled against (C++ ABI and op registry)."""
import torch

REBUILD = ("rebuild cnnext against this torch (in its source folder: `python -m pip install --no-build-isolation "
           "-e .`, or `python setup.py build_ext --inplace` for a checkout used in place)")

try:
    from . import _C  # noqa: F401  (loading the library registers the ops)
except ImportError as error:
    raise ImportError(f"cnnext's compiled kernels (cnnext._C) could not be loaded with torch {torch.__version__} "
                      f"({error}). They are built by `python -m pip install --no-build-isolation -e .` and must be "
                      f"built against the torch they run with; if they were built for another torch, "
                      f"{REBUILD}.") from error

if not hasattr(torch.ops.cnnext, "_build_config"):
    raise ImportError(f"cnnext._C ({_C.__file__}) predates this source (it has no build record): {REBUILD}")

BUILD = dict(torch.ops.cnnext._build_config())

if BUILD["torch"] != torch.__version__:
    raise ImportError(f"cnnext was compiled against torch {BUILD['torch']} but is running with torch "
                      f"{torch.__version__}; it works only with the torch it was built against. Install torch "
                      f"{BUILD['torch']}, or {REBUILD}.")
