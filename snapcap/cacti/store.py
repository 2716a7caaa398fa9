"""Saving and loading simulated measurements (a single run; datasets have their own format).

A file holds ``meas (N, T, H, W)``, ``masks (B, H, W)`` or ``(N, B, H, W)``, optionally the
frames, and ``params`` (the JSON record of :func:`snapcap.cacti.simulate`). ``.npz`` and ``.h5``
are both supported; files are written through :func:`snapcap.fileio.atomic_write` (a temporary
name, then a rename), so a file that exists is complete.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from snapcap.backend import to_numpy
from snapcap.errors import DataFileError, MissingKeyError
from snapcap.fileio import atomic_write
from snapcap.files import MEASUREMENTS_FORMAT

__all__ = ["save_measurements", "load_measurements", "FORMAT_NAME", "MEASUREMENT_SUFFIXES"]

MEASUREMENT_SUFFIXES = (".npz", ".h5", ".hdf5")
"""Suffixes of measurement files (:func:`save_measurements` picks the format from them)."""

FORMAT_NAME = MEASUREMENTS_FORMAT
FORMAT_VERSION = 1


def save_measurements(path: str | Path, meas: Any, masks: Any, params: dict[str, Any], frames: Any = None) -> Path:
    """Write measurements, masks, the record and optionally frames to ``.npz`` or ``.h5``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MEASUREMENT_SUFFIXES:
        raise DataFileError(f"{path}: output must end in {', '.join(MEASUREMENT_SUFFIXES)}")
    arrays = {"meas": to_numpy(meas), "masks": to_numpy(masks)}
    if frames is not None:
        arrays["frames"] = to_numpy(frames)
    record = json.dumps(params, sort_keys=True)

    def write(tmp: str) -> None:
        if suffix == ".npz":
            with open(tmp, "wb") as handle:
                np.savez_compressed(handle, params=np.array(record), format=np.array(FORMAT_NAME), **arrays)
        else:
            with h5py.File(tmp, "w") as handle:
                handle.attrs["format"] = FORMAT_NAME
                handle.attrs["format_version"] = FORMAT_VERSION
                handle.attrs["params"] = record
                for name, value in arrays.items():
                    handle.create_dataset(name, data=value, compression="gzip", shuffle=True, fletcher32=True)

    atomic_write(path, write)
    return path


def load_measurements(path: str | Path) -> dict[str, Any]:
    """Read a file written by :func:`save_measurements`: dict with meas, masks, params[, frames]."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                if "meas" not in data.files or "params" not in data.files:
                    raise MissingKeyError(
                        f"{path}: not a snapcap measurement file (holds {', '.join(data.files)}; expected meas, masks, params)"
                    )
                out = {name: data[name] for name in data.files if name not in ("params", "format")}
                out["params"] = json.loads(str(data["params"]))
                return out
        with h5py.File(path, "r") as handle:
            if handle.attrs.get("format") != FORMAT_NAME:
                raise MissingKeyError(f"{path}: not a snapcap measurement file (attribute format={handle.attrs.get('format')!r})")
            out = {name: handle[name][()] for name in handle if name in ("meas", "masks", "frames")}
            out["params"] = json.loads(handle.attrs["params"])
            return out
    except DataFileError:
        raise
    except Exception as exc:
        raise DataFileError(f"{path}: cannot read ({exc.__class__.__name__}: {exc}); the file may be truncated") from exc
