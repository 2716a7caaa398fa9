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
from snapcap.errors import DataFileError, InvalidValueError, MissingKeyError, ShapeError
from snapcap.fileio import atomic_write
from snapcap.files import MEASUREMENTS_FORMAT, check_npz
from snapcap.matfile import check_global_heaps, check_hdf5_attrs, check_hdf5_layout

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
    """Read a file written by :func:`save_measurements`: dict with meas, masks, params[, frames].

    Raises:
        DataFileError: missing, unreadable or damaged (MissingKeyError without meas/masks/params).
        ShapeError, InvalidValueError: arrays of the wrong shape, empty, NaN/infinite, masks outside [0, 1].
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            check_npz(path)
            with np.load(path, allow_pickle=False) as data:
                if "meas" not in data.files or "params" not in data.files:
                    raise MissingKeyError(
                        f"{path}: not a snapcap measurement file (holds {', '.join(data.files)}; expected meas, masks, params)"
                    )
                names = list(data.files)
                out = {name: data[name] for name in names if name in _MEMBERS}
                out["params"] = json.loads(str(data["params"]))
        else:
            check_global_heaps(path)  # the record is a string there: HDF5 may never return from a damaged heap
            with h5py.File(path, "r") as handle:
                check_hdf5_attrs(handle, str(path))
                if handle.attrs.get("format") != FORMAT_NAME:
                    raise MissingKeyError(
                        f"{path}: not a snapcap measurement file (attribute format={handle.attrs.get('format')!r})"
                    )
                names = list(handle)
                for name in names:
                    if name in _MEMBERS:
                        check_hdf5_layout(handle[name], f"{path}: {name!r}")
                out = {name: handle[name][()] for name in names if name in _MEMBERS}
                out["params"] = json.loads(handle.attrs["params"])
    except DataFileError:
        raise
    except Exception as exc:
        raise DataFileError(f"{path}: cannot read ({exc.__class__.__name__}: {exc}); the file may be truncated") from exc
    return _checked(path, out, names)


_MEMBERS = ("meas", "masks", "frames")


def _checked(path: Path, out: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """What was read, checked against what :func:`save_measurements` writes (a damaged file shows here).

    ``names`` are the arrays the file holds: a name it does not write is a damaged name (of the
    optional frames, say), which would otherwise go unnoticed.
    """
    foreign = sorted(set(names) - {*_MEMBERS, "params", "format"})
    if foreign:
        raise DataFileError(f"{path}: holds {foreign}, which snapcap does not write; the file is damaged")
    for name in ("meas", "masks"):
        if name not in out:
            raise MissingKeyError(f"{path}: not a complete snapcap measurement file (no {name!r}; it holds {', '.join(out)})")
    if not isinstance(out["params"], dict):
        raise DataFileError(f"{path}: the record 'params' is a JSON {type(out['params']).__name__}; expected an object")
    for name in ("meas", "masks", "frames"):
        if name not in out:
            continue
        array = np.asarray(out[name])
        if array.dtype.kind not in "biuf":
            raise DataFileError(f"{path}: {name!r} has dtype {array.dtype}; expected a real numeric array")
        if array.size == 0:
            raise ShapeError(f"{path}: {name!r} is empty (shape {array.shape})")
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            raise InvalidValueError(f"{path}: {name!r} holds NaN or infinite values")
    meas, masks = out["meas"], out["masks"]
    if meas.ndim != 4:
        raise ShapeError(f"{path}: 'meas' has shape {meas.shape}; expected (N, T, H, W)")
    hw = meas.shape[2:]
    if masks.ndim not in (3, 4) or masks.shape[-2:] != hw or (masks.ndim == 4 and masks.shape[0] != meas.shape[0]):
        raise ShapeError(f"{path}: 'masks' has shape {masks.shape}; expected (B, {hw[0]}, {hw[1]}) or ({meas.shape[0]}, B, ...)")
    if masks.min() < 0 or masks.max() > 1:
        raise InvalidValueError(f"{path}: 'masks' has values in [{masks.min():g}, {masks.max():g}]; expected [0, 1]")
    frames = out.get("frames")
    if frames is not None and (frames.ndim not in (4, 5) or frames.shape[0] != meas.shape[0] or frames.shape[2:4] != hw):
        raise ShapeError(f"{path}: 'frames' has shape {frames.shape}; expected ({meas.shape[0]}, F, {hw[0]}, {hw[1]}[, 3])")
    return out
