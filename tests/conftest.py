import zlib

import numpy as np
import pytest
from hypothesis import settings

settings.register_profile("rnnflow", deadline=None, max_examples=40, print_blob=True)
settings.load_profile("rnnflow")


@pytest.fixture
def rng(request):
    """A fresh generator per test, seeded from the test's name so failures reproduce."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))
