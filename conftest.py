"""Test-wide settings: no hub downloads, the real fixtures in tests/fixtures, tiny thread counts."""
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NEPTUNE_MODE", "debug")
if "PYTEST_XDIST_WORKER" in os.environ:  # `make test` runs one pytest worker per core: one thread each, and
    # the same for the processes a test starts (set before torch is imported)
    os.environ["OMP_NUM_THREADS"] = "1"

FIXTURES = Path(__file__).resolve().parent / "tests" / "fixtures" / "hms"


@pytest.fixture(scope="session")
def real_hms() -> Path:
    """The real competition files in tests/fixtures/hms (part of the repo: no test skips for them)."""
    return FIXTURES


@pytest.fixture(scope="session")
def small_set(tmp_path_factory) -> Path:
    """A 12-patient embedded set (fold 0 holds 10+ vote rows), built once for the whole run."""
    from hms.synthetic import make_synthetic
    root = tmp_path_factory.mktemp("synthetic") / "set"
    make_synthetic(root, patients=12, seed=3, progress=False)
    return root
