"""Test-wide settings: no hub downloads, the real fixtures in tests/fixtures, tiny thread counts."""
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NEPTUNE_MODE", "debug")

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
