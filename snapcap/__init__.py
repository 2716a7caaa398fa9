"""snapcap: video snapshot compressive imaging (CACTI), from scene to snapshot to words.

Sub-packages: :mod:`snapcap.cacti` (the camera model and simulator), :mod:`snapcap.hardware`
(real captures), :mod:`snapcap.recon` (reconstruction), :mod:`snapcap.caption` (captioning),
:mod:`snapcap.datasets` (corpora and measurement datasets).
"""

from __future__ import annotations

from snapcap.errors import (
    BackendUnavailableError,
    ConfigError,
    DataFileError,
    DTypeError,
    InvalidValueError,
    MissingKeyError,
    ShapeError,
    SnapcapError,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "SnapcapError",
    "ShapeError",
    "InvalidValueError",
    "DTypeError",
    "DataFileError",
    "MissingKeyError",
    "BackendUnavailableError",
    "ConfigError",
]
