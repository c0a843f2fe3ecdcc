import os
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True)
settings.load_profile("ci")


@pytest.fixture(scope="session")
def data_dir():
    """The real data directory (CNNEXT_DATA); tests that need it skip with a message when it is absent."""
    path = os.environ.get("CNNEXT_DATA")
    if not path or not Path(path).is_dir():
        pytest.skip("real data not available: set CNNEXT_DATA to the data directory (vehicles/, dehaze/, cifar10/)")
    return Path(path)
