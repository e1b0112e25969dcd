"""Shared fixtures: the team data folder, and skips with a reason when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """``$CONTRASUITE_DATA`` if set, else ``../shared/data`` beside the repository."""
    return Path(os.environ.get("CONTRASUITE_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    """The real data sets; skips the test with a reason when the folder is absent."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real data folder {path} is absent (set CONTRASUITE_DATA to use another)")
    return path
