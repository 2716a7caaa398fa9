"""Writing files safely: the one helper every writer in snapcap goes through.

A file snapcap writes either appears whole under its final name or not at all: the bytes go to a
temporary name in the target folder (so the rename stays on one file system), are flushed and
fsync'ed, then renamed over the target; every error path removes the temporary file. Failures of
the output itself (read-only folder, disk full, a folder where a file should go, a missing parent
that cannot be made) become a :class:`~snapcap.errors.DataFileError` naming the path.

Example::

    with atomic_path("out/frames.npy") as tmp:
        np.save(tmp, frames)                      # any writer that takes a path
    write_text("out/report.md", markdown)
    write_json("out/results.json", payload)
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from snapcap.errors import DataFileError

__all__ = [
    "atomic_path",
    "atomic_write",
    "write_text",
    "write_bytes",
    "write_json",
    "output_error",
    "check_output",
    "TEMP_PREFIX",
]

TEMP_PREFIX = ".tmp-"
"""Prefix of the temporary names (hidden files in the target folder)."""


def output_error(path: str | Path, exc: OSError) -> DataFileError:
    """A :class:`DataFileError` for a failure to write ``path``, naming the cause in words."""
    reasons = {
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EROFS: "read-only file system",
        errno.ENOSPC: "no space left on device",
        errno.EDQUOT: "disk quota exceeded",
        errno.EFBIG: "file too large for this file system or the process's file-size limit",
        errno.EISDIR: "is a folder",
        errno.ENOTDIR: "a parent is not a folder",
        errno.ENOENT: "its folder does not exist",
    }
    reason = reasons.get(exc.errno or 0, exc.strerror or str(exc))
    return DataFileError(f"{path}: cannot write ({reason})")


def check_output(path: str | Path, folder: bool = False, what: str = "-o") -> Path:
    """Refuse, before any work, an output that cannot be written: a folder where a file goes (or the
    reverse), a parent that is a file, or a folder this process may not write into.

    Args:
        path: the output file (or folder, with ``folder=True``).
        what: the argument that named it, for the message.

    Raises:
        DataFileError: naming the argument, the path and the reason.
    """
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise DataFileError(f"{what} {path}: is a file; expected a folder (or a new name)")
    if not folder and path.is_dir():
        raise DataFileError(f"{what} {path}: is a folder; expected a file name")
    parent = path if folder else path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise DataFileError(f"{what} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise DataFileError(f"{what} {path}: cannot write into {parent} (permission denied)")
    return path


def _prepare(path: Path) -> None:
    if path.is_dir():
        raise DataFileError(f"{path}: cannot write a file there, it is a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ENOTDIR):
            raise DataFileError(f"{path}: cannot write (its folder {path.parent} is a file, or a folder above it is)") from exc
        raise output_error(path, exc) from exc


def _umask() -> int:
    """The process's umask, read without changing it where /proc says it (no race with threads)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _publish_mode(tmp: str, path: Path) -> None:
    """Give the temporary file the mode the target would get: the existing target's, else 0o666 & ~umask.

    ``mkstemp`` creates files readable by their owner only; a published file must not be.
    """
    try:
        mode = path.stat().st_mode & 0o7777
    except OSError:
        mode = 0o666 & ~_umask()
    with contextlib.suppress(OSError):  # file systems without modes (FAT, some network mounts)
        os.chmod(tmp, mode)


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[str]:
    """Yield a temporary path beside ``path``; on success it is fsync'ed and renamed to ``path``.

    Args:
        path: the final file.
        suffix: suffix of the temporary name (default: ``path``'s, so writers that look at the
            suffix, such as matplotlib or OpenCV, pick the right format).

    Raises:
        DataFileError: the folder cannot be written (the temporary file is removed).
    """
    path = Path(path)
    _prepare(path)
    try:
        handle, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=path.suffix if suffix is None else suffix, dir=path.parent)
    except OSError as exc:
        raise output_error(path, exc) from exc
    os.close(handle)
    try:
        yield tmp
        try:
            with open(tmp, "rb+") as done:
                os.fsync(done.fileno())
            _publish_mode(tmp, path)
            os.replace(tmp, path)
        except OSError as exc:
            raise output_error(path, exc) from exc
    except OSError as exc:
        if isinstance(exc, DataFileError):
            raise
        raise output_error(path, exc) from exc
    finally:
        with contextlib.suppress(OSError):
            if os.path.exists(tmp):
                os.remove(tmp)


def atomic_write(path: str | Path, write: Callable[[str], Any], suffix: str | None = None) -> Path:
    """Call ``write(tmp)`` on a temporary path and publish it as ``path`` (see :func:`atomic_path`)."""
    with atomic_path(path, suffix=suffix) as tmp:
        write(tmp)
    return Path(path)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            handle.write(data)

    return atomic_write(path, write)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, payload: Any, indent: int | None = 2) -> Path:
    """Write ``payload`` as JSON to ``path`` atomically (non-JSON values through ``str``)."""
    return write_text(path, json.dumps(payload, indent=indent, default=str))
