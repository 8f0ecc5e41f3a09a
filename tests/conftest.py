"""What every test shares: the hypothesis profile, a seeded generator, Prefect's test home.

Prefect reads its settings when first imported, so the environment is set here, at the
root, before any test module (or the code it tests) imports Prefect: a temporary
``PREFECT_HOME``, no analytics, a slow first start of the embedded API allowed, and no
inherited Dask scheduler address.
"""

import atexit
import os
import shutil
import tempfile
import uuid
import zlib

_HOME = tempfile.mkdtemp(prefix="rnnflow-prefect-home-")
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
os.environ["PREFECT_HOME"] = _HOME
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.pop("RNNFLOW_DASK_ADDRESS", None)

import fsspec  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

settings.register_profile("rnnflow", deadline=None, max_examples=40, print_blob=True)
settings.load_profile("rnnflow")


@pytest.fixture
def rng(request):
    """A fresh generator per test, seeded from the test's name so failures reproduce."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture
def memory_root():
    """A fresh prefix on fsspec's in-process ``memory://`` file system, emptied afterwards."""
    name = f"rnnflow-test-{uuid.uuid4().hex[:8]}"
    yield f"memory://{name}"
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{name}"):
        fs.rm(f"/{name}", recursive=True)
