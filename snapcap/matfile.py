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

__all__ = [
    "is_mat_v73",
    "list_mat_variables",
    "load_mat",
    "check_hdf5_layout",
    "check_hdf5_attrs",
    "check_global_heaps",
    "HEAP_SCAN_LIMIT",
]

_V73_HEADER = b"MATLAB 7.3 MAT-file"


def _check_path(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise DataFileError(f"{path}: no such file")
    if not path.is_file():
        raise DataFileError(f"{path}: not a regular file")
    return path


def _plain_type(dtype: np.dtype) -> bool:
    """Numbers, strings, references, or compounds/arrays of them: what MATLAB and snapcap write.

    Anything else (a variable-length sequence, opaque bytes) in such a file is a damaged type
    message, and HDF5 may crash converting it.
    """
    import h5py

    if h5py.check_string_dtype(dtype) is not None or h5py.check_ref_dtype(dtype) is not None:
        return True
    if h5py.check_vlen_dtype(dtype) is not None:
        return False
    if dtype.names:
        return all(_plain_type(dtype.fields[name][0]) for name in dtype.names)
    if dtype.subdtype is not None:
        return _plain_type(dtype.subdtype[0])
    return dtype.kind in "biufc"


def _type_name(dtype: np.dtype) -> str:
    import h5py

    return "a variable-length sequence type" if h5py.check_vlen_dtype(dtype) is not None else f"the type {dtype}"


def check_hdf5_attrs(obj, where: str) -> None:
    """Refuse an HDF5 object whose attributes have damaged types, before anything reads their values.

    Raises:
        DataFileError: naming ``where``.
    """
    for name in obj.attrs:
        dtype = obj.attrs.get_id(name).dtype
        if not _plain_type(dtype):
            raise DataFileError(f"{where} is damaged: attribute {name!r} has {_type_name(dtype)}, neither numbers nor text")


def check_hdf5_layout(item, where: str) -> None:
    """Refuse an HDF5 dataset whose shape does not fit its own storage: a damaged dataspace.

    A flipped byte in the dimensions reads as another shape (values shifted, fewer of them, or
    so many that reading them exhausts the memory) without any HDF5 error. The storage tells:
    contiguous data occupy exactly shape × item size bytes; chunks never exceed a fixed-size
    dimension (HDF5 refuses to create such a dataset), and a file written whole (MATLAB, snapcap)
    stores every chunk its shape needs.

    Raises:
        DataFileError: naming ``where`` (the file and the variable).
    """
    if not _plain_type(item.dtype):
        raise DataFileError(f"{where} is damaged: it has {_type_name(item.dtype)}, neither numbers nor text")
    check_hdf5_attrs(item, where)
    shape = tuple(item.shape or ())
    chunks = item.chunks
    if item.is_virtual:
        return
    if chunks is not None:
        maxshape = item.maxshape or shape
        if any(c > s and m is not None for c, s, m in zip(chunks, shape, maxshape)):
            raise DataFileError(f"{where} is damaged: chunks {chunks} exceed its shape {shape}")
        needed = int(np.prod([-(-s // c) for s, c in zip(shape, chunks)], dtype=np.int64)) if shape else 1
        stored = item.id.get_num_chunks()
        if stored < needed:
            raise DataFileError(
                f"{where} is damaged: its shape {shape} needs {needed} chunks of {chunks} but {stored} are stored"
            )
        return
    stored = item.id.get_storage_size()
    needed = int(np.prod(shape, dtype=np.int64)) * item.dtype.itemsize
    if stored and item.dtype.kind in "biufc" and stored != needed:
        raise DataFileError(f"{where} is damaged: shape {shape} needs {needed} bytes but {stored} are stored")


HEAP_SCAN_LIMIT = 256 * 2**20
"""Files up to this size have their string heaps checked whenever they are opened (:func:`check_global_heaps`)."""


def check_global_heaps(path: str | Path, max_bytes: int | None = None) -> None:
    """Walk the HDF5 global heap collections of ``path`` (where variable-length strings live) as HDF5 does.

    A damaged object size there (a free-space object of size 0) sends HDF5's reader into an
    endless loop the first time any string is read, attributes included. This finds it first. It
    reads the whole file (memory-mapped, at memory speed), so a file larger than ``max_bytes`` is
    left unchecked; readers that read the whole file anyway (``verify_dataset``) check every size.

    Raises:
        DataFileError: unreadable, or a collection whose objects do not tile it.
    """
    import mmap

    path = Path(path)
    try:
        size = path.stat().st_size
        if size < 16 or (max_bytes is not None and size > max_bytes):
            return
        with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            _walk_heaps(path, data)
    except DataFileError:
        raise
    except (OSError, ValueError) as exc:
        raise DataFileError(f"{path}: cannot be read ({exc})") from exc


_HEAP_SIGNATURE = b"GCOL\x01\x00\x00\x00"  # a global heap collection, version 1


def _walk_heaps(path: Path, data) -> None:
    import struct

    start = data.find(_HEAP_SIGNATURE)
    while start >= 0:
        (size,) = struct.unpack_from("<Q", data, start + 8)
        end = start + size
        if size < 4096 or end > len(data):
            raise DataFileError(f"{path}: damaged HDF5 global heap at byte {start} (collection size {size})")
        position = start + 16
        while position + 16 <= end:  # object header: index (2), references (2), reserved (4), size (8)
            (index,) = struct.unpack_from("<H", data, position)
            (length,) = struct.unpack_from("<Q", data, position + 8)
            need = 16 + -(-length // 8) * 8 if index else length  # object 0 is the free space, header included
            if need == 0 or position + need > end:
                raise DataFileError(
                    f"{path}: damaged HDF5 global heap at byte {start} (object {index} at byte {position} "
                    f"claims {length} bytes); the strings stored there cannot be read"
                )
            position += need
        start = data.find(_HEAP_SIGNATURE, start + 8)


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
                        check_hdf5_attrs(item, f"{path}: variable {name!r}")
                        cls = item.attrs.get("MATLAB_class", item.dtype.name)
                        cls = cls.decode() if isinstance(cls, bytes) else str(cls)
                        found[name] = (tuple(reversed(item.shape)), cls)
                    else:
                        found[name] = ((), "struct")
        except DataFileError:
            raise
        except Exception as exc:  # h5py raises OSError, KeyError, ValueError or RuntimeError on damaged files
            raise DataFileError(f"{path}: not a readable MATLAB v7.3/HDF5 file ({exc.__class__.__name__}: {exc})") from exc
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
                    check_hdf5_layout(item, f"{path}: variable {name!r}")
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
