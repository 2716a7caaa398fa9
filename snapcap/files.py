"""Reading files: the one place that recognises a file's format and opens its container.

A file is recognised from its first bytes, not its suffix (:func:`sniff`); the suffix only decides
where the bytes say nothing (MATLAB v4 files have no header, most raw camera formats are read by
LibRaw from their suffix). :func:`open_container` then lists what the file holds, variable by
variable (name -> shape, class or dtype), without reading the arrays, and
:meth:`Container.get` reads one variable, checked numeric and finite. MATLAB variables keep
MATLAB's axis order (H×W×N); a bare ``.npy`` array is the variable ``meas``.

The predicates :func:`is_snapcap_dataset` and :func:`is_snapcap_measurements` tell snapcap's own
files apart by their format markers (:data:`DATASET_FORMAT`, :data:`MEASUREMENTS_FORMAT`), which
live here so that every layer above (the camera model's measurement files, the dataset files, the
capture loader, the commands) compares against one spelling.

Every failure is a :class:`~snapcap.errors.DataFileError` naming the file: a truncated ``.npy``
or ``.npz`` member is found from its header before numpy reads it, pickled arrays are refused.
"""

from __future__ import annotations

import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import h5py
import hdf5plugin  # noqa: F401 - registers the Blosc/Zstd/LZ4 filters with HDF5
import numpy as np
from numpy.lib import format as npformat

from snapcap.errors import DataFileError, InvalidValueError, MissingKeyError, SnapcapError
from snapcap.matfile import HEAP_SCAN_LIMIT, check_global_heaps, check_hdf5_attrs, list_mat_variables, load_mat

__all__ = [
    "DATASET_FORMAT",
    "MEASUREMENTS_FORMAT",
    "RAW_SUFFIXES",
    "CONTAINER_NAMES",
    "MATLAB_KINDS",
    "VARIABLE_KINDS",
    "sniff",
    "Container",
    "open_container",
    "read_npy",
    "check_npz",
    "hdf5_format",
    "is_snapcap_dataset",
    "is_snapcap_measurements",
]

DATASET_FORMAT = "snapcap-dataset"
"""The ``format`` attribute of a measurement dataset file (:mod:`snapcap.datasets.h5`)."""

MEASUREMENTS_FORMAT = "snapcap-measurements"
"""The ``format`` attribute or member of a measurement file (:mod:`snapcap.cacti.store`)."""

# fmt: off
RAW_SUFFIXES: tuple[str, ...] = (
    ".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".raf", ".orf", ".rw2",
    ".pef", ".srw", ".rwl", ".iiq", ".3fr", ".erf", ".kdc", ".dcr", ".mos", ".mrw", ".x3f", ".raw",
)
# fmt: on
"""File suffixes read as raw camera frames (through rawpy / LibRaw)."""

CONTAINER_NAMES = {
    "mat5": "MATLAB v5",
    "mat73": "MATLAB v7.3 (HDF5)",
    "hdf5": "HDF5",
    "npz": "numpy .npz",
    "npy": "numpy .npy",
    "raw": "raw camera file",
    "mat4": "MATLAB v4",
}
"""Container kind (what :func:`sniff` returns) -> its name in messages."""

MATLAB_KINDS = ("mat5", "mat73", "mat4")
"""The MATLAB containers (read through :mod:`snapcap.matfile`)."""

VARIABLE_KINDS = MATLAB_KINDS + ("npz", "npy")
"""The containers whose variables :meth:`Container.get` reads."""

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

_SUFFIX_KINDS = {
    ".mat": ("mat5", "mat73", "mat4"),
    ".npz": ("npz",),
    ".npy": ("npy",),
    ".h5": ("hdf5", "mat73"),
    ".hdf5": ("hdf5", "mat73"),
}

_MEASUREMENT_MEMBERS = frozenset({"meas", "params", "format"})


# --------------------------------------------------------------------------------------------
# Sniffing
# --------------------------------------------------------------------------------------------


