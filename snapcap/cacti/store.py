"""Saving and loading simulated measurements (a single run; datasets have their own format).

A file holds ``meas (N, T, H, W)``, ``masks (B, H, W)`` or ``(N, B, H, W)``, optionally the
frames, and ``params`` (the JSON record of :func:`snapcap.cacti.simulate`). ``.npz`` and ``.h5``
are both supported; files are written to a temporary name and renamed, so a file that exists
is complete.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from snapcap.backend import to_numpy
from snapcap.errors import DataFileError, MissingKeyError

__all__ = ["save_measurements", "load_measurements", "FORMAT_NAME"]

FORMAT_NAME = "snapcap-measurements"
FORMAT_VERSION = 1


def _atomic_target(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    return tmp


def save_measurements(path: str | Path, meas: Any, masks: Any, params: dict[str, Any], frames: Any = None) -> Path:
    """Write measurements, masks, the record and optionally frames to ``.npz`` or ``.h5``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".npz", ".h5", ".hdf5"):
        raise DataFileError(f"{path}: output must end in .npz, .h5 or .hdf5")
    arrays = {"meas": to_numpy(meas), "masks": to_numpy(masks)}
    if frames is not None:
        arrays["frames"] = to_numpy(frames)
    record = json.dumps(params, sort_keys=True)
    tmp = _atomic_target(path)
    try:
        if suffix == ".npz":
            with open(tmp, "wb") as handle:
                np.savez_compressed(handle, params=np.array(record), format=np.array(FORMAT_NAME), **arrays)
        else:
            import h5py

            with h5py.File(tmp, "w") as handle:
                handle.attrs["format"] = FORMAT_NAME
                handle.attrs["format_version"] = FORMAT_VERSION
                handle.attrs["params"] = record
                for name, value in arrays.items():
                    handle.create_dataset(name, data=value, compression="gzip", shuffle=True, fletcher32=True)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
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
                    raise MissingKeyError(f"{path}: not a snapcap measurement file (holds {', '.join(data.files)}; expected meas, masks, params)")
                out = {name: data[name] for name in data.files if name not in ("params", "format")}
                out["params"] = json.loads(str(data["params"]))
                return out
        import h5py

        with h5py.File(path, "r") as handle:
            if handle.attrs.get("format") != FORMAT_NAME:
                raise MissingKeyError(f"{path}: not a snapcap measurement file (attribute format={handle.attrs.get('format')!r})")
            out = {name: handle[name][()] for name in handle if name in ("meas", "masks", "frames")}
            out["params"] = json.loads(handle.attrs["params"])
            return out
    except DataFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - zip/HDF5 errors on truncated files
        raise DataFileError(f"{path}: cannot read ({exc.__class__.__name__}: {exc}); the file may be truncated") from exc
