"""Reading MATLAB files of either generation, with errors that name the file and the key.

MATLAB v5 files are read with scipy; v7.3 files are HDF5 and read with h5py. h5py sees a
MATLAB array with its axes reversed (MATLAB is column-major), so :func:`load_mat` transposes
v7.3 arrays back: both generations give the array in MATLAB's own axis order (H x W x B for
masks and videos). Callers then move the frame axis to the front themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from snapcap.errors import DataFileError, MissingKeyError

__all__ = ["is_mat_v73", "list_mat_variables", "load_mat"]

_V73_HEADER = b"MATLAB 7.3 MAT-file"


def _check_path(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise DataFileError(f"{path}: no such file")
    if not path.is_file():
        raise DataFileError(f"{path}: not a regular file")
    return path


def is_mat_v73(path: str | Path) -> bool:
    """Whether ``path`` is an HDF5-based MATLAB v7.3 file (or any HDF5 file)."""
    import h5py

    path = _check_path(path)
    with open(path, "rb") as handle:
        head = handle.read(128)
    return head.startswith(_V73_HEADER) or h5py.is_hdf5(str(path))


def list_mat_variables(path: str | Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """Variables of a .mat file: name -> (shape in MATLAB order, class or dtype)."""
    path = _check_path(path)
    if is_mat_v73(path):
        import h5py

        found: dict[str, tuple[tuple[int, ...], str]] = {}
        try:
            with h5py.File(path, "r") as handle:
                for name, item in handle.items():
                    if name.startswith("#"):
                        continue
                    if isinstance(item, h5py.Dataset):
                        cls = item.attrs.get("MATLAB_class", item.dtype.name)
                        cls = cls.decode() if isinstance(cls, bytes) else str(cls)
                        found[name] = (tuple(reversed(item.shape)), cls)
                    else:
                        found[name] = ((), "struct")
        except (OSError, KeyError, ValueError) as exc:
            raise DataFileError(f"{path}: not a readable MATLAB v7.3/HDF5 file ({exc})") from exc
        return found
    import scipy.io

    try:
        return {name: (tuple(shape), cls) for name, shape, cls in scipy.io.whosmat(str(path))}
    except Exception as exc:
        raise DataFileError(f"{path}: not a readable MATLAB v5 file ({exc.__class__.__name__}: {exc})") from exc


def _describe(found: dict[str, tuple[tuple[int, ...], str]]) -> str:
    if not found:
        return "no variables"
    return ", ".join(f"{name} {shape} {cls}" for name, (shape, cls) in found.items())


def load_mat(path: str | Path, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Load variables from a MATLAB v5 or v7.3 file as numpy arrays in MATLAB axis order.

    Args:
        path: the .mat file.
        keys: variables to load (all numeric variables when None). A missing key raises
            :class:`MissingKeyError` listing what the file holds.

    Returns:
        dict name -> array (v7.3 arrays transposed back to MATLAB's order).
    """
    path = _check_path(path)
    wanted = None if keys is None else list(keys)
    found = list_mat_variables(path)
    if wanted is not None:
        missing = [key for key in wanted if key not in found]
        if missing:
            raise MissingKeyError(f"{path}: no variable {', '.join(repr(k) for k in missing)}; the file holds {_describe(found)}")
    names = wanted if wanted is not None else list(found)
    out: dict[str, np.ndarray] = {}
    if is_mat_v73(path):
        import h5py

        try:
            with h5py.File(path, "r") as handle:
                for name in names:
                    item = handle[name]
                    if not isinstance(item, h5py.Dataset):
                        if wanted is not None:
                            raise DataFileError(f"{path}: variable {name!r} is a struct/group, expected a numeric array")
                        continue
                    data = item[()]
                    if data.dtype.names and {"real", "imag"} <= set(data.dtype.names):
                        data = data["real"] + 1j * data["imag"]
                    out[name] = np.asarray(data).transpose()
        except DataFileError:
            raise
        except Exception as exc:
            raise DataFileError(f"{path}: cannot read variables {names} ({exc.__class__.__name__}: {exc})") from exc
        return out
    import scipy.io

    try:
        data = scipy.io.loadmat(str(path), variable_names=names)
    except Exception as exc:
        raise DataFileError(
            f"{path}: cannot read variables {names} ({exc.__class__.__name__}: {exc}); the file may be truncated"
        ) from exc
    for name in names:
        if name not in data:
            raise DataFileError(f"{path}: variable {name!r} is listed but could not be read; the file may be truncated")
        value = data[name]
        if not isinstance(value, np.ndarray) or value.dtype.kind not in "biufc":
            if wanted is not None:
                raise DataFileError(f"{path}: variable {name!r} is not a numeric array (got {type(value).__name__})")
            continue
        out[name] = value
    return out
