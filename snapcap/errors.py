"""The exceptions snapcap raises on bad input.

Every error a user can provoke with a wrong argument, a wrong file or a missing optional
dependency is a :class:`SnapcapError`. The subclasses also derive from the matching builtin
(``ValueError``, ``TypeError``, ``OSError``, ``RuntimeError``) so generic handlers keep working.
Messages name the argument or file, the key, and what was expected.
"""

from __future__ import annotations

__all__ = [
    "SnapcapError",
    "ShapeError",
    "InvalidValueError",
    "DTypeError",
    "DataFileError",
    "MissingKeyError",
    "BackendUnavailableError",
    "ConfigError",
]


class SnapcapError(Exception):
    """Base class of every error snapcap raises on purpose."""


class ShapeError(SnapcapError, ValueError):
    """An array has the wrong number of axes or sizes that do not agree."""


class InvalidValueError(SnapcapError, ValueError):
    """An array or argument holds values outside what is allowed (NaN, negative, out of range)."""


class DTypeError(SnapcapError, TypeError):
    """An array has a dtype the function does not accept."""


class DataFileError(SnapcapError, OSError):
    """A file is missing, unreadable, truncated or not in the expected format."""


class MissingKeyError(DataFileError):
    """A data file lacks the variable or dataset that was asked for."""


class BackendUnavailableError(SnapcapError, RuntimeError):
    """An optional array backend (CuPy, CUDA) or dependency is not usable on this machine."""


class ConfigError(SnapcapError, ValueError):
    """A configuration or specification string cannot be understood."""
