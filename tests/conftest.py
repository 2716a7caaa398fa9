"""Shared fixtures: array backends and a seeded generator (helpers.py has the data folder and backends)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from helpers import BACKENDS

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
