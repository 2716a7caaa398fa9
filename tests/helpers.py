"""Helpers the tests import: the shared data folder and array backends (fixtures live in conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SNAPCAP_DATA", REPO.parent / "shared" / "data"))
ON_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def data_path(relative: str) -> Path:
    """A file under the shared data folder; fail under CI and skip elsewhere when it is missing."""
    path = DATA / relative
    if not path.exists():
        message = f"{path} is missing (set SNAPCAP_DATA to the shared data folder; see ../shared/data/SOURCES.md)"
        if ON_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


BACKENDS = ["numpy", "torch", "array_api_strict"]


def to_backend(array: np.ndarray, backend: str):
    """A copy of a numpy array in the named backend (skips if the backend is not installed)."""
    if backend == "numpy":
        return np.array(array)
    if backend == "torch":
        torch = pytest.importorskip("torch")
        return torch.from_numpy(np.array(array))
    if backend == "array_api_strict":
        xps = pytest.importorskip("array_api_strict")
        return xps.asarray(np.array(array))
    raise ValueError(backend)
