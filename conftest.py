"""Test-wide settings: no hub downloads, the real fixtures beside the checkout, tiny thread counts."""
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NEPTUNE_MODE", "debug")

FIXTURES = Path(__file__).resolve().parent.parent / "shared" / "fixtures" / "hms"


@pytest.fixture(scope="session")
def real_hms() -> Path:
    """The real competition files in ../shared/fixtures/hms; tests that need them skip without them."""
    if not (FIXTURES / "test.csv").exists():
        pytest.skip(f"real HMS fixtures not found at {FIXTURES}")
    return FIXTURES
