"""Shared test fixtures.

Real market data lives in ``../shared/data`` beside the repository (never copied in). Every test
that needs it takes the ``shared_data`` fixture, which skips with a clear reason when it is absent.
Set ``AIOTS_SHARED_DATA`` to point elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("AIOTS_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data (see its PROVENANCE.md); skips when it is not there."""
    if not (SHARED_DATA / "PROVENANCE.md").is_file():
        pytest.skip(f"real market data not found at {SHARED_DATA} (set AIOTS_SHARED_DATA)")
    return SHARED_DATA


# CI runs property tests with a fixed seed (reproducible: a red CI is a real regression, and the
# failing example is printed); developers' runs explore fresh random examples every time.
from hypothesis import settings as _hyp_settings  # noqa: E402

_hyp_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    _hyp_settings.load_profile("ci")