def _sniff_bytes(path: Path) -> str | None:
    """The container from the first bytes: mat5, mat73, hdf5, npz, npy, tiff, or None."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(1040)
    except OSError as exc:
        raise DataFileError(f"{path}: cannot be read ({exc})") from exc
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "npz"
    if head.startswith(b"MATLAB 7.3") or (len(head) >= 520 and head[512:520] == _HDF5_SIGNATURE and head.startswith(b"MATLAB")):
        return "mat73"
    if head.startswith(b"MATLAB"):
        return "mat5"
    if head.startswith(_HDF5_SIGNATURE) or head[512:520] == _HDF5_SIGNATURE or head[1024:1032] == _HDF5_SIGNATURE:
        return "hdf5"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    return None


def sniff(path: str | Path) -> str | None:
    """The container of ``path``: ``mat5``, ``mat73``, ``mat4``, ``hdf5``, ``npz``, ``npy``, ``raw`` or None.

    The first bytes decide; the suffix only where they say nothing: a ``.mat`` without a header
    is MATLAB v4 (scipy then decides), a raw-camera suffix (:data:`RAW_SUFFIXES`) is a raw frame.
    TIFF content (DNG and most raw formats) is ``raw``; HDF5 named ``.mat`` is ``mat73`` (a v7.3
    file without MATLAB's text header).

    Returns:
        the kind (a key of :data:`CONTAINER_NAMES`), or None when nothing recognises the file.

    Raises:
        DataFileError: the file cannot be read.
    """
    path = Path(path)
    kind = _sniff_bytes(path)
    suffix = path.suffix.lower()
    if kind is None:
        if suffix in RAW_SUFFIXES:
            return "raw"
        if suffix == ".mat":
            return "mat4"
        return None
    if kind == "tiff":
        return "raw"
    if kind == "hdf5" and suffix == ".mat":
        return "mat73"
    return kind


# --------------------------------------------------------------------------------------------
# numpy files, read safely
# --------------------------------------------------------------------------------------------


def _npy_header(handle: IO[bytes], where: str) -> tuple[tuple[int, ...], np.dtype, bool]:
    try:
        version = npformat.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = npformat.read_array_header_1_0(handle)
        else:
            shape, fortran, dtype = npformat.read_array_header_2_0(handle)
    except Exception as exc:
        raise DataFileError(f"{where}: not a readable .npy array header ({exc.__class__.__name__}: {exc})") from exc
    return tuple(int(s) for s in shape), np.dtype(dtype), bool(fortran)


def _check_npy_dtype(dtype: np.dtype, where: str) -> None:
    if dtype.hasobject or dtype.kind not in "biufc":
        raise DataFileError(f"{where}: holds dtype {dtype}; expected a numeric array (object/pickled arrays are not read)")


def read_npy(path: str | Path) -> np.ndarray:
    """A .npy array, checking the header against the file size before reading (no pickles).

    Raises:
        DataFileError: unreadable, truncated, more bytes than the header announces (a damaged
            shape), or not a numeric array.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            shape, dtype, _ = _npy_header(handle, str(path))
            _check_npy_dtype(dtype, str(path))
            expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            available = size - handle.tell()
    except OSError as exc:
        if isinstance(exc, DataFileError):
            raise
        raise DataFileError(f"{path}: cannot be read ({exc})") from exc
    if available < expected:
        raise DataFileError(
            f"{path}: truncated .npy file: the header announces {shape} {dtype} ({expected} bytes) but {available} bytes follow"
        )
    if available > expected:  # numpy would read the first values and ignore the rest: a damaged shape in the header
        raise DataFileError(
            f"{path}: damaged .npy file: the header announces {shape} {dtype} ({expected} bytes) but {available} bytes follow"
        )
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:
        raise DataFileError(f"{path}: not a readable .npy file ({exc.__class__.__name__}: {exc})") from exc


def _zip_directory(path: Path, archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """The entries of an open zip archive, checked against the count its end record gives.

    Python's zipfile reads the central directory by its byte size and never compares the count,
    so a damaged length field that swallows the entries after it goes unnoticed.
    """
    infos = archive.infolist()
    with open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - 22 - 65535))
        tail = handle.read()
    end = tail.rfind(b"PK\x05\x06")
    if end >= 0 and len(tail) >= end + 22:
        (total,) = struct.unpack("<H", tail[end + 10 : end + 12])
        if total != 0xFFFF and total != len(infos):  # 0xFFFF: zip64, counted elsewhere
            raise DataFileError(f"{path}: damaged .npz (zip) file: its directory holds {len(infos)} of its {total} entries")
    return infos


def check_npz(path: str | Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Array name -> (shape, dtype) of an .npz file whose zip directory is whole and whose members hold
    exactly what their headers announce (the values are checked by zip's CRC-32 when read).

    Raises:
        DataFileError: not a zip file, a damaged directory, or a truncated or damaged member.
    """
    return _npz_members(Path(path))


def _npz_members(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Array name -> (shape, dtype) of an .npz, from the headers, checking member sizes."""
    found: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in _zip_directory(path, archive):
                if not info.filename.endswith(".npy"):
                    continue
                name = info.filename[:-4]
                where = f"{path} (array {name!r})"
                with archive.open(info) as member:
                    shape, dtype, _ = _npy_header(member, where)
                    header = member.tell() if hasattr(member, "tell") else 0
                if dtype.hasobject:
                    found[name] = (shape, dtype)
                    continue
                expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
                if info.file_size - header != expected:
                    raise DataFileError(
                        f"{where}: {'truncated' if info.file_size - header < expected else 'damaged'}: the header announces "
                        f"{shape} {dtype} ({expected} bytes) but the member holds {info.file_size - header}"
                    )
                found[name] = (shape, dtype)
    except DataFileError:
        raise
    except Exception as exc:
        raise DataFileError(
            f"{path}: not a readable .npz (zip) file ({exc.__class__.__name__}: {exc}); it may be truncated"
        ) from exc
    return found


def _read_npz(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    try:
        with np.load(path, allow_pickle=False) as data:
            for name in names:
                out[name] = np.asarray(data[name])
    except Exception as exc:
        raise DataFileError(f"{path}: cannot read {names} ({exc.__class__.__name__}: {exc}); the file may be truncated") from exc
    return out


def hdf5_format(path: str | Path) -> str | None:
    """The root ``format`` attribute of an HDF5 file (None when it has none).

    Raises:
        DataFileError: not a readable HDF5 file.
    """
    check_global_heaps(path, HEAP_SCAN_LIMIT)  # the attribute is a string: HDF5 may never return from a damaged heap
    try:
        with h5py.File(path, "r") as handle:
            check_hdf5_attrs(handle, str(path))
            kind = handle.attrs.get("format")
    except DataFileError:
        raise
    except Exception as exc:
        raise DataFileError(f"{path}: not a readable HDF5 file ({exc.__class__.__name__}: {exc}); it may be truncated") from exc
    if isinstance(kind, bytes):
        kind = kind.decode(errors="replace")
    return None if kind is None else str(kind)


# --------------------------------------------------------------------------------------------
# The container
# --------------------------------------------------------------------------------------------


@dataclass
class Container:
    """What a file holds, read once: the container and its variables (MATLAB axis order).

    Attributes:
        path: the file.
        kind: the container (:func:`sniff`): mat5, mat73, mat4, npz, npy, hdf5 or raw.
        variables: name -> (shape in the file's order, MATLAB class or dtype); empty for HDF5
            files that are not MATLAB files and for raw frames.
        h5_format: the HDF5 ``format`` attribute (hdf5 and mat73 files).
        notes: what is worth knowing about how the file was read (a suffix that does not match
            the content, a bare .npy read as ``meas``).
    """

    path: Path
    kind: str
    variables: dict[str, tuple[tuple[int, ...], str]]
    h5_format: str | None = None
    notes: list[str] = field(default_factory=list)
    _cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def format_name(self) -> str:
        """The container's name in messages (``MATLAB v5``, ``numpy .npz``...)."""
        return CONTAINER_NAMES.get(self.kind, self.kind)

    @property
    def keys(self) -> set[str]:
        return set(self.variables)

    @property
    def is_snapcap_dataset(self) -> bool:
        return self.kind in ("hdf5", "mat73") and self.h5_format == DATASET_FORMAT

    @property
    def is_snapcap_measurements(self) -> bool:
        if self.kind in ("hdf5", "mat73"):
            return self.h5_format == MEASUREMENTS_FORMAT
        return self.kind == "npz" and _MEASUREMENT_MEMBERS <= self.keys

    def listing(self) -> str:
        """The variables in words: ``meas (512, 512, 4) uint8, mask (512, 512, 8) double``."""
        if not self.variables:
            return "no variables"
        return ", ".join(f"{name} {shape} {cls}" for name, (shape, cls) in self.variables.items())

    def get(self, name: str) -> np.ndarray:
        """The variable in MATLAB axis order, checked real numeric and finite (read once, cached).

        Raises:
            MissingKeyError: the file has no such variable (the message lists what it holds).
            DataFileError: not a real numeric array, or the container has no variables.
            InvalidValueError: NaN or infinite values.
        """
        if name not in self._cache:
            if name not in self.variables:
                raise MissingKeyError(f"{self.path}: no variable {name!r}; the file holds {self.listing()}")
            if self.kind in MATLAB_KINDS:
                array = load_mat(self.path, [name])[name]
            elif self.kind == "npz":
                array = _read_npz(self.path, [name])[name]
            elif self.kind == "npy":
                array = read_npy(self.path)
            else:  # pragma: no cover - raw and snapcap files do not go through get()
                raise DataFileError(f"{self.path}: variable access is not available for {self.format_name} files")
            array = np.asarray(array)
            if array.dtype.kind not in "biuf":
                raise DataFileError(f"{self.path}: variable {name!r} has dtype {array.dtype}; expected a real numeric array")
            if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
                bad = int(np.sum(~np.isfinite(array)))
                raise InvalidValueError(
                    f"{self.path}: variable {name!r} holds {bad} NaN or infinite value(s); expected finite numbers"
                )
            self._cache[name] = array
        return self._cache[name]

    def first(self, names: tuple[str, ...]) -> str | None:
        """The first of ``names`` the file holds, or None."""
        return next((name for name in names if name in self.variables), None)


def open_container(path: str | Path) -> Container:
    """Recognise ``path`` (:func:`sniff`) and list its variables, without reading the arrays.

    Raises:
        DataFileError: unreadable, damaged or unrecognised content (the message says what
            would have been recognised).
    """
    path = Path(path)
    kind = sniff(path)
    suffix = path.suffix.lower()
    if kind is None:
        raise DataFileError(
            f"{path}: unrecognised content (not MATLAB, HDF5, numpy, TIFF/DNG or a raw camera file); "
            "expected .mat, .npz, .npy, .h5 or a raw frame (.dng, .cr2, .nef, .arw...)"
        )
    notes: list[str] = []
    name = CONTAINER_NAMES.get(kind, kind)
    expected = _SUFFIX_KINDS.get(suffix)
    if expected is not None and kind not in expected:
        notes.append(f"the suffix {suffix!r} does not match the content ({name}); read as {name}")
    elif expected is None and suffix not in RAW_SUFFIXES and kind != "raw":
        notes.append(f"unusual suffix {suffix!r}; read as {name} from its content")
    variables: dict[str, tuple[tuple[int, ...], str]] = {}
    h5_format = None
    if kind in MATLAB_KINDS:
        try:
            variables = list_mat_variables(path)
        except SnapcapError:
            raise
        except Exception as exc:
            raise DataFileError(f"{path}: not a readable MATLAB file ({exc.__class__.__name__}: {exc})") from exc
        if kind == "mat73":
            h5_format = hdf5_format(path)
    elif kind == "npz":
        members = _npz_members(path)
        variables = {name: (shape, dtype.name if not dtype.hasobject else "object") for name, (shape, dtype) in members.items()}
    elif kind == "npy":
        try:
            with open(path, "rb") as handle:
                shape, dtype, _ = _npy_header(handle, str(path))
        except OSError as exc:
            if isinstance(exc, DataFileError):
                raise
            raise DataFileError(f"{path}: cannot be read ({exc})") from exc
        variables = {"meas": (shape, dtype.name if not dtype.hasobject else "object")}
        notes.append("a bare .npy array is read as the variable 'meas' in MATLAB order H×W[×N]")
    elif kind == "hdf5":
        h5_format = hdf5_format(path)
    return Container(path=path, kind=kind, variables=variables, h5_format=h5_format, notes=notes)


# --------------------------------------------------------------------------------------------
# snapcap's own files
# --------------------------------------------------------------------------------------------


def is_snapcap_dataset(path: str | Path) -> bool:
    """Whether ``path`` is a snapcap measurement dataset (HDF5, ``format`` = :data:`DATASET_FORMAT`).

    Never raises: a missing or unreadable file is not a dataset.
    """
    try:
        return sniff(path) in ("hdf5", "mat73") and hdf5_format(path) == DATASET_FORMAT
    except SnapcapError:
        return False


def is_snapcap_measurements(path: str | Path) -> bool:
    """Whether ``path`` is a snapcap measurement file (``snapcap simulate``: .npz or HDF5).

    An .npz holds the members ``meas``, ``params`` and ``format``; an HDF5 file has the root
    attribute ``format`` = :data:`MEASUREMENTS_FORMAT`. Never raises.
    """
    try:
        kind = sniff(path)
        if kind in ("hdf5", "mat73"):
            return hdf5_format(path) == MEASUREMENTS_FORMAT
        if kind == "npz":
            with zipfile.ZipFile(path) as archive:
                names = {name[:-4] for name in archive.namelist() if name.endswith(".npy")}
            return _MEASUREMENT_MEMBERS <= names
    except (SnapcapError, OSError, zipfile.BadZipFile, EOFError, ValueError):
        return False
    return False
